#!/usr/bin/env python3
"""Writes the fuzz seed corpora (test/fuzz/corpus/<target>/) from the vector
corpus (test/vectors/). Run from the repository root after regenerating vectors:
    python3 tools/fuzz/make_corpus.py"""
import hashlib
import json
import os
import sys

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
vectors = os.path.join(root, "test", "vectors")
out = os.path.join(root, "test", "fuzz", "corpus")
seeds = {}


def add(target, data):
    if isinstance(data, str):
        data = data.encode()
    seeds.setdefault(target, {})[hashlib.sha1(data).hexdigest()] = data


def load(name):
    with open(os.path.join(vectors, name), encoding="utf-8") as f:
        return json.load(f)


def varint(n):
    b = bytearray()
    while True:
        if n < 0x80:
            b.append(n)
            return bytes(b)
        b.append((n & 0x7F) | 0x80)
        n >>= 7


def field(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def solicitation(s):
    b = field(1, s.get("deviceKey", "").encode()) + field(2, b"fallback")
    if s.get("isNewDevice"):
        b += bytes([0x18, 1])
    for i in s.get("sessionIds", []):
        b += field(4, i.encode())
    return b


def walk(doc):
    for g in doc["testGroups"]:
        for t in g["tests"]:
            yield g, t


for name in os.listdir(vectors):
    doc = load(name)
    for g, t in walk(doc):
        for key in ("encryptedData",):
            if key in t:
                add("decrypt", bytes.fromhex(t[key]))
        for e in t.get("events", []):
            add("decrypt", bytes.fromhex(e["encryptedData"]))
        if "groupEncryptionSessions" in t:
            add("receive_sessions", bytes.fromhex(t["groupEncryptionSessions"]))
        if g["type"] == "sessionKeysJson":
            add("session_keys_json", t["json"])
        if g["type"] == "hybridSessionImport":
            try:
                add("hybrid_import", bytes.fromhex(t.get("sessionKey", g.get("sessionKey", ""))))
            except ValueError:
                pass
        if "exportedDevice" in t:
            try:
                add("exported_device", bytes.fromhex(t["exportedDevice"]))
            except ValueError:
                pass
        if "receiverExportedDevice" in g:
            add("exported_device", bytes.fromhex(g["receiverExportedDevice"]))
        if g["type"] == "protobufMessage":
            if g["message"] == "river.MemberPayload.KeySolicitation":
                add("answer_solicitation", bytes.fromhex(t["bytes"]))
            if g["message"] == "river.HybridGroupSessionKey":
                add("hybrid_import", bytes.fromhex(t["bytes"]))
            if g["message"] == "river.ExportedDevice":
                add("exported_device", bytes.fromhex(t["bytes"]))
            if g["message"] == "river.EncryptedData":
                add("decrypt", bytes.fromhex(t["bytes"]))
        if g["type"] == "decideAnswer":
            add("answer_solicitation", solicitation(t["solicitation"]))

import base64

b64 = lambda h: base64.b64encode(bytes.fromhex(h)).decode()
mg = load("megolm.json")["testGroups"][0]
lines = [
    '{"id":2,"cmd":"device"}',
    '{"id":3,"cmd":"encrypt","stream_id":"20ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff","algorithm":"r.group-encryption.v1.aes-sha2","plaintext_b64":"aGk="}',
    '{"id":4,"cmd":"encrypt","stream_id":"20ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff","algorithm":"grpaes","plaintext_b64":"aGk=","miniblock_num":"3","miniblock_hash_hex":"0000000000000000000000000000000000000000000000000000000000000000"}',
    '{"id":5,"cmd":"decrypt","stream_id":"%s","encrypted_data_pb":"%s"}' % (mg["streamId"], b64(mg["tests"][0]["encryptedData"])),
    '{"id":6,"cmd":"import_sessions","sessions":[{"streamId":"%s","sessionId":"%s","sessionKey":"%s","algorithm":"r.group-encryption.v1.aes-sha2"}]}' % (mg["streamId"], mg["sessionId"], mg["sessionKey"]),
    '{"id":7,"cmd":"solicit","stream_id":"20ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff","missing_session_ids":["a","b"]}',
    '{"id":8,"cmd":"export_sessions"}',
    '{"id":9,"cmd":"export_device"}',
    '{"id":10,"cmd":"encrypt_to_devices","payload":"x","devices":[{"device_key":"k","fallback_key":"f"}]}',
    '{"id":11,"cmd":"decrypt_from_device","ciphertext":"AwoA","sender_key":"k"}',
    '{"id":12,"cmd":"session_ids","stream_id":"20ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"}',
    '{"id":13,"cmd":"answer_solicitation","stream_id":"20ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff","from_user_id":"0xabababababababababababababababababababab","key_solicitation_pb":"CgFhEgFiGAEiAWM=","requester_entitled":true}',
    '{"id":14,"cmd":"receive_sessions","group_encryption_sessions_pb":"CgIg/xIBaxoBYQ=="}',
    '{"id":16,"cmd":"derived_encrypt","key_phrase":"0xab","plaintext_b64":"aGk="}',
    '{"id":17,"cmd":"derived_decrypt","key_phrase":"0x1234567890abcdef1234567890abcdef12345678","encrypted_data_pb":"%s"}' % b64(load("derived.json")["testGroups"][2]["tests"][0]["encryptedData"]),
    '{"id":18,"cmd":"media_encrypt","data_b64":"aGVsbG8=","chunk_size":20,"key_hex":"%s","ivs_hex":["%s","%s"]}' % ("00" * 32, "a0" * 12, "a1" * 12),
    '{"id":19,"cmd":"media_decrypt","secret_key_hex":"%s","chunks":[{"ct_b64":"%s","iv_hex":"%s"}]}' % (load("media.json")["testGroups"][1]["tests"][0]["secretKey"], b64(load("media.json")["testGroups"][1]["tests"][0]["chunks"][0]["ciphertext"]), load("media.json")["testGroups"][1]["tests"][0]["chunks"][0]["iv"]),
    '{"id":20,"cmd":"media_decrypt","secret_key_hex":"%s","iv_hex":"%s","chunks":[{"ct_b64":"%s"}]}' % ("00" * 32, "b0" * 12, "AAAAAAAAAAAAAAAAAAAAAA=="),
    'not json', '[]', '{"cmd":5}', '{"id":15,"cmd":"quit"}',
]
for l in lines:
    add("driver_line", l)
add("driver_line", "\n".join(lines[:6]))

# store_bytes: edits of the target's own store file (tools/fuzz/fuzz_store_bytes.cpp):
# a mode byte (bit 0: without verify_on_open), then (u32 little-endian offset, XOR
# byte or 0 = cut there) per edit.
def edit(offset, x):
    return offset.to_bytes(4, "little") + bytes([x])


for s in [b"\x00", b"\x01",
          b"\x00" + edit(0, 1),            # the SQLite header string
          b"\x00" + edit(60, 0x80),        # user_version made negative
          b"\x00" + edit(63, 0x01),        # user_version + 1
          b"\x00" + edit(68, 0x01),        # application_id
          b"\x00" + edit(4096, 0),         # cut after the first page
          b"\x00" + edit(100, 0),          # cut inside the first page
          b"\x00" + edit(5000, 0x10),
          b"\x00" + edit(9000, 0x04) + edit(13000, 0x40),
          b"\x01" + edit(9000, 0x04),
          b"\x01" + edit(17000, 0x02) + edit(21000, 0x80),
          b"\x00" + edit(0xFFFFFFFF, 0x20)]:
    add("store_bytes", s)

# replay_journal: the same edits, of the generation file (tools/fuzz/fuzz_replay_journal.cpp).
# Offsets: the epoch (64), the count (72), the lock word (96), the table from 4096
# (80-byte slots: mark, stream, session, index, pad, fingerprint, tag); the golden
# journal's live entries are in slots 250, 359 and 425 (its store is seeded).
slot = lambda n: 4096 + 80 * n
for s in [b"\x00", b"\x01",
          b"\x00" + edit(64, 1),                  # epoch back: the entries folded before come back
          b"\x00" + edit(64, 0xFF),
          b"\x00" + edit(79, 0x80),               # a huge count
          b"\x00" + edit(96, 1),                  # a lock token naming slot 1 (the store's own)
          b"\x00" + edit(98, 0x10),               # a token naming no slot
          b"\x00" + edit(slot(250) + 48, 1),      # a fingerprint changed without its tag
          b"\x01" + edit(slot(250) + 48, 1),
          b"\x01" + edit(slot(359) + 40, 1),      # an index changed
          b"\x01" + edit(slot(425) + 64, 0x80),   # a tag changed
          b"\x00" + edit(slot(425), 1),           # a mark changed: the entry is gone
          b"\x01" + edit(slot(250) + 8, 0x20),    # a stream name changed
          b"\x00" + edit(slot(100) + 20, 0x55),   # bytes in an empty slot
          b"\x00" + edit(4096, 0),                # the journal cut off
          b"\x00" + edit(0, 0)]:                  # an empty file
    add("replay_journal", s)

# The input limits (docs/driver.md "Limits"), at the fuzz target's small limits
# (fuzz_driver_line.cpp: 16384 bytes a line, 256 items a list, depth 16): just
# under and just over each, then a normal request that must still be answered.
stream = "20" + "ff" * 31
after = '\n{"id":99,"cmd":"device"}'
add("driver_line", '{"id":30,"cmd":"device","x":"' + "a" * 16384 + '"}' + after)
add("driver_line", '{"id":31,"cmd":"nope","x":"' + "a" * (16384 - 29) + '"}' + after)
ids = json.dumps(["x"] * 257)
add("driver_line", '{"id":32,"cmd":"share","stream_id":"%s","algorithm":"grpaes","session_ids":%s,"devices":[]}' % (stream, ids) + after)
add("driver_line", '{"id":33,"cmd":"solicit","stream_id":"%s","missing_session_ids":%s}' % (stream, json.dumps(["x"] * 256)) + after)
add("driver_line", '{"id":34,"cmd":"device","x":' + "[" * 16 + "]" * 16 + "}" + after)
add("driver_line", '{"id":35,"cmd":"device","x":' + "[" * 15 + "]" * 15 + "}" + after)
add("driver_line", '{"id":36,"cmd":"encrypt","stream_id":"%s","algorithm":"%s","plaintext_b64":"aGk="}' % (stream, "z" * 5000) + after)
# Canonical inputs: NUL bytes, non-canonical stream ids, miniblocks out of range.
add("driver_line", '{"id":37,"cmd":"device"\0}' + after)  # a raw NUL byte
add("driver_line", '{"id":38,"cmd":"session_ids","stream_id":"%s\\u0000"}' % stream + after)
for bad in ["0x", "0x" + stream, stream.upper(), "ab", "10" + "ab" * 20, "10" + "ab" * 20 + "0" * 22, "10" + "ab" * 20 + "1" * 22]:
    add("driver_line", '{"id":39,"cmd":"session_ids","stream_id":"%s"}' % bad)
for num in ['18446744073709551615', '"18446744073709551615"', '"-1"', '"9223372036854775807"', '-9223372036854775808']:
    add("driver_line", '{"id":40,"cmd":"encrypt","stream_id":"%s","algorithm":"grpaes","plaintext_b64":"aGk=","miniblock_num":%s,"miniblock_hash_hex":"%s"}' % (stream, num, "00" * 32))
for h in ["", "00", "00" * 33]:
    add("driver_line", '{"id":41,"cmd":"encrypt","stream_id":"%s","algorithm":"grpaes","plaintext_b64":"aGk=","miniblock_num":"1","miniblock_hash_hex":"%s"}' % (stream, h))
add("driver_line", '{"id":42,"cmd":"init","user_id":"alice","store":"memory"}' + after)

for target, files in sorted(seeds.items()):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    for old in os.listdir(d):  # the corpus is exactly what the vectors give
        os.remove(os.path.join(d, old))
    for digest, data in files.items():
        with open(os.path.join(d, digest), "wb") as f:
            f.write(data)
    print(f"{target}: {len(files)} seeds", file=sys.stderr)
