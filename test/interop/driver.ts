// The conformance driver (docs/driver.md, version 1) on the canonical client:
// @towns-protocol/encryption 0.0.455's GroupEncryptionCrypto with its in-memory
// store. The section 9 rules (which live in @towns-protocol/sdk) are written
// here after the 0.0.455 SDK's decryption extensions. The derived scheme and
// media encryption run on @towns-protocol/sdk-crypto 0.0.455 (sdk_crypto_ops.ts).
//
// {"sqlite": path} is served by a snapshot file (the client has no SQLite
// store): the exported device is written to path after every command and read
// back at init, under a check of the pickle key, so that restart scenarios run
// in every pairing.
//   npx tsx driver.ts
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync, renameSync, statSync } from 'node:fs'
import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import {
    EncryptedDataSchema,
    ExportedDeviceSchema,
    MemberPayload_KeyFulfillmentSchema,
    MemberPayload_KeySolicitationSchema,
    UserInboxPayload_GroupEncryptionSessionsSchema,
    type MemberPayload_KeySolicitation,
} from '@towns-protocol/proto'
import {
    CryptoStoreInMemory,
    GroupEncryptionAlgorithmId,
    GroupEncryptionCrypto,
    type GroupEncryptionSession,
} from '@towns-protocol/encryption'
import type { SdkEngine } from './engine_sdk'
import { DriverError, buildShare, codeOf, decideAnswer, decideSolicitation, importOne, receiveSessions } from './client_ops'
import { derivedDecrypt, derivedEncrypt, mediaDecryptChunks, mediaDecryptWholeFile, mediaEncrypt } from './sdk_crypto_ops'

const bad = (m: string): never => {
    throw new DriverError('INVALID_ARGUMENT', m)
}

