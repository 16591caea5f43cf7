"""The tutorial's program (docs/tutorial.md) with the Python package (python/):
Alice shares a session with Bob by hand and Bob decrypts her message; then
Alice encrypts with a session Bob never got, Bob's decryption fails with
SESSION_NOT_FOUND, and the key exchange engines recover the key.

Usage: python3 tutorial.py DIR  (an existing, empty directory for the two store files)
Exits 0 when every step gave exactly the expected result, 1 otherwise.
"""

import os
import sys

import towns_e2ee as towns
from towns_e2ee import Algorithm

CHANNEL = "20" + "c" * 62  # a channel stream id
MINIBLOCK = towns.Miniblock(1, bytes([0x4D]) + bytes(31))
failures = 0


def expect(ok, what):
    global failures
    print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    failures += 0 if ok else 1


class Device(towns.KeyExchangeHost):
    """One device (store, crypto, engine), and the engine's host: what the
    engine sends is relayed at once to the other device, as a node would."""

    def __init__(self, node, name, user_id, path, pickle_key):
        self.node, self.name, self.user_id, self.decrypted = node, name, user_id, []
        self.store = towns.Store(path, pickle_key, towns.OpenMode.CREATE)
        self.crypto = towns.Crypto(self.store, pickle_key)  # no share host: we share by hand
        options = towns.KeyExchangeOptions(manual_clock=True, start_time_ms=1_700_000_000_000, respond_delay=False)
        self.engine = towns.KeyExchange(self.crypto, self, user_id, options)
        node.devices.append(self)

    def others(self):
        return [d for d in self.node.devices if d is not self]

    # What the engine sends: protobuf bytes.
    def send_key_solicitation(self, stream_id, solicitation, ephemeral):
        print(f"  {self.name} -> channel: KeySolicitation, {'ephemeral' if ephemeral else 'stored'}")
        if not ephemeral:
            solicitation = self.node.solicitations.apply_solicitation(self.user_id, solicitation)
        for d in self.others():
            d.engine.enqueue_key_solicitation(stream_id, self.user_id, solicitation, ephemeral)

    def send_key_fulfillment(self, stream_id, fulfillment, ephemeral):
        print(f"  {self.name} -> channel: KeyFulfillment, {'ephemeral' if ephemeral else 'stored'}")
        updated = None if ephemeral else self.node.solicitations.apply_fulfillment(fulfillment)
        for d in self.others():
            if ephemeral:
                d.engine.on_ephemeral_key_fulfillment(stream_id, fulfillment)
            elif updated:
                d.engine.enqueue_key_solicitation(stream_id, updated[0], updated[1], False)
        return True

    def send_group_encryption_sessions(self, to_user_id, message):
        for d in self.node.devices:
            if d.user_id == to_user_id:
                print(f"  {self.name} -> {d.name}'s inbox: GroupEncryptionSessions")
                d.engine.enqueue_new_group_sessions(message)

    # What the engine asks.
    def user_devices(self, user_id):
        return [d.crypto.device_keys() for d in self.node.devices if d.user_id == user_id]

    def stream_members(self, stream_id):
        return [d.user_id for d in self.node.devices]

    def is_user_entitled(self, stream_id, user_id):
        return True

    def key_solicitations(self, stream_id):
        return self.node.solicitations

    def get_miniblock_info(self, stream_id):
        return MINIBLOCK

    # Results.
    def on_decrypted(self, stream_id, event_id, plaintext, message_index):
        print(f"  {self.name} decrypts {event_id}: {plaintext.decode()!r}")
        self.decrypted.append((event_id, plaintext))

    def on_decryption_error(self, stream_id, event_id, error, missing_session):
        waits = " (it waits for the key)" if missing_session else ""
        print(f"  {self.name} cannot decrypt {event_id}: {error.code}{waits}")


class Node:
    def __init__(self):
        self.devices = []
        self.solicitations = towns.StreamSolicitations()  # the channel's stored solicitations

    def run(self):
        """Lets every engine work until none has anything left to do now."""
        while sum(d.engine.run() for d in self.devices) > 0:
            pass


