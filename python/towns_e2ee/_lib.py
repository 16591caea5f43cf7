"""Loading libtowns-e2ee and declaring the C ABI (include/towns/towns.h) to ctypes.

Everything here mirrors the header one to one; the public classes live in the
other modules. The library is found, in this order:

1. the environment variable ``TOWNS_E2EE_LIBRARY``: the path of the shared
   library (``.../lib/libtowns-e2ee.so.0``); when it is set nothing else is tried;
2. the system loader with the soname, ``libtowns-e2ee.so.0`` (``LD_LIBRARY_PATH``,
   the ld.so cache, ``/usr/local/lib``...);
3. ``ctypes.util.find_library("towns-e2ee")``.

Loading checks the library before any of it is used: the major version of
``towns_version()`` (the soname's, 0), every function this module declares,
and that the library names every status code this module knows.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_int, c_int64, c_size_t, c_uint, c_uint8,
                    c_uint64, c_void_p)

#: The environment variable that names the library file.
LIBRARY_ENV = "TOWNS_E2EE_LIBRARY"
#: The soname this package binds: the major version of the C ABI.
SONAME = "libtowns-e2ee.so.0"
#: The ABI major version (the soname's number); towns_version() must start with it.
ABI_MAJOR = 0
#: The highest status code of the header this package was written against (TOWNS_E_LAST).
LAST_KNOWN_STATUS = 41


class LibraryNotFoundError(ImportError):
    """libtowns-e2ee could not be loaded, or is not a version this package binds."""


# ---- Types of the header

towns_status = c_int


class towns_buffer(Structure):
    _fields_ = [("data", POINTER(c_uint8)), ("len", c_size_t)]


class towns_string(Structure):
    _fields_ = [("data", c_void_p), ("len", c_size_t)]


class towns_bytes(Structure):
    _fields_ = [("data", c_void_p), ("len", c_size_t)]


class towns_miniblock_info(Structure):
    _fields_ = [("miniblock_num", c_int64), ("miniblock_hash", c_void_p), ("miniblock_hash_len", c_size_t)]


class towns_decrypt_result(Structure):
    _fields_ = [("status", towns_status), ("plaintext", towns_buffer), ("message_index", c_int64),
                ("error_message", towns_string)]


# Opaque handles and the reply are plain pointers.
handle = c_void_p

# The host's callbacks. Bytes in are c_void_p (read with ctypes.string_at), text
# in is c_char_p (arrives as bytes), out-parameters are pointers.
send_key_solicitation_fn = CFUNCTYPE(towns_status, c_void_p, c_char_p, c_void_p, c_size_t, c_int)
send_key_fulfillment_fn = CFUNCTYPE(towns_status, c_void_p, c_char_p, c_void_p, c_size_t, c_int, POINTER(c_int))
send_group_encryption_sessions_fn = CFUNCTYPE(towns_status, c_void_p, c_char_p, c_void_p, c_size_t)
user_devices_fn = CFUNCTYPE(towns_status, c_void_p, c_char_p, c_void_p)
stream_members_fn = CFUNCTYPE(towns_status, c_void_p, c_char_p, c_void_p)
users_entitled_fn = CFUNCTYPE(towns_status, c_void_p, c_char_p, c_void_p)
is_user_entitled_fn = CFUNCTYPE(towns_status, c_void_p, c_char_p, c_char_p, POINTER(c_int))
key_solicitations_fn = CFUNCTYPE(towns_status, c_void_p, c_char_p, POINTER(c_void_p))
get_miniblock_info_fn = CFUNCTYPE(towns_status, c_void_p, c_char_p, POINTER(c_int64), c_void_p)
on_decrypted_fn = CFUNCTYPE(None, c_void_p, c_char_p, c_char_p, c_void_p, c_size_t, c_int64)
on_decryption_error_fn = CFUNCTYPE(None, c_void_p, c_char_p, c_char_p, towns_status, c_char_p, c_int)


class towns_key_exchange_host(Structure):
    _fields_ = [
        ("user_data", c_void_p),
        ("send_key_solicitation", send_key_solicitation_fn),
        ("send_key_fulfillment", send_key_fulfillment_fn),
        ("send_group_encryption_sessions", send_group_encryption_sessions_fn),
        ("user_devices", user_devices_fn),
        ("stream_members", stream_members_fn),
        ("users_entitled_to_key_exchange", users_entitled_fn),
        ("is_user_entitled", is_user_entitled_fn),
        ("key_solicitations", key_solicitations_fn),
        ("get_miniblock_info", get_miniblock_info_fn),
        ("on_decrypted", on_decrypted_fn),
        ("on_decryption_error", on_decryption_error_fn),
    ]


class towns_key_exchange_options(Structure):
    _fields_ = [("struct_size", c_size_t), ("ephemeral_solicitations", c_int), ("ephemeral_timeout_ms", c_int64),
                ("respond_delay", c_int), ("manual_clock", c_int), ("start_time_ms", c_int64)]


class towns_key_exchange_stats(Structure):
    _fields_ = [("decrypted", c_uint64), ("decryption_failures", c_uint64), ("decryption_errors", c_uint64),
                ("solicitations_sent", c_uint64), ("fulfillments_sent", c_uint64),
                ("fulfillments_refused", c_uint64), ("shares_sent", c_uint64), ("sessions_imported", c_uint64),
                ("bytes_sent", c_uint64), ("waiting_events", c_uint64), ("pending_solicitations", c_uint64),
                ("status", c_int)]


P = POINTER
_buf = P(towns_buffer)
_str = P(towns_string)
_bytes_in = c_void_p  # const uint8_t * (a bytes object or None)

# name: (restype, argtypes). Every function of towns.h.
_FUNCTIONS = {
    "towns_status_name": (c_char_p, [towns_status]),
    "towns_last_error_message": (c_char_p, []),
    "towns_version": (c_char_p, []),
    "towns_buffer_free": (None, [_buf]),
    "towns_string_free": (None, [_str]),
    # stores
    "towns_store_open_sqlite": (towns_status, [c_char_p, _bytes_in, c_size_t, c_int, P(handle)]),
    "towns_store_create_memory": (towns_status, [P(handle)]),
    "towns_store_free": (None, [handle]),
    # the device
    "towns_crypto_create": (towns_status, [handle, _bytes_in, c_size_t, _bytes_in, c_size_t,
                                           P(towns_key_exchange_host), P(handle)]),
    "towns_crypto_free": (None, [handle]),
    "towns_crypto_set_parallelism": (towns_status, [handle, c_uint]),
    "towns_crypto_device_keys": (towns_status, [handle, _str, _str]),
    "towns_crypto_export_device": (towns_status, [handle, _buf]),
    "towns_crypto_ensure_outbound_session": (towns_status, [handle, c_char_p, c_int, P(towns_miniblock_info), _str]),
    "towns_crypto_has_outbound_session": (towns_status, [handle, c_char_p, c_int, P(c_int)]),
    "towns_crypto_has_session_key": (towns_status, [handle, c_char_p, c_char_p, c_int, P(c_int)]),
    "towns_crypto_encrypt_group_event": (towns_status, [handle, c_char_p, _bytes_in, c_size_t, c_int, _buf]),
    "towns_crypto_decrypt_group_event": (towns_status, [handle, c_char_p, _bytes_in, c_size_t, _buf, P(c_int64)]),
    "towns_crypto_decrypt_group_events": (towns_status, [handle, c_char_p, P(towns_bytes), c_size_t,
                                                         P(towns_decrypt_result)]),
    "towns_decrypt_results_free": (None, [P(towns_decrypt_result), c_size_t]),
    "towns_crypto_export_group_session": (towns_status, [handle, c_char_p, c_char_p, _str]),
    "towns_crypto_export_room_keys": (towns_status, [handle, _str]),
    "towns_crypto_import_room_keys_as_json": (towns_status, [handle, c_char_p, _str]),
    "towns_crypto_import_session_keys": (towns_status, [handle, c_char_p, c_char_p, _str]),
    "towns_crypto_encrypt_with_device_keys": (towns_status, [handle, c_char_p, c_char_p, _str]),
    "towns_crypto_decrypt_with_device_key": (towns_status, [handle, c_char_p, c_char_p, _buf]),
    # session sharing
    "towns_build_group_encryption_sessions": (towns_status, [handle, c_char_p, c_int, c_char_p, c_char_p, _buf,
                                                             _str]),
    "towns_receive_group_encryption_sessions": (towns_status, [handle, _bytes_in, c_size_t, _str]),
    "towns_receive_group_encryption_sessions_batch": (towns_status, [handle, P(towns_bytes), c_size_t, _str]),
    # stream solicitations
    "towns_stream_solicitations_create": (towns_status, [P(handle)]),
    "towns_stream_solicitations_free": (None, [handle]),
    "towns_stream_solicitations_apply_solicitation": (towns_status, [handle, c_char_p, _bytes_in, c_size_t, _buf]),
    "towns_stream_solicitations_apply_fulfillment": (towns_status, [handle, _bytes_in, c_size_t, P(c_int), _str,
                                                                    _buf]),
    "towns_stream_solicitations_remove_member": (towns_status, [handle, c_char_p]),
    # the key exchange engine
    "towns_reply_set": (towns_status, [c_void_p, _bytes_in, c_size_t]),
    "towns_key_exchange_options_default": (None, [P(towns_key_exchange_options)]),
    "towns_key_exchange_create": (towns_status, [handle, P(towns_key_exchange_host), c_char_p,
                                                 P(towns_key_exchange_options), P(handle)]),
    "towns_key_exchange_free": (None, [handle]),
    "towns_key_exchange_enqueue_encrypted_content": (towns_status, [handle, c_char_p, c_char_p, _bytes_in,
                                                                    c_size_t]),
    "towns_key_exchange_enqueue_new_group_sessions": (towns_status, [handle, _bytes_in, c_size_t]),
    "towns_key_exchange_enqueue_key_solicitation": (towns_status, [handle, c_char_p, c_char_p, _bytes_in, c_size_t,
                                                                   c_int, c_char_p]),
    "towns_key_exchange_enqueue_init_key_solicitations": (towns_status, [handle, c_char_p, handle]),
    "towns_key_exchange_on_ephemeral_key_fulfillment": (towns_status, [handle, c_char_p, _bytes_in, c_size_t]),
    "towns_key_exchange_retry_decryption_failures": (towns_status, [handle, c_char_p]),
    "towns_key_exchange_tick": (towns_status, [handle, P(c_int)]),
    "towns_key_exchange_run": (towns_status, [handle, P(c_size_t)]),
    "towns_key_exchange_set_time": (towns_status, [handle, c_int64]),
    "towns_key_exchange_advance": (towns_status, [handle, c_int64]),
    "towns_key_exchange_next_due": (towns_status, [handle, P(c_int), P(c_int64)]),
    "towns_key_exchange_stats_get": (towns_status, [handle, P(towns_key_exchange_stats)]),
    "towns_key_exchange_missing_session_ids": (towns_status, [handle, c_char_p, _str]),
    # the conformance vectors
    "towns_vectors_verify": (towns_status, [c_char_p, P(c_size_t), P(c_size_t), _str]),
}


def _candidates():
    """(how it was found, what to pass to CDLL) in the order they are tried."""
    path = os.environ.get(LIBRARY_ENV)
    if path:
        return [(f"${LIBRARY_ENV}={path}", path)]
    out = [(f"the system loader ({SONAME})", SONAME)]
    found = ctypes.util.find_library("towns-e2ee")
    if found and found != SONAME:
        out.append((f"ctypes.util.find_library: {found}", found))
    return out


def _check(lib, where: str):
    """Raises LibraryNotFoundError unless lib is a libtowns-e2ee this package binds."""
    missing = [name for name in _FUNCTIONS if not hasattr(lib, name)]
    if missing:
        raise LibraryNotFoundError(f"{where} is not libtowns-e2ee with the C ABI: it lacks {', '.join(missing[:5])}"
                                   + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    for name, (restype, argtypes) in _FUNCTIONS.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    raw = lib.towns_version()
    version = raw.decode("utf-8", "replace") if raw else ""
    major = version.split(".", 1)[0]
    if not major.isdigit() or int(major) != ABI_MAJOR:
        raise LibraryNotFoundError(f"{where} is libtowns-e2ee {version or '(no version)'}; this package binds "
                                   f"the C ABI of version {ABI_MAJOR}.x ({SONAME})")
    last = lib.towns_status_name(LAST_KNOWN_STATUS)
    if last is None or lib.towns_status_name(0) != b"OK":
        raise LibraryNotFoundError(f"{where} (libtowns-e2ee {version}) does not name status code "
                                   f"{LAST_KNOWN_STATUS}: it is older than the header this package binds")
    return version


def load():
    """(the CDLL, its version, how it was found). Raises LibraryNotFoundError."""
    tried = []
    for where, name in _candidates():
        try:
            lib = ctypes.CDLL(name)
        except OSError as e:
            tried.append(f"{where}: {e}")
            continue
        version = _check(lib, where)
        return lib, version, where
    raise LibraryNotFoundError(
        "libtowns-e2ee was not found. Set TOWNS_E2EE_LIBRARY to the path of libtowns-e2ee.so.0 (a build's "
        "lib/libtowns-e2ee.so.0), or install the library where the system loader finds it. Tried: "
        + "; ".join(tried))


lib, library_version, library_origin = load()