// The input limits of docs/driver.md ("Limits"), as towns-e2ee driver has them,
// and the same options to change them.
const limits = { maxLineBytes: 16 << 20, maxListItems: 10000, maxDepth: 32 }
for (let i = 2; i < process.argv.length; i += 2) {
    const key = ({ '--max-line-bytes': 'maxLineBytes', '--max-list-items': 'maxListItems', '--max-depth': 'maxDepth' } as const)[process.argv[i] as string]
    const v = Number(process.argv[i + 1])
    if (!key || !Number.isSafeInteger(v) || v <= 0) {
        process.stderr.write('usage: driver.ts [--max-line-bytes N] [--max-list-items N] [--max-depth N]\n')
        process.exit(2)
    }
    limits[key] = v
}
const overLimit = (m: string): never => {
    throw new DriverError('LIMIT_EXCEEDED', m)
}
function checkList(n: number, name: string) {
    if (n > limits.maxListItems) overLimit(`${name} holds more than ${limits.maxListItems} items`)
}
// A value as an error message shows it: at most 64 bytes, then '…'.
function shown(v: string, max = 64): string {
    const b = Buffer.from(v, 'utf8')
    if (b.length <= max) return v
    let n = max
    for (let k = 0; k < 3 && n > 0 && (b[n] & 0xc0) === 0x80; k++) n--
    return b.subarray(0, n).toString('utf8') + '\u2026'
}
// Every array and object of the request holds at most maxListItems entries.
function checkRequestLists(root: any) {
    const todo: [any, string][] = [[root, 'request']]
    while (todo.length > 0) {
        const [v, name] = todo.pop()!
        if (typeof v !== 'object' || v === null) continue
        if (Array.isArray(v)) {
            checkList(v.length, name)
            for (const x of v) if (typeof x === 'object' && x !== null) todo.push([x, name])
        } else {
            const keys = Object.keys(v)
            checkList(keys.length, name)
            for (const k of keys) if (typeof v[k] === 'object' && v[k] !== null) todo.push([v[k], shown(k)])
        }
    }
}
// The deepest nesting of arrays and objects in a JSON text (strings skipped).
function jsonDepth(text: string): number {
    let depth = 0
    let max = 0
    let inString = false
    for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i)
        if (inString) {
            if (c === 0x5c) i++
            else if (c === 0x22) inString = false
        } else if (c === 0x22) inString = true
        else if (c === 0x5b || c === 0x7b) max = Math.max(max, ++depth)
        else if (c === 0x5d || c === 0x7d) depth--
    }
    return max
}

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/
function fromB64(s: unknown, name: string): Uint8Array {
    if (typeof s !== 'string' || !B64.test(s)) bad(`${name} is not base64`)
    return new Uint8Array(Buffer.from(s as string, 'base64'))
}
const toB64 = (b: Uint8Array) => Buffer.from(b).toString('base64')
function fromHex(s: unknown, name: string): Uint8Array {
    if (typeof s !== 'string' || !/^(0x)?([0-9a-fA-F]{2})*$/.test(s)) bad(`${name} is not hex`)
    return new Uint8Array(Buffer.from((s as string).replace(/^0x/, ''), 'hex'))
}
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex')
// Free-text arguments may hold NUL; every other string argument is an id, a
// key, an encoding or a path, where it is refused.
const MAY_HOLD_NUL = new Set(['payload', 'key_phrase'])
function noNul(s: string, name: string) {
    if (s.includes('\0')) bad(`${name} holds a NUL byte`)
}
function str(req: any, name: string): string {
    if (typeof req[name] !== 'string') bad(`missing argument ${name}`)
    if (!MAY_HOLD_NUL.has(name)) noNul(req[name], name)
    return req[name]
}
function list(req: any, name: string): any[] {
    if (!Array.isArray(req[name])) bad(`${name} must be a list`)
    checkList(req[name].length, name)
    return req[name]
}
function strList(req: any, name: string): string[] {
    const l = list(req, name)
    for (const x of l) {
        if (typeof x !== 'string') bad(`${name} must hold strings`)
        noNul(x, name)
    }
    return l
}
// The SDK's isValidStreamId (protocol.md 1.3): lower-case hex, a known prefix,
// the kind's identity length or 62 digits padded with zeros.
const IDENTITY_LENGTH: Record<string, number> = { a8: 40, ad: 40, a5: 40, a1: 40, '10': 40, '20': 62, ff: 62, '88': 62, '77': 62, dd: 16 }
function streamIdProblem(s: string): string | undefined {
    if (s.length === 0) return 'is empty'
    if (!/^[0-9a-f]*$/.test(s)) return 'is not lower-case hex (no 0x prefix, no upper case)'
    const expected = IDENTITY_LENGTH[s.slice(0, 2)]
    if (expected === undefined) return 'has no known stream prefix'
    const identity = s.slice(2)
    if (identity.length === expected) return undefined
    if (identity.length !== 62) return 'has the wrong length for its kind'
    if (!/^0*$/.test(identity.slice(expected))) return 'is not padded with zeros after its identity'
    return undefined
}
function streamArg(req: any): string {
    const s = str(req, 'stream_id')
    const why = streamIdProblem(s)
    if (why) bad(`stream id "${shown(s)}" ${why}`)
    return s
}
// A user id: an address, 0x (optional, as the SDK's getAddress takes it) and 40 hex digits.
function userArg(req: any, name: string): string {
    const s = str(req, name)
    if (!/^(0x)?[0-9a-fA-F]{40}$/.test(s)) bad(`user id "${shown(s)}" is not an address (0x and 40 hex digits)`)
    return s
}
function algorithmArg(req: any): GroupEncryptionAlgorithmId {
    const a = str(req, 'algorithm')
    if (a !== GroupEncryptionAlgorithmId.GroupEncryption && a !== GroupEncryptionAlgorithmId.HybridGroupEncryption) {
        bad(`unknown algorithm ${shown(a)}`)
    }
    return a as GroupEncryptionAlgorithmId
}
function pbArg<T>(schema: any, req: any, name: string): T {
    const bytes = fromB64(str(req, name), name)
    let m: any
    try {
        m = fromBinary(schema, bytes)
    } catch {
        return bad(`${name} is not a valid protobuf`)
    }
    // Its repeated and map fields (session ids, ciphertexts) hold at most maxListItems.
    for (const [k, v] of Object.entries(m)) {
        if (Array.isArray(v)) checkList(v.length, `${name}.${k}`)
        else if (typeof v === 'object' && v !== null && !(v instanceof Uint8Array) && !('$typeName' in v)) checkList(Object.keys(v).length, `${name}.${k}`)
    }
    return m as T
}
function devicesArg(req: any): { deviceKey: string; fallbackKey: string }[] {
    return list(req, 'devices').map((d: any) => {
        if (typeof d !== 'object' || d === null) bad('each device must be an object')
        return { deviceKey: str(d, 'device_key'), fallbackKey: str(d, 'fallback_key') }
    })
}
// A number, or a decimal string (as the C++ driver reads 64-bit integers).
function intArg(req: any, name: string): number {
    const v = req[name]
    if (v == null) bad(`missing argument ${name}`)
    if (!(typeof v === 'number' && Number.isSafeInteger(v)) && !(typeof v === 'string' && /^-?\d{1,15}$/.test(v))) {
        bad(`${name} must be a decimal string`)
    }
    return Number(v)
}
const MAX_PLAINTEXT = (65536 * 3) / 4