def main(directory):
    print("1. Two devices, each on its own store")
    node = Node()
    # Pickle keys: random, kept by the application (in a platform key store).
    alice_key, bob_key = os.urandom(32), os.urandom(32)
    alice = Device(node, "Alice", "0x" + "a" * 40, os.path.join(directory, "alice.db"), alice_key)
    bob = Device(node, "Bob", "0x" + "b" * 40, os.path.join(directory, "bob.db"), bob_key)
    expect(alice.crypto.device_keys().device_key != bob.crypto.device_keys().device_key,
           "each device has its own device key")

    print("2. Alice creates a session for the channel and shares it with Bob")
    first = alice.crypto.ensure_outbound_session(CHANNEL, Algorithm.GROUP_ENCRYPTION)
    session = alice.crypto.export_group_session(CHANNEL, first)
    message, skipped = towns.build_group_encryption_sessions(alice.crypto, CHANNEL, Algorithm.GROUP_ENCRYPTION,
                                                             [session], [bob.crypto.device_keys()])
    result = towns.receive_group_encryption_sessions(bob.crypto, message)
    expect(skipped == [] and result["status"] == "imported" and result["imported"] == [first],
           "Bob imports the session from his inbox")

    print("3. Alice encrypts a message, Bob decrypts it")
    event1 = alice.crypto.encrypt_group_event(CHANNEL, b"Hello Bob", Algorithm.GROUP_ENCRYPTION)
    expect(bob.crypto.decrypt_group_event(CHANNEL, event1) == (b"Hello Bob", 0),
           "Bob reads 'Hello Bob' (megolm message index 0)")

    print("4. Alice encrypts with a session Bob never got")
    alice.crypto.ensure_outbound_session(CHANNEL, Algorithm.HYBRID_GROUP_ENCRYPTION, MINIBLOCK)
    event2 = alice.crypto.encrypt_group_event(CHANNEL, b"This key was never shared", Algorithm.HYBRID_GROUP_ENCRYPTION)
    try:
        bob.crypto.decrypt_group_event(CHANNEL, event2)
        expect(False, "Bob's decryption fails with SESSION_NOT_FOUND")
    except towns.TownsError as e:
        expect(e.code == "SESSION_NOT_FOUND", "Bob's decryption fails with SESSION_NOT_FOUND")

    print("5. The key exchange recovers the missing key")
    bob.engine.enqueue_encrypted_content(CHANNEL, "event-2", event2)
    node.run()
    expect(bob.decrypted == [("event-2", b"This key was never shared")],
           "Bob's engine decrypts the waiting event once the key arrives")
    a, b = alice.engine.stats(), bob.engine.stats()
    expect(b.solicitations_sent == 1 and b.sessions_imported == 1 and b.waiting_events == 0,
           "Bob: one solicitation, one session imported, nothing waits")
    expect(a.fulfillments_sent == 1 and a.shares_sent == 1, "Alice: one fulfillment, one share")

    print("6. Bob's store opens with his pickle key only")
    for handle in (bob.engine, bob.crypto, bob.store):
        handle.close()
    try:
        towns.Store(os.path.join(directory, "bob.db"), alice_key, towns.OpenMode.OPEN)
        expect(False, "another key does not open Bob's store")
    except towns.TownsError as e:
        expect(e.code == "STORE_WRONG_PICKLE_KEY", "another key does not open Bob's store: STORE_WRONG_PICKLE_KEY")
    with towns.Store(os.path.join(directory, "bob.db"), bob_key, towns.OpenMode.OPEN) as store, \
            towns.Crypto(store, bob_key) as crypto:
        expect(crypto.decrypt_group_event(CHANNEL, event2).plaintext == b"This key was never shared",
               "reopened, it still decrypts the recovered message")
    for handle in (alice.engine, alice.crypto, alice.store, node.solicitations):
        handle.close()

    print(f"{failures} check(s) failed." if failures else "All steps gave the expected results.")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} DIR  (an existing, empty directory for the store files)")
    try:
        sys.exit(main(sys.argv[1]))
    except towns.TownsError as e:  # every failure of the library: its code and message
        print(f"FAIL: unexpected {e}")
        sys.exit(1)
