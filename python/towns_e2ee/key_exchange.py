"""The key exchange engine (towns::KeyExchange), its host and stream solicitations."""

from __future__ import annotations

import ctypes
import json
from dataclasses import dataclass, fields
from typing import List, Optional, Sequence, Tuple

from . import _lib
from ._core import BytesLike, bytes_arg, check, int_arg, take_buffer, take_string, text_arg
from ._handle import Handle
from ._host import bridge_for, raise_after
from ._lib import lib
from ._types import DeviceKeys, Miniblock
from .crypto import Crypto


class KeyExchangeHost:
    """What the engine needs from the application (the Towns node). Subclass
    it and implement the methods; the library calls them from inside
    :meth:`KeyExchange.run`, ``tick`` and ``advance`` (and, as a Crypto's share
    host, from the encrypting thread). They may call back into the library,
    including the same engine's ``enqueue_*`` methods.

    A method that raises fails the library call that made it: the exception is
    raised from the Python call that drove the library (a :class:`TownsError`
    raised by a method fails the call with its code). The optional methods
    (``users_entitled_to_key_exchange``, ``on_decrypted``,
    ``on_decryption_error``) are passed to the library only when overridden.
    """

    def send_key_solicitation(self, stream_id: str, solicitation: bytes, ephemeral: bool) -> None:
        """Post a KeySolicitation (protobuf bytes) on the stream."""
        raise NotImplementedError

    def send_key_fulfillment(self, stream_id: str, fulfillment: bytes, ephemeral: bool) -> bool:
        """Post a KeyFulfillment; return False when the node refused it as a
        duplicate (another device fulfilled first)."""
        raise NotImplementedError

    def send_group_encryption_sessions(self, to_user_id: str, message: bytes) -> None:
        """Post a GroupEncryptionSessions message to the user's inbox."""
        raise NotImplementedError

    def user_devices(self, user_id: str) -> Sequence[DeviceKeys]:
        """The user's published devices."""
        raise NotImplementedError

    def stream_members(self, stream_id: str) -> Sequence[str]:
        """Users whose join is confirmed."""
        raise NotImplementedError

    def users_entitled_to_key_exchange(self, stream_id: str) -> Sequence[str]:
        """Optional: users entitled to key exchange (default: stream_members)."""
        raise NotImplementedError

    def is_user_entitled(self, stream_id: str, user_id: str) -> bool:
        """The on-chain Read check."""
        raise NotImplementedError

    def key_solicitations(self, stream_id: str) -> Optional["StreamSolicitations"]:
        """The stream's stored solicitations (the host keeps one
        StreamSolicitations per stream), or None."""
        raise NotImplementedError

    def get_miniblock_info(self, stream_id: str) -> Miniblock:
        """The stream's latest miniblock (for a new grpaes session)."""
        raise NotImplementedError

    def on_decrypted(self, stream_id: str, event_id: str, plaintext: bytes, message_index: Optional[int]) -> None:
        """Optional: an enqueued event decrypted (message_index None for grpaes)."""
        raise NotImplementedError

    def on_decryption_error(self, stream_id: str, event_id: str, error, missing_session: bool) -> None:
        """Optional: an enqueued event failed (a TownsError); missing_session
        when it waits for keys (a solicitation may follow)."""
        raise NotImplementedError


class StreamSolicitations(Handle):
    """The stored solicitations of one stream as its state records them
    (towns::StreamSolicitations); a host keeps one per stream and returns it
    from ``key_solicitations``."""

    _free = lib.towns_stream_solicitations_free

    def __init__(self):
        super().__init__()
        check(lib.towns_stream_solicitations_create(ctypes.byref(self._ptr)))

    def apply_solicitation(self, user_id: str, solicitation: BytesLike) -> bytes:
        """A member's KeySolicitation event: replaces that member's solicitation
        for the same device key; returns it as stored (KeySolicitation bytes),
        for :meth:`KeyExchange.enqueue_key_solicitation`."""
        data = bytes_arg(solicitation, "solicitation")
        out = _lib.towns_buffer()
        check(lib.towns_stream_solicitations_apply_solicitation(self._ptr, text_arg(user_id, "user_id"), data,
                                                                len(data), ctypes.byref(out)))
        return take_buffer(out)

    def apply_fulfillment(self, fulfillment: BytesLike) -> Optional[Tuple[str, bytes]]:
        """A stored KeyFulfillment: (the requester's user id, its updated
        KeySolicitation bytes) when there was one, else None."""
        data = bytes_arg(fulfillment, "fulfillment")
        found = ctypes.c_int()
        user, sol = _lib.towns_string(), _lib.towns_buffer()
        check(lib.towns_stream_solicitations_apply_fulfillment(self._ptr, data, len(data), ctypes.byref(found),
                                                               ctypes.byref(user), ctypes.byref(sol)))
        user_id, solicitation = take_string(user), take_buffer(sol)
        return (user_id, solicitation) if found.value else None

    def remove_member(self, user_id: str) -> None:
        """A member left: its solicitations go with it."""
        check(lib.towns_stream_solicitations_remove_member(self._ptr, text_arg(user_id, "user_id")))