const COMMANDS = new Set(['device', 'export_device', 'encrypt', 'decrypt', 'session_ids', 'export_sessions',
    'import_sessions', 'share', 'receive_sessions', 'encrypt_to_devices', 'decrypt_from_device', 'solicit',
    'answer_solicitation'])
const sortIds = (ids: string[]) => [...ids].sort()

class Driver {
    crypto?: GroupEncryptionCrypto
    userId = ''
    snapshot?: { path: string; keyHash: string; pickleKey: string }
    miniblock?: { miniblockNum: bigint; miniblockHash: Uint8Array }
    context: 'decrypt' | 'import' | 'other' = 'other'

    private client = {
        encryptAndShareGroupSessionsToStream: async () => {},
        getMiniblockInfo: async () => {
            if (!this.miniblock) bad('a new grpaes session needs miniblock_num and miniblock_hash_hex')
            return this.miniblock!
        },
    } as any

    get c(): GroupEncryptionCrypto {
        if (!this.crypto) throw new DriverError('NOT_INITIALIZED', 'send init first')
        return this.crypto
    }
    device() {
        const d = this.c.getUserDevice()
        return { device_key: d.deviceKey, fallback_key: d.fallbackKey }
    }

    engine?: SdkEngine

    // Version 2: the key exchange engine of @towns-protocol/sdk (engine_sdk.ts),
    // which needs no init (it models its crypto backend).
    async handleEngine(cmd: string, req: any): Promise<any> {
        const { SdkEngine, EngineError } = await import('./engine_sdk')
        try {
            if (cmd === 'engine_start') {
                await this.engine?.stop()
                this.engine = new SdkEngine()
                return await this.engine.start(req)
            }
            if (!this.engine) throw new DriverError('NOT_INITIALIZED', 'send engine_start first')
            switch (cmd) {
                case 'engine_input': return await this.engine.input(req)
                case 'engine_advance': return await this.engine.advance(req)
                case 'engine_outputs': return { outputs: this.engine.outputsTaken() }
                case 'engine_stop': {
                    await this.engine.stop()
                    this.engine = undefined
                    return {}
                }
            }
        } catch (e: any) {
            if (e instanceof EngineError) throw new DriverError(e.code, e.message)
            throw e
        }
        throw new DriverError('UNKNOWN_COMMAND', `unknown command ${cmd}`)
    }

