"""Errors: wrong types and None are TypeError, values the library refuses are
TownsError with its code; exceptions in host callbacks come back to the caller;
handles are freed deterministically; a missing library is a clear ImportError."""

import gc
import os
import subprocess
import sys

import pytest

import towns_e2ee as t
from conftest import STREAM_1, USER_A


def code_of(call):
    with pytest.raises(t.TownsError) as e:
        call()
    return e.value.code


@pytest.fixture
def crypto():
    with t.Store.memory() as store, t.Crypto(store, b"key") as c:
        yield c


def test_towns_error():
    e = t.TownsError("SESSION_NOT_FOUND", "no session")
    assert (e.code, e.message, e.status) == ("SESSION_NOT_FOUND", "no session", 11)
    assert str(e) == "SESSION_NOT_FOUND: no session"
    assert repr(e) == "TownsError('SESSION_NOT_FOUND', 'no session')"
    assert t.status_name(0) == "OK" and t.status_name(11) == "SESSION_NOT_FOUND"
    assert t.status_name(41) == "STORE_BUSY" and t.status_name(42) == "UNKNOWN_STATUS_42"
    assert len(t.STATUS_BY_NAME) == 42 and t.STATUS_BY_NAME["STORE_BUSY"] == 41
    assert t.library_version == "0.1.0"


def test_decrypt_without_session(crypto):
    with t.Store.memory() as s, t.Crypto(s, b"other") as sender:
        event = sender.encrypt_group_event(STREAM_1, b"secret")
    with pytest.raises(t.TownsError) as e:
        crypto.decrypt_group_event(STREAM_1, event)
    assert e.value.code == "SESSION_NOT_FOUND"
    assert e.value.status == 11
    assert e.value.message.startswith("SESSION_NOT_FOUND")


def test_wrong_types(crypto, tmp_path):
    with pytest.raises(TypeError):
        t.Store(None, b"key")
    with pytest.raises(TypeError):
        t.Store(tmp_path / "x.db", "a str key")
    with pytest.raises(TypeError):
        t.Store(tmp_path / "x.db", None)
    with pytest.raises(TypeError):
        t.Crypto(None, b"key")
    with pytest.raises(TypeError):
        t.Crypto("store", b"key")
    with pytest.raises(TypeError):
        crypto.decrypt_group_event(STREAM_1, None)
    with pytest.raises(TypeError):
        crypto.decrypt_group_event(STREAM_1, "not bytes")
    with pytest.raises(TypeError):
        crypto.decrypt_group_event(None, b"")
    with pytest.raises(TypeError):
        crypto.encrypt_group_event(12, b"x")
    with pytest.raises(TypeError):
        crypto.encrypt_group_event(STREAM_1, b"x", "megolm")
    with pytest.raises(TypeError):
        crypto.decrypt_group_events(STREAM_1, b"one message, not a list")
    with pytest.raises(TypeError):
        crypto.decrypt_group_events(STREAM_1, [b"ok", None])
    with pytest.raises(TypeError):
        crypto.import_room_keys('[{"streamId": "..."}]')
    with pytest.raises(TypeError):
        crypto.import_room_keys([None])
    with pytest.raises(TypeError):
        crypto.encrypt_with_device_keys("x", [42])
    with pytest.raises(TypeError):
        crypto.ensure_outbound_session(STREAM_1, t.Algorithm.HYBRID_GROUP_ENCRYPTION, miniblock=5)
    with pytest.raises(TypeError):
        t.receive_group_encryption_sessions(None, b"")
    with pytest.raises(TypeError):
        t.build_group_encryption_sessions(crypto, STREAM_1, 0, [], "not a device list")
    with pytest.raises(TypeError):
        crypto.set_parallelism(1.5)


