"""Errors, argument conversion and the reading (and wiping) of what the library returns."""

from __future__ import annotations

import ctypes
import os
from typing import Optional, Union

from . import _lib
from ._lib import lib

BytesLike = Union[bytes, bytearray, memoryview]


class TownsError(Exception):
    """A call into libtowns-e2ee failed.

    ``code`` is the status code's name as the library gives it
    (``towns_status_name``: ``"SESSION_NOT_FOUND"``, ``"INVALID_ARGUMENT"``...),
    ``message`` the library's message (``towns_last_error_message``), ``status``
    the number (``TOWNS_E_*``). A code this package does not know (a newer
    library) still arrives, named ``"UNKNOWN_STATUS_<n>"`` when the library has
    no name for it.
    """

    def __init__(self, code: str, message: str, status: Optional[int] = None):
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.status = status if status is not None else STATUS_BY_NAME.get(code)

    def __str__(self) -> str:
        # The library's messages name the code already ("SESSION_NOT_FOUND: ...").
        if not self.message:
            return self.code
        return self.message if self.message.startswith(self.code) else f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"TownsError({self.code!r}, {self.message!r})"


def status_name(status: int) -> str:
    """The name of a status code ("OK", "SESSION_NOT_FOUND"...)."""
    raw = lib.towns_status_name(status)
    return raw.decode("ascii") if raw is not None else f"UNKNOWN_STATUS_{status}"


#: Every code this package knows, by name: {"OK": 0, "INVALID_ARGUMENT": 1, ...}.
STATUS_BY_NAME = {status_name(s): s for s in range(0, _lib.LAST_KNOWN_STATUS + 1)}


def error_for(status: int, message: Optional[str] = None) -> TownsError:
    if message is None:
        message = lib.towns_last_error_message().decode("utf-8", "replace")
    return TownsError(status_name(status), message, status)


def check(status: int) -> None:
    """Raises the TownsError of a non-OK status (with this thread's last message)."""
    if status != 0:
        raise error_for(status)


def invalid(message: str) -> TownsError:
    """The library's INVALID_ARGUMENT, for a value refused before the call (a NUL in a string)."""
    return TownsError("INVALID_ARGUMENT", message, 1)


# ---- Arguments

def text_arg(value, name: str, optional: bool = False) -> Optional[bytes]:
    """A str argument as NUL-terminated UTF-8. None only when optional."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be str, not {type(value).__name__}")
    raw = value.encode("utf-8")
    if b"\0" in raw:
        raise invalid(f"{name} holds a NUL character")
    return raw


def path_arg(value, name: str) -> bytes:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be str or os.PathLike, not {type(value).__name__}")
    raw = os.fsencode(value)
    if b"\0" in raw:
        raise invalid(f"{name} holds a NUL character")
    return raw


def bytes_arg(value, name: str, optional: bool = False) -> Optional[bytes]:
    """A bytes-like argument as bytes. str is refused (bytes are not text)."""
    if value is None and optional:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{name} must be bytes-like, not {type(value).__name__}")


def int_arg(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be int, not {type(value).__name__}")
    return value


def enum_arg(value, enum_type, name: str) -> int:
    """An IntEnum member (or its int value); a value outside the enum is left to the library."""
    if isinstance(value, enum_type):
        return int(value)
    return int_arg(value, name)


# ---- Results: copy into Python, then free (and wipe) the library's copy

def take_buffer(buf: _lib.towns_buffer) -> bytes:
    try:
        if not buf.data or buf.len == 0:
            return b""
        return ctypes.string_at(buf.data, buf.len)
    finally:
        lib.towns_buffer_free(ctypes.byref(buf))


def take_string(s: _lib.towns_string) -> str:
    try:
        if not s.data or s.len == 0:
            return ""
        return ctypes.string_at(s.data, s.len).decode("utf-8")
    finally:
        lib.towns_string_free(ctypes.byref(s))


def bytes_array(items, name: str):
    """(a towns_bytes array, the bytes objects it points into: keep them alive for the call)."""
    if isinstance(items, (bytes, bytearray, memoryview, str)):
        raise TypeError(f"{name} must be a sequence of bytes-like messages, not one {type(items).__name__}")
    keep = [bytes_arg(m, f"{name}[{i}]") for i, m in enumerate(items)]
    arr = (_lib.towns_bytes * len(keep))()
    for i, m in enumerate(keep):
        arr[i].data = ctypes.cast(ctypes.c_char_p(m), ctypes.c_void_p) if m else None
        arr[i].len = len(m)
    return arr, keep