    async handle(cmd: string, req: any): Promise<any> {
        if (cmd.startsWith('engine_')) return this.handleEngine(cmd, req)
        this.context = ['decrypt', 'receive_sessions', 'decrypt_from_device', 'derived_decrypt', 'media_decrypt'].includes(cmd) ? 'decrypt' : 'other'
        if (cmd !== 'init' && COMMANDS.has(cmd)) this.c // NOT_INITIALIZED before any argument is read
        switch (cmd) {
            case 'init': return this.init(req)
            case 'device': return this.device()
            case 'export_device': return { exported_device_pb: toB64(toBinary(ExportedDeviceSchema, await this.c.exportDevice())) }
            case 'encrypt': return this.encrypt(req)
            case 'decrypt': return this.decrypt(req)
            case 'session_ids': return { session_ids: sortIds(await this.c.getGroupSessionIds(streamArg(req))) }
            case 'export_sessions': return this.exportSessions(req)
            case 'import_sessions': return this.importSessions(req)
            case 'share': return this.share(req)
            case 'receive_sessions': return this.receive(req)
            case 'encrypt_to_devices': return this.encryptToDevices(req)
            case 'decrypt_from_device': return { payload: await this.c.decryptWithDeviceKey(str(req, 'ciphertext'), str(req, 'sender_key')) }
            case 'solicit': return this.solicit(req)
            case 'answer_solicitation': return this.answer(req)
            case 'derived_encrypt': return this.derivedEncrypt(req)
            case 'derived_decrypt': return this.derivedDecrypt(req)
            case 'media_encrypt': return this.mediaEncrypt(req)
            case 'media_decrypt': return this.mediaDecrypt(req)
            default: throw new DriverError('UNKNOWN_COMMAND', `unknown command ${cmd}`)
        }
    }

    // The derived scheme and media encryption: no device involved.
    async derivedEncrypt(req: any) {
        const keyPhrase = str(req, 'key_phrase')
        const plaintext = fromB64(str(req, 'plaintext_b64'), 'plaintext_b64')
        return { encrypted_data_pb: toB64(toBinary(EncryptedDataSchema, await derivedEncrypt(keyPhrase, plaintext))) }
    }

    async derivedDecrypt(req: any) {
        const keyPhrase = str(req, 'key_phrase')
        const data = pbArg<any>(EncryptedDataSchema, req, 'encrypted_data_pb')
        return { plaintext_b64: toB64(await derivedDecrypt(keyPhrase, data)) }
    }

    async mediaEncrypt(req: any) {
        const data = fromB64(str(req, 'data_b64'), 'data_b64')
        const chunkSize = intArg(req, 'chunk_size')
        if ((req.key_hex == null) !== (req.ivs_hex == null)) bad('key_hex and ivs_hex go together')
        const fed = req.key_hex != null
            ? { key: fromHex(str(req, 'key_hex'), 'key_hex'), ivs: list(req, 'ivs_hex').map((iv) => fromHex(iv, 'ivs_hex')) }
            : undefined
        const out = await mediaEncrypt(data, chunkSize, fed)
        return { secret_key_hex: toHex(out.secretKey), chunks: out.chunks.map((c) => ({ ct_b64: toB64(c.ciphertext), iv_hex: toHex(c.iv) })) }
    }

    async mediaDecrypt(req: any) {
        const key = fromHex(str(req, 'secret_key_hex'), 'secret_key_hex')
        const wholeFile = req.iv_hex != null
        const chunks = list(req, 'chunks').map((c: any) => {
            if (typeof c !== 'object' || c === null) bad('each chunk must be an object')
            const ciphertext = fromB64(str(c, 'ct_b64'), 'ct_b64')
            if (wholeFile && c.iv_hex != null) bad('a chunk of the whole-file form carries no iv_hex')
            return { ciphertext, iv: wholeFile ? new Uint8Array(0) : fromHex(str(c, 'iv_hex'), 'iv_hex') }
        })
        const out = wholeFile
            ? await mediaDecryptWholeFile(key, fromHex(str(req, 'iv_hex'), 'iv_hex'), chunks.map((c) => c.ciphertext))
            : await mediaDecryptChunks(key, chunks)
        return { data_b64: toB64(out) }
    }

