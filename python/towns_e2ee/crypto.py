"""The device (towns::GroupEncryptionCrypto) and session sharing."""

from __future__ import annotations

import ctypes
import json
from typing import Dict, List, Optional, Sequence, Tuple, Union

from . import _lib
from ._core import (BytesLike, TownsError, bytes_arg, bytes_array, check, enum_arg, error_for, int_arg, take_buffer,
                    take_string, text_arg)
from ._handle import Handle
from ._host import HostBridge, raise_after
from ._lib import lib
from ._types import Algorithm, Decrypted, DeviceKeys, Miniblock, devices_json
from .store import Store

SessionKey = Dict[str, str]  # {"streamId", "sessionId", "sessionKey", "algorithm"}


def _keys_json(keys, name: str) -> bytes:
    if isinstance(keys, (str, bytes, dict)):
        raise TypeError(f"{name} must be a sequence of session key dicts, not one {type(keys).__name__}")
    keys = list(keys)
    for i, k in enumerate(keys):
        if not isinstance(k, dict):
            raise TypeError(f"{name}[{i}] must be a dict, not {type(k).__name__}")
    return text_arg(json.dumps(keys), name)


class Crypto(Handle):
    """A device over a store (towns_crypto): its account (made on first use),
    its outbound sessions and the session keys it holds.

    ``Crypto(store, pickle_key)`` loads the stored device or makes one;
    ``exported_device=`` recreates a device from :meth:`export_device`'s bytes.
    ``share_host``: None, or the key exchange host (see
    :class:`~towns_e2ee.KeyExchangeHost`) that receives every new outbound
    session for the stream's users and gives a new grpaes session its miniblock;
    a device driven by a :class:`~towns_e2ee.KeyExchange` passes the same host.
    """

    _free = lib.towns_crypto_free

    def __init__(self, store: Store, pickle_key: bytes, *, exported_device: Optional[BytesLike] = None,
                 share_host=None):
        super().__init__()
        if not isinstance(store, Store):
            raise TypeError(f"store must be a Store, not {type(store).__name__}")
        key = bytes_arg(pickle_key, "pickle_key")
        exported = bytes_arg(exported_device, "exported_device", optional=True)
        self._store = store
        self._bridge: Optional[HostBridge] = HostBridge(share_host) if share_host is not None else None
        host_ptr = ctypes.byref(self._bridge.struct) if self._bridge else None
        with store._use() as store_ptr:
            status = lib.towns_crypto_create(store_ptr, key, len(key), exported, len(exported) if exported else 0,
                                             host_ptr, ctypes.byref(self._ptr))
        self._done(status)

    def _done(self, status: int) -> None:
        """Raises a share host's exception, else the status's TownsError."""
        raise_after(status, [self._bridge])

    def set_parallelism(self, threads: int) -> None:
        """Threads used by the batch operations (1: sequential; 0 counts as 1)."""
        threads = int_arg(threads, "threads")
        if threads < 0:
            raise ValueError("threads must not be negative")
        check(lib.towns_crypto_set_parallelism(self._ptr, threads))

    def device_keys(self) -> DeviceKeys:
        """This device's curve25519 key and fallback key, as published."""
        dk, fk = _lib.towns_string(), _lib.towns_string()
        check(lib.towns_crypto_device_keys(self._ptr, ctypes.byref(dk), ctypes.byref(fk)))
        return DeviceKeys(take_string(dk), take_string(fk))

    def export_device(self) -> bytes:
        """The binary ExportedDevice protobuf. Secret: every key of the device."""
        out = _lib.towns_buffer()
        check(lib.towns_crypto_export_device(self._ptr, ctypes.byref(out)))
        return take_buffer(out)

    def ensure_outbound_session(self, stream_id: str, algorithm: Algorithm = Algorithm.GROUP_ENCRYPTION,
                                miniblock: Optional[Union[Miniblock, Tuple[int, bytes]]] = None) -> str:
        """The stream's outbound session id, made (and, with a share host,
        shared) when there is none. A new grpaes session needs ``miniblock`` or a
        share host to ask (INVALID_ARGUMENT without either)."""
        sid = text_arg(stream_id, "stream_id")
        alg = enum_arg(algorithm, Algorithm, "algorithm")
        info = None
        if miniblock is not None:
            if not (isinstance(miniblock, tuple) and len(miniblock) == 2):
                raise TypeError("miniblock must be Miniblock(num, hash)")
            num = int_arg(miniblock[0], "miniblock.num")
            h = bytes_arg(miniblock[1], "miniblock.hash")
            info = _lib.towns_miniblock_info(num, ctypes.cast(ctypes.c_char_p(h), ctypes.c_void_p), len(h))
        out = _lib.towns_string()
        self._done(lib.towns_crypto_ensure_outbound_session(self._ptr, sid, alg,
                                                            ctypes.byref(info) if info is not None else None,
                                                            ctypes.byref(out)))
        return take_string(out)

    def has_outbound_session(self, stream_id: str, algorithm: Algorithm = Algorithm.GROUP_ENCRYPTION) -> bool:
        out = ctypes.c_int()
        check(lib.towns_crypto_has_outbound_session(self._ptr, text_arg(stream_id, "stream_id"),
                                                    enum_arg(algorithm, Algorithm, "algorithm"), ctypes.byref(out)))
        return out.value == 1

    def has_session_key(self, stream_id: str, session_id: str,
                        algorithm: Algorithm = Algorithm.GROUP_ENCRYPTION) -> bool:
        """Whether the session's key is held (for decryption)."""
        out = ctypes.c_int()
        check(lib.towns_crypto_has_session_key(self._ptr, text_arg(stream_id, "stream_id"),
                                               text_arg(session_id, "session_id"),
                                               enum_arg(algorithm, Algorithm, "algorithm"), ctypes.byref(out)))
        return out.value == 1

    def encrypt_group_event(self, stream_id: str, payload: BytesLike,
                            algorithm: Algorithm = Algorithm.GROUP_ENCRYPTION) -> bytes:
        """The payload bytes encrypted (version 1) as EncryptedData protobuf bytes.
        EMPTY_PAYLOAD (grpaes), PAYLOAD_TOO_LARGE."""
        sid = text_arg(stream_id, "stream_id")
        data = bytes_arg(payload, "payload")
        alg = enum_arg(algorithm, Algorithm, "algorithm")
        out = _lib.towns_buffer()
        self._done(lib.towns_crypto_encrypt_group_event(self._ptr, sid, data, len(data), alg, ctypes.byref(out)))
        return take_buffer(out)

    def decrypt_group_event(self, stream_id: str, encrypted_data: BytesLike) -> Decrypted:
        """Decrypts EncryptedData protobuf bytes. INVALID_ARGUMENT (not an
        EncryptedData), SESSION_NOT_FOUND (no key held: solicit it),
        GROUP_DECRYPTION_*, DECRYPTION_FAILED, REPLAY."""
        sid = text_arg(stream_id, "stream_id")
        data = bytes_arg(encrypted_data, "encrypted_data")
        out = _lib.towns_buffer()
        index = ctypes.c_int64(-1)
        check(lib.towns_crypto_decrypt_group_event(self._ptr, sid, data, len(data), ctypes.byref(out),
                                                   ctypes.byref(index)))
        plaintext = take_buffer(out)
        return Decrypted(plaintext, None if index.value < 0 else index.value)

    def decrypt_group_events(self, stream_id: str,
                             events: Sequence[BytesLike]) -> List[Union[Decrypted, TownsError]]:
        """A backlog of one stream's events: per event, in order, its Decrypted
        or the TownsError decrypting it alone would raise."""
        sid = text_arg(stream_id, "stream_id")
        arr, keep = bytes_array(events, "events")
        n = len(keep)
        results = (_lib.towns_decrypt_result * max(n, 1))()
        check(lib.towns_crypto_decrypt_group_events(self._ptr, sid, arr, n, results))
        try:
            out: List[Union[Decrypted, TownsError]] = []
            for i in range(n):
                r = results[i]
                if r.status == 0:
                    pt = ctypes.string_at(r.plaintext.data, r.plaintext.len) if r.plaintext.data else b""
                    out.append(Decrypted(pt, None if r.message_index < 0 else r.message_index))
                else:
                    msg = ctypes.string_at(r.error_message.data, r.error_message.len).decode("utf-8", "replace") \
                        if r.error_message.data else ""
                    out.append(error_for(r.status, msg))
            return out
        finally:
            lib.towns_decrypt_results_free(results, n)

    def export_group_session(self, stream_id: str, session_id: str) -> SessionKey:
        """One held session's key: {"streamId", "sessionId", "sessionKey",
        "algorithm"} (secret). SESSION_NOT_FOUND when not held."""
        out = _lib.towns_string()
        check(lib.towns_crypto_export_group_session(self._ptr, text_arg(stream_id, "stream_id"),
                                                    text_arg(session_id, "session_id"), ctypes.byref(out)))
        return json.loads(take_string(out))

    def export_room_keys(self) -> List[SessionKey]:
        """Every held session of both algorithms (secret)."""
        out = _lib.towns_string()
        check(lib.towns_crypto_export_room_keys(self._ptr, ctypes.byref(out)))
        return json.loads(take_string(out))

    def import_room_keys(self, keys: Sequence[SessionKey]) -> Dict[str, List[str]]:
        """Imports keys, each under its own streamId. The result:
        {"imported": [id...], "failed": [...], "skipped": [...]} (a refused key
        is reported there, not raised)."""
        out = _lib.towns_string()
        check(lib.towns_crypto_import_room_keys_as_json(self._ptr, _keys_json(keys, "keys"), ctypes.byref(out)))
        return json.loads(take_string(out))

    def import_session_keys(self, stream_id: str, keys: Sequence[SessionKey]) -> Dict[str, List[str]]:
        """Imports keys all under stream_id (each key's own streamId is ignored);
        the result as :meth:`import_room_keys`."""
        out = _lib.towns_string()
        check(lib.towns_crypto_import_session_keys(self._ptr, text_arg(stream_id, "stream_id"),
                                                   _keys_json(keys, "keys"), ctypes.byref(out)))
        return json.loads(take_string(out))

    def encrypt_with_device_keys(self, payload: str, devices) -> Dict[str, str]:
        """Olm pre-key messages of payload for each device (DeviceKeys, tuples or
        {"deviceKey", "fallbackKey"} dicts): {device key: ciphertext}. PAYLOAD_TOO_LARGE."""
        out = _lib.towns_string()
        check(lib.towns_crypto_encrypt_with_device_keys(self._ptr, text_arg(payload, "payload"),
                                                        text_arg(devices_json(devices), "devices"),
                                                        ctypes.byref(out)))
        return json.loads(take_string(out))

    def decrypt_with_device_key(self, ciphertext: str, sender_device_key: str) -> bytes:
        """Decrypts a pre-key message sent to this device. DECRYPTION_FAILED."""
        out = _lib.towns_buffer()
        check(lib.towns_crypto_decrypt_with_device_key(self._ptr, text_arg(ciphertext, "ciphertext"),
                                                       text_arg(sender_device_key, "sender_device_key"),
                                                       ctypes.byref(out)))
        return take_buffer(out)