@dataclass
class KeyExchangeOptions:
    """Engine options; a field left None keeps the library's default
    (towns_key_exchange_options_default)."""
    ephemeral_solicitations: Optional[bool] = None  #: solicit ephemerally first (default True)
    ephemeral_timeout_ms: Optional[int] = None  #: then as a stream event after this (default 30000)
    respond_delay: Optional[bool] = None  #: answer after the random delay of section 10 (default True)
    manual_clock: Optional[bool] = None  #: the engine's time is start_time_ms, then set_time/advance
    start_time_ms: Optional[int] = None  #: with manual_clock (default 0)

    @staticmethod
    def defaults() -> "KeyExchangeOptions":
        c = _lib.towns_key_exchange_options()
        lib.towns_key_exchange_options_default(ctypes.byref(c))
        return KeyExchangeOptions(bool(c.ephemeral_solicitations), c.ephemeral_timeout_ms, bool(c.respond_delay),
                                  bool(c.manual_clock), c.start_time_ms)

    def _to_c(self) -> _lib.towns_key_exchange_options:
        c = _lib.towns_key_exchange_options()
        lib.towns_key_exchange_options_default(ctypes.byref(c))
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            if f.name.endswith("_ms"):
                setattr(c, f.name, int_arg(v, f.name))
            else:
                if not isinstance(v, bool):
                    raise TypeError(f"{f.name} must be bool, not {type(v).__name__}")
                setattr(c, f.name, 1 if v else 0)
        return c


@dataclass(frozen=True)
class KeyExchangeStats:
    decrypted: int
    decryption_failures: int  #: missing session
    decryption_errors: int  #: any other error
    solicitations_sent: int
    fulfillments_sent: int
    fulfillments_refused: int
    shares_sent: int
    sessions_imported: int
    bytes_sent: int
    waiting_events: int
    pending_solicitations: int
    status: str  #: "idle", "working" or "waiting"


_STATUS = {0: "idle", 1: "working", 2: "waiting"}