    async init(req: any) {
        const userId = userArg(req, 'user_id')
        // Given to the client as is: it ignores an empty key and keeps its
        // default, DEFAULT_KEY (docs/driver.md), which is the key the snapshot
        // is checked against.
        if (req.pickle_key != null && typeof req.pickle_key !== 'string') bad('pickle_key must be a string')
        if (typeof req.pickle_key === 'string') noNul(req.pickle_key, 'pickle_key')
        const given: string | undefined = typeof req.pickle_key === 'string' ? req.pickle_key : undefined
        const pickleKey = given || 'DEFAULT_KEY'
        let exported = req.exported_device_pb != null ? pbArg<any>(ExportedDeviceSchema, req, 'exported_device_pb') : undefined
        let snapshot: Driver['snapshot']
        if (req.store === 'memory') {
            snapshot = undefined
        } else if (typeof req.store === 'object' && req.store !== null && typeof req.store.sqlite === 'string') {
            noNul(req.store.sqlite, 'store.sqlite')
            const keyHash = createHash('sha256').update(pickleKey).digest('hex')
            const mode = req.store.mode ?? 'either'
            if (mode !== 'create' && mode !== 'open' && mode !== 'either') bad('store mode must be "create", "open" or "either"')
            if (req.store.sqlite === '' || req.store.sqlite.includes('\0')) bad('the store path is empty or holds a NUL')
            snapshot = { path: req.store.sqlite, keyHash, pickleKey }
            // The same refusals as this library's SQLite store (docs/driver.md).
            const exists = existsSync(snapshot.path)
            if (mode === 'create' && exists) throw new DriverError('STORE_ERROR', 'a file exists at the store path')
            if (mode === 'open' && !exists) throw new DriverError('STORE_ERROR', 'there is no store at the path')
            if (exists && statSync(snapshot.path).size === 0) throw new DriverError('STORE_ERROR', 'the store file is empty')
            if (exists && !exported) {
                let saved: any
                try {
                    saved = JSON.parse(readFileSync(snapshot.path, 'utf8'))
                } catch {
                    throw new DriverError('STORE_ERROR', 'the store file is not a snapshot')
                }
                if (saved.key_hash !== keyHash) throw new DriverError('STORE_ERROR', 'the pickle key does not open this store')
                exported = fromBinary(ExportedDeviceSchema, new Uint8Array(Buffer.from(saved.exported_device_b64, 'base64')))
            }
        } else {
            bad('store must be "memory" or {"sqlite": path}')
        }
        const crypto = new GroupEncryptionCrypto(this.client, new CryptoStoreInMemory(userId))
        try {
            await crypto.init(exported ? { fromExportedDevice: exported } : { pickleKey: given })
        } catch (e: any) {
            throw new DriverError('IMPORT_FAILED', `init failed: ${e?.message ?? e}`)
        }
        this.crypto = crypto
        this.userId = userId
        this.snapshot = snapshot
        return this.device()
    }

    async save() {
        if (!this.snapshot || !this.crypto) return
        const bytes = toBinary(ExportedDeviceSchema, await this.crypto.exportDevice())
        const tmp = this.snapshot.path + '.tmp'
        writeFileSync(tmp, JSON.stringify({ key_hash: this.snapshot.keyHash, exported_device_b64: toB64(bytes) }), { mode: 0o600 })
        renameSync(tmp, this.snapshot.path)
    }