def _crypto_arg(crypto) -> Crypto:
    if not isinstance(crypto, Crypto):
        raise TypeError(f"crypto must be a Crypto, not {type(crypto).__name__}")
    return crypto


def build_group_encryption_sessions(crypto: Crypto, stream_id: str, algorithm: Algorithm,
                                    sessions: Sequence[SessionKey], devices) -> Tuple[bytes, List[str]]:
    """The GroupEncryptionSessions message (protobuf bytes) sharing ``sessions``
    (as :meth:`Crypto.export_room_keys` gives) with one user's ``devices``, and
    the device keys olm refused (skipped). Our own device is skipped silently."""
    c = _crypto_arg(crypto)
    message, skipped = _lib.towns_buffer(), _lib.towns_string()
    sid, alg = text_arg(stream_id, "stream_id"), enum_arg(algorithm, Algorithm, "algorithm")
    keys, devs = _keys_json(sessions, "sessions"), text_arg(devices_json(devices), "devices")
    with c._use() as ptr:
        check(lib.towns_build_group_encryption_sessions(ptr, sid, alg, keys, devs, ctypes.byref(message),
                                                        ctypes.byref(skipped)))
    data = take_buffer(message)
    skipped_text = take_string(skipped)
    return data, json.loads(skipped_text) if skipped_text else []


