"""The conformance vectors (test/vectors/*.json, docs/vectors.md) through the
binding, wherever the C ABI can express a case.

Every case of every file is either run by a handler below or counted as not
expressible through the C ABI; the counts are asserted, so a new case type (or
more cases of an inexpressible one) fails test_every_case_is_accounted_for until
it is handled here."""

import base64
import collections
import hashlib
import json
import struct

import pytest

import towns_e2ee as t
from conftest import vectors_dir
from proto import exported_device, hybrid_encrypted_data, hybrid_group_session_key

MEGOLM = "r.group-encryption.v1.aes-sha2"
GRPAES = "grpaes"

# What the C ABI cannot express case by case, per case type, with the number
# of cases of each in the corpus: these are the library's internal functions.
# The whole corpus, these included, is verified through towns_vectors_verify
# (verify_vectors, tested below).
NOT_EXPRESSIBLE = {
    "base64Decode": (20, "the encodings are internal: no C function"),
    "base64Encode": (10, "the encodings are internal: no C function"),
    "hexDecode": (13, "the encodings are internal: no C function"),
    "hexEncode": (3, "the encodings are internal: no C function"),
    "sessionKeysJson": (9, "SessionKeys JSON parsing is internal: no C function"),
    "protobufMessage": (38, "the C ABI has no generic protobuf parser"),
    "protobufNonCanonical": (40, "the C ABI has no generic protobuf parser"),
    "protobufMalformed": (97, "the C ABI has no generic protobuf parser"),
    "deriveKeyAndIv": (5, "the derived scheme is not in the C ABI"),
    "derivedEncrypt": (5, "the derived scheme is not in the C ABI"),
    "derivedDecrypt": (21, "the derived scheme is not in the C ABI"),
    "mediaEncrypt": (12, "media encryption is not in the C ABI"),
    "mediaDecrypt": (18, "media encryption is not in the C ABI"),
    "wholeFileDecrypt": (12, "media encryption is not in the C ABI"),
    "decideSolicitation": (26, "the engine's decision functions are not in the C ABI"),
    "decideAnswer": (24, "the engine's decision functions are not in the C ABI"),
    "keyExchangeTrace": (67, "replaying a trace needs the driver's world (tools/exchange_diff.cpp), not in the C ABI"),
    "megolmOutbound": (5, "a session from given random bytes: the C ABI draws its own"),
    "megolmExport": (10, "export at any index is libolm's; the C ABI exports at the first known index"),
    "olmAccount": (5, "an account from given random bytes: the C ABI draws its own"),
    "deviceInit": (2, "a device from given random bytes: the C ABI draws its own"),
    "olmEncrypt": (9, "a pre-key message from given random bytes: the C ABI draws its own"),
    "olmAccountUnpickle": (9, "libolm's unpickle errors; the C ABI reports a pickle that does not open as IMPORT_FAILED"),
    "buildSessions": (7, "sharing from given random bytes: the C ABI draws its own"),
}

# Cases of handled types that the C ABI cannot express: (type, predicate, count, why).
NOT_EXPRESSIBLE_CASES = [
    ("megolmEncrypt", lambda tc: tc["version"] == 0, 3, "version 0 encryption is not in the C ABI"),
]


def expressible(g, tc):
    return not any(ty == g["type"] and pred(tc) for ty, pred, _, _ in NOT_EXPRESSIBLE_CASES)

# Cases where the C ABI gives another code than the vector, on purpose or not
# yet reconciled: (file, tcId) -> (the vector's code, the C ABI's code, why).
# Each is asserted exactly both ways, so either side changing fails the test.


def load_all():
    """[(file name, document)] of every vector file, sorted."""
    files = sorted(p for p in vectors_dir().glob("*.json") if p.is_file())
    return [(p.name, json.loads(p.read_text())) for p in files]


def param(test, group, name):
    return test[name] if name in test else group[name]


def session_key(stream_id, session_id, key, algorithm):
    return {"streamId": stream_id, "sessionId": session_id, "sessionKey": key, "algorithm": algorithm}


def import_one(crypto, stream_id, session_id, key, algorithm):
    """Imports one key; the C ABI reports a refused key in "failed" (IMPORT_FAILED)."""
    result = crypto.import_session_keys(stream_id, [session_key(stream_id, session_id, key, algorithm)])
    if result == {"imported": [], "failed": [session_id], "skipped": []}:
        raise t.TownsError("IMPORT_FAILED", "the key is in the import's failed list")
    assert result == {"imported": [session_id], "failed": [], "skipped": []}


def hybrid_session_id(stream_id: bytes, key: bytes, miniblock_num: int, miniblock_hash: bytes) -> bytes:
    """protocol.md: SHA-256("RVR_HSK:" || streamId || key || u64_be(num) || hash)."""
    return hashlib.sha256(b"RVR_HSK:" + stream_id + key + struct.pack(">Q", miniblock_num) + miniblock_hash).digest()