def test_values_the_library_refuses(crypto, tmp_path):
    assert code_of(lambda: t.Store(tmp_path / "x.db", b"")) == "INVALID_ARGUMENT"
    assert code_of(lambda: t.Store(tmp_path / "missing.db", b"k", t.OpenMode.OPEN)) == "STORE_ERROR"
    t.Store(tmp_path / "s.db", b"k").close()
    assert code_of(lambda: t.Store(tmp_path / "s.db", b"wrong", t.OpenMode.OPEN)) == "STORE_WRONG_PICKLE_KEY"
    assert code_of(lambda: t.Store(tmp_path / "s.db", b"k", t.OpenMode.CREATE)) == "STORE_ERROR"
    assert code_of(lambda: t.Store(tmp_path / "s.db", b"k", 7)) == "INVALID_ARGUMENT"
    assert code_of(lambda: t.Crypto(t.Store.memory(), b"")) == "INVALID_ARGUMENT"
    assert code_of(lambda: crypto.decrypt_group_event("not hex", b"")) == "INVALID_ARGUMENT"
    assert code_of(lambda: crypto.decrypt_group_event(STREAM_1, b"\x0a\xff\xff")) == "INVALID_ARGUMENT"
    assert code_of(lambda: crypto.decrypt_group_event(STREAM_1, b"")) == "GROUP_DECRYPTION_UNSET_ALGORITHM"
    assert code_of(lambda: crypto.decrypt_group_event(STREAM_1 + "\0", b"")) == "INVALID_ARGUMENT"
    assert code_of(lambda: crypto.encrypt_group_event(STREAM_1, b"x", 5)) == "INVALID_ARGUMENT"
    assert code_of(lambda: crypto.encrypt_group_event(STREAM_1, b"", t.Algorithm.HYBRID_GROUP_ENCRYPTION)) \
        == "EMPTY_PAYLOAD"
    assert code_of(lambda: crypto.ensure_outbound_session(STREAM_1, t.Algorithm.HYBRID_GROUP_ENCRYPTION)) \
        == "INVALID_ARGUMENT"
    assert code_of(lambda: crypto.export_group_session(STREAM_1, "no such session")) == "SESSION_NOT_FOUND"
    assert code_of(lambda: crypto.decrypt_with_device_key("abc", "def")) == "DECRYPTION_FAILED"
    assert code_of(lambda: t.receive_group_encryption_sessions(crypto, b"\x0a\xff\xff")) == "INVALID_ARGUMENT"
    with t.Store.memory() as s:
        assert code_of(lambda: t.Crypto(s, b"k", exported_device=b"\x00\x01")) == "INVALID_ARGUMENT"


def test_closed_handles(tmp_path):
    store = t.Store(tmp_path / "c.db", b"k")
    crypto = t.Crypto(store, b"k")
    keys = crypto.device_keys()
    store.close()  # the crypto keeps its store
    assert crypto.device_keys() == keys
    crypto.close()
    crypto.close()
    assert crypto.closed and store.closed
    assert code_of(crypto.device_keys) == "INVALID_ARGUMENT"
    assert code_of(lambda: t.Crypto(store, b"k")) == "INVALID_ARGUMENT"
    with t.Store.memory() as s:
        pass
    assert s.closed
    # The fallback: an unreferenced handle is freed when collected.
    leaked = t.Crypto(t.Store.memory(), b"k")
    del leaked
    gc.collect()
    # the store file is not locked by a leftover handle
    with t.Store(tmp_path / "c.db", b"k", t.OpenMode.OPEN) as again, t.Crypto(again, b"k") as c2:
        assert c2.device_keys() == keys


def test_close_while_other_threads_decrypt():
    """close() on one thread while others are inside decrypt calls (ctypes
    releases the GIL): no call uses freed memory; each one either decrypts or,
    once closed, is refused with INVALID_ARGUMENT; the handle is freed by the
    last call in flight."""
    import threading
    import time

    store = t.Store.memory()
    crypto = t.Crypto(store, b"k")
    store.close()
    crypto.ensure_outbound_session(STREAM_1)
    payloads = [b"message %d" % i for i in range(16)]
    events = [crypto.encrypt_group_event(STREAM_1, p) for p in payloads]
    outcomes = {"ok": 0, "closed": 0}
    unexpected = []
    lock = threading.Lock()
    start = threading.Barrier(5)

    def worker(k):
        start.wait()
        refused = 0
        while refused < 20:  # keep going for a while after the close
            try:
                if k % 2:
                    got = [r.plaintext for r in crypto.decrypt_group_events(STREAM_1, events)]
                    ok = got == payloads
                else:
                    ok = crypto.decrypt_group_event(STREAM_1, events[k]).plaintext == payloads[k]
                with lock:
                    outcomes["ok"] += 1
                    if not ok:
                        unexpected.append("wrong plaintext")
            except t.TownsError as e:
                with lock:
                    if e.code == "INVALID_ARGUMENT" and "crypto is NULL" in e.message:
                        outcomes["closed"] += 1
                        refused += 1
                    else:
                        unexpected.append(repr(e))
                        return
            except BaseException as e:  # noqa: BLE001 - any other outcome fails the test
                with lock:
                    unexpected.append(repr(e))
                return

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    start.wait()
    time.sleep(0.05)
    crypto.close()
    assert crypto.closed
    for th in threads:
        th.join(timeout=60)
        assert not th.is_alive()
    assert unexpected == []
    assert outcomes["ok"] > 0 and outcomes["closed"] == 4 * 20
    assert crypto._in_flight == 0 and crypto._free_pending is None  # freed, by close() or the last call


def test_close_from_inside_a_call_is_deferred():
    """A handle closed while a call on it is in flight is freed when that call
    returns, not under it."""
    store = t.Store.memory()
    crypto = t.Crypto(store, b"k")
    with crypto._use() as ptr:
        assert ptr
        crypto.close()
        assert crypto.closed and crypto._free_pending is not None
        assert code_of(crypto.device_keys) == "INVALID_ARGUMENT"
    assert crypto._free_pending is None
    store.close()


