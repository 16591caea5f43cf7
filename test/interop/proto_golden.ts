// Prints the canonical client's protobuf encoding of every wire message that
// towns-e2ee defines, as "<name> <hex>" lines. Its output is checked in as
// test/data/proto_golden.txt; test/test_proto.cpp builds the same messages with
// the same field values and expects these exact bytes.
//   npx tsx proto_golden.ts > ../data/proto_golden.txt
import { create, toBinary, toJsonString } from '@bufbuild/protobuf'
import {
    EncryptedDataSchema,
    EncryptedDataVersion,
    ExportedDeviceSchema,
    HybridGroupSessionKeySchema,
    MemberPayload_KeyFulfillmentSchema,
    MemberPayload_KeySolicitationSchema,
    MemberPayloadSchema,
    SessionKeysSchema,
    UserInboxPayload_GroupEncryptionSessionsSchema,
    UserInboxPayloadSchema,
    UserMetadataPayload_EncryptionDeviceSchema,
} from '@towns-protocol/proto'

const bytes = (n: number, start: number) => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff)
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const out: [string, Uint8Array][] = []

out.push(['EncryptedData.megolm', toBinary(EncryptedDataSchema, create(EncryptedDataSchema, {
    ciphertext: 'AwgAEhCiphertext', algorithm: 'r.group-encryption.v1.aes-sha2',
    senderKey: 'senderKeyCurve25519', sessionId: 'sessionIdBase64',
    version: EncryptedDataVersion.ENCRYPTED_DATA_VERSION_1,
}))])
out.push(['EncryptedData.hybrid', toBinary(EncryptedDataSchema, create(EncryptedDataSchema, {
    algorithm: 'grpaes', senderKey: 'senderKeyCurve25519',
    ciphertextBytes: bytes(20, 1), ivBytes: bytes(12, 100), sessionIdBytes: bytes(32, 200),
    version: EncryptedDataVersion.ENCRYPTED_DATA_VERSION_1,
}))])
out.push(['EncryptedData.all', toBinary(EncryptedDataSchema, create(EncryptedDataSchema, {
    ciphertext: 'c', algorithm: 'a', senderKey: 's', sessionId: 'i', checksum: 'sum', refEventId: 'ref',
    ciphertextBytes: bytes(3, 7), ivBytes: bytes(2, 9), sessionIdBytes: bytes(1, 11),
    version: EncryptedDataVersion.ENCRYPTED_DATA_VERSION_0, deviceKey: 'dev',
}))])
out.push(['EncryptedData.v0_empty_optionals', toBinary(EncryptedDataSchema, create(EncryptedDataSchema, {
    ciphertext: 'c', checksum: '', refEventId: '', deviceKey: '',
}))])
const solicitation = create(MemberPayload_KeySolicitationSchema, {
    deviceKey: 'requesterDeviceKey', fallbackKey: 'requesterFallbackKey', isNewDevice: true,
    sessionIds: ['sessionA', 'sessionB'],
})
out.push(['KeySolicitation', toBinary(MemberPayload_KeySolicitationSchema, solicitation)])
out.push(['MemberPayload.key_solicitation', toBinary(MemberPayloadSchema, create(MemberPayloadSchema, {
    content: { case: 'keySolicitation', value: solicitation },
}))])
const fulfillment = create(MemberPayload_KeyFulfillmentSchema, {
    userAddress: bytes(20, 0x30), deviceKey: 'requesterDeviceKey', sessionIds: ['sessionA'],
})
out.push(['KeyFulfillment', toBinary(MemberPayload_KeyFulfillmentSchema, fulfillment)])
out.push(['MemberPayload.key_fulfillment', toBinary(MemberPayloadSchema, create(MemberPayloadSchema, {
    content: { case: 'keyFulfillment', value: fulfillment },
}))])
const sessions = create(UserInboxPayload_GroupEncryptionSessionsSchema, {
    streamId: bytes(32, 0x20), senderKey: 'senderDeviceKey', sessionIds: ['s1', 's2'],
    ciphertexts: { deviceA: 'ciphertextA', deviceB: 'ciphertextB' }, algorithm: 'grpaes',
})
out.push(['GroupEncryptionSessions', toBinary(UserInboxPayload_GroupEncryptionSessionsSchema, sessions)])
out.push(['UserInboxPayload.group_encryption_sessions', toBinary(UserInboxPayloadSchema, create(UserInboxPayloadSchema, {
    content: { case: 'groupEncryptionSessions', value: sessions },
}))])
out.push(['EncryptionDevice', toBinary(UserMetadataPayload_EncryptionDeviceSchema,
    create(UserMetadataPayload_EncryptionDeviceSchema, { deviceKey: 'deviceKey', fallbackKey: 'fallbackKey' }))])
out.push(['SessionKeys', toBinary(SessionKeysSchema, create(SessionKeysSchema, { keys: ['key1', 'key2', 'key3'] }))])
out.push(['SessionKeys.empty', toBinary(SessionKeysSchema, create(SessionKeysSchema, { keys: [] }))])
out.push(['HybridGroupSessionKey', toBinary(HybridGroupSessionKeySchema, create(HybridGroupSessionKeySchema, {
    sessionId: bytes(32, 1), streamId: bytes(32, 0x20), key: bytes(32, 0x80),
    miniblockNum: 1234567890123n, miniblockHash: bytes(32, 0x40),
}))])
out.push(['HybridGroupSessionKey.negative', toBinary(HybridGroupSessionKeySchema, create(HybridGroupSessionKeySchema, {
    miniblockNum: -1n,
}))])
out.push(['ExportedDevice', toBinary(ExportedDeviceSchema, create(ExportedDeviceSchema, {
    pickleKey: 'DEFAULT_KEY', pickledAccount: 'pickledAccountBase64',
    outboundSessions: [{ sessionId: 'out1', streamId: 'stream1', session: 'outPickle' }],
    inboundSessions: [
        { sessionId: 'in1', streamId: 'stream1', session: 'inPickle1' },
        { sessionId: 'in2', streamId: 'stream2', session: 'inPickle2' },
    ],
    hybridGroupSessions: [{ sessionId: 'hy1', streamId: 'stream1', sessionKey: bytes(5, 3), miniblockNum: 42n }],
}))])
// SessionKeys travels inside olm messages as protobuf JSON; these lines hold its UTF-8 bytes.
const json = (keys: string[]) => new TextEncoder().encode(toJsonString(SessionKeysSchema, create(SessionKeysSchema, { keys })))
out.push(['SessionKeys.json', json(['key1', 'key2'])])
out.push(['SessionKeys.json.empty', json([])])
for (const [name, b] of out) console.log(`${name} ${hex(b)}`)