    async encrypt(req: any) {
        const streamId = streamArg(req)
        const algorithm = algorithmArg(req)
        const plaintext = fromB64(str(req, 'plaintext_b64'), 'plaintext_b64')
        const version = req.version == null ? 1 : Number(req.version) // a number, or a decimal string
        if (version !== 0 && version !== 1) bad('version must be 0 or 1')
        // Checked before a session is created, so that a refusal changes nothing.
        const text = new TextDecoder().decode(plaintext)
        if (algorithm === GroupEncryptionAlgorithmId.GroupEncryption) {
            const len = version === 1 ? toB64(plaintext).length : text.length
            if (len > MAX_PLAINTEXT) throw new DriverError('PAYLOAD_TOO_LARGE', 'message too long')
        } else if (plaintext.length === 0) {
            throw new DriverError('EMPTY_PAYLOAD', 'data to encrypt cannot be empty')
        }
        const created = !(await this.c.hasOutboundSession(streamId, algorithm))
        if (created && algorithm === GroupEncryptionAlgorithmId.HybridGroupEncryption) {
            if (req.miniblock_num == null || req.miniblock_hash_hex == null) {
                bad('a new grpaes session needs miniblock_num and miniblock_hash_hex')
            }
            if (!/^-?\d+$/.test(String(req.miniblock_num))) bad('miniblock_num must be a decimal string')
            const miniblockNum = BigInt(req.miniblock_num)
            // protocol.md 6.2: 0 to 2^63-1 (an int64 on the wire), and a 32-byte hash.
            if (miniblockNum > 0x7fffffffffffffffn) bad('miniblock_num is out of range')
            if (miniblockNum < 0n) bad('miniblock number is negative')
            const miniblockHash = fromHex(str(req, 'miniblock_hash_hex'), 'miniblock_hash_hex')
            if (miniblockHash.length !== 32) bad(`miniblock hash is ${miniblockHash.length} bytes, not 32`)
            this.miniblock = { miniblockNum, miniblockHash }
            await this.c.ensureOutboundSession(streamId, algorithm, { shareShareSessionTimeoutMs: 0 } as any)
        }
        const data = version === 1
            ? await this.c.encryptGroupEvent(streamId, plaintext, algorithm)
            : await this.c.encryptGroupEvent_deprecated_v0(streamId, text, algorithm)
        const sessionId = algorithm === GroupEncryptionAlgorithmId.GroupEncryption ? data.sessionId : toHex(data.sessionIdBytes)
        return { encrypted_data_pb: toB64(toBinary(EncryptedDataSchema, data)), session_id: sessionId, created_session: created }
    }

    async decrypt(req: any) {
        const streamId = streamArg(req)
        const data = pbArg<any>(EncryptedDataSchema, req, 'encrypted_data_pb')
        const result = await this.c.decryptGroupEvent(streamId, data)
        const bytes = typeof result === 'string' ? new TextEncoder().encode(result) : result
        return { plaintext_b64: toB64(bytes) }
    }

    async exportSessions(req: any) {
        const streamId: string | undefined = req.stream_id ?? undefined
        let sessions: GroupEncryptionSession[] = []
        if (streamId !== undefined) streamArg(req)
        if (req.session_ids != null) {
            if (!streamId) bad('session_ids needs stream_id')
            for (const id of strList(req, 'session_ids')) {
                const s = await this.c.exportGroupSession(streamId!, id)
                if (s) sessions.push(s)
            }
        } else {
            sessions = (await this.c.exportRoomKeys()).filter((s) => !streamId || s.streamId === streamId)
        }
        return { sessions: sessions.map((s) => ({ streamId: s.streamId, sessionId: s.sessionId, sessionKey: s.sessionKey, algorithm: s.algorithm })) }
    }

    async importSessions(req: any) {
        const imported: string[] = []
        const failed: string[] = []
        for (const s of list(req, 'sessions')) {
            if (typeof s !== 'object' || s === null) bad('each session must be an object')
            const ok = s.streamId && s.algorithm ? await importOne(this.c, s.streamId, s).catch(() => false) : false
            ;(ok ? imported : failed).push(s.sessionId ?? '')
        }
        return { imported, failed }
    }

