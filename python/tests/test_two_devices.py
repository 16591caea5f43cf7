"""Two devices on two SQLite stores: session sharing, both algorithms, room
keys, and a missing key recovered through the key exchange engines, with the
test as the node that relays what the host callbacks send."""

import pytest

import towns_e2ee as t
from conftest import STREAM_1, STREAM_2, USER_A, USER_B

KEY_A, KEY_B = b"pickle key of device A", b"pickle key of device B"
MINIBLOCK = t.Miniblock(1, bytes(32))
MEGOLM, HYBRID = t.Algorithm.GROUP_ENCRYPTION, t.Algorithm.HYBRID_GROUP_ENCRYPTION


@pytest.fixture
def stores(tmp_path):
    a = t.Store(tmp_path / "a.db", KEY_A, t.OpenMode.CREATE)
    b = t.Store(tmp_path / "b.db", KEY_B, t.OpenMode.CREATE)
    yield a, b
    a.close()
    b.close()


def share(sender, receiver, stream, algorithm, session_id):
    """The sender's session to the receiver's device, through the sharing calls."""
    session = sender.export_group_session(stream, session_id)
    message, skipped = t.build_group_encryption_sessions(sender, stream, algorithm, [session],
                                                         [receiver.device_keys()])
    assert skipped == []
    return message


@pytest.mark.parametrize("algorithm,wire_name", [(MEGOLM, "r.group-encryption.v1.aes-sha2"), (HYBRID, "grpaes")])
def test_share_encrypt_decrypt(stores, algorithm, wire_name):
    with t.Crypto(stores[0], KEY_A) as a, t.Crypto(stores[1], KEY_B) as b:
        assert a.device_keys() != b.device_keys()
        assert a.has_outbound_session(STREAM_1, algorithm) is False
        sid = a.ensure_outbound_session(STREAM_1, algorithm, MINIBLOCK if algorithm == HYBRID else None)
        assert a.has_outbound_session(STREAM_1, algorithm) is True
        assert a.ensure_outbound_session(STREAM_1, algorithm) == sid
        event = a.encrypt_group_event(STREAM_1, b"hello " + wire_name.encode(), algorithm)

        with pytest.raises(t.TownsError) as e:
            b.decrypt_group_event(STREAM_1, event)
        assert e.value.code == "SESSION_NOT_FOUND"
        assert b.has_session_key(STREAM_1, sid, algorithm) is False

        message = share(a, b, STREAM_1, algorithm, sid)
        assert t.receive_group_encryption_sessions(b, message) == {
            "status": "imported", "streamId": STREAM_1, "algorithm": wire_name, "imported": [sid], "failed": []}
        assert t.receive_group_encryption_sessions(b, message) == {
            "status": "nothing_missing", "streamId": STREAM_1, "algorithm": wire_name, "imported": [],
            "failed": []}
        assert b.has_session_key(STREAM_1, sid, algorithm) is True
        expected_index = 0 if algorithm == MEGOLM else None
        assert b.decrypt_group_event(STREAM_1, event) == t.Decrypted(b"hello " + wire_name.encode(), expected_index)

        second = a.encrypt_group_event(STREAM_1, b"second", algorithm)
        assert b.decrypt_group_events(STREAM_1, [event, second]) == [
            t.Decrypted(b"hello " + wire_name.encode(), expected_index),
            t.Decrypted(b"second", 1 if algorithm == MEGOLM else None)]

        # The session is in both stores: reopened, B still reads A's events.
    with t.Crypto(stores[1], KEY_B) as b_again:
        assert b_again.decrypt_group_event(STREAM_1, event).plaintext == b"hello " + wire_name.encode()


def test_batch_receive_and_decrypt_results(stores):
    with t.Crypto(stores[0], KEY_A) as a, t.Crypto(stores[1], KEY_B) as b:
        sid = a.ensure_outbound_session(STREAM_1)
        message = share(a, b, STREAM_1, MEGOLM, sid)
        results = t.receive_group_encryption_sessions_batch(b, [message, b"\x0a\xff\xff"])
        assert results[0] == {"status": "imported", "streamId": STREAM_1,
                              "algorithm": "r.group-encryption.v1.aes-sha2", "imported": [sid], "failed": []}
        assert isinstance(results[1], t.TownsError) and results[1].code == "INVALID_ARGUMENT"
        assert len(results) == 2
        event = a.encrypt_group_event(STREAM_1, b"x")
        out = b.decrypt_group_events(STREAM_1, [event, b"\x0a\xff\xff", b""])
        assert out[0] == t.Decrypted(b"x", 0)
        assert [(e.code, e.status) for e in out[1:]] == [("INVALID_ARGUMENT", 1),
                                                         ("GROUP_DECRYPTION_UNSET_ALGORITHM", 7)]
        assert b.decrypt_group_events(STREAM_1, []) == []


