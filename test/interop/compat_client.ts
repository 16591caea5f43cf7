// The client's side of docs/compat.md, run on the canonical client: one check per
// row of the first table (and of the rows that section 16 of docs/protocol.md
// states about the client), each asserting exactly what the "client" column
// says. This library's side of each row is in the Catch2 suites and the interop
// scenarios (docs/compat.md names them). Prints "N passed, N failed".
//   ../../tools/node/env node --import tsx compat_client.ts
import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import { EncryptedDataSchema, ExportedDeviceSchema, HybridGroupSessionKeySchema } from '@towns-protocol/proto'
import { bin_fromBase64, bin_fromHexString } from '@towns-protocol/utils'
import {
    CryptoStoreInMemory,
    DecryptionError,
    GroupEncryptionAlgorithmId,
    GroupEncryptionCrypto,
    encryptAesGcm,
    hybridSessionKeyHash,
    importAesGsmKeyBytes,
} from '@towns-protocol/encryption'

console.log = (...args: any[]) => process.stderr.write(args.join(' ') + '\n')
console.info = console.log
console.debug = console.log

const MEGOLM = GroupEncryptionAlgorithmId.GroupEncryption
const HYBRID = GroupEncryptionAlgorithmId.HybridGroupEncryption
const STREAM = '20' + 'ab'.repeat(31)
const OTHER = '20' + 'cd'.repeat(31)
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const utf8 = (s: string) => new TextEncoder().encode(s)

function expect(ok: unknown, what: string): asserts ok {
    if (!ok) throw new Error(`expected: ${what}`)
}
function equal(a: unknown, b: unknown, what: string) {
    const show = (x: unknown) => JSON.stringify(x, (_, v) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? hex(v) : v))
    if (show(a) !== show(b)) throw new Error(`${what}: ${show(a)} != ${show(b)}`)
}
async function thrown(f: () => Promise<unknown>): Promise<any> {
    try {
        await f()
    } catch (e) {
        return e ?? new Error('undefined thrown')
    }
    throw new Error('expected an error, got a result')
}
const messageOf = (e: any) => String(e?.message ?? e)

// A client device on its in-memory store, with a client that counts shares.
async function device(user: string, opts: any = { pickleKey: 'compat key' }) {
    const shares: { streamId: string; sessionIds: string[] }[] = []
    const client = {
        encryptAndShareGroupSessionsToStream: async (streamId: string, sessions: any[]) => {
            shares.push({ streamId, sessionIds: sessions.map((s) => s.sessionId) })
        },
        getMiniblockInfo: async () => ({ miniblockNum: 7n, miniblockHash: new Uint8Array(32).fill(7) }),
    } as any
    const store = new CryptoStoreInMemory(user)
    const c = new GroupEncryptionCrypto(client, store)
    await c.init(opts)
    return { c, store, shares }
}
// One character of a libolm pickle changed: its MAC no longer verifies.
const damage = (p: string) => {
    const i = p.length >> 1
    return p.slice(0, i) + (p[i] === 'A' ? 'B' : 'A') + p.slice(i + 1)
}
// A grpaes session key of any key length, with a correct session id.
async function hybridKey(keyLength: number, miniblockNum: bigint, fill: number) {
    const streamId = new Uint8Array(Buffer.from(STREAM, 'hex'))
    const key = new Uint8Array(keyLength).fill(fill)
    const miniblockHash = new Uint8Array(32)
    const sessionId = await hybridSessionKeyHash(streamId, key, miniblockNum, miniblockHash)
    const record = create(HybridGroupSessionKeySchema, { sessionId, streamId, key, miniblockNum, miniblockHash })
    return { streamId: STREAM, sessionId: hex(sessionId), sessionKey: hex(toBinary(HybridGroupSessionKeySchema, record)), algorithm: HYBRID }
}
const importKey = (c: GroupEncryptionCrypto, k: any) => (c.groupDecryption as any)[k.algorithm].importStreamKey(k.streamId, k)
const hybridIdOf = (e: any) => hex(e.sessionIdBytes)