def receive_group_encryption_sessions(crypto: Crypto, message: BytesLike) -> dict:
    """Imports, from a GroupEncryptionSessions message (protobuf bytes), the
    sessions for this device that it does not hold. The result:
    {"status": "imported" | "nothing_missing" | "not_for_this_device" |
    "unknown_algorithm", "streamId", "algorithm", "imported": [id...],
    "failed": [id...]}. DECRYPTION_FAILED, IMPORT_FAILED."""
    c = _crypto_arg(crypto)
    data = bytes_arg(message, "message")
    out = _lib.towns_string()
    with c._use() as ptr:
        check(lib.towns_receive_group_encryption_sessions(ptr, data, len(data), ctypes.byref(out)))
    return json.loads(take_string(out))


def receive_group_encryption_sessions_batch(crypto: Crypto,
                                            messages: Sequence[BytesLike]) -> List[Union[dict, TownsError]]:
    """An inbox backlog in one store write: per message, its result (as
    :func:`receive_group_encryption_sessions`) or the TownsError it alone raises."""
    c = _crypto_arg(crypto)
    arr, keep = bytes_array(messages, "messages")
    out = _lib.towns_string()
    with c._use() as ptr:
        check(lib.towns_receive_group_encryption_sessions_batch(ptr, arr, len(keep), ctypes.byref(out)))
    results = []
    for r in json.loads(take_string(out)):
        if "error" in r:
            e = r["error"]
            results.append(TownsError(e["name"], e["message"], e["code"]))
        else:
            results.append(r)
    return results


