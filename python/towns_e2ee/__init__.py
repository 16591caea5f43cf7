"""towns-e2ee for Python: the Towns end-to-end encryption protocol through the C ABI
of libtowns-e2ee (include/towns/towns.h), bound with ctypes.

Importing the package loads the library (``TOWNS_E2EE_LIBRARY``, else the
system's ``libtowns-e2ee.so.0``) and raises :class:`LibraryNotFoundError` (an
ImportError) when it cannot. Every failed call raises :class:`TownsError` with
the library's code name and message.
"""

from ._lib import LIBRARY_ENV, SONAME, LibraryNotFoundError, library_origin, library_version
from ._core import STATUS_BY_NAME, TownsError, status_name
from ._types import Algorithm, Decrypted, DeviceKeys, Miniblock
from .store import OpenMode, Store
from .crypto import (Crypto, build_group_encryption_sessions, receive_group_encryption_sessions,
                     receive_group_encryption_sessions_batch)
from .key_exchange import (KeyExchange, KeyExchangeHost, KeyExchangeOptions, KeyExchangeStats,
                           StreamSolicitations)
from .vectors import VectorsResult, verify_vectors

__version__ = "0.1.0"

__all__ = [
    "Algorithm", "Crypto", "Decrypted", "DeviceKeys", "KeyExchange", "KeyExchangeHost", "KeyExchangeOptions",
    "KeyExchangeStats", "LIBRARY_ENV", "LibraryNotFoundError", "Miniblock", "OpenMode", "SONAME",
    "STATUS_BY_NAME", "Store", "StreamSolicitations", "TownsError", "build_group_encryption_sessions",
    "library_origin", "library_version", "receive_group_encryption_sessions",
    "receive_group_encryption_sessions_batch", "status_name", "VectorsResult", "verify_vectors",
]