    async share(req: any) {
        const streamId = streamArg(req)
        const algorithm = algorithmArg(req)
        const devices = devicesArg(req)
        const sessions: GroupEncryptionSession[] = []
        for (const id of strList(req, 'session_ids')) {
            const s = await this.c.exportGroupSession(streamId, id)
            if (!s || s.algorithm !== algorithm) throw new DriverError('SESSION_NOT_FOUND', `no ${algorithm} session ${shown(String(id))}`)
            sessions.push(s)
        }
        let message
        try {
            message = await buildShare(this.c, streamId, algorithm, sessions, devices)
        } catch (e: any) {
            return bad(`olm refused a device's keys: ${e?.message ?? e}`)
        }
        return { group_encryption_sessions_pb: toB64(toBinary(UserInboxPayload_GroupEncryptionSessionsSchema, message)) }
    }

    async receive(req: any) {
        const m = pbArg<any>(UserInboxPayload_GroupEncryptionSessionsSchema, req, 'group_encryption_sessions_pb')
        return { imported: await receiveSessions(this.c, m) }
    }

    async encryptToDevices(req: any) {
        const payload = str(req, 'payload')
        const own = this.c.getUserDevice().deviceKey
        try {
            return { ciphertexts: await this.c.encryptWithDeviceKeys(payload, devicesArg(req).filter((d) => d.deviceKey !== own)) }
        } catch (e: any) {
            if (String(e?.message ?? e).toLowerCase().includes('message too long')) throw e
            return bad(`olm refused a device's keys: ${e?.message ?? e}`)
        }
    }

    async solicit(req: any) {
        const streamId = streamArg(req)
        const missing = list(req, 'missing_session_ids') as string[]
        if (missing.some((x) => typeof x !== 'string')) bad('missing_session_ids must hold strings')
        missing.forEach((x) => noNul(x, 'missing_session_ids'))
        const pending = req.pending_pb != null ? [pbArg<MemberPayload_KeySolicitation>(MemberPayload_KeySolicitationSchema, req, 'pending_pb')] : []
        const held = (await this.c.getGroupSessionIds(streamId)).length
        const d = decideSolicitation(missing, held, pending)
        if (!d) return { key_solicitation_pb: null }
        const dev = this.c.getUserDevice()
        const s = create(MemberPayload_KeySolicitationSchema, { deviceKey: dev.deviceKey, fallbackKey: dev.fallbackKey, ...d })
        return { key_solicitation_pb: toB64(toBinary(MemberPayload_KeySolicitationSchema, s)) }
    }

    async answer(req: any) {
        const streamId = streamArg(req)
        const fromUserId = userArg(req, 'from_user_id')
        const sol = pbArg<MemberPayload_KeySolicitation>(MemberPayload_KeySolicitationSchema, req, 'key_solicitation_pb')
        if (typeof req.requester_entitled !== 'boolean') bad('requester_entitled must be a boolean')
        const none = { key_fulfillment_pb: null, group_encryption_sessions_pb: [] }
        const known: Record<string, string> = {}
        for (const algorithm of [GroupEncryptionAlgorithmId.GroupEncryption, GroupEncryptionAlgorithmId.HybridGroupEncryption]) {
            for (const id of await (this.c.groupDecryption as any)[algorithm].exportGroupSessionIds(streamId)) known[id] = algorithm
        }
        const d = decideAnswer(known, this.c.getUserDevice().deviceKey, sol, req.requester_entitled)
        if (!d) return none
        const fulfillment = create(MemberPayload_KeyFulfillmentSchema, {
            userAddress: /^(0x)?([0-9a-fA-F]{2})+$/.test(fromUserId) ? fromHex(fromUserId, 'from_user_id') : new TextEncoder().encode(fromUserId),
            deviceKey: sol.deviceKey,
            sessionIds: d.fulfilledSessionIds,
        })
        const shares: string[] = []
        for (const share of d.shares) {
            const sessions: GroupEncryptionSession[] = []
            for (const id of share.sessionIds) {
                const s = await this.c.exportGroupSession(streamId, id)
                if (s) sessions.push(s)
            }
            const m = await buildShare(this.c, streamId, share.algorithm as GroupEncryptionAlgorithmId, sessions, [
                { deviceKey: sol.deviceKey, fallbackKey: sol.fallbackKey },
            ]).catch(() => undefined)
            if (m && Object.keys(m.ciphertexts).length > 0) shares.push(toB64(toBinary(UserInboxPayload_GroupEncryptionSessionsSchema, m)))
        }
        return { key_fulfillment_pb: toB64(toBinary(MemberPayload_KeyFulfillmentSchema, fulfillment)), group_encryption_sessions_pb: shares }
    }
}

