// Operations on the canonical client shared by driver.ts and verify_vectors.ts:
// the error mapping, receiving GroupEncryptionSessions (after the 0.0.455 SDK's
// processNewGroupSession), importing one key, building a share, and the
// section 9 decisions (after the 0.0.455 SDK's decryption extensions).
import { create, fromJsonString, toJsonString } from '@bufbuild/protobuf'
import { SessionKeysSchema, UserInboxPayload_GroupEncryptionSessionsSchema } from '@towns-protocol/proto'
import {
    GroupEncryptionAlgorithmId,
    GroupEncryptionCrypto,
    parseGroupEncryptionAlgorithmId,
    type GroupEncryptionSession,
} from '@towns-protocol/encryption'

export class DriverError extends Error {
    constructor(public code: string, message: string) {
        super(message)
    }
}

export type Context = 'decrypt' | 'import' | 'other'

// Maps what the client throws to the driver's (and the vectors') codes.
export function codeOf(e: any, context: Context): string {
    if (e instanceof DriverError) return e.code
    if (e?.name === 'DecryptionError' && typeof e.code === 'string') return e.code
    const m = String(e?.message ?? e).toLowerCase()
    if (m.includes('session not found')) return 'SESSION_NOT_FOUND'
    if (m.includes('message too long')) return 'PAYLOAD_TOO_LARGE'
    if (m.includes('cannot be empty')) return 'EMPTY_PAYLOAD'
    if (context === 'import') return 'IMPORT_FAILED'
    if (context === 'decrypt') return 'DECRYPTION_FAILED'
    return 'INVALID_ARGUMENT'
}

export const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex')
export const fromHexLoose = (s: string) => new Uint8Array(Buffer.from(s.replace(/^0x/, ''), 'hex'))

// Imports one key under streamId; true when the session is held afterwards.
export async function importOne(c: GroupEncryptionCrypto, streamId: string, s: GroupEncryptionSession): Promise<boolean> {
    const parsed = parseGroupEncryptionAlgorithmId(s.algorithm ?? '', undefined as any)
    if (parsed.kind !== 'matched') return false
    try {
        await (c.groupDecryption as any)[parsed.value].importStreamKey(streamId, s)
    } catch {
        return false
    }
    return c.hasSessionKey(streamId, s.sessionId, parsed.value)
}

export async function buildShare(c: GroupEncryptionCrypto, streamId: string, algorithm: GroupEncryptionAlgorithmId,
                                 sessions: GroupEncryptionSession[], devices: { deviceKey: string; fallbackKey: string }[]) {
    const own = c.getUserDevice().deviceKey
    const cleartext = toJsonString(SessionKeysSchema, create(SessionKeysSchema, { keys: sessions.map((s) => s.sessionKey) }))
    const ciphertexts = await c.encryptWithDeviceKeys(cleartext, devices.filter((d) => d.deviceKey !== own))
    return create(UserInboxPayload_GroupEncryptionSessionsSchema, {
        streamId: fromHexLoose(streamId), senderKey: own, sessionIds: sessions.map((s) => s.sessionId),
        ciphertexts, algorithm,
    })
}

// Returns the newly held session ids.
export async function receiveSessions(c: GroupEncryptionCrypto, m: any): Promise<string[]> {
    const streamId = toHex(m.streamId)
    const ciphertext = m.ciphertexts[c.getUserDevice().deviceKey]
    if (!ciphertext) return []
    const parsed = parseGroupEncryptionAlgorithmId(m.algorithm, GroupEncryptionAlgorithmId.GroupEncryption)
    if (parsed.kind === 'unrecognized') return []
    const algorithm = parsed.value
    const needed: number[] = []
    for (let i = 0; i < m.sessionIds.length; i++) {
        if (!(await c.hasSessionKey(streamId, m.sessionIds[i], algorithm))) needed.push(i)
    }
    if (needed.length === 0) return []
    let cleartext: string
    try {
        cleartext = await c.decryptWithDeviceKey(ciphertext, m.senderKey)
    } catch (e: any) {
        throw new DriverError('DECRYPTION_FAILED', String(e?.message ?? e))
    }
    let keys: string[]
    try {
        keys = fromJsonString(SessionKeysSchema, cleartext).keys
    } catch {
        throw new DriverError('IMPORT_FAILED', 'the shared cleartext is not SessionKeys JSON')
    }
    if (keys.length !== m.sessionIds.length) throw new DriverError('IMPORT_FAILED', 'key count differs from id count')
    const imported: string[] = []
    for (const i of needed) {
        const s = { streamId, sessionId: m.sessionIds[i], sessionKey: keys[i], algorithm }
        if (await importOne(c, streamId, s)) imported.push(s.sessionId)
    }
    return imported
}

const sortIds = (ids: string[]) => [...ids].sort()
const sameIds = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i])

// Requesting: null when nothing is asked for.
export function decideSolicitation(missing: string[], held: number, pending: { isNewDevice: boolean; sessionIds: string[] }[]) {
    const ids = sortIds([...new Set(missing)]).slice(0, 100)
    if (ids.length === 0) return null
    // The SDK looks at the first pending one only, its ids as given.
    const p = pending[0]
    if (p && (p.isNewDevice || sameIds(p.sessionIds, ids))) return null
    return { isNewDevice: held === 0, sessionIds: ids }
}

// Answering: known maps held session ids to their algorithm; null when we stop.
export function decideAnswer(known: Record<string, string>, ownDeviceKey: string,
                             sol: { deviceKey: string; isNewDevice: boolean; sessionIds: string[] }, entitled: boolean) {
    if (sol.deviceKey === ownDeviceKey || sol.sessionIds.length === 0) return null
    const requested = new Set(sol.sessionIds)
    const reply = sortIds(Object.keys(known)).filter((x) => sol.isNewDevice || requested.has(x))
    if (reply.length === 0 || !entitled) return null
    const fulfilled = reply.filter((x) => requested.has(x))
    const shares: { algorithm: string; sessionIds: string[] }[] = []
    // Grouped by algorithm in the order each first appears (the SDK's reduce over the sorted reply).
    for (const algorithm of [...new Set(reply.map((x) => known[x]))]) {
        const ids = reply.filter((x) => known[x] === algorithm)
        for (let i = 0; i < ids.length; i += 100) shares.push({ algorithm, sessionIds: ids.slice(i, i + 100) })
    }
    return { fulfilledSessionIds: fulfilled.length > 0 ? fulfilled : reply, shares }
}
