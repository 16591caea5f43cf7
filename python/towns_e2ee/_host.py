"""The bridge from a Python host object to towns_key_exchange_host.

The library calls the host through C function pointers. Each pointer here is
a ctypes callback bound to one Python host; the bridge keeps the callbacks
alive as long as any Crypto or KeyExchange that was given the host (the
library copies the struct, not the thunks). An exception raised by a host
method never unwinds through C: the callback catches it, stores it, and returns
a failure status (the TownsError's own status, or INTERNAL), and the Python call
that drove the library raises it once the library has returned.
"""

from __future__ import annotations

import ctypes
import threading

from . import _lib
from ._core import TownsError, error_for, status_name
from ._lib import lib
from ._types import Miniblock, devices_json, str_list_json

_INTERNAL = 4

# host method name -> (struct field, C function type, required)
_METHODS = [
    ("send_key_solicitation", _lib.send_key_solicitation_fn),
    ("send_key_fulfillment", _lib.send_key_fulfillment_fn),
    ("send_group_encryption_sessions", _lib.send_group_encryption_sessions_fn),
    ("user_devices", _lib.user_devices_fn),
    ("stream_members", _lib.stream_members_fn),
    ("users_entitled_to_key_exchange", _lib.users_entitled_fn),
    ("is_user_entitled", _lib.is_user_entitled_fn),
    ("key_solicitations", _lib.key_solicitations_fn),
    ("get_miniblock_info", _lib.get_miniblock_info_fn),
    ("on_decrypted", _lib.on_decrypted_fn),
    ("on_decryption_error", _lib.on_decryption_error_fn),
]


def _text(raw) -> str:
    return raw.decode("utf-8") if raw is not None else ""


def _data(ptr, n) -> bytes:
    return ctypes.string_at(ptr, n) if ptr and n else b""


def _reply(reply, data: bytes) -> None:
    status = lib.towns_reply_set(reply, data, len(data))
    if status != 0:
        raise error_for(status)


def _provides(host, name: str) -> bool:
    """Whether host implements name: a KeyExchangeHost subclass must override
    the base's placeholder; any other object needs the attribute."""
    from .key_exchange import KeyExchangeHost
    impl = getattr(type(host), name, None)
    if isinstance(host, KeyExchangeHost) and impl is getattr(KeyExchangeHost, name, None):
        return False
    return callable(getattr(host, name, None))


class HostBridge:
    def __init__(self, host):
        self.host = host
        self._errors = []
        self._errors_lock = threading.Lock()
        self._borrowed = {}  # stream id -> the StreamSolicitations last handed to the library
        self.struct = _lib.towns_key_exchange_host()
        self._callbacks = []
        for name, fn_type in _METHODS:
            if _provides(host, name):
                cb = fn_type(getattr(self, "_c_" + name))
                self._callbacks.append(cb)
                setattr(self.struct, name, cb)
            # else the field stays NULL: the library says what it needs.

    # -- errors

    def _failed(self, e: BaseException) -> int:
        with self._errors_lock:
            self._errors.append(e)
        if isinstance(e, TownsError) and e.status and e.status > 0:
            return e.status
        return _INTERNAL

    def take_errors(self) -> list:
        with self._errors_lock:
            errors, self._errors = self._errors, []
        return errors

    def _guard(self, fn, *args) -> int:
        try:
            fn(*args)
            return 0
        except BaseException as e:  # noqa: B036 - nothing may unwind through C
            return self._failed(e)

    # -- the callbacks

    def _c_send_key_solicitation(self, _ud, stream_id, data, n, ephemeral):
        return self._guard(lambda: self.host.send_key_solicitation(_text(stream_id), _data(data, n), bool(ephemeral)))

    def _c_send_key_fulfillment(self, _ud, stream_id, data, n, ephemeral, accepted):
        def go():
            r = self.host.send_key_fulfillment(_text(stream_id), _data(data, n), bool(ephemeral))
            accepted[0] = 0 if r is False else 1
        return self._guard(go)

    def _c_send_group_encryption_sessions(self, _ud, to_user_id, data, n):
        return self._guard(lambda: self.host.send_group_encryption_sessions(_text(to_user_id), _data(data, n)))

    def _c_user_devices(self, _ud, user_id, reply):
        def go():
            devices = self.host.user_devices(_text(user_id))
            _reply(reply, devices_json(devices or [], "user_devices()").encode())
        return self._guard(go)

    def _c_stream_members(self, _ud, stream_id, reply):
        return self._guard(lambda: _reply(reply, str_list_json(self.host.stream_members(_text(stream_id)) or [],
                                                               "stream_members()").encode()))

    def _c_users_entitled_to_key_exchange(self, _ud, stream_id, reply):
        return self._guard(lambda: _reply(reply, str_list_json(
            self.host.users_entitled_to_key_exchange(_text(stream_id)) or [],
            "users_entitled_to_key_exchange()").encode()))

    def _c_is_user_entitled(self, _ud, stream_id, user_id, entitled):
        def go():
            r = self.host.is_user_entitled(_text(stream_id), _text(user_id))
            if not isinstance(r, bool):
                raise TypeError(f"is_user_entitled() must return bool, not {type(r).__name__}")
            entitled[0] = 1 if r else 0
        return self._guard(go)

    def _c_key_solicitations(self, _ud, stream_id, out):
        from .key_exchange import StreamSolicitations

        def go():
            sid = _text(stream_id)
            s = self.host.key_solicitations(sid)
            if s is None:
                out[0] = None
                return
            if not isinstance(s, StreamSolicitations):
                raise TypeError(f"key_solicitations() must return StreamSolicitations or None, "
                                f"not {type(s).__name__}")
            self._borrowed[sid] = s  # borrowed by the library: keep it alive
            out[0] = s._ptr.value
        return self._guard(go)

    def _c_get_miniblock_info(self, _ud, stream_id, num, reply):
        def go():
            m = self.host.get_miniblock_info(_text(stream_id))
            if not (isinstance(m, tuple) and len(m) == 2 and isinstance(m[0], int)
                    and isinstance(m[1], (bytes, bytearray))):
                raise TypeError("get_miniblock_info() must return Miniblock(num, hash) or (int, bytes)")
            m = Miniblock(*m)
            num[0] = m.num
            _reply(reply, bytes(m.hash))
        return self._guard(go)

    def _c_on_decrypted(self, _ud, stream_id, event_id, data, n, message_index):
        self._guard(lambda: self.host.on_decrypted(_text(stream_id), _text(event_id), _data(data, n),
                                                   None if message_index < 0 else message_index))

    def _c_on_decryption_error(self, _ud, stream_id, event_id, status, message, missing_session):
        error = TownsError(status_name(status), _text(message), status)
        self._guard(lambda: self.host.on_decryption_error(_text(stream_id), _text(event_id), error,
                                                          bool(missing_session)))


def raise_after(status: int, bridges) -> None:
    """After a library call: raises what a host method raised during it (the
    library's own error, when the call failed, is its cause), else the status's
    TownsError, if any."""
    lib_error = error_for(status) if status != 0 else None
    errors = [e for b in bridges if b is not None for e in b.take_errors()]
    if errors:
        first = errors[0]
        if len(errors) > 1 and hasattr(first, "add_note"):
            first.add_note(f"{len(errors) - 1} more exception(s) were raised by host callbacks in the same call")
        raise first from lib_error
    if lib_error is not None:
        raise lib_error


def bridge_for(host, *others) -> "HostBridge":
    """The bridge of host: an existing one (of the given owners) if host already has one."""
    for b in others:
        if b is not None and b.host is host:
            return b
    return HostBridge(host)