def test_room_keys_export_import(stores):
    with t.Crypto(stores[0], KEY_A) as a, t.Crypto(stores[1], KEY_B) as b:
        megolm = a.ensure_outbound_session(STREAM_1, MEGOLM)
        hybrid = a.ensure_outbound_session(STREAM_2, HYBRID, MINIBLOCK)
        e1 = a.encrypt_group_event(STREAM_1, b"megolm event")
        e2 = a.encrypt_group_event(STREAM_2, b"grpaes event", HYBRID)
        keys = a.export_room_keys()
        assert sorted((k["streamId"], k["sessionId"], k["algorithm"]) for k in keys) == sorted([
            (STREAM_1, megolm, "r.group-encryption.v1.aes-sha2"), (STREAM_2, hybrid, "grpaes")])
        ids = [k["sessionId"] for k in keys]
        assert b.import_room_keys(keys) == {"imported": ids, "failed": [], "skipped": []}
        assert b.import_room_keys(keys) == {"imported": ids, "failed": [], "skipped": []}  # again: the same keys
        assert b.decrypt_group_event(STREAM_1, e1) == t.Decrypted(b"megolm event", 0)
        assert b.decrypt_group_event(STREAM_2, e2) == t.Decrypted(b"grpaes event", None)
        assert b.export_group_session(STREAM_2, hybrid) == a.export_group_session(STREAM_2, hybrid)
        # import_session_keys puts every key under the stream given.
        with t.Store.memory() as sc, t.Crypto(sc, b"c") as c:
            only = [k for k in keys if k["sessionId"] == megolm]
            assert c.import_session_keys(STREAM_1, only) == {"imported": [megolm], "failed": [], "skipped": []}
            assert c.decrypt_group_event(STREAM_1, e1).plaintext == b"megolm event"


def test_export_device_and_device_messages(stores):
    with t.Crypto(stores[0], KEY_A) as a, t.Crypto(stores[1], KEY_B) as b:
        event = a.encrypt_group_event(STREAM_1, b"before export")
        exported = a.export_device()
        assert isinstance(exported, bytes) and len(exported) > 0
        with t.Store.memory() as sd, t.Crypto(sd, b"key D", exported_device=exported) as d:
            assert d.device_keys() == a.device_keys()
            assert d.decrypt_group_event(STREAM_1, event) == t.Decrypted(b"before export", 0)

        bodies = a.encrypt_with_device_keys("to B, privately", [b.device_keys()])
        assert list(bodies) == [b.device_keys().device_key]
        plain = b.decrypt_with_device_key(bodies[b.device_keys().device_key], a.device_keys().device_key)
        assert plain == b"to B, privately"
        with pytest.raises(t.TownsError) as e:
            b.decrypt_with_device_key(bodies[b.device_keys().device_key], b.device_keys().device_key)
        assert e.value.code == "DECRYPTION_FAILED"


class Node(t.KeyExchangeHost):
    """The simulated node seen by one device: what it sends goes to the shared
    queue; the test delivers it."""

    def __init__(self, name, world):
        self.name, self.world = name, world
        self.decrypted, self.errors = [], []

    def send_key_solicitation(self, stream_id, solicitation, ephemeral):
        self.world.queue.append(("solicitation", self.name, stream_id, solicitation, ephemeral))

    def send_key_fulfillment(self, stream_id, fulfillment, ephemeral):
        self.world.queue.append(("fulfillment", self.name, stream_id, fulfillment, ephemeral))
        return True

    def send_group_encryption_sessions(self, to_user_id, message):
        self.world.queue.append(("share", self.name, to_user_id, message, False))

    def user_devices(self, user_id):
        return [self.world.devices[user_id]] if user_id in self.world.devices else []

    def stream_members(self, stream_id):
        return list(self.world.members.get(stream_id, []))

    def is_user_entitled(self, stream_id, user_id):
        return True

    def key_solicitations(self, stream_id):
        return self.world.solicitations.get(stream_id)

    def get_miniblock_info(self, stream_id):
        return MINIBLOCK

    def on_decrypted(self, stream_id, event_id, plaintext, message_index):
        self.decrypted.append((stream_id, event_id, plaintext, message_index))

    def on_decryption_error(self, stream_id, event_id, error, missing_session):
        self.errors.append((stream_id, event_id, error.code, missing_session))