class KeyExchange(Handle):
    """The key exchange engine of one device (towns_key_exchange): key
    solicitation, fulfillment and session sharing, driven by its host.

    ``crypto`` is the device (created with ``share_host=host`` so that its new
    sessions are shared); ``user_id`` our user's address. Not thread-safe: one
    thread at a time drives an engine.
    """

    _free = lib.towns_key_exchange_free

    def __init__(self, crypto: Crypto, host: KeyExchangeHost, user_id: str,
                 options: Optional[KeyExchangeOptions] = None):
        super().__init__()
        if not isinstance(crypto, Crypto):
            raise TypeError(f"crypto must be a Crypto, not {type(crypto).__name__}")
        if host is None:
            raise TypeError("host must be a KeyExchangeHost, not None")
        if options is not None and not isinstance(options, KeyExchangeOptions):
            raise TypeError(f"options must be KeyExchangeOptions, not {type(options).__name__}")
        uid = text_arg(user_id, "user_id")
        c_options = (options or KeyExchangeOptions())._to_c()
        # The library keeps the crypto alive, and with it the crypto's share host:
        # so does this object, for the callbacks' sake.
        self._crypto = crypto
        self._bridge = bridge_for(host, crypto._bridge)
        self._bridges = [self._bridge] + ([crypto._bridge] if crypto._bridge not in (None, self._bridge) else [])
        with crypto._use() as crypto_ptr:
            status = lib.towns_key_exchange_create(crypto_ptr, ctypes.byref(self._bridge.struct), uid,
                                                   ctypes.byref(c_options), ctypes.byref(self._ptr))
        self._done(status)

    def _done(self, status: int) -> None:
        """Raises what a host callback raised during the call, else the status's error."""
        raise_after(status, self._bridges)

    # -- inputs

    def enqueue_encrypted_content(self, stream_id: str, event_id: str, encrypted_data: BytesLike) -> None:
        data = bytes_arg(encrypted_data, "encrypted_data")
        self._done(lib.towns_key_exchange_enqueue_encrypted_content(
            self._ptr, text_arg(stream_id, "stream_id"), text_arg(event_id, "event_id"), data, len(data)))

    def enqueue_new_group_sessions(self, message: BytesLike) -> None:
        data = bytes_arg(message, "message")
        self._done(lib.towns_key_exchange_enqueue_new_group_sessions(self._ptr, data, len(data)))

    def enqueue_key_solicitation(self, stream_id: str, from_user_id: str, solicitation: BytesLike,
                                 ephemeral: bool, event_hash: Optional[str] = None) -> None:
        """A KeySolicitation seen on a stream (a stored one as
        StreamSolicitations.apply_* returned it)."""
        data = bytes_arg(solicitation, "solicitation")
        if not isinstance(ephemeral, bool):
            raise TypeError(f"ephemeral must be bool, not {type(ephemeral).__name__}")
        self._done(lib.towns_key_exchange_enqueue_key_solicitation(
            self._ptr, text_arg(stream_id, "stream_id"), text_arg(from_user_id, "from_user_id"), data, len(data),
            1 if ephemeral else 0, text_arg(event_hash, "event_hash", optional=True)))

    def enqueue_init_key_solicitations(self, stream_id: str, stored: StreamSolicitations) -> None:
        """The stream was read from a snapshot: its stored solicitations."""
        if not isinstance(stored, StreamSolicitations):
            raise TypeError(f"stored must be StreamSolicitations, not {type(stored).__name__}")
        sid = text_arg(stream_id, "stream_id")
        with stored._use() as stored_ptr:
            self._done(lib.towns_key_exchange_enqueue_init_key_solicitations(self._ptr, sid, stored_ptr))

    def on_ephemeral_key_fulfillment(self, stream_id: str, fulfillment: BytesLike) -> None:
        data = bytes_arg(fulfillment, "fulfillment")
        self._done(lib.towns_key_exchange_on_ephemeral_key_fulfillment(
            self._ptr, text_arg(stream_id, "stream_id"), data, len(data)))

    def retry_decryption_failures(self, stream_id: str) -> None:
        """Membership changed: try the stream's waiting events again."""
        self._done(lib.towns_key_exchange_retry_decryption_failures(self._ptr, text_arg(stream_id, "stream_id")))

    # -- work and time

    def tick(self) -> bool:
        """Does one unit of work; False when nothing is due."""
        did = ctypes.c_int()
        self._done(lib.towns_key_exchange_tick(self._ptr, ctypes.byref(did)))
        return did.value == 1

    def run(self) -> int:
        """Ticks until nothing is due now; the number of units done."""
        units = ctypes.c_size_t()
        self._done(lib.towns_key_exchange_run(self._ptr, ctypes.byref(units)))
        return units.value

    def set_time(self, now_ms: int) -> None:
        """Manual clock only: sets the engine's time (not backwards)."""
        self._done(lib.towns_key_exchange_set_time(self._ptr, int_arg(now_ms, "now_ms")))

    def advance(self, to_ms: int) -> None:
        """Manual clock only: runs every moment something is due up to to_ms, in
        order, then sets the time to to_ms and runs."""
        self._done(lib.towns_key_exchange_advance(self._ptr, int_arg(to_ms, "to_ms")))

    def next_due(self) -> Optional[int]:
        """The earliest time (ms) something becomes due, or None."""
        has, due = ctypes.c_int(), ctypes.c_int64()
        check(lib.towns_key_exchange_next_due(self._ptr, ctypes.byref(has), ctypes.byref(due)))
        return due.value if has.value else None

    # -- inspection

    def stats(self) -> KeyExchangeStats:
        s = _lib.towns_key_exchange_stats()
        check(lib.towns_key_exchange_stats_get(self._ptr, ctypes.byref(s)))
        values = {f.name: getattr(s, f.name) for f in fields(KeyExchangeStats) if f.name != "status"}
        return KeyExchangeStats(**values, status=_STATUS.get(s.status, str(s.status)))

    def missing_session_ids(self, stream_id: str) -> List[str]:
        """Session ids of the stream that events wait for, sorted."""
        out = _lib.towns_string()
        check(lib.towns_key_exchange_missing_session_ids(self._ptr, text_arg(stream_id, "stream_id"),
                                                         ctypes.byref(out)))
        return json.loads(take_string(out))
