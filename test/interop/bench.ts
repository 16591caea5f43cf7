// The performance workloads of docs/performance.md on the canonical client
// (@towns-protocol/encryption 0.0.455 with its in-memory store). One JSON
// object per workload: {"workload", "ops_per_s"}.
//   ../../tools/node/env node --import tsx bench.ts [--quick] [--only <workload>]

import Olm from '@towns-protocol/olm'
import {
    CryptoStoreInMemory,
    GroupEncryptionAlgorithmId,
    GroupEncryptionCrypto,
    type GroupEncryptionSession,
} from '@towns-protocol/encryption'
import { buildShare, decideAnswer, receiveSessions } from './client_ops'

console.log = (...args: any[]) => process.stderr.write(args.join(' ') + '\n')
console.info = console.log
console.debug = console.log

const MEGOLM = GroupEncryptionAlgorithmId.GroupEncryption
const HYBRID = GroupEncryptionAlgorithmId.HybridGroupEncryption
const quick = process.argv.includes('--quick')
const onlyAt = process.argv.indexOf('--only')
const only = onlyAt > 0 ? process.argv[onlyAt + 1] : undefined
const streamId = (n: number) => '20' + 'b'.repeat(56) + n.toString(16).padStart(6, '0')
const kib = () => new Uint8Array(1024).fill(0x5a)
const miniblock = { miniblockNum: 1n, miniblockHash: new Uint8Array(32).fill(1) }
const client = {
    encryptAndShareGroupSessionsToStream: async () => {},
    getMiniblockInfo: async () => miniblock,
} as any

async function device(name: string) {
    const c = new GroupEncryptionCrypto(client, new CryptoStoreInMemory(name))
    await c.init()
    return c
}

async function rate(n: number, fn: (i: number) => Promise<unknown>) {
    const t = performance.now()
    for (let i = 0; i < n; i++) await fn(i)
    return (n * 1000) / (performance.now() - t)
}

async function megolmEncrypt(n: number) {
    const c = await device('enc')
    await c.ensureOutboundSession(streamId(1), MEGOLM, { shareShareSessionTimeoutMs: 0 } as any)
    const payload = kib()
    return rate(n, () => c.encryptGroupEvent(streamId(1), payload, MEGOLM))
}

async function decryptWorkload(n: number, algorithm: GroupEncryptionAlgorithmId) {
    const sender = await device('s')
    const receiver = await device('r')
    await sender.ensureOutboundSession(streamId(1), algorithm, { shareShareSessionTimeoutMs: 0, miniblockInfo: miniblock } as any)
    const events = []
    for (let i = 0; i < n; i++) events.push(await sender.encryptGroupEvent(streamId(1), kib(), algorithm))
    await receiver.importSessionKeys(streamId(1), await sender.exportRoomKeys())
    return rate(n, (i) => receiver.decryptGroupEvent(streamId(1), events[i]))
}

async function grpaesEncrypt(n: number) {
    const c = await device('h')
    await c.ensureOutboundSession(streamId(1), HYBRID, { shareShareSessionTimeoutMs: 0, miniblockInfo: miniblock } as any)
    const payload = kib()
    return rate(n, () => c.encryptGroupEvent(streamId(1), payload, HYBRID))
}

let olmModule: any
async function devices(n: number) {
    olmModule ??= await (Olm as any).initAsync()
    const out = []
    for (let i = 0; i < n; i++) {
        const a = new olmModule.Account()
        a.create()
        a.generate_fallback_key()
        const keys = JSON.parse(a.identity_keys())
        const fallback = Object.values(JSON.parse(a.unpublished_fallback_key()).curve25519)[0] as string
        out.push({ deviceKey: keys.curve25519, fallbackKey: fallback })
        a.free()
    }
    return out
}

async function share(n: number, rounds: number) {
    const c = await device('share')
    await c.ensureOutboundSession(streamId(1), MEGOLM, { shareShareSessionTimeoutMs: 0 } as any)
    const sessions = await c.exportRoomKeys()
    const targets = await devices(n)
    return (await rate(rounds, () => buildShare(c, streamId(1), MEGOLM, sessions, targets))) * n
}

