"""The base of the classes that own a library handle."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import inspect
import threading


def _counted(method):
    """Runs a method as one call in flight on its handle (see Handle)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._use():
            return method(self, *args, **kwargs)

    return wrapper


class Handle:
    """Owns one opaque handle, released by ``close()``, by leaving a ``with``
    block, or, as a fallback, when the object is collected. A closed object
    passes NULL to the library, which refuses it with INVALID_ARGUMENT.

    ctypes releases the GIL during a library call, so another thread may close
    the object while a call is using the handle: every public method counts as
    a call in flight from before it reads the handle until it returns, and a
    close() during calls in flight frees the handle when the last of them ends
    (a call that starts after close() sees NULL). A handle used by another
    object's call (a crypto by a key exchange being created, a store by a
    crypto) is counted the same way with ``_use()``."""

    _free = None  # the library's *_free function, set by each subclass

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if name.startswith("_") or name == "close" or not inspect.isfunction(value):
                continue
            setattr(cls, name, _counted(value))

    def __init__(self):
        self._ptr = ctypes.c_void_p()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._free_pending = None  # the pointer close() left for the last call in flight

    @property
    def closed(self) -> bool:
        return not self._ptr

    @contextlib.contextmanager
    def _use(self):
        """The handle (NULL once closed), not freed before the block ends."""
        with self._lock:
            self._in_flight += 1
            ptr = self._ptr
        try:
            yield ptr
        finally:
            with self._lock:
                self._in_flight -= 1
                ptr = None
                if self._in_flight == 0 and self._free_pending is not None:
                    ptr, self._free_pending = self._free_pending, None
            if ptr:
                type(self)._free(ptr)

    def close(self) -> None:
        """Releases the handle: now, or, when calls are in flight on it (on
        other threads, or this one's host callbacks), as the last of them
        returns. Idempotent. What the library holds on to (a crypto's store, an
        engine's crypto) lives until its last user is freed."""
        with self._lock:
            ptr, self._ptr = self._ptr, ctypes.c_void_p()
            if not ptr:
                return
            if self._in_flight:
                self._free_pending = ptr
                return
        type(self)._free(ptr)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        # During interpreter shutdown the library may be gone already.
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'closed' if self.closed else hex(self._ptr.value)}>"