class Broken(t.KeyExchangeHost):
    """A share host whose methods fail."""

    def __init__(self, fail_with):
        self.fail_with = fail_with
        self.calls = 0

    def stream_members(self, stream_id):
        self.calls += 1
        raise self.fail_with

    def user_devices(self, user_id):
        return []

    def send_group_encryption_sessions(self, to_user_id, message):
        pass

    def get_miniblock_info(self, stream_id):
        return t.Miniblock(1, bytes(32))

    def send_key_solicitation(self, stream_id, solicitation, ephemeral):
        pass

    def send_key_fulfillment(self, stream_id, fulfillment, ephemeral):
        return True

    def is_user_entitled(self, stream_id, user_id):
        return True

    def key_solicitations(self, stream_id):
        return None


def test_exception_in_host_callback_is_raised_by_the_call():
    with t.Store.memory() as s, t.Crypto(s, b"k", share_host=Broken(ValueError("boom"))) as c:
        with pytest.raises(ValueError) as e:
            c.encrypt_group_event(STREAM_1, b"x")
        assert str(e.value) == "boom"
        assert isinstance(e.value.__cause__, t.TownsError) and e.value.__cause__.code == "INTERNAL"
        assert c._bridge.take_errors() == []  # reported once, not again
    host = Broken(t.TownsError("LIMIT_EXCEEDED", "the host is busy"))
    with t.Store.memory() as s, t.Crypto(s, b"k", share_host=host) as c:
        with pytest.raises(t.TownsError) as e:
            c.ensure_outbound_session(STREAM_1)
        assert (e.value.code, e.value.message) == ("LIMIT_EXCEEDED", "the host is busy")
        assert e.value.__cause__.code == "LIMIT_EXCEEDED"
        assert host.calls == 1


def test_key_exchange_arguments():
    class Incomplete:  # no user_devices and the rest: the library refuses the host
        def stream_members(self, stream_id):
            return []

    with t.Store.memory() as s, t.Crypto(s, b"k") as c:
        assert code_of(lambda: t.KeyExchange(c, Incomplete(), USER_A)) == "INVALID_ARGUMENT"
        with pytest.raises(TypeError):
            t.KeyExchange(c, None, USER_A)
        with pytest.raises(TypeError):
            t.KeyExchange(None, Incomplete(), USER_A)
        with pytest.raises(TypeError):
            t.KeyExchangeOptions(manual_clock=1)._to_c()
        with t.StreamSolicitations() as stored:
            assert code_of(lambda: stored.apply_solicitation(USER_A, b"\x0a\xff\xff")) == "INVALID_ARGUMENT"
            assert stored.apply_fulfillment(b"") is None
            stored.remove_member(USER_A)


def test_library_not_found(tmp_path):
    env = dict(os.environ, TOWNS_E2EE_LIBRARY=str(tmp_path / "libtowns-e2ee.so.0"))
    r = subprocess.run([sys.executable, "-c", "import towns_e2ee"], env=env, capture_output=True, text=True)
    assert r.returncode == 1
    assert "towns_e2ee._lib.LibraryNotFoundError: libtowns-e2ee was not found. Set TOWNS_E2EE_LIBRARY" in r.stderr
    assert str(tmp_path / "libtowns-e2ee.so.0") in r.stderr
    r = subprocess.run([sys.executable, "-c", "import towns_e2ee as t; assert issubclass(t.LibraryNotFoundError, "
                        "ImportError)"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_not_the_library(tmp_path):
    env = dict(os.environ, TOWNS_E2EE_LIBRARY="libc.so.6")
    r = subprocess.run([sys.executable, "-c", "import towns_e2ee"], env=env, capture_output=True, text=True)
    assert r.returncode == 1
    assert "$TOWNS_E2EE_LIBRARY=libc.so.6 is not libtowns-e2ee with the C ABI: it lacks towns_status_name" in r.stderr


def test_exception_in_a_result_callback_is_raised_by_run():
    from test_two_devices import Node, World

    class Raising(Node):
        def on_decrypted(self, stream_id, event_id, plaintext, message_index):
            super().on_decrypted(stream_id, event_id, plaintext, message_index)
            raise KeyError("the application failed")

    world = World()
    host = Raising("B", world)
    options = t.KeyExchangeOptions(manual_clock=True, respond_delay=False)
    with t.Store.memory() as sa, t.Store.memory() as sb, t.Crypto(sa, b"a") as a, \
            t.Crypto(sb, b"b", share_host=host) as b, t.KeyExchange(b, host, USER_A, options) as xb:
        event = a.encrypt_group_event(STREAM_1, b"payload")
        b.import_room_keys(a.export_room_keys())
        xb.enqueue_encrypted_content(STREAM_1, "event-1", event)
        with pytest.raises(KeyError) as e:
            xb.run()
        assert e.value.args == ("the application failed",)
        assert e.value.__cause__ is None  # the engine call itself succeeded
        assert host.decrypted == [(STREAM_1, "event-1", b"payload", 0)]
        assert xb.run() == 0  # reported once
        assert xb.stats().decrypted == 1
