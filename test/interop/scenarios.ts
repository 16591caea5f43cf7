// The interop scenarios: each runs with device A from one driver and device B
// (and any further device) from the other, in every pairing.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto'
import { DatabaseSync } from 'node:sqlite'
import type { Driver } from './runner'
import { fromBinary, toBinary, create } from '@bufbuild/protobuf'
import {
    EncryptedDataSchema,
    ExportedDeviceSchema,
    MemberPayload_KeyFulfillmentSchema,
    MemberPayload_KeySolicitationSchema,
    UserInboxPayload_GroupEncryptionSessionsSchema,
} from '@towns-protocol/proto'

export interface Ctx {
    a: () => Driver
    b: () => Driver
    kindA: string
    kindB: string
    dir: string
}

const MEGOLM = 'r.group-encryption.v1.aes-sha2'
const HYBRID = 'grpaes'
const STREAM = '20' + 'ab'.repeat(31)
const OTHER_STREAM = '20' + 'cd'.repeat(31)
const HASH = '11'.repeat(32)
const USER_A = 'a1'.repeat(20)
const USER_B = 'b2'.repeat(20)
const USER_C = 'c3'.repeat(20)

// Drivers built on the canonical client. Where it knowingly differs from this
// library (docs/compat.md), a scenario checks the library's behaviour only on
// the other drivers.
const CANONICAL = new Set(['ts'])

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64')
const text = (b: string) => Buffer.from(b, 'base64').toString('utf8')
const bytes = (b: string) => new Uint8Array(Buffer.from(b, 'base64'))
const pb64 = (b: Uint8Array) => Buffer.from(b).toString('base64')

function expect(cond: unknown, what: string): asserts cond {
    if (!cond) throw new Error(`expected: ${what}`)
}
function equal(a: unknown, b: unknown, what: string) {
    const x = JSON.stringify(a)
    const y = JSON.stringify(b)
    if (x !== y) throw new Error(`${what}: ${x} != ${y}`)
}

async function init(d: Driver, user: string, extra: Record<string, unknown> = {}) {
    return d.ok('init', { user_id: user, store: 'memory', ...extra })
}
const device = (r: any) => ({ device_key: r.device_key, fallback_key: r.fallback_key })

async function encrypt(d: Driver, alg: string, msg: string, extra: Record<string, unknown> = {}, stream = STREAM) {
    const args: Record<string, unknown> = { stream_id: stream, algorithm: alg, plaintext_b64: b64(msg), ...extra }
    if (alg === HYBRID) Object.assign(args, { miniblock_num: '7', miniblock_hash_hex: HASH })
    return d.ok('encrypt', args)
}

async function decryptText(d: Driver, event: any, stream = STREAM) {
    return text((await d.ok('decrypt', { stream_id: stream, encrypted_data_pb: event.encrypted_data_pb })).plaintext_b64)
}

async function shareTo(from: Driver, to: Driver, toDevice: any, alg: string, ids: string[], stream = STREAM) {
    const share = await from.ok('share', { stream_id: stream, algorithm: alg, session_ids: ids, devices: [toDevice] })
    return to.ok('receive_sessions', { group_encryption_sessions_pb: share.group_encryption_sessions_pb })
}

async function roundtrip(ctx: Ctx, alg: string) {
    const a = ctx.a()
    const b = ctx.b()
    await init(a, USER_A)
    const bd = device(await init(b, USER_B))
    const e1 = await encrypt(a, alg, 'first message')
    expect(e1.created_session === true, 'the first encrypt creates the session')
    const e2 = await encrypt(a, alg, 'second message ✓')
    expect(e2.created_session === false && e2.session_id === e1.session_id, 'the second reuses it')
    await b.err('decrypt', { stream_id: STREAM, encrypted_data_pb: e1.encrypted_data_pb }, 'SESSION_NOT_FOUND')
    const r = await shareTo(a, b, bd, alg, [e1.session_id])
    equal(r.imported, [e1.session_id], 'imported ids')
    equal(await decryptText(b, e1), 'first message', 'B decrypts 1')
    equal(await decryptText(b, e2), 'second message ✓', 'B decrypts 2')
    equal(await decryptText(a, e2), 'second message ✓', 'A decrypts its own')
    equal((await b.ok('receive_sessions', { group_encryption_sessions_pb: (await a.ok('share', { stream_id: STREAM, algorithm: alg, session_ids: [e1.session_id], devices: [bd] })).group_encryption_sessions_pb })).imported, [], 'nothing new the second time')
    const pb = fromBinary(EncryptedDataSchema, bytes(e1.encrypted_data_pb))
    equal(pb.algorithm, alg, 'algorithm field')
    equal(pb.version, 1, 'version 1')
    // The stream is part of the key's identity. (The canonical client caches
    // sessions by id alone and decrypts the event in another stream too.)
    if (!CANONICAL.has(ctx.kindB)) {
        await b.err('decrypt', { stream_id: OTHER_STREAM, encrypted_data_pb: e1.encrypted_data_pb }, 'SESSION_NOT_FOUND')
    }
    const fresh = ctx.b()
    await init(fresh, USER_C)
    await fresh.ok('import_sessions', { sessions: (await a.ok('export_sessions', { stream_id: STREAM })).sessions })
    await fresh.err('decrypt', { stream_id: OTHER_STREAM, encrypted_data_pb: e1.encrypted_data_pb }, 'SESSION_NOT_FOUND')
}

// protocol.md 12.2's example and what sdk-crypto makes of it (12.3).
const PHRASE = '0x1234567890abcdef1234567890abcdef12345678'
const DERIVED = 'r.aes-256-gcm.derived'
const DERIVED_CT = 'RHf/5RLJ8HQ+5vD50zmn8OQdOqjuVkFR8FciTkHVJJ+bFi3K'
const derivedPb = (ciphertext: string, algorithm = DERIVED) =>
    pb64(toBinary(EncryptedDataSchema, create(EncryptedDataSchema, { ciphertext, algorithm })))
// Media known answer: 'abcdefghij' in chunks of 20 under key 00..1f, IVs a0.., a1.., a2..
const MEDIA_KEY = Buffer.from(Array.from({ length: 32 }, (_, i) => i)).toString('hex')
const MEDIA_IVS = ['a0', 'a1', 'a2'].map((b) => b.repeat(12))
const MEDIA_CTS = ['44d30187aa898e9322150c729a462f314892420b', 'c0a69c365ae8fa275aa34f30adef10d606a4ed92', '3ce43c3a62517b01e22b83edb6aacb4457b7']
const hexB64 = (h: string) => Buffer.from(h, 'hex').toString('base64')