// Silence the client's debug logging on stdout: replies own stdout.
console.log = (...args: any[]) => process.stderr.write(args.join(' ') + '\n')
console.info = console.log
console.debug = console.log

const driver = new Driver()
const reply = (obj: any) => process.stdout.write(JSON.stringify(obj) + '\n')
const MAX_MESSAGE_BYTES = 512
const errorReply = (id: number | null, code: string, message: string) =>
    reply({ id, ok: false, error: { code, message: shown(message, MAX_MESSAGE_BYTES) } })

async function handleLine(line: string, tooLong: boolean) {
    if (tooLong) {
        errorReply(null, 'LIMIT_EXCEEDED', `the line is longer than ${limits.maxLineBytes} bytes (--max-line-bytes)`)
        return
    }
    if (line.trim() === '') return
    if (line.includes('\0')) {
        errorReply(null, 'INVALID_ARGUMENT', 'the line holds a NUL byte')
        return
    }
    if (jsonDepth(line) > limits.maxDepth) {
        errorReply(null, 'LIMIT_EXCEEDED', `the request nests deeper than ${limits.maxDepth} levels`)
        return
    }
    let req: any
    try {
        req = JSON.parse(line)
    } catch {
        req = undefined
    }
    if (typeof req !== 'object' || req === null || Array.isArray(req)) {
        errorReply(null, 'INVALID_ARGUMENT', 'the line is not a JSON object')
        return
    }
    // A list over the limit is refused as towns-e2ee driver refuses it, while
    // parsing, so with no id.
    try {
        checkRequestLists(req)
    } catch (e: any) {
        errorReply(null, codeOf(e, driver.context), String(e?.message ?? e))
        return
    }
    const id = Number.isInteger(req.id) ? req.id : null
    try {
        if (typeof req.cmd !== 'string') bad('missing cmd')
        if (req.cmd === 'quit') {
            await driver.save()
            reply({ id, ok: true })
            process.exit(0)
        }
        const result = await driver.handle(req.cmd, req)
        await driver.save()
        reply({ id, ok: true, ...result })
    } catch (e: any) {
        errorReply(id, codeOf(e, driver.context), String(e?.message ?? e))
    }
}

// Lines of stdin, keeping at most maxLineBytes of each: the rest of a longer
// line is dropped as it arrives, never buffered.
let queue = Promise.resolve()
let pieces: Buffer[] = []
let held = 0
let tooLong = false
function endLine() {
    const line = Buffer.concat(pieces).toString('utf8')
    const over = tooLong
    pieces = []
    held = 0
    tooLong = false
    queue = queue.then(() => handleLine(line, over))
}
function take(piece: Buffer) {
    if (tooLong || piece.length === 0) return
    if (held + piece.length > limits.maxLineBytes) {
        tooLong = true
        pieces = []
        held = 0
        return
    }
    pieces.push(piece)
    held += piece.length
}
process.stdin.on('data', (chunk: Buffer) => {
    let start = 0
    for (;;) {
        const nl = chunk.indexOf(0x0a, start)
        if (nl < 0) break
        take(chunk.subarray(start, nl))
        endLine()
        start = nl + 1
    }
    take(Buffer.from(chunk.subarray(start)))
})
process.stdin.on('end', () => {
    if (held > 0 || tooLong) endLine()
    queue.then(() => driver.save()).then(() => process.exit(0))
})
