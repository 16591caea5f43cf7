// Produces test/data/client_fixture.json with the canonical client:
// - hybrid session id derivations (hybridSessionKeyHash) for edge inputs;
// - a device exported by the client (ExportedDevice bytes) together with events
//   it encrypted (megolm and grpaes, versions 0 and 1) and an olm message it
//   encrypted to a second client device, which is exported too.
// test/test_client_fixture.cpp imports these into towns-e2ee and expects the
// same ids, keys and plaintexts.
//   npx tsx client_fixture.ts > ../data/client_fixture.json
import { create, toBinary } from '@bufbuild/protobuf'
import { ExportedDeviceSchema, EncryptedDataSchema } from '@towns-protocol/proto'
import {
    GroupEncryptionCrypto,
    CryptoStoreInMemory,
    GroupEncryptionAlgorithmId,
    hybridSessionKeyHash,
} from '@towns-protocol/encryption'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64')
const seq = (n: number, start: number) => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff)

const hashes = []
for (const [num, hashLen] of [[0n, 0], [1n, 32], [2n ** 63n - 1n, 32], [2n, 0], [1234567890n, 7]] as [bigint, number][]) {
    const streamId = seq(32, 0x20)
    const key = seq(32, 0x90)
    const miniblockHash = seq(hashLen, 0x40)
    hashes.push({
        stream_id_hex: hex(streamId), key_hex: hex(key), miniblock_num: num.toString(),
        miniblock_hash_hex: hex(miniblockHash),
        session_id_hex: hex(await hybridSessionKeyHash(streamId, key, num, miniblockHash)),
    })
}

const noClient = {
    encryptAndShareGroupSessionsToStream: async () => {},
    getMiniblockInfo: async () => ({ miniblockNum: 5n, miniblockHash: seq(32, 0x60) }),
} as any
async function device(userId: string) {
    const crypto = new GroupEncryptionCrypto(noClient, new CryptoStoreInMemory(userId))
    await crypto.init({ pickleKey: 'fixture pickle key ' + userId })
    return crypto
}
const alice = await device('alice')
const bob = await device('bob')
const streamId = '20' + 'ab'.repeat(31)
const text = 'hello from the canonical client'
const events = []
for (const algorithm of [GroupEncryptionAlgorithmId.GroupEncryption, GroupEncryptionAlgorithmId.HybridGroupEncryption]) {
    for (const [version, payload] of [[1, new TextEncoder().encode(text + ' #1')], [0, text + ' #0']] as const) {
        const data = version === 1
            ? await alice.encryptGroupEvent(streamId, payload as Uint8Array, algorithm)
            : await alice.encryptGroupEvent_deprecated_v0(streamId, payload as string, algorithm)
        events.push({
            algorithm, version,
            encrypted_data_b64: b64(toBinary(EncryptedDataSchema, data)),
            plaintext_b64: b64(typeof payload === 'string' ? new TextEncoder().encode(payload) : payload),
        })
    }
}
const bobKeys = bob.getUserDevice()
const olmPayload = JSON.stringify({ keys: ['an olm payload from alice'] })
const olm = await alice.encryptWithDeviceKeys(olmPayload, [bobKeys])
const out = {
    hybrid_session_ids: hashes,
    stream_id: streamId,
    alice: {
        device_key: alice.getUserDevice().deviceKey, fallback_key: alice.getUserDevice().fallbackKey,
        exported_device_b64: b64(toBinary(ExportedDeviceSchema, await alice.exportDevice())),
        session_ids: await alice.getGroupSessionIds(streamId),
    },
    bob: {
        device_key: bobKeys.deviceKey, fallback_key: bobKeys.fallbackKey,
        exported_device_b64: b64(toBinary(ExportedDeviceSchema, await bob.exportDevice())),
    },
    events,
    olm: { sender_key: alice.getUserDevice().deviceKey, ciphertext: olm[bobKeys.deviceKey], payload: olmPayload },
}
console.log(JSON.stringify(out, null, 2))