async function derivedScenario(ctx: Ctx) {
    const a = ctx.a()
    const b = ctx.b()
    // No init: the derived scheme needs no device.
    for (const d of [a, b]) {
        const e = await d.ok('derived_encrypt', { key_phrase: PHRASE, plaintext_b64: b64('towns derived scheme') })
        equal(e.encrypted_data_pb, derivedPb(DERIVED_CT), `${d.kind}: the SDK's bytes`)
        const pb = fromBinary(EncryptedDataSchema, bytes(e.encrypted_data_pb))
        equal([pb.senderKey, pb.sessionId, pb.version, pb.ciphertextBytes.length], ['', '', 0, 0], `${d.kind}: nothing else set`)
    }
    // Each reads the other's: a UserBio-like payload under a user id, and bytes under a space address.
    const user = '0x' + USER_B
    const bio = pb64(new Uint8Array([0x0a, 0x03, 0x68, 0x69, 0x21, 0x10, 0x01]))
    const fromA = await a.ok('derived_encrypt', { key_phrase: user, plaintext_b64: bio })
    equal((await b.ok('derived_decrypt', { key_phrase: user, encrypted_data_pb: fromA.encrypted_data_pb })).plaintext_b64, bio, 'B reads A')
    const big = pb64(new Uint8Array(5000).map((_, i) => i % 251))
    const fromB = await b.ok('derived_encrypt', { key_phrase: PHRASE, plaintext_b64: big })
    equal((await a.ok('derived_decrypt', { key_phrase: PHRASE, encrypted_data_pb: fromB.encrypted_data_pb })).plaintext_b64, big, 'A reads B')
    const raw = Buffer.from(DERIVED_CT, 'base64')
    for (const d of [a, b]) {
        await d.err('derived_encrypt', { key_phrase: PHRASE, plaintext_b64: '' }, 'EMPTY_PAYLOAD')
        await d.err('derived_decrypt', { key_phrase: PHRASE.toUpperCase(), encrypted_data_pb: derivedPb(DERIVED_CT) }, 'DECRYPTION_FAILED')
        await d.err('derived_decrypt', { key_phrase: user, encrypted_data_pb: derivedPb(DERIVED_CT) }, 'DECRYPTION_FAILED')
        await d.err('derived_decrypt', { key_phrase: PHRASE, encrypted_data_pb: derivedPb(DERIVED_CT, 'grpaes') }, 'UNKNOWN_ALGORITHM')
        await d.err('derived_decrypt', { key_phrase: PHRASE, encrypted_data_pb: derivedPb(DERIVED_CT, '') }, 'UNKNOWN_ALGORITHM')
        await d.err('derived_decrypt', { key_phrase: PHRASE, encrypted_data_pb: derivedPb(raw.subarray(0, 15).toString('base64')) }, 'DECRYPTION_FAILED')
        const flipped = Buffer.from(raw)
        flipped[flipped.length - 1] ^= 1
        await d.err('derived_decrypt', { key_phrase: PHRASE, encrypted_data_pb: derivedPb(flipped.toString('base64')) }, 'DECRYPTION_FAILED')
        await d.err('derived_decrypt', { key_phrase: PHRASE, encrypted_data_pb: pb64(new Uint8Array([0xff, 0xff])) }, 'INVALID_ARGUMENT')
        equal((await d.ok('derived_decrypt', { key_phrase: PHRASE, encrypted_data_pb: derivedPb(DERIVED_CT.replace(/=+$/, '')) })).plaintext_b64,
            b64('towns derived scheme'), `${d.kind}: unpadded base64`)
        // docs/compat.md: sdk-crypto's Node build reads URL-safe base64 and, below
        // 16 bytes, a short tag; this library refuses both.
        const urlSafe = derivedPb(DERIVED_CT.replace(/\+/g, '-').replace(/\//g, '_'))
        const eight = Buffer.from((await d.ok('derived_encrypt', { key_phrase: PHRASE, plaintext_b64: b64('8 bytes!') })).encrypted_data_pb, 'base64')
        const eightCt = Buffer.from(fromBinary(EncryptedDataSchema, eight).ciphertext, 'base64')
        const shortTag = derivedPb(eightCt.subarray(0, 12).toString('base64'))
        if (CANONICAL.has(d.kind)) {
            equal((await d.ok('derived_decrypt', { key_phrase: PHRASE, encrypted_data_pb: urlSafe })).plaintext_b64, b64('towns derived scheme'), 'sdk-crypto reads URL-safe base64')
            equal((await d.ok('derived_decrypt', { key_phrase: PHRASE, encrypted_data_pb: shortTag })).plaintext_b64, b64('8 bytes!'), 'sdk-crypto reads a 4-byte tag')
        } else {
            await d.err('derived_decrypt', { key_phrase: PHRASE, encrypted_data_pb: urlSafe }, 'INVALID_ARGUMENT')
            await d.err('derived_decrypt', { key_phrase: PHRASE, encrypted_data_pb: shortTag }, 'DECRYPTION_FAILED')
        }
    }
}

async function mediaScenario(ctx: Ctx) {
    const a = ctx.a()
    const b = ctx.b()
    for (const d of [a, b]) {
        const e = await d.ok('media_encrypt', { data_b64: b64('abcdefghij'), chunk_size: 20, key_hex: MEDIA_KEY, ivs_hex: MEDIA_IVS })
        equal(e.secret_key_hex, MEDIA_KEY, `${d.kind}: the key given`)
        equal(e.chunks, MEDIA_CTS.map((ct, i) => ({ ct_b64: hexB64(ct), iv_hex: MEDIA_IVS[i] })), `${d.kind}: the SDK's chunks`)
    }
    // Random keys and IVs, each side reading the other's, at two chunk sizes
    // (the second the SDK uploader's 1,200,000).
    for (const [from, to, size, chunkSize] of [[a, b, 50, 20], [b, a, 50, 20], [a, b, 1_300_000, 1_200_000], [b, a, 1_300_000, 1_200_000]] as const) {
        const data = pb64(new Uint8Array(size).map((_, i) => (i * 7) % 256))
        const e = await from.ok('media_encrypt', { data_b64: data, chunk_size: chunkSize })
        const pieces = Math.ceil(size / (chunkSize - 16))
        equal(e.chunks.length, pieces, `${from.kind}: chunk count`)
        expect(e.secret_key_hex.length === 64, 'a 32-byte key')
        expect(e.chunks.every((c: any) => bytes(c.ct_b64).length <= chunkSize && c.iv_hex.length === 24), 'chunks within chunk_size, 12-byte IVs')
        expect(new Set(e.chunks.map((c: any) => c.iv_hex)).size === pieces, 'a fresh IV per chunk')
        equal((await to.ok('media_decrypt', { secret_key_hex: e.secret_key_hex, chunks: e.chunks })).data_b64, data, `${to.kind} reads ${from.kind}'s chunks`)
    }
    // The whole-file form: one chunk of A's (the whole file under one IV), cut
    // into pieces that carry no IV.
    const data = pb64(new Uint8Array(100).map((_, i) => 255 - i))
    const whole = await a.ok('media_encrypt', { data_b64: data, chunk_size: 1000, key_hex: MEDIA_KEY, ivs_hex: [MEDIA_IVS[0]] })
    const sealed = bytes(whole.chunks[0].ct_b64)
    const cut = [0, 30, 60, 90].map((i) => ({ ct_b64: pb64(sealed.subarray(i, i + 30)) }))
    equal((await b.ok('media_decrypt', { secret_key_hex: MEDIA_KEY, iv_hex: MEDIA_IVS[0], chunks: cut })).data_b64, data, 'B reads the whole-file form')
    await b.err('media_decrypt', { secret_key_hex: MEDIA_KEY, iv_hex: MEDIA_IVS[1], chunks: cut }, 'DECRYPTION_FAILED')
    await b.err('media_decrypt', { secret_key_hex: MEDIA_KEY, iv_hex: MEDIA_IVS[0], chunks: [cut[1], cut[0], cut[2], cut[3]] }, 'DECRYPTION_FAILED')
    const known = MEDIA_CTS.map((ct, i) => ({ ct_b64: hexB64(ct), iv_hex: MEDIA_IVS[i] }))
    for (const d of [a, b]) {
        await d.err('media_encrypt', { data_b64: '', chunk_size: 20 }, 'EMPTY_PAYLOAD')
        await d.err('media_encrypt', { data_b64: b64('abc'), chunk_size: 16 }, 'INVALID_ARGUMENT')
        await d.err('media_encrypt', { data_b64: b64('abc'), chunk_size: 10 }, 'INVALID_ARGUMENT')
        await d.err('media_encrypt', { data_b64: b64('abc'), chunk_size: 0 }, 'INVALID_ARGUMENT')
        await d.err('media_encrypt', { data_b64: b64('abc'), chunk_size: 20, key_hex: MEDIA_KEY }, 'INVALID_ARGUMENT')
        await d.err('media_encrypt', { data_b64: b64('abcdefghij'), chunk_size: 20, key_hex: MEDIA_KEY, ivs_hex: MEDIA_IVS.slice(0, 2) }, 'INVALID_ARGUMENT')
        await d.err('media_encrypt', { data_b64: b64('abcdefghij'), chunk_size: 20, key_hex: MEDIA_KEY, ivs_hex: [MEDIA_IVS[0], MEDIA_IVS[1], MEDIA_IVS[0]] }, 'INVALID_ARGUMENT')
        await d.err('media_encrypt', { data_b64: b64('abcdefghij'), chunk_size: 20, key_hex: MEDIA_KEY.slice(2), ivs_hex: MEDIA_IVS }, 'INVALID_ARGUMENT')
        equal((await d.ok('media_decrypt', { secret_key_hex: MEDIA_KEY, chunks: known })).data_b64, b64('abcdefghij'), `${d.kind}: the known chunks`)
        await d.err('media_decrypt', { secret_key_hex: MEDIA_KEY, chunks: [] }, 'INVALID_ARGUMENT')
        await d.err('media_decrypt', { secret_key_hex: MEDIA_KEY.slice(2), chunks: known }, 'INVALID_ARGUMENT')
        await d.err('media_decrypt', { secret_key_hex: '11'.repeat(32), chunks: known }, 'DECRYPTION_FAILED')
        await d.err('media_decrypt', { secret_key_hex: MEDIA_KEY, chunks: [{ ...known[0], iv_hex: MEDIA_IVS[1] }, known[1], known[2]] }, 'DECRYPTION_FAILED')
        await d.err('media_decrypt', { secret_key_hex: MEDIA_KEY, chunks: [known[0], { ...known[1], iv_hex: 'a1'.repeat(8) }, known[2]] }, 'DECRYPTION_FAILED')
        await d.err('media_decrypt', { secret_key_hex: MEDIA_KEY, chunks: [known[0], known[1], { ...known[2], ct_b64: hexB64(MEDIA_CTS[2].slice(0, 30)) }] }, 'DECRYPTION_FAILED')
        // Nothing binds a chunk to its index: swapped with their IVs, chunks decrypt reordered.
        equal((await d.ok('media_decrypt', { secret_key_hex: MEDIA_KEY, chunks: [known[1], known[0], known[2]] })).data_b64, b64('efghabcdij'), `${d.kind}: reordered`)
        // docs/compat.md: sdk-crypto's Node build reads a short tag from a chunk under 16 bytes.
        const eight = await d.ok('media_encrypt', { data_b64: b64('8 bytes!'), chunk_size: 100, key_hex: MEDIA_KEY, ivs_hex: [MEDIA_IVS[2]] })
        const shortTag = [{ ct_b64: pb64(bytes(eight.chunks[0].ct_b64).subarray(0, 12)), iv_hex: MEDIA_IVS[2] }]
        if (CANONICAL.has(d.kind)) {
            equal((await d.ok('media_decrypt', { secret_key_hex: MEDIA_KEY, chunks: shortTag })).data_b64, b64('8 bytes!'), 'sdk-crypto reads a 4-byte tag')
        } else {
            await d.err('media_decrypt', { secret_key_hex: MEDIA_KEY, chunks: shortTag }, 'DECRYPTION_FAILED')
        }
    }
}

// This library's SQLite store (version 4, docs/store.md) as an editor who holds
// the pickle key sees it: rows sealed with AES-256-GCM and bound to the store,
// the table and their keyed names. Written from docs/store.md alone.
class SealedStore {
    readonly storeId: Buffer
    private rowKey: Buffer
    private nameKey: Buffer
    constructor(readonly db: DatabaseSync, pickleKey: string) {
        const checkKey = Buffer.from(hkdfSync('sha256', pickleKey, 'towns-e2ee sqlite store v1', 'pickle key check', 32))
        const check = (db.prepare(`SELECT value FROM meta WHERE key = 'key_check'`).get() as any).value as Uint8Array
        const label = Buffer.from('towns-e2ee key check v4')
        const opened = SealedStore.open(checkKey, Buffer.from(check), Buffer.from('towns-e2ee store key check v4'))
        expect(opened.subarray(0, label.length).equals(label), 'the key check opens')
        this.storeId = opened.subarray(label.length)
        const info = (l: string) => Buffer.concat([Buffer.from(l), this.storeId])
        this.rowKey = Buffer.from(hkdfSync('sha256', pickleKey, 'towns-e2ee sqlite store v4', info('sealed rows'), 32))
        this.nameKey = Buffer.from(hkdfSync('sha256', pickleKey, 'towns-e2ee sqlite store v4', info('keyed names'), 32))
    }
    static field(b: Buffer) {
        const n = Buffer.alloc(4)
        n.writeUInt32BE(b.length)
        return Buffer.concat([n, b])
    }
    static open(key: Buffer, sealed: Buffer, aad: Buffer) {
        expect(sealed[0] === 4, 'a version 4 sealed value')
        const d = createDecipheriv('aes-256-gcm', key, sealed.subarray(1, 13))
        d.setAAD(aad)
        d.setAuthTag(sealed.subarray(sealed.length - 16))
        return Buffer.concat([d.update(sealed.subarray(13, sealed.length - 16)), d.final()])
    }
    name(kind: 'stream' | 'session', id: string) {
        return createHmac('sha256', this.nameKey).update(Buffer.concat([Buffer.from(kind), Buffer.from([0]), Buffer.from(id)])).digest().subarray(0, 16)
    }
    aad(table: string, algorithm: string, stream: Buffer, session: Buffer, clear: bigint) {
        const c = Buffer.alloc(8)
        c.writeBigUInt64BE(clear)
        const f = SealedStore.field
        return Buffer.concat([Buffer.from('towns-e2ee store row v4'), Buffer.from([0]), this.storeId,
            f(Buffer.from(table)), f(Buffer.from(algorithm)), f(stream), f(session), c])
    }
    // The fields of a megolm row's plaintext: stream id, session id, pickle.
    openFields(sealed: Buffer, aad: Buffer) {
        const pt = SealedStore.open(this.rowKey, sealed, aad)
        const out: Buffer[] = []
        for (let at = 0; at < pt.length;) {
            const n = pt.readUInt32BE(at)
            out.push(pt.subarray(at + 4, at + 4 + n))
            at += 4 + n
        }
        return out
    }
    seal(fields: Buffer[], aad: Buffer) {
        const iv = randomBytes(12)
        const c = createCipheriv('aes-256-gcm', this.rowKey, iv)
        c.setAAD(aad)
        const ct = Buffer.concat([c.update(Buffer.concat(fields.map(SealedStore.field))), c.final()])
        return Buffer.concat([Buffer.from([4]), iv, ct, c.getAuthTag()])
    }
}

// Changes one character of a stored megolm pickle in a stopped driver's store
// file: this library's SQLite store (re-sealed under the pickle key, so that
// the row opens and only libolm refuses it), or the canonical driver's snapshot
// (the client's exported device as JSON, docs/driver.md). libolm then refuses
// the pickle (its MAC fails).
function damageStoredPickle(path: string, kind: 'outbound' | 'inbound', stream: string, sessionId: string, pickleKey: string) {
    const flip = (p: string) => {
        const i = p.length >> 1
        return p.slice(0, i) + (p[i] === 'A' ? 'B' : 'A') + p.slice(i + 1)
    }
    if (readFileSync(path).subarray(0, 16).toString('latin1') === 'SQLite format 3\0') {
        const table = `${kind}_sessions`
        const db = new DatabaseSync(path)
        const store = new SealedStore(db, pickleKey)
        const s = store.name('stream', stream)
        const row = db.prepare(`SELECT * FROM ${table} WHERE stream = ? AND session = ?`).get(s, store.name('session', sessionId)) as any
        expect(row, `a stored ${kind} session`)
        const aad = store.aad(table, MEGOLM, s, Buffer.from(row.session), BigInt(row.reserved_until ?? 0))
        const [sid, sess, pickle] = store.openFields(Buffer.from(row.sealed), aad)
        const damaged = Buffer.from(flip(pickle.toString('latin1')), 'latin1')
        db.prepare(`UPDATE ${table} SET sealed = ? WHERE stream = ? AND session = ?`).run(store.seal([sid, sess, damaged], aad), s, Buffer.from(row.session))
        db.close()
        return
    }
    const saved = JSON.parse(readFileSync(path, 'utf8'))
    const dev = fromBinary(ExportedDeviceSchema, bytes(saved.exported_device_b64))
    const s = (kind === 'outbound' ? dev.outboundSessions : dev.inboundSessions).find((x) => x.streamId === stream && x.sessionId === sessionId)
    expect(s, `a stored ${kind} session`)
    s.session = flip(s.session)
    saved.exported_device_b64 = pb64(toBinary(ExportedDeviceSchema, dev))
    writeFileSync(path, JSON.stringify(saved))
}

export const scenarios: { name: string; run: (ctx: Ctx) => Promise<void> }[] = [
    { name: 'derived_scheme', run: derivedScenario },
    { name: 'media_chunks', run: mediaScenario },
    { name: 'megolm_encrypt_share_decrypt', run: (ctx) => roundtrip(ctx, MEGOLM) },
    { name: 'grpaes_encrypt_share_decrypt', run: (ctx) => roundtrip(ctx, HYBRID) },
    {
        name: 'version0_payloads',
        run: async (ctx) => {
            const a = ctx.a()
            const b = ctx.b()
            await init(a, USER_A)
            const bd = device(await init(b, USER_B))
            for (const alg of [MEGOLM, HYBRID]) {
                const e = await encrypt(a, alg, 'version 0 — text ünïcode', { version: 0 })
                equal(fromBinary(EncryptedDataSchema, bytes(e.encrypted_data_pb)).version, 0, 'version 0')
                await shareTo(a, b, bd, alg, [e.session_id])
                equal(await decryptText(b, e), 'version 0 — text ünïcode', `${alg} v0`)
            }
        },
    },
    {
        name: 'solicitation_new_device',
        run: async (ctx) => {
            const a = ctx.a()
            const b = ctx.b()
            await init(a, USER_A)
            const bd = device(await init(b, USER_B))
            const m = await encrypt(a, MEGOLM, 'megolm history')
            const h = await encrypt(a, HYBRID, 'grpaes history')
            await b.err('decrypt', { stream_id: STREAM, encrypted_data_pb: m.encrypted_data_pb }, 'SESSION_NOT_FOUND')
            await b.err('decrypt', { stream_id: STREAM, encrypted_data_pb: h.encrypted_data_pb }, 'SESSION_NOT_FOUND')
            const missing = [h.session_id, m.session_id]
            const sol = await b.ok('solicit', { stream_id: STREAM, missing_session_ids: missing })
            expect(sol.key_solicitation_pb, 'a solicitation')
            const s = fromBinary(MemberPayload_KeySolicitationSchema, bytes(sol.key_solicitation_pb))
            equal(s.deviceKey, bd.device_key, 'device key')
            equal(s.fallbackKey, bd.fallback_key, 'fallback key')
            expect(s.isNewDevice, 'is_new_device')
            equal(s.sessionIds, [...missing].sort(), 'sorted ids')
            const ans = await a.ok('answer_solicitation', { stream_id: STREAM, from_user_id: USER_B, key_solicitation_pb: sol.key_solicitation_pb, requester_entitled: true })
            expect(ans.key_fulfillment_pb, 'a fulfillment')
            const f = fromBinary(MemberPayload_KeyFulfillmentSchema, bytes(ans.key_fulfillment_pb))
            equal(Buffer.from(f.userAddress).toString('hex'), USER_B, 'user address')
            equal(f.deviceKey, bd.device_key, 'fulfilled device')
            equal(f.sessionIds, [...missing].sort(), 'fulfilled ids')
            equal(ans.group_encryption_sessions_pb.length, 2, 'one share per algorithm')
            const algs = ans.group_encryption_sessions_pb.map((x: string) => fromBinary(UserInboxPayload_GroupEncryptionSessionsSchema, bytes(x)).algorithm)
            // Grouped by algorithm in the order each first appears among the sorted ids (the SDK's order).
            const firstSeen = [...new Set([...missing].sort().map((id) => (id === m.session_id ? MEGOLM : HYBRID)))]
            equal(algs, firstSeen, 'algorithms in order of first appearance')
            for (const share of ans.group_encryption_sessions_pb) await b.ok('receive_sessions', { group_encryption_sessions_pb: share })
            equal(await decryptText(b, m), 'megolm history', 'megolm after fulfillment')
            equal(await decryptText(b, h), 'grpaes history', 'grpaes after fulfillment')
            const again = await b.ok('solicit', { stream_id: STREAM, missing_session_ids: ['another'] })
            expect(!fromBinary(MemberPayload_KeySolicitationSchema, bytes(again.key_solicitation_pb)).isNewDevice, 'no longer new')
        },
    },
    {
        name: 'solicitation_partial',
        run: async (ctx) => {
            const a = ctx.a()
            const b = ctx.b()
            await init(a, USER_A)
            const bd = device(await init(b, USER_B))
            const m = await encrypt(a, MEGOLM, 'shared one')
            const h = await encrypt(a, HYBRID, 'missing one')
            await shareTo(a, b, bd, MEGOLM, [m.session_id])
            const sol = await b.ok('solicit', { stream_id: STREAM, missing_session_ids: [h.session_id, h.session_id] })
            const s = fromBinary(MemberPayload_KeySolicitationSchema, bytes(sol.key_solicitation_pb))
            expect(!s.isNewDevice, 'not a new device')
            equal(s.sessionIds, [h.session_id], 'only the missing id, once')
            const ans = await a.ok('answer_solicitation', { stream_id: STREAM, from_user_id: USER_B, key_solicitation_pb: sol.key_solicitation_pb, requester_entitled: true })
            equal(fromBinary(MemberPayload_KeyFulfillmentSchema, bytes(ans.key_fulfillment_pb)).sessionIds, [h.session_id], 'fulfilled')
            equal(ans.group_encryption_sessions_pb.length, 1, 'one share')
            equal((await b.ok('receive_sessions', { group_encryption_sessions_pb: ans.group_encryption_sessions_pb[0] })).imported, [h.session_id], 'imported')
            equal(await decryptText(b, h), 'missing one', 'decrypts')
            // Asking for ids nobody holds: no answer.
            const unknown = await b.ok('solicit', { stream_id: STREAM, missing_session_ids: ['nobody-has-this'] })
            const none = await a.ok('answer_solicitation', { stream_id: STREAM, from_user_id: USER_B, key_solicitation_pb: unknown.key_solicitation_pb, requester_entitled: true })
            equal(none.key_fulfillment_pb, null, 'no fulfillment')
            equal(none.group_encryption_sessions_pb, [], 'no shares')
        },
    },
    {
        name: 'solicitation_not_entitled_and_own_device',
        run: async (ctx) => {
            const a = ctx.a()
            const b = ctx.b()
            await init(a, USER_A)
            await init(b, USER_B)
            const m = await encrypt(a, MEGOLM, 'members only')
            const sol = await b.ok('solicit', { stream_id: STREAM, missing_session_ids: [m.session_id] })
            const ans = await a.ok('answer_solicitation', { stream_id: STREAM, from_user_id: USER_B, key_solicitation_pb: sol.key_solicitation_pb, requester_entitled: false })
            equal(ans.key_fulfillment_pb, null, 'no fulfillment')
            equal(ans.group_encryption_sessions_pb, [], 'no shares')
            const own = await a.ok('solicit', { stream_id: STREAM, missing_session_ids: ['x'] })
            const self = await a.ok('answer_solicitation', { stream_id: STREAM, from_user_id: USER_A, key_solicitation_pb: own.key_solicitation_pb, requester_entitled: true })
            equal(self.key_fulfillment_pb, null, 'own device ignored')
            const empty = pb64(toBinary(MemberPayload_KeySolicitationSchema, create(MemberPayload_KeySolicitationSchema, { deviceKey: 'someone', fallbackKey: 'x', isNewDevice: true, sessionIds: [] })))
            equal((await a.ok('answer_solicitation', { stream_id: STREAM, from_user_id: USER_B, key_solicitation_pb: empty, requester_entitled: true })).key_fulfillment_pb, null, 'no session ids: ignored')
        },
    },
    {
        name: 'solicitation_duplicate_pending',
        run: async (ctx) => {
            const b = ctx.b()
            await init(b, USER_B)
            const newcomer = await b.ok('solicit', { stream_id: STREAM, missing_session_ids: ['s1'] })
            expect(fromBinary(MemberPayload_KeySolicitationSchema, bytes(newcomer.key_solicitation_pb)).isNewDevice, 'new device')
            await encrypt(b, MEGOLM, 'now holds a session of the stream')
            const first = await b.ok('solicit', { stream_id: STREAM, missing_session_ids: ['s2', 's1'] })
            expect(first.key_solicitation_pb, 'first solicitation')
            expect(!fromBinary(MemberPayload_KeySolicitationSchema, bytes(first.key_solicitation_pb)).isNewDevice, 'not new')
            equal((await b.ok('solicit', { stream_id: STREAM, missing_session_ids: ['s1', 's2'], pending_pb: first.key_solicitation_pb })).key_solicitation_pb, null, 'same ids pending')
            const newDevice = pb64(toBinary(MemberPayload_KeySolicitationSchema, create(MemberPayload_KeySolicitationSchema, { deviceKey: 'k', fallbackKey: 'f', isNewDevice: true, sessionIds: ['s9'] })))
            equal((await b.ok('solicit', { stream_id: STREAM, missing_session_ids: ['s3'], pending_pb: newDevice })).key_solicitation_pb, null, 'new-device one pending')
            const other = await b.ok('solicit', { stream_id: STREAM, missing_session_ids: ['s3'], pending_pb: first.key_solicitation_pb })
            equal(fromBinary(MemberPayload_KeySolicitationSchema, bytes(other.key_solicitation_pb)).sessionIds, ['s3'], 'different ids go out')
            equal((await b.ok('solicit', { stream_id: STREAM, missing_session_ids: [] })).key_solicitation_pb, null, 'never zero ids')
            const many = Array.from({ length: 150 }, (_, i) => `id-${String(i).padStart(3, '0')}`).reverse()
            const capped = await b.ok('solicit', { stream_id: STREAM, missing_session_ids: many })
            const ids = fromBinary(MemberPayload_KeySolicitationSchema, bytes(capped.key_solicitation_pb)).sessionIds
            equal(ids.length, 100, 'at most 100 ids')
            equal(ids[0], 'id-000', 'the first 100 in sorted order')
        },
    },
    {
        name: 'olm_to_device_payloads',
        run: async (ctx) => {
            const a = ctx.a()
            const b = ctx.b()
            const ad = device(await init(a, USER_A))
            const bd = device(await init(b, USER_B))
            const out = await a.ok('encrypt_to_devices', { payload: '{"hello":"bob ✓"}', devices: [bd, ad] })
            equal(Object.keys(out.ciphertexts), [bd.device_key], 'own device skipped')
            equal((await b.ok('decrypt_from_device', { ciphertext: out.ciphertexts[bd.device_key], sender_key: ad.device_key })).payload, '{"hello":"bob ✓"}', 'payload')
            await b.err('decrypt_from_device', { ciphertext: out.ciphertexts[bd.device_key], sender_key: bd.device_key }, 'DECRYPTION_FAILED')
            await b.err('decrypt_from_device', { ciphertext: 'AwoAnot-a-message', sender_key: ad.device_key }, 'DECRYPTION_FAILED')
            await a.err('encrypt_to_devices', { payload: 'x'.repeat(49153), devices: [bd] }, 'PAYLOAD_TOO_LARGE')
        },
    },
    {
        name: 'session_export_import',
        run: async (ctx) => {
            const a = ctx.a()
            const b = ctx.b()
            await init(a, USER_A)
            await init(b, USER_B)
            const m = await encrypt(a, MEGOLM, 'exported megolm')
            const h = await encrypt(a, HYBRID, 'exported grpaes')
            await encrypt(a, MEGOLM, 'other stream', {}, OTHER_STREAM)
            const all = (await a.ok('export_sessions', {})).sessions
            equal(all.length, 3, 'every session')
            const exp = (await a.ok('export_sessions', { stream_id: STREAM })).sessions
            equal(exp.map((s: any) => s.sessionId).sort(), [m.session_id, h.session_id].sort(), 'the stream\'s sessions')
            const one = (await a.ok('export_sessions', { stream_id: STREAM, session_ids: [h.session_id] })).sessions
            equal(one.length, 1, 'by id')
            equal(one[0].algorithm, HYBRID, 'algorithm')
            const forged = exp.map((s: any) => ({ ...s, sessionId: s.sessionId === m.session_id ? h.session_id : m.session_id }))
            const bad = await b.ok('import_sessions', { sessions: forged })
            equal(bad.imported, [], 'mismatched ids refused')
            equal(bad.failed.length, 2, 'both reported')
            equal((await b.ok('session_ids', { stream_id: STREAM })).session_ids, [], 'nothing stored')
            const wrongStream = exp.map((s: any) => ({ ...s, streamId: OTHER_STREAM }))
            const hybridWrong = await b.ok('import_sessions', { sessions: wrongStream.filter((s: any) => s.algorithm === HYBRID) })
            equal(hybridWrong.imported, [], 'a grpaes key names its stream')
            const good = await b.ok('import_sessions', { sessions: exp })
            equal(good.imported.sort(), [m.session_id, h.session_id].sort(), 'imported')
            equal(await decryptText(b, m), 'exported megolm', 'megolm')
            equal(await decryptText(b, h), 'exported grpaes', 'grpaes')
            equal((await b.ok('session_ids', { stream_id: STREAM })).session_ids, [m.session_id, h.session_id].sort(), 'session ids')
        },
    },
    {
        name: 'exported_device_continues',
        run: async (ctx) => {
            const a = ctx.a()
            const b = ctx.b()
            const ad = device(await init(a, USER_A))
            const bd = device(await init(b, USER_B))
            const e1 = await encrypt(a, MEGOLM, 'before export 1')
            const e2 = await encrypt(a, MEGOLM, 'before export 2')
            const h1 = await encrypt(a, HYBRID, 'before export grpaes')
            await shareTo(a, b, bd, MEGOLM, [e1.session_id])
            const exported = (await a.ok('export_device')).exported_device_pb
            const c = ctx.b()
            equal(device(await c.ok('init', { user_id: USER_A, store: 'memory', exported_device_pb: exported })), ad, 'same device keys')
            equal(await decryptText(c, e2), 'before export 2', 'old megolm')
            equal(await decryptText(c, h1), 'before export grpaes', 'old grpaes')
            const e3 = await encrypt(c, MEGOLM, 'after import')
            expect(e3.created_session === false && e3.session_id === e1.session_id, 'continues the outbound session')
            equal(await decryptText(b, e3), 'after import', 'B reads the continued session')
            equal(await decryptText(a, e3), 'after import', 'and so does the original')
            const again = (await c.ok('export_device')).exported_device_pb
            const d = ctx.a()
            equal(device(await d.ok('init', { user_id: USER_A, store: 'memory', exported_device_pb: again })), ad, 'and back')
            equal(await decryptText(d, e3), 'after import', 'round trip')
            await d.err('init', { user_id: USER_A, store: 'memory', exported_device_pb: 'not base64!' }, 'INVALID_ARGUMENT')
            equal(device(await d.ok('device')), ad, 'a failed init keeps the device')
        },
    },
    {
        name: 'bad_inputs',
        run: async (ctx) => {
            for (const d of [ctx.a(), ctx.b()]) {
                const raw = await d.raw('this is not json')
                expect(raw.ok === false && raw.id === null && raw.error.code === 'INVALID_ARGUMENT', `${d.kind}: malformed line`)
                const arr = await d.raw('[1,2,3]')
                expect(arr.ok === false && arr.error.code === 'INVALID_ARGUMENT', `${d.kind}: not an object`)
                await d.err('no_such_command', {}, 'UNKNOWN_COMMAND')
                await d.err('device', {}, 'NOT_INITIALIZED')
                await d.err('decrypt', { stream_id: STREAM, encrypted_data_pb: 'AA==' }, 'NOT_INITIALIZED')
                await d.err('init', { user_id: USER_A }, 'INVALID_ARGUMENT')
                await d.err('init', { user_id: USER_A, store: 'floppy' }, 'INVALID_ARGUMENT')
                await init(d, USER_A)
                const e = await encrypt(d, MEGOLM, 'keep me')
                const h = await encrypt(d, HYBRID, 'keep me too')
                const before = (await d.ok('session_ids', { stream_id: STREAM })).session_ids
                const ed = fromBinary(EncryptedDataSchema, bytes(e.encrypted_data_pb))
                const hd = fromBinary(EncryptedDataSchema, bytes(h.encrypted_data_pb))
                const variant = (base: any, change: any) => pb64(toBinary(EncryptedDataSchema, create(EncryptedDataSchema, { ...base, ...change })))
                await d.err('decrypt', { stream_id: STREAM, encrypted_data_pb: '%%%' }, 'INVALID_ARGUMENT')
                await d.err('decrypt', { stream_id: STREAM, encrypted_data_pb: pb64(new Uint8Array([0xff, 0xff, 0xff])) }, 'INVALID_ARGUMENT')
                await d.err('decrypt', { stream_id: 'zz', encrypted_data_pb: e.encrypted_data_pb }, 'INVALID_ARGUMENT')
                await d.err('decrypt', { stream_id: STREAM }, 'INVALID_ARGUMENT')
                await d.err('decrypt', { stream_id: STREAM, encrypted_data_pb: variant(ed, { senderKey: '' }) }, 'GROUP_DECRYPTION_MISSING_FIELDS')
                await d.err('decrypt', { stream_id: STREAM, encrypted_data_pb: variant(ed, { algorithm: '' }) }, 'GROUP_DECRYPTION_UNSET_ALGORITHM')
                await d.err('decrypt', { stream_id: STREAM, encrypted_data_pb: variant(ed, { algorithm: 'm.megolm.v1.aes-sha2' }) }, 'GROUP_DECRYPTION_UNKNOWN_ALGORITHM')
                await d.err('decrypt', { stream_id: STREAM, encrypted_data_pb: variant(ed, { version: 5 }) }, 'GROUP_DECRYPTION_INVALID_VERSION')
                const ct = ed.ciphertext
                const flipped = ct.slice(0, 20) + (ct[20] === 'A' ? 'B' : 'A') + ct.slice(21)
                await d.err('decrypt', { stream_id: STREAM, encrypted_data_pb: variant(ed, { ciphertext: flipped }) }, 'DECRYPTION_FAILED')
                await d.err('decrypt', { stream_id: STREAM, encrypted_data_pb: variant(hd, { senderKey: '' }) }, 'HYBRID_GROUP_DECRYPTION_MISSING_FIELDS')
                // The client's missing-fields check never sees empty bytes fields (docs/compat.md).
                await d.err('decrypt', { stream_id: STREAM, encrypted_data_pb: variant(hd, { ivBytes: new Uint8Array(0) }) }, 'DECRYPTION_FAILED')
                await d.err('decrypt', { stream_id: STREAM, encrypted_data_pb: variant(hd, { ciphertextBytes: new Uint8Array(0) }) }, 'DECRYPTION_FAILED')
                await d.err('decrypt', { stream_id: STREAM, encrypted_data_pb: variant(hd, { sessionIdBytes: new Uint8Array(0) }) }, 'SESSION_NOT_FOUND')
                await d.err('decrypt', { stream_id: STREAM, encrypted_data_pb: variant(hd, { ivBytes: new Uint8Array(16) }) }, 'DECRYPTION_FAILED')
                const tampered = new Uint8Array(hd.ciphertextBytes)
                tampered[0] ^= 1
                await d.err('decrypt', { stream_id: STREAM, encrypted_data_pb: variant(hd, { ciphertextBytes: tampered }) }, 'DECRYPTION_FAILED')
                await d.err('decrypt', { stream_id: STREAM, encrypted_data_pb: variant(hd, { sessionIdBytes: new Uint8Array(32) }) }, 'SESSION_NOT_FOUND')
                await d.err('encrypt', { stream_id: STREAM, algorithm: 'rot13', plaintext_b64: b64('x') }, 'INVALID_ARGUMENT')
                await d.err('encrypt', { stream_id: OTHER_STREAM, algorithm: MEGOLM, plaintext_b64: pb64(new Uint8Array(36865)) }, 'PAYLOAD_TOO_LARGE')
                await d.err('encrypt', { stream_id: OTHER_STREAM, algorithm: HYBRID, plaintext_b64: '', miniblock_num: '1', miniblock_hash_hex: HASH }, 'EMPTY_PAYLOAD')
                await d.err('encrypt', { stream_id: OTHER_STREAM, algorithm: HYBRID, plaintext_b64: b64('x') }, 'INVALID_ARGUMENT')
                await d.err('encrypt', { stream_id: STREAM, algorithm: MEGOLM, plaintext_b64: b64('x'), version: 2 }, 'INVALID_ARGUMENT')
                equal((await d.ok('session_ids', { stream_id: OTHER_STREAM })).session_ids, [], 'refused encrypts created no session')
                await d.err('receive_sessions', { group_encryption_sessions_pb: '!!' }, 'INVALID_ARGUMENT')
                const own = (await d.ok('device')).device_key
                const forged = pb64(toBinary(UserInboxPayload_GroupEncryptionSessionsSchema, create(UserInboxPayload_GroupEncryptionSessionsSchema, {
                    streamId: new Uint8Array(Buffer.from(STREAM, 'hex')), senderKey: own, sessionIds: ['forged'],
                    ciphertexts: { [own]: 'AwoAgarbage' }, algorithm: MEGOLM,
                })))
                await d.err('receive_sessions', { group_encryption_sessions_pb: forged }, 'DECRYPTION_FAILED')
                await d.err('share', { stream_id: STREAM, algorithm: MEGOLM, session_ids: ['nope'], devices: [] }, 'SESSION_NOT_FOUND')
                await d.err('share', { stream_id: STREAM, algorithm: HYBRID, session_ids: [e.session_id], devices: [] }, 'SESSION_NOT_FOUND')
                await d.err('answer_solicitation', { stream_id: STREAM, from_user_id: USER_B, key_solicitation_pb: '@@', requester_entitled: true }, 'INVALID_ARGUMENT')
                await d.err('answer_solicitation', { stream_id: STREAM, from_user_id: USER_B, key_solicitation_pb: 'AA==', requester_entitled: 'yes' }, 'INVALID_ARGUMENT')
                await d.err('solicit', { stream_id: STREAM, missing_session_ids: 'abc' }, 'INVALID_ARGUMENT')
                const badImport = await d.ok('import_sessions', { sessions: [{ streamId: STREAM, sessionId: 'x', sessionKey: 'garbage', algorithm: MEGOLM }, { sessionId: 'y' }] })
                equal(badImport.imported, [], 'garbage keys refused')
                equal(badImport.failed, ['x', 'y'], 'and reported')
                equal((await d.ok('session_ids', { stream_id: STREAM })).session_ids, before, 'state unchanged by failed requests')
                equal(await decryptText(d, e), 'keep me', 'still decrypts')
                equal(await decryptText(d, h), 'keep me too', 'still decrypts grpaes')
            }
        },
    },
    {
        name: 'store_restart',
        run: async (ctx) => {
            for (const [make, kind] of [[ctx.a, ctx.kindA], [ctx.b, ctx.kindB]] as const) {
                const path = join(ctx.dir, `${kind}-device.db`)
                const store = { sqlite: path }
                const first = make()
                const dev = device(await first.ok('init', { user_id: USER_C, store, pickle_key: 'restart key' }))
                const e1 = await encrypt(first, MEGOLM, 'before restart')
                await encrypt(first, HYBRID, 'before restart grpaes')
                const ids = (await first.ok('session_ids', { stream_id: STREAM })).session_ids
                expect((await first.quit()) === 0, 'clean exit')
                const second = make()
                equal(device(await second.ok('init', { user_id: USER_C, store, pickle_key: 'restart key' })), dev, 'same device after restart')
                equal((await second.ok('session_ids', { stream_id: STREAM })).session_ids, ids, 'same sessions')
                equal(await decryptText(second, e1), 'before restart', 'old event')
                const e2 = await encrypt(second, MEGOLM, 'after restart')
                expect(e2.created_session === false && e2.session_id === e1.session_id, 'same outbound session')
                const other = ctx.a()
                const od = device(await init(other, USER_A))
                await shareTo(second, other, od, MEGOLM, [e1.session_id])
                equal(await decryptText(other, e2), 'after restart', 'a peer reads the continued session')
                expect((await second.quit()) === 0, 'clean exit')
                const wrong = make()
                await wrong.err('init', { user_id: USER_C, store, pickle_key: 'not the key' }, 'STORE_ERROR')
            }
        },
    },
    {
        // docs/compat.md: the canonical client ignores an empty pickle key and
        // takes DEFAULT_KEY; this library refuses it and creates nothing.
        name: 'empty_pickle_key',
        run: async (ctx) => {
            for (const [make, kind, side] of [[ctx.a, ctx.kindA, 'a'], [ctx.b, ctx.kindB, 'b']] as const) {
                const path = join(ctx.dir, `${kind}-${side}-empty-key.db`)
                const d = make()
                if (CANONICAL.has(kind)) {
                    const dev = device(await d.ok('init', { user_id: USER_A, store: { sqlite: path }, pickle_key: '' }))
                    equal(fromBinary(ExportedDeviceSchema, bytes((await d.ok('export_device')).exported_device_pb)).pickleKey, 'DEFAULT_KEY', 'the default key')
                    expect((await d.quit()) === 0, 'clean exit')
                    const again = make()
                    equal(device(await again.ok('init', { user_id: USER_A, store: { sqlite: path }, pickle_key: 'DEFAULT_KEY' })), dev, 'opened with DEFAULT_KEY')
                } else {
                    await d.err('init', { user_id: USER_A, store: 'memory', pickle_key: '' }, 'INVALID_ARGUMENT')
                    await d.err('init', { user_id: USER_A, store: { sqlite: path }, pickle_key: '' }, 'INVALID_ARGUMENT')
                    expect(!existsSync(path), 'no store file created')
                    await d.err('device', {}, 'NOT_INITIALIZED')
                }
            }
        },
    },
    {
        // docs/compat.md: the client's olm binding ends megolm version-0 and olm
        // plaintexts at the first NUL; this library returns every byte.
        name: 'nul_bytes',
        run: async (ctx) => {
            const a = ctx.a()
            const b = ctx.b()
            const ad = device(await init(a, USER_A))
            const bd = device(await init(b, USER_B))
            const msg = 'abc\0def'
            const cut = CANONICAL.has(ctx.kindB)
            for (const alg of [MEGOLM, HYBRID]) {
                const v0 = await encrypt(a, alg, msg, { version: 0 })
                const v1 = await encrypt(a, alg, msg)
                await shareTo(a, b, bd, alg, [v0.session_id])
                equal(await decryptText(b, v0), cut && alg === MEGOLM ? 'abc' : msg, `${alg} version 0`)
                equal(await decryptText(b, v1), msg, `${alg} version 1`)
            }
            const out = await a.ok('encrypt_to_devices', { payload: msg, devices: [bd] })
            equal((await b.ok('decrypt_from_device', { ciphertext: out.ciphertexts[bd.device_key], sender_key: ad.device_key })).payload,
                cut ? 'abc' : msg, 'olm')
        },
    },
    {
        // docs/driver.md: init's store modes refuse the same paths with the
        // same codes in every driver (the canonical one over its snapshot file).
        name: 'store_open_modes',
        run: async (ctx) => {
            for (const [make, kind, side] of [[ctx.a, ctx.kindA, 'a'], [ctx.b, ctx.kindB, 'b']] as const) {
                const path = join(ctx.dir, `${kind}-${side}-modes.db`)
                const first = make()
                await first.err('init', { user_id: USER_C, store: { sqlite: path, mode: 'open' } }, 'STORE_ERROR')
                expect(!existsSync(path), `${kind}: open creates nothing`)
                await first.err('init', { user_id: USER_C, store: { sqlite: path, mode: 'sometimes' } }, 'INVALID_ARGUMENT')
                const made = await first.ok('init', { user_id: USER_C, store: { sqlite: path, mode: 'create' } })
                expect((await first.quit()) === 0, 'clean exit')
                const second = make()
                await second.err('init', { user_id: USER_C, store: { sqlite: path, mode: 'create' } }, 'STORE_ERROR')
                for (const mode of ['open', 'either', undefined]) {
                    const again = await second.ok('init', { user_id: USER_C, store: { sqlite: path, mode } })
                    equal(again.device_key, made.device_key, `${kind}: ${mode ?? 'no'} mode opens the same device`)
                }
                const empty = join(ctx.dir, `${kind}-${side}-empty.db`)
                writeFileSync(empty, '')
                for (const mode of ['open', 'either', 'create']) {
                    await second.err('init', { user_id: USER_C, store: { sqlite: empty, mode } }, 'STORE_ERROR')
                }
                expect((await second.quit()) === 0, 'clean exit')
            }
        },
    },
    {
        // docs/compat.md: a stored outbound megolm session that does not
        // unpickle. The client silently starts (and would share) a new session;
        // this library refuses with STORE_CORRUPT (the driver's STORE_ERROR).
        name: 'damaged_outbound_session',
        run: async (ctx) => {
            for (const [make, kind, side] of [[ctx.a, ctx.kindA, 'a'], [ctx.b, ctx.kindB, 'b']] as const) {
                const path = join(ctx.dir, `${kind}-${side}-damaged-outbound.db`)
                const store = { sqlite: path }
                const first = make()
                await first.ok('init', { user_id: USER_C, store, pickle_key: 'damage key' })
                const e1 = await encrypt(first, MEGOLM, 'before the damage')
                expect((await first.quit()) === 0, 'clean exit')
                damageStoredPickle(path, 'outbound', STREAM, e1.session_id, 'damage key')
                const second = make()
                await second.ok('init', { user_id: USER_C, store, pickle_key: 'damage key' })
                if (CANONICAL.has(kind)) {
                    const e2 = await encrypt(second, MEGOLM, 'after the damage')
                    expect(e2.created_session === true && e2.session_id !== e1.session_id, 'the client starts a new session')
                    equal((await second.ok('session_ids', { stream_id: STREAM })).session_ids, [e1.session_id, e2.session_id].sort(), 'two sessions')
                } else {
                    await second.err('encrypt', { stream_id: STREAM, algorithm: MEGOLM, plaintext_b64: b64('after the damage') }, 'STORE_ERROR')
                    equal((await second.ok('session_ids', { stream_id: STREAM })).session_ids, [e1.session_id], 'nothing created')
                }
                equal(await decryptText(second, e1), 'before the damage', 'history still decrypts (its inbound row is intact)')
                expect((await second.quit()) === 0, 'clean exit')
            }
        },
    },
    {
        // An import over a held megolm session whose stored pickle is damaged
        // fails in both (the row stays); reading that row is libolm's error in
        // the client (DECRYPTION_FAILED) and STORE_CORRUPT here (STORE_ERROR).
        name: 'import_over_damaged_session',
        run: async (ctx) => {
            const sender = ctx.a()
            await init(sender, USER_A)
            const m = await encrypt(sender, MEGOLM, 'held once')
            const keys = (await sender.ok('export_sessions', { stream_id: STREAM })).sessions
            for (const [make, kind, side] of [[ctx.a, ctx.kindA, 'a'], [ctx.b, ctx.kindB, 'b']] as const) {
                const path = join(ctx.dir, `${kind}-${side}-damaged-inbound.db`)
                const store = { sqlite: path }
                const first = make()
                await first.ok('init', { user_id: USER_B, store, pickle_key: 'damage key' })
                equal((await first.ok('import_sessions', { sessions: keys })).imported, [m.session_id], 'imported')
                expect((await first.quit()) === 0, 'clean exit')
                damageStoredPickle(path, 'inbound', STREAM, m.session_id, 'damage key')
                const second = make()
                await second.ok('init', { user_id: USER_B, store, pickle_key: 'damage key' })
                const again = await second.ok('import_sessions', { sessions: keys })
                equal([again.imported, again.failed], [[], [m.session_id]], 'the import fails')
                await second.err('decrypt', { stream_id: STREAM, encrypted_data_pb: m.encrypted_data_pb }, CANONICAL.has(kind) ? 'DECRYPTION_FAILED' : 'STORE_ERROR')
                expect((await second.quit()) === 0, 'clean exit')
            }
        },
    },
    {
        // Sessions of one miniblock, from three devices, held by one: the
        // canonical client's in-memory store encrypts with the most recently
        // used one; this library (and the client's IndexedDB store) with the
        // lowest session id (docs/protocol.md section 6.3).
        name: 'grpaes_tie_on_miniblock',
        run: async (ctx) => {
            const keys: any[] = []
            const events: any[] = []
            for (let i = 0; i < 3; i++) {
                const x = ctx.a()
                await init(x, USER_A)
                events.push(await encrypt(x, HYBRID, `from device ${i}`))
                keys.push(...(await x.ok('export_sessions', { stream_id: STREAM })).sessions)
            }
            keys.sort((x, y) => (x.sessionId < y.sessionId ? -1 : 1))
            const [low, mid, high] = keys.map((k) => k.sessionId)
            const d = ctx.b()
            await init(d, USER_B)
            for (const k of keys) equal((await d.ok('import_sessions', { sessions: [k] })).imported, [k.sessionId], 'imported, lowest id first')
            const canonical = CANONICAL.has(ctx.kindB)
            const sealedWith = async () => (await encrypt(d, HYBRID, 'which key?')).session_id
            equal(await sealedWith(), canonical ? high : low, 'after the imports')
            const midEvent = events.find((e) => e.session_id === mid)
            equal(await decryptText(d, midEvent), `from device ${events.indexOf(midEvent)}`, 'decrypts with the middle one')
            equal(await sealedWith(), canonical ? mid : low, 'after reading the middle one')
        },
    },
]