async function receive(n: number) {
    const sender = await device('s')
    const receiver = await device('r')
    const target = [receiver.getUserDevice()]
    const messages = []
    for (let i = 0; i < n; i++) {
        await sender.ensureOutboundSession(streamId(i), MEGOLM, { shareShareSessionTimeoutMs: 0 } as any)
        const s = (await sender.exportRoomKeys()).filter((x) => x.streamId === streamId(i))
        messages.push(await buildShare(sender, streamId(i), MEGOLM, s, target))
    }
    return rate(n, (i) => receiveSessions(receiver, messages[i]))
}

async function sessionsOf(n: number, stream: string) {
    // n sessions of one stream: made on n streams by one sender, imported under one.
    const sender = await device('many')
    for (let i = 0; i < n; i++) await sender.ensureOutboundSession(streamId(1000 + i), MEGOLM, { shareShareSessionTimeoutMs: 0 } as any)
    return (await sender.exportRoomKeys()).map((s) => ({ ...s, streamId: stream }))
}

async function answer(n: number, rounds: number) {
    const c = await device('answer')
    await c.importSessionKeys(streamId(1), await sessionsOf(n, streamId(1)))
    const requester = (await devices(1))[0]
    const sol = { deviceKey: requester.deviceKey, fallbackKey: requester.fallbackKey, isNewDevice: true, sessionIds: ['anything'] }
    return rate(rounds, async () => {
        const known: Record<string, string> = {}
        for (const id of await c.getGroupSessionIds(streamId(1))) known[id] = MEGOLM
        const d = decideAnswer(known, c.getUserDevice().deviceKey, sol, true)!
        for (const s of d.shares) {
            const sessions: GroupEncryptionSession[] = []
            for (const id of s.sessionIds) sessions.push((await c.exportGroupSession(streamId(1), id))!)
            await buildShare(c, streamId(1), MEGOLM, sessions, [requester])
        }
    })
}

async function backlog(events: number, sessions: number) {
    const senders = []
    const all = []
    for (let s = 0; s < sessions; s++) {
        const sender = await device('b' + s)
        senders.push(sender)
        for (let i = 0; i < events / sessions; i++) all.push(await sender.encryptGroupEvent(streamId(1), kib(), MEGOLM))
    }
    const keys = []
    for (const s of senders) keys.push(...(await s.exportRoomKeys()))
    const per = events / sessions
    const ordered = []
    for (let i = 0; i < per; i++) for (let s = 0; s < sessions; s++) ordered.push(all[s * per + i])
    const t = performance.now()
    const cold = await device('cold')
    await cold.importSessionKeys(streamId(1), keys)
    for (const e of ordered) await cold.decryptGroupEvent(streamId(1), e)
    return (ordered.length * 1000) / (performance.now() - t)
}

const workloads: [string, () => Promise<number>][] = [
    ['megolm_encrypt_1k', () => megolmEncrypt(quick ? 1000 : 5000)],
    ['megolm_decrypt_1k', () => decryptWorkload(quick ? 1000 : 5000, MEGOLM)],
    ['grpaes_encrypt_1k', () => grpaesEncrypt(quick ? 2000 : 10000)],
    ['grpaes_decrypt_1k', () => decryptWorkload(quick ? 2000 : 10000, HYBRID)],
    ['share_session_to_1000_devices', () => share(1000, quick ? 1 : 3)],
    ['receive_1000_group_encryption_sessions', () => receive(quick ? 300 : 1000)],
    ['answer_new_device_solicitation_1000_sessions', () => answer(1000, quick ? 1 : 3)],
    ['decrypt_backlog_10000_events_100_sessions_cold', () => backlog(quick ? 2000 : 10000, 100)],
]

for (const [name, fn] of workloads) {
    if (only && !name.includes(only)) continue
    const opsPerS = await fn()
    process.stdout.write(JSON.stringify({ workload: name, ops_per_s: opsPerS }) + '\n')
}
process.exit(0) // timers the client leaves behind (share timeouts) would hold the process for 30 s