def first_known_index(exported_key: str) -> int:
    """libolm's export format: version byte 1, then the index as a big-endian u32."""
    raw = base64.b64decode(exported_key + "=" * (-len(exported_key) % 4))
    assert raw[0] == 1
    return struct.unpack(">I", raw[1:5])[0]


# ---- Handlers: each runs one case and returns normally when it is valid, or
# raises the TownsError the case gives.

def megolm_decrypt(g, tc, device):
    stream = param(tc, g, "streamId")
    d = device()
    import_one(d, stream, param(tc, g, "sessionId"), param(tc, g, "sessionKey"), MEGOLM)
    for first in tc.get("decryptFirst", []):
        d.decrypt_group_event(stream, bytes.fromhex(first))
    out = d.decrypt_group_event(stream, bytes.fromhex(tc["encryptedData"]))
    assert out.plaintext.hex() == tc["plaintext"]
    assert out.message_index == tc["messageIndex"]


def megolm_encrypt(g, tc, device):
    # The state's outbound session encrypts without drawing: the exact bytes.
    exported = bytes.fromhex(tc["exportedDevice"])
    d = device(pickle_key=pickle_key_of(exported), exported_device=exported)
    event = d.encrypt_group_event(g["streamId"], bytes.fromhex(tc["plaintext"]))
    assert event.hex() == tc["encryptedData"]


def import_case(g, tc, device, algorithm_id, algorithm):
    """Imports the case's key; a refused one leaves nothing held. The device."""
    stream, sid = param(tc, g, "streamId"), param(tc, g, "sessionId")
    d = device()
    try:
        import_one(d, stream, sid, param(tc, g, "sessionKey"), algorithm_id)
    except t.TownsError:
        assert d.has_session_key(stream, sid, algorithm) is False
        raise
    assert d.has_session_key(stream, sid, algorithm) is True
    return d, stream, sid


def megolm_import(g, tc, device):
    d, stream, sid = import_case(g, tc, device, MEGOLM, t.Algorithm.GROUP_ENCRYPTION)
    exported = d.export_group_session(stream, sid)
    assert exported["sessionId"] == sid and exported["algorithm"] == MEGOLM
    assert first_known_index(exported["sessionKey"]) == tc["firstKnownIndex"]


def hybrid_session_id_case(g, tc, device):
    # Through the library: a HybridGroupSessionKey with these inputs imports
    # under sessionId only if the library's hash of them is sessionId.
    stream = tc["streamId"]
    key, mb_hash = bytes.fromhex(tc["key"]), bytes.fromhex(tc["miniblockHash"])
    num, sid = int(tc["miniblockNum"]), tc["sessionId"]
    assert hybrid_session_id(bytes.fromhex(stream), key, num, mb_hash).hex() == sid  # the vector itself
    encoded = hybrid_group_session_key(bytes.fromhex(sid), bytes.fromhex(stream), key, num, mb_hash).hex()
    d = device()
    import_one(d, stream, sid, encoded, GRPAES)
    # and not under another id: one bit of the claimed id flipped.
    wrong = bytes([bytes.fromhex(sid)[0] ^ 1]) + bytes.fromhex(sid)[1:]
    encoded_wrong = hybrid_group_session_key(wrong, bytes.fromhex(stream), key, num, mb_hash).hex()
    with pytest.raises(t.TownsError) as e:
        import_one(d, stream, wrong.hex(), encoded_wrong, GRPAES)
    assert e.value.code == "IMPORT_FAILED"


def hybrid_session_import(g, tc, device):
    import_case(g, tc, device, GRPAES, t.Algorithm.HYBRID_GROUP_ENCRYPTION)


def aes_gcm(g, tc, device):
    # Decryption only, through a grpaes session holding the vector's key (the
    # library draws its own IVs when it encrypts).
    stream = "20" + "ae" * 31
    key = bytes.fromhex(tc["key"])
    sid = hybrid_session_id(bytes.fromhex(stream), key, 0, b"")
    d = device()
    import_one(d, stream, sid.hex(), hybrid_group_session_key(sid, bytes.fromhex(stream), key, 0, b"").hex(), GRPAES)
    event = hybrid_encrypted_data("sender", sid, bytes.fromhex(tc["iv"]), bytes.fromhex(tc["ciphertext"]), 1)
    out = d.decrypt_group_event(stream, event)
    assert out.plaintext.hex() == tc["plaintext"]
    assert out.message_index is None


def hybrid_decrypt(g, tc, device):
    stream = param(tc, g, "streamId")
    d = device()
    import_one(d, stream, param(tc, g, "sessionId"), param(tc, g, "sessionKey"), GRPAES)
    out = d.decrypt_group_event(tc.get("decryptStreamId", stream), bytes.fromhex(tc["encryptedData"]))
    assert out.plaintext.hex() == tc["plaintext"]
    assert out.message_index is None