const checks: { row: string; run: () => Promise<void> }[] = [
    {
        row: 'stored account does not unpickle: a new account overwrites it',
        run: async () => {
            const { c, store } = await device('acct', { pickleKey: 'right' })
            const before = await store.getAccount()
            const other = new GroupEncryptionCrypto({} as any, store)
            await other.init({ pickleKey: 'wrong' })
            expect(other.getUserDevice().deviceKey !== c.getUserDevice().deviceKey, 'another identity')
            expect((await store.getAccount()) !== before, 'the stored account was replaced')
        },
    },
    {
        row: 'importing an ExportedDevice: pickles stored unchecked, the export\'s pickle key kept',
        run: async () => {
            const { c } = await device('exp')
            await c.encryptGroupEvent(STREAM, utf8('x'), MEGOLM)
            const exported = await c.exportDevice()
            exported.inboundSessions[0].session = damage(exported.inboundSessions[0].session)
            const copy = new GroupEncryptionCrypto({} as any, new CryptoStoreInMemory('exp2'))
            await copy.init({ fromExportedDevice: exported, pickleKey: 'ignored' })
            equal((await copy.exportDevice()).pickleKey, 'compat key', 'the export\'s key')
            equal((await copy.exportDevice()).inboundSessions[0].session, exported.inboundSessions[0].session, 'the damaged pickle, stored')
        },
    },
    {
        row: 'in-memory store: an LRU of 5,000 entries per table',
        run: async () => {
            const store = new CryptoStoreInMemory('lru')
            for (let i = 0; i <= 5000; i++) {
                await store.storeHybridGroupSession({ streamId: STREAM, sessionId: `s${i}`, sessionKey: new Uint8Array(1), miniblockNum: 0n })
            }
            expect((await store.getHybridGroupSession(STREAM, 's0')) === undefined, 'the oldest is forgotten')
            equal((await store.getAllHybridGroupSessions()).length, 5000, 'entries kept')
        },
    },
    {
        row: 'base64: white space, URL-safe characters, inner padding and non-zero trailing bits accepted; 4n+1 refused',
        run: async () => {
            equal(bin_fromBase64('AQ ID\n'), new Uint8Array([1, 2, 3]), 'white space')
            equal(bin_fromBase64('-_8='), new Uint8Array([0xfb, 0xff]), 'URL-safe')
            equal(bin_fromBase64('AQ==Ag=='), new Uint8Array([1, 2]), 'inner padding restarts a group')
            equal(bin_fromBase64('AR=='), new Uint8Array([1]), 'non-zero trailing bits')
            equal(bin_fromBase64('AQ'), new Uint8Array([1]), 'padding optional')
            expect(messageOf(await thrown(async () => bin_fromBase64('AQIDB'))).includes('invalid base64'), '4n+1 refused')
            // A version-1 megolm payload is decoded with it.
            const { c } = await device('b64')
            const e = await c.encryptGroupEvent_deprecated_v0(STREAM, '-_8', MEGOLM)
            e.version = 1
            equal(await c.decryptGroupEvent(STREAM, e), new Uint8Array([0xfb, 0xff]), 'a URL-safe v1 payload decrypts')
        },
    },
    {
        row: 'hex: optional 0x (lower case x), either case, even length; nothing else',
        run: async () => {
            equal(bin_fromHexString('0xAbCd'), new Uint8Array([0xab, 0xcd]), '0x and mixed case')
            await thrown(async () => bin_fromHexString('0XABCD'))
            await thrown(async () => bin_fromHexString('abc'))
            await thrown(async () => bin_fromHexString('zz'))
        },
    },
    {
        row: 'hybrid key length: any length is imported; 16 and 24 bytes are used as AES-128 and AES-192',
        run: async () => {
            for (const length of [16, 24, 31, 32]) {
                const { c } = await device(`len${length}`)
                const k = await hybridKey(length, 1n, 0x11)
                await importKey(c, k)
                expect(await c.hasSessionKey(STREAM, k.sessionId, HYBRID), `a ${length}-byte key is held`)
                if (length === 31) {
                    expect(messageOf(await thrown(() => c.encryptGroupEvent(STREAM, utf8('x'), HYBRID))).includes('key length'), 'a 31-byte key fails when used')
                    continue
                }
                const e = await c.encryptGroupEvent(STREAM, utf8('aes'), HYBRID)
                equal(hybridIdOf(e), k.sessionId, `encrypts with the ${length}-byte key`)
                equal(await c.decryptGroupEvent(STREAM, e), utf8('aes'), 'and decrypts')
                const aes = await importAesGsmKeyBytes(new Uint8Array(length).fill(0x11))
                equal((aes.algorithm as any).length, length * 8, 'WebCrypto key size')
            }
        },
    },
    {
        row: 'version-0 payloads are JavaScript strings: invalid UTF-8 replaced',
        run: async () => {
            const { c } = await device('v0')
            const sent = await c.encryptGroupEvent(STREAM, utf8('x'), HYBRID)
            const key = await c.encryptionDevice.getHybridGroupSessionKey(STREAM, hybridIdOf(sent))
            const sealed = await encryptAesGcm(await importAesGsmKeyBytes(key.key), new Uint8Array([0x61, 0xff, 0x62]))
            const e = create(EncryptedDataSchema, { ...sent, ciphertextBytes: sealed.ciphertext, ivBytes: sealed.iv, version: 0 })
            equal(await c.decryptGroupEvent(STREAM, e), 'a\uFFFDb', 'U+FFFD')
        },
    },
    {
        row: 'NUL: megolm version 0 and olm plaintexts end at the first NUL; grpaes version 0 and version 1 do not',
        run: async () => {
            const a = await device('nul-a')
            const b = await device('nul-b')
            equal(await a.c.decryptGroupEvent(STREAM, await a.c.encryptGroupEvent_deprecated_v0(STREAM, 'abc\0def', MEGOLM)), 'abc', 'megolm v0')
            equal(await a.c.decryptGroupEvent(STREAM, await a.c.encryptGroupEvent(STREAM, utf8('abc\0def'), MEGOLM)), utf8('abc\0def'), 'megolm v1')
            equal(await a.c.decryptGroupEvent(STREAM, await a.c.encryptGroupEvent_deprecated_v0(STREAM, 'abc\0def', HYBRID)), 'abc\0def', 'grpaes v0')
            equal(await a.c.decryptGroupEvent(STREAM, await a.c.encryptGroupEvent(STREAM, utf8('abc\0def'), HYBRID)), utf8('abc\0def'), 'grpaes v1')
            const to = b.c.getUserDevice()
            const body = (await a.c.encryptWithDeviceKeys('abc\0def', [to]))[to.deviceKey]
            equal(await b.c.decryptWithDeviceKey(body, a.c.getUserDevice().deviceKey), 'abc', 'olm')
        },
    },
    {
        row: 'decryption caches: by session id only, so another stream\'s event decrypts',
        run: async () => {
            const { c } = await device('cache')
            const m = await c.encryptGroupEvent(STREAM, utf8('megolm'), MEGOLM)
            const h = await c.encryptGroupEvent(STREAM, utf8('grpaes'), HYBRID)
            equal(await c.decryptGroupEvent(STREAM, m), utf8('megolm'), 'own stream')
            equal(await c.decryptGroupEvent(OTHER, m), utf8('megolm'), 'megolm on another stream')
            equal(await c.decryptGroupEvent(STREAM, h), utf8('grpaes'), 'own stream')
            equal(await c.decryptGroupEvent(OTHER, h), utf8('grpaes'), 'grpaes on another stream')
        },
    },
    {
        row: 'megolm errors: libolm\'s exceptions pass through',
        run: async () => {
            const { c } = await device('olmerr')
            const e = await c.encryptGroupEvent(STREAM, utf8('x'), MEGOLM)
            e.ciphertext = e.ciphertext.slice(0, 20) + (e.ciphertext[20] === 'A' ? 'B' : 'A') + e.ciphertext.slice(21)
            const err = await thrown(() => c.decryptGroupEvent(STREAM, e))
            expect(!(err instanceof DecryptionError) && /^OLM\.BAD_(MESSAGE_MAC|SIGNATURE)$/.test(messageOf(err)), `libolm's error, got ${messageOf(err)}`)
        },
    },
    {
        row: 'grpaes empty bytes fields pass the missing-fields check; an empty sender key does not',
        run: async () => {
            const { c } = await device('fields')
            const h = await c.encryptGroupEvent(STREAM, utf8('x'), HYBRID)
            const variant = (change: any) => create(EncryptedDataSchema, { ...h, ...change })
            const noSender = await thrown(() => c.decryptGroupEvent(STREAM, variant({ senderKey: '' })))
            equal(noSender.code, 'HYBRID_GROUP_DECRYPTION_MISSING_FIELDS', 'empty sender key')
            equal(messageOf(await thrown(() => c.decryptGroupEvent(STREAM, variant({ ivBytes: new Uint8Array(0) })))), 'IV must be 12 bytes', 'empty IV')
            equal(messageOf(await thrown(() => c.decryptGroupEvent(STREAM, variant({ ciphertextBytes: new Uint8Array(0) })))), 'Ciphertext can not be this short', 'empty ciphertext')
            expect(messageOf(await thrown(() => c.decryptGroupEvent(STREAM, variant({ sessionIdBytes: new Uint8Array(0) })))).includes('hybrid group session not found'), 'empty session id')
        },
    },
    {
        row: 'missing hybrid session: a plain Error "hybrid group session not found", no code',
        run: async () => {
            const a = await device('miss-a')
            const b = await device('miss-b')
            const err = await thrown(async () => b.c.decryptGroupEvent(STREAM, await a.c.encryptGroupEvent(STREAM, utf8('x'), HYBRID)))
            expect(!(err instanceof DecryptionError) && err.code === undefined, 'no code')
            equal(messageOf(err), `hybrid group session not found for stream ${STREAM}`, 'message')
        },
    },
    {
        row: 'outbound megolm pickle: stored again after every message',
        run: async () => {
            const { c, store } = await device('pickle')
            let writes = 0
            const write = store.storeEndToEndOutboundGroupSession.bind(store)
            store.storeEndToEndOutboundGroupSession = async (...args: [string, string, string]) => {
                writes++
                return write(...args)
            }
            await c.encryptGroupEvent(STREAM, utf8('1'), MEGOLM)
            const afterFirst = writes
            for (let i = 0; i < 3; i++) await c.encryptGroupEvent(STREAM, utf8('x'), MEGOLM)
            equal(writes - afterFirst, 3, 'one write per message')
            equal((await c.encryptionDevice.getOutboundGroupSessionKey(STREAM)).chain_index, 4, 'the stored index')
        },
    },
    {
        row: 'exporting a device: outbound sessions at their current index',
        run: async () => {
            const { c } = await device('export')
            for (let i = 0; i < 3; i++) await c.encryptGroupEvent(STREAM, utf8('x'), MEGOLM)
            const exported = await c.exportDevice()
            const s = c.encryptionDevice.delegate.createOutboundGroupSession()
            s.unpickle(exported.pickleKey, exported.outboundSessions[0].session)
            equal(s.message_index(), 3, 'the index')
            s.free()
        },
    },
    {
        row: 'account after an inbound olm session: stored again',
        run: async () => {
            const a = await device('olm-a')
            const b = await device('olm-b')
            const to = b.c.getUserDevice()
            const body = (await a.c.encryptWithDeviceKeys('hello', [to]))[to.deviceKey]
            let writes = 0
            const write = b.store.storeAccount.bind(b.store)
            b.store.storeAccount = async (p: string) => {
                writes++
                return write(p)
            }
            equal(await b.c.decryptWithDeviceKey(body, a.c.getUserDevice().deviceKey), 'hello', 'decrypts')
            equal(writes, 1, 'the account written once')
        },
    },
    {
        row: 'megolm payload too large on a stream without a session: creates and shares the session, then refuses',
        run: async () => {
            const { c, shares } = await device('large')
            const err = await thrown(() => c.encryptGroupEvent(STREAM, new Uint8Array(36865), MEGOLM))
            expect(messageOf(err).startsWith('Message too long'), 'refused')
            expect(await c.hasOutboundSession(STREAM, MEGOLM), 'a session was created')
            equal(shares.length, 1, 'and shared')
        },
    },
    {
        row: 'grpaes empty payload on a stream without a session: creates and shares the session, then refuses',
        run: async () => {
            const { c, shares } = await device('empty')
            equal(messageOf(await thrown(() => c.encryptGroupEvent(STREAM, new Uint8Array(0), HYBRID))), 'Data to encrypt cannot be empty', 'refused')
            expect(await c.hasOutboundSession(STREAM, HYBRID), 'a session was created')
            equal(shares.length, 1, 'and shared')
        },
    },
    {
        row: 'pre-key message envelope: libolm decrypts a pre-key message with base64 padding after it, and one whose version byte is not 3',
        run: async () => {
            const a = await device('envelope-a')
            const b = await device('envelope-b')
            const to = b.c.getUserDevice()
            const from = a.c.getUserDevice().deviceKey
            const body = (await a.c.encryptWithDeviceKeys('hello, pre-key envelope', [to]))[to.deviceKey]
            const padding = '='.repeat((4 - (body.length % 4)) % 4)
            expect(padding.length > 0, 'the message needs padding')
            equal(await b.c.decryptWithDeviceKey(body + padding, from), 'hello, pre-key envelope', 'with padding')
            const raw = Buffer.from(body, 'base64')
            equal(raw[0], 3, 'the version byte as written')
            raw[0] = 2
            equal(await b.c.decryptWithDeviceKey(raw.toString('base64').replace(/=+$/, ''), from), 'hello, pre-key envelope', 'with version 2')
        },
    },
    {
        row: 'pre-key message without identity key: libolm reads the missing key through a null pointer; in WebAssembly that fails with OLM.BAD_MESSAGE_MAC',
        run: async () => {
            const a = await device('noid-a')
            const b = await device('noid-b')
            const to = b.c.getUserDevice()
            const body = (await a.c.encryptWithDeviceKeys('hello', [to]))[to.deviceKey]
            // Drop field 3 (the identity key) of the pre-key message.
            const raw = Buffer.from(body, 'base64')
            const out: number[] = [raw[0]]
            for (let i = 1; i < raw.length;) {
                const tag = raw[i++]
                let len = 0
                for (let shift = 0, x = 0x80; x & 0x80; shift += 7) {
                    x = raw[i++]
                    len |= (x & 0x7f) << shift
                }
                const field = raw.subarray(i, i + len)
                i += len
                if (tag === 0x1a) continue
                out.push(tag)
                for (let l = field.length; ; l >>= 7) {
                    if (l < 0x80) {
                        out.push(l)
                        break
                    }
                    out.push((l & 0x7f) | 0x80)
                }
                out.push(...field)
            }
            const noIdentity = Buffer.from(out).toString('base64').replace(/=+$/, '')
            equal(messageOf(await thrown(() => b.c.decryptWithDeviceKey(noIdentity, a.c.getUserDevice().deviceKey))),
                'Error decrypting prekey message: "OLM.BAD_MESSAGE_MAC"', 'the error')
            equal(await b.c.decryptWithDeviceKey(body, a.c.getUserDevice().deviceKey), 'hello', 'the device goes on')
        },
    },
    {
        row: 'replayed megolm index: a different event at a seen index decrypts',
        run: async () => {
            const { c, store } = await device('replay')
            await c.encryptGroupEvent(STREAM, utf8('0'), MEGOLM)
            const pickle = await store.getEndToEndOutboundGroupSession(STREAM)
            const first = await c.encryptGroupEvent(STREAM, utf8('first'), MEGOLM)
            await store.storeEndToEndOutboundGroupSession(first.sessionId, pickle, STREAM)
            const second = await c.encryptGroupEvent(STREAM, utf8('second'), MEGOLM)
            expect(first.ciphertext !== second.ciphertext, 'two events')
            equal(await c.decryptGroupEvent(STREAM, first), utf8('first'), 'the first')
            equal(await c.decryptGroupEvent(STREAM, second), utf8('second'), 'the second, at the same index')
        },
    },
    {
        row: 'stored outbound megolm session that does not unpickle: a new session is made and shared',
        run: async () => {
            const { c, store, shares } = await device('damaged-out')
            const before = await c.encryptGroupEvent(STREAM, utf8('before'), MEGOLM)
            await store.storeEndToEndOutboundGroupSession(before.sessionId, damage(await store.getEndToEndOutboundGroupSession(STREAM)), STREAM)
            shares.length = 0
            const after = await c.encryptGroupEvent(STREAM, utf8('after'), MEGOLM)
            expect(after.sessionId !== before.sessionId, 'a new session')
            equal(shares, [{ streamId: STREAM, sessionIds: [after.sessionId] }], 'shared')
            equal(await c.decryptGroupEvent(STREAM, before), utf8('before'), 'history still decrypts')
        },
    },
    {
        row: 'stored inbound megolm session that does not unpickle: import over it fails, decrypt and export throw libolm\'s error',
        run: async () => {
            const a = await device('damaged-in-a')
            const b = await device('damaged-in-b')
            const e = await a.c.encryptGroupEvent(STREAM, utf8('x'), MEGOLM)
            const key = (await a.c.exportGroupSession(STREAM, e.sessionId))!
            await importKey(b.c, key)
            const row = (await b.store.getEndToEndInboundGroupSession(STREAM, e.sessionId))!
            const damaged = damage(row.session)
            await b.store.storeEndToEndInboundGroupSession(STREAM, e.sessionId, { ...row, session: damaged })
            equal(messageOf(await thrown(() => importKey(b.c, key))), 'OLM.BAD_ACCOUNT_KEY', 'the import fails')
            let failures = 0
            await b.c.importRoomKeys([key], { progressCallback: (p: any) => (failures = p.failures) })
            equal(failures, 1, 'counted as a failure')
            equal((await b.store.getEndToEndInboundGroupSession(STREAM, e.sessionId))!.session, damaged, 'the row stays')
            equal(messageOf(await thrown(() => b.c.decryptGroupEvent(STREAM, e))), 'OLM.BAD_ACCOUNT_KEY', 'decrypt')
            equal(messageOf(await thrown(() => b.c.exportGroupSession(STREAM, e.sessionId))), 'OLM.BAD_ACCOUNT_KEY', 'export')
        },
    },
    {
        row: 'empty pickle key: ignored, DEFAULT_KEY used',
        run: async () => {
            const { c } = await device('empty-key', { pickleKey: '' })
            equal((await c.exportDevice()).pickleKey, 'DEFAULT_KEY', 'the default key')
        },
    },
    {
        row: 'grpaes sessions with the same miniblock number: in-memory store, the most recently used one encrypts',
        run: async () => {
            const { c } = await device('tie')
            const keys = [await hybridKey(32, 5n, 1), await hybridKey(32, 5n, 2), await hybridKey(32, 5n, 3)]
            keys.sort((x, y) => (x.sessionId < y.sessionId ? -1 : 1))
            for (const k of keys) await importKey(c, k)
            const sealedWith = async () => hybridIdOf(await c.encryptGroupEvent(STREAM, utf8('x'), HYBRID))
            equal(await sealedWith(), keys[2].sessionId, 'the last stored (the highest id here)')
            await c.hasSessionKey(STREAM, keys[0].sessionId, HYBRID)
            equal(await sealedWith(), keys[0].sessionId, 'after reading the lowest, the lowest')
            await c.hasSessionKey(STREAM, keys[1].sessionId, HYBRID)
            equal(await sealedWith(), keys[1].sessionId, 'after reading the middle one, the middle one')
            await importKey(c, await hybridKey(32, 6n, 4))
            equal(await sealedWith(), (await hybridKey(32, 6n, 4)).sessionId, 'a later miniblock wins')
        },
    },
]

let passed = 0
let failed = 0
for (const { row, run } of checks) {
    try {
        await run()
        passed++
    } catch (e: any) {
        failed++
        process.stderr.write(`FAIL ${row}: ${e?.stack ?? e}\n`)
    }
}
process.stdout.write(`${passed} passed, ${failed} failed\n`)
process.exit(failed === 0 ? 0 : 1)
