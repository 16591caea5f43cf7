"""The base of the classes that own a library handle."""

from __future__ import annotations

import ctypes
import threading


class Handle:
    """Owns one opaque handle, released by ``close()``, by leaving a ``with``
    block, or, as a fallback, when the object is collected. A closed object
    passes NULL to the library, which refuses it with INVALID_ARGUMENT."""

    _free = None  # the library's *_free function, set by each subclass

    def __init__(self):
        self._ptr = ctypes.c_void_p()
        self._lock = threading.Lock()

    @property
    def closed(self) -> bool:
        return not self._ptr

    def close(self) -> None:
        """Frees the handle now. Idempotent. What the library holds on to
        (a crypto's store, an engine's crypto) lives until its last user is freed."""
        with self._lock:
            ptr, self._ptr = self._ptr, ctypes.c_void_p()
        if ptr:
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