class World:
    def __init__(self):
        self.queue, self.devices, self.members, self.solicitations = [], {}, {}, {}


def test_key_exchange_recovers_a_missing_key(stores):
    world = World()
    node_a, node_b = Node("A", world), Node("B", world)
    options = t.KeyExchangeOptions(manual_clock=True, start_time_ms=1000, respond_delay=False)
    assert t.KeyExchangeOptions.defaults() == t.KeyExchangeOptions(True, 30000, True, False, 0)
    with t.StreamSolicitations() as stored, \
            t.Crypto(stores[0], KEY_A, share_host=node_a) as a, t.Crypto(stores[1], KEY_B, share_host=node_b) as b, \
            t.KeyExchange(a, node_a, USER_A, options) as xa, t.KeyExchange(b, node_b, USER_B, options) as xb:
        world.devices = {USER_A: a.device_keys(), USER_B: b.device_keys()}
        world.solicitations[STREAM_2] = stored
        users = {"A": USER_A, "B": USER_B}
        engines = {"A": xb, "B": xa}  # who receives what each sends

        # A writes on stream 2 before B joins: the new session is shared with nobody.
        world.members[STREAM_2] = [USER_A]
        event = a.encrypt_group_event(STREAM_2, b"hello exchange")
        sid = a.ensure_outbound_session(STREAM_2)
        assert world.queue == []
        world.members[STREAM_2] = [USER_A, USER_B]

        xb.enqueue_encrypted_content(STREAM_2, "event-1", event)
        assert xb.run() >= 1
        assert node_b.errors == [(STREAM_2, "event-1", "SESSION_NOT_FOUND", True)]
        assert node_b.decrypted == []
        assert xb.missing_session_ids(STREAM_2) == [sid]
        assert [(m[0], m[1], m[2], m[4]) for m in world.queue] == [("solicitation", "B", STREAM_2, True)]

        # The node delivers everything queued until nothing more is sent.
        delivered, now = 0, 2000
        while delivered < len(world.queue):
            kind, sender, target, data, ephemeral = world.queue[delivered]
            delivered += 1
            to = engines[sender]
            if kind == "solicitation":
                if not ephemeral:
                    data = stored.apply_solicitation(users[sender], data)
                to.enqueue_key_solicitation(target, users[sender], data, ephemeral)
            elif kind == "fulfillment":
                to.on_ephemeral_key_fulfillment(target, data)
            else:
                assert target == (USER_B if sender == "A" else USER_A)
                to.enqueue_new_group_sessions(data)
            now += 1
            xa.advance(now)
            xb.advance(now)
            assert delivered < 20

        assert [(m[0], m[1], m[4]) for m in world.queue] == [
            ("solicitation", "B", True), ("fulfillment", "A", True), ("share", "A", False)]
        assert node_b.decrypted == [(STREAM_2, "event-1", b"hello exchange", 0)]
        assert node_a.errors == [] and node_a.decrypted == []
        assert xb.missing_session_ids(STREAM_2) == []
        assert b.decrypt_group_event(STREAM_2, event) == t.Decrypted(b"hello exchange", 0)
        sa, sb = xa.stats(), xb.stats()
        assert (sb.decrypted, sb.decryption_failures, sb.decryption_errors, sb.solicitations_sent,
                sb.sessions_imported, sb.waiting_events, sb.status) == (1, 1, 0, 1, 1, 0, "idle")
        assert (sa.fulfillments_sent, sa.shares_sent, sa.fulfillments_refused, sa.status) == (1, 1, 0, "idle")
        assert xb.next_due() is None
        with pytest.raises(t.TownsError) as e:
            xb.set_time(10)  # backwards
        assert e.value.code == "INVALID_ARGUMENT"


def test_share_host_shares_new_sessions(stores):
    world = World()
    node_a = Node("A", world)
    with t.Crypto(stores[0], KEY_A, share_host=node_a) as a, t.Crypto(stores[1], KEY_B) as b:
        world.devices = {USER_A: a.device_keys(), USER_B: b.device_keys()}
        world.members[STREAM_1] = [USER_A, USER_B]
        event = a.encrypt_group_event(STREAM_1, b"shared at once", HYBRID)  # the host gives the miniblock
        assert [(m[0], m[1], m[2]) for m in world.queue] == [("share", "A", USER_B)]
        result = t.receive_group_encryption_sessions(b, world.queue[0][3])
        assert result["status"] == "imported" and result["algorithm"] == "grpaes"
        assert b.decrypt_group_event(STREAM_1, event) == t.Decrypted(b"shared at once", None)