def hybrid_encrypt(g, tc, device):
    # The C ABI draws its own IV, so the bytes cannot match: the sender encrypts
    # the plaintext with the session(s) the vector gives, and both its event and
    # the vector's decrypt to it.
    stream = param(tc, g, "streamId")
    d = device(exported_device=bytes.fromhex(g["exportedDevice"]))
    import_one(d, stream, param(tc, g, "sessionId"), param(tc, g, "sessionKey"), GRPAES)
    for more in tc.get("moreSessions", []):
        import_one(d, stream, more["sessionId"], more["sessionKey"], GRPAES)
    plaintext = bytes.fromhex(tc["plaintext"])
    event = d.encrypt_group_event(stream, plaintext, t.Algorithm.HYBRID_GROUP_ENCRYPTION)
    assert d.decrypt_group_event(stream, event).plaintext == plaintext
    assert d.decrypt_group_event(stream, bytes.fromhex(tc["encryptedData"])).plaintext == plaintext


def olm_decrypt(g, tc, device):
    # The receiver's account as a device of its own (an ExportedDevice holding
    # only the account); the sender is only its identity key.
    sender = device(exported_device=exported_device(param(tc, g, "senderPickleKey"), param(tc, g, "senderPickle")))
    assert sender.device_keys().device_key == g["senderIdentityKey"]
    try:
        receiver = device(exported_device=exported_device(param(tc, g, "receiverPickleKey"),
                                                          param(tc, g, "receiverPickle")))
    except t.TownsError as e:
        # docs/vectors.md: "any failure is DECRYPTION_FAILED"; through the C ABI
        # a pickle that does not open is the export's IMPORT_FAILED.
        assert e.code == "IMPORT_FAILED"
        raise t.TownsError("DECRYPTION_FAILED", f"the receiver does not open: {e}")
    assert receiver.device_keys().device_key == g["receiverIdentityKey"]
    payload = receiver.decrypt_with_device_key(param(tc, g, "message"), param(tc, g, "senderIdentityKey"))
    assert payload == tc["payload"].encode()


def receive_sessions(g, tc, device):
    d = device(exported_device=bytes.fromhex(g["receiverExportedDevice"]))
    assert d.device_keys().device_key == g["receiverDeviceKey"]
    result = t.receive_group_encryption_sessions(d, bytes.fromhex(tc["groupEncryptionSessions"]))
    want = tc["imported"]
    assert result["imported"] == [w["sessionId"] for w in want]
    assert result["failed"] == tc["failed"]
    assert result["streamId"] == g["streamId"]
    flags = tc["flags"]
    expected_status = ("not_for_this_device" if "NotForThisDevice" in flags
                       else "unknown_algorithm" if "UnknownAlgorithm" in flags
                       else "imported" if want else "nothing_missing")
    assert result["status"] == expected_status
    for w in want:
        assert d.export_group_session(g["streamId"], w["sessionId"]) == session_key(
            g["streamId"], w["sessionId"], w["sessionKey"], w["algorithm"])


def import_device(g, tc, device):
    d = device(exported_device=bytes.fromhex(tc["exportedDevice"]))
    assert d.device_keys() == t.DeviceKeys(tc["deviceKey"], tc["fallbackKey"])
    for e in tc["events"]:
        assert d.decrypt_group_event(e["streamId"], bytes.fromhex(e["encryptedData"])).plaintext.hex() == e["plaintext"]
    for o in tc["outbound"]:
        assert d.has_outbound_session(o["streamId"], t.Algorithm.GROUP_ENCRYPTION) is True
        assert d.ensure_outbound_session(o["streamId"], t.Algorithm.GROUP_ENCRYPTION) == o["sessionId"]
        # The next message continues the chain: the device's own inbound copy reads its index.
        event = d.encrypt_group_event(o["streamId"], b"after import")
        assert d.decrypt_group_event(o["streamId"], event) == t.Decrypted(b"after import", o["nextMessageIndex"])


def pickle_key_of(exported: bytes) -> bytes:
    """The pickleKey (field 1) of a binary ExportedDevice, read by hand: the
    binding has no protobuf parser. Every vector writes it first."""
    assert exported[0] == 0x0A
    length, shift, i = 0, 0, 1
    while True:
        b = exported[i]
        length |= (b & 0x7F) << shift
        shift += 7
        i += 1
        if b < 0x80:
            break
    return exported[i:i + length]


def export_device(g, tc, device):
    # Recreated with the export's own pickle key (docs/vectors.md), exported again.
    exported = bytes.fromhex(tc["exportedDevice"])
    d = device(pickle_key=pickle_key_of(exported), exported_device=exported)
    assert d.export_device().hex() == tc["exported"]


