"""Crypto stores: a SQLite file or process memory (include/towns/store/)."""

from __future__ import annotations

import ctypes
import enum
import os
from typing import Union

from ._core import bytes_arg, check, enum_arg, path_arg
from ._handle import Handle
from ._lib import lib


class OpenMode(enum.IntEnum):
    """How towns_store_open_sqlite treats the path."""
    CREATE = 0  #: a new store; STORE_ERROR when the path exists
    OPEN = 1  #: an existing store; STORE_ERROR when it does not exist
    EITHER = 2  #: the existing store, or a new one


class Store(Handle):
    """A crypto store: ``Store(path, pickle_key, mode)`` opens a SQLite file
    (towns::SqliteCryptoStore) whose contents the pickle key protects;
    ``Store.memory()`` makes one in process memory.

    Errors: STORE_WRONG_PICKLE_KEY, STORE_CORRUPT, STORE_NEWER_SCHEMA, STORE_ERROR.
    """

    _free = lib.towns_store_free

    def __init__(self, path: Union[str, os.PathLike], pickle_key: bytes, mode: OpenMode = OpenMode.EITHER):
        super().__init__()
        p = path_arg(path, "path")
        key = bytes_arg(pickle_key, "pickle_key")
        m = enum_arg(mode, OpenMode, "mode")
        check(lib.towns_store_open_sqlite(p, key, len(key), m, ctypes.byref(self._ptr)))

    @classmethod
    def memory(cls) -> "Store":
        """A store in process memory (towns::MemoryCryptoStore)."""
        self = cls.__new__(cls)
        Handle.__init__(self)
        check(lib.towns_store_create_memory(ctypes.byref(self._ptr)))
        return self