HANDLERS = {
    "megolmDecrypt": megolm_decrypt,
    "megolmImport": megolm_import,
    "hybridSessionId": hybrid_session_id_case,
    "hybridSessionImport": hybrid_session_import,
    "aesGcm": aes_gcm,
    "hybridDecrypt": hybrid_decrypt,
    "hybridEncrypt": hybrid_encrypt,
    "megolmEncrypt": megolm_encrypt,
    "olmDecrypt": olm_decrypt,
    "receiveSessions": receive_sessions,
    "importDevice": import_device,
    "exportDevice": export_device,
}


def all_cases():
    for name, doc in load_all():
        for g in doc["testGroups"]:
            for tc in g["tests"]:
                yield name, g, tc


def handled_cases():
    return [pytest.param(name, g, tc, id=f"{name}-{g['type']}-tc{tc['tcId']}")
            for name, g, tc in all_cases() if g["type"] in HANDLERS and expressible(g, tc)]


def test_vectors_found():
    names = [name for name, _ in load_all()]
    for f in ("megolm.json", "grpaes.json", "olm.json", "session_sharing.json", "exported_device.json",
              "key_exchange.json"):
        assert f in names


def test_every_case_is_accounted_for():
    counted = collections.Counter()
    for name, doc in load_all():
        assert doc["numberOfTests"] == sum(len(g["tests"]) for g in doc["testGroups"]), name
        for g in doc["testGroups"]:
            counted[g["type"]] += len(g["tests"])
    unknown = sorted(set(counted) - set(HANDLERS) - set(NOT_EXPRESSIBLE))
    assert unknown == [], f"case types neither handled nor listed as not expressible: {unknown}"
    not_expressible = {ty: n for ty, n in counted.items() if ty in NOT_EXPRESSIBLE}
    assert not_expressible == {ty: n for ty, (n, _) in NOT_EXPRESSIBLE.items()}
    assert sum(not_expressible.values()) == 467
    excluded = collections.Counter()
    for _, g, tc in all_cases():
        if not expressible(g, tc):
            excluded[g["type"]] += 1
    assert dict(excluded) == {ty: n for ty, _, n, _ in NOT_EXPRESSIBLE_CASES}
    handled = {ty: n - excluded[ty] for ty, n in counted.items() if ty in HANDLERS}
    assert handled == {"megolmDecrypt": 40, "megolmImport": 14, "hybridSessionId": 6,
                       "hybridSessionImport": 9, "aesGcm": 3, "hybridDecrypt": 20,
                       "hybridEncrypt": 8, "olmDecrypt": 14, "receiveSessions": 15,
                       "importDevice": 27, "exportDevice": 8, "megolmEncrypt": 9}


@pytest.mark.parametrize("file,group,case", handled_cases())
def test_vector(file, group, case, memory_device):
    handler = HANDLERS[group["type"]]
    if case["result"] == "valid":
        handler(group, case, memory_device)
    else:
        assert case["result"] == "invalid"
        with pytest.raises(t.TownsError) as e:
            handler(group, case, memory_device)
        assert e.value.code == case["error"]


def test_the_library_verifies_the_whole_corpus():
    # Every case, the kinds the binding cannot express included (encodings,
    # protobuf, derived, media, the key exchange's rules and traces), through
    # towns_vectors_verify: the counts are the corpus's own.
    total = sum(1 for _ in all_cases())
    result = t.verify_vectors(vectors_dir())
    assert result == t.VectorsResult(total, 0, [])


def test_verify_vectors_reports_a_changed_case(tmp_path):
    doc = json.loads((vectors_dir() / "grpaes.json").read_text())
    first = doc["testGroups"][0]["tests"][0]
    # Flip the case's expected result: it must then fail, named by file and tcId.
    first["result"] = "invalid" if first["result"] == "valid" else "valid"
    first.setdefault("error", "DECRYPTION_FAILED")
    (tmp_path / "changed.json").write_text(json.dumps(doc))
    result = t.verify_vectors(tmp_path)
    cases = sum(len(g["tests"]) for g in doc["testGroups"])
    assert (result.passed, result.failed) == (cases - 1, 1)
    assert len(result.failures) == 1 and result.failures[0].startswith(f"changed.json tcId {first['tcId']} (")


def test_verify_vectors_refuses_what_is_not_a_directory(tmp_path):
    with pytest.raises(t.TownsError) as e:
        t.verify_vectors(tmp_path / "missing")
    assert e.value.code == "INVALID_ARGUMENT"
    with pytest.raises(TypeError):
        t.verify_vectors(None)
    empty = t.verify_vectors(tmp_path)
    assert (empty.passed, empty.failed) == (0, 1) and empty.failures[0].endswith(": no vector files")
