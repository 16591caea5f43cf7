// The performance workloads of docs/performance.md on the canonical client
// (@towns-protocol/encryption 0.0.455 with its in-memory store), each family at
// its headline size or at the sizes --run names (as `towns-e2ee bench` does;
// the store family is ours alone). One JSON object per measurement:
// {"workload", "family", "size", "ops_per_s"}.
//   ../../tools/node/env node --import tsx bench.ts [--quick] [--only <words>] [--run <family:size,...>]

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
const valueOf = (flag: string) => {
    const at = process.argv.indexOf(flag)
    return at > 0 ? process.argv[at + 1] : undefined
}
const only = valueOf('--only')?.split(',').filter((x) => x)
const runs = valueOf('--run')?.split(',').filter((x) => x).map((item) => {
    const [family, size] = item.split(':')
    if (!/^[1-9][0-9]*$/.test(size ?? '')) throw new Error(`--run wants family:size, not ${item}`)
    return { family, size: Number(size) }
})
const streamId = (n: number) => '20' + 'b'.repeat(56) + n.toString(16).padStart(6, '0')
const kib = () => new Uint8Array(1024).fill(0x5a)
const payloadOf = (bytes: number) => new Uint8Array(bytes).fill(0x5a)
// 100b, 1k, 10k, 32k
const payloadName = (bytes: number) => (bytes % 1024 === 0 ? `${bytes / 1024}k` : `${bytes}b`)
// As towns-e2ee bench: base events up to 1 KiB, then as many as make the same bytes, at least base / 50.
const eventsFor = (base: number, bytes: number) =>
    bytes <= 1024 ? base : Math.max(Math.floor(base / 50), Math.floor((base * 1024) / bytes))
const miniblock = { miniblockNum: 1n, miniblockHash: new Uint8Array(32).fill(1) }
const client = {
    encryptAndShareGroupSessionsToStream: async () => {},
    getMiniblockInfo: async () => miniblock,
} as any

// The in-memory store keeps at most 5,000 entries per table (an LRU). A
// workload that must hold more sessions raises that bound through the store's
// constructor; below it the store is built exactly as the SDK builds it.
const DEFAULT_MAX_ENTRIES = 5000
async function device(name: string, holds = 0) {
    const store = holds > DEFAULT_MAX_ENTRIES ? new CryptoStoreInMemory(name, holds + 100) : new CryptoStoreInMemory(name)
    const c = new GroupEncryptionCrypto(client, store)
    await c.init()
    return c
}

async function rate(n: number, fn: (i: number) => Promise<unknown>) {
    const t = performance.now()
    for (let i = 0; i < n; i++) await fn(i)
    return (n * 1000) / (performance.now() - t)
}

async function megolmEncrypt(bytes: number, n: number) {
    const c = await device('enc')
    await c.ensureOutboundSession(streamId(1), MEGOLM, { shareShareSessionTimeoutMs: 0 } as any)
    const payload = payloadOf(bytes)
    return rate(n, () => c.encryptGroupEvent(streamId(1), payload, MEGOLM))
}

async function decryptWorkload(bytes: number, n: number, algorithm: GroupEncryptionAlgorithmId) {
    const sender = await device('s')
    const receiver = await device('r')
    await sender.ensureOutboundSession(streamId(1), algorithm, { shareShareSessionTimeoutMs: 0, miniblockInfo: miniblock } as any)
    const events = []
    for (let i = 0; i < n; i++) events.push(await sender.encryptGroupEvent(streamId(1), payloadOf(bytes), algorithm))
    await receiver.importSessionKeys(streamId(1), await sender.exportRoomKeys())
    return rate(n, (i) => receiver.decryptGroupEvent(streamId(1), events[i]))
}

async function grpaesEncrypt(bytes: number, n: number) {
    const c = await device('h')
    await c.ensureOutboundSession(streamId(1), HYBRID, { shareShareSessionTimeoutMs: 0, miniblockInfo: miniblock } as any)
    const payload = payloadOf(bytes)
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

// Target devices, made once per process and sliced for each size (setup).
const pool: { deviceKey: string; fallbackKey: string }[] = []
async function targetsOf(n: number) {
    if (pool.length < n) pool.push(...(await devices(n - pool.length)))
    return pool.slice(0, n)
}

async function share(n: number, rounds: number) {
    const c = await device('share')
    await c.ensureOutboundSession(streamId(1), MEGOLM, { shareShareSessionTimeoutMs: 0 } as any)
    const sessions = await c.exportRoomKeys()
    const targets = await targetsOf(n)
    return (await rate(rounds, () => buildShare(c, streamId(1), MEGOLM, sessions, targets))) * n
}

async function receive(n: number) {
    const sender = await device('s', n)
    const receiver = await device('r', n)
    const target = [receiver.getUserDevice()]
    const messages = []
    for (let i = 0; i < n; i++) {
        const id = await sender.ensureOutboundSession(streamId(i), MEGOLM, { shareShareSessionTimeoutMs: 0 } as any)
        // The one session of stream i (exporting all sessions each time made this setup quadratic).
        const s = [(await sender.exportGroupSession(streamId(i), id))!]
        messages.push(await buildShare(sender, streamId(i), MEGOLM, s, target))
    }
    return rate(n, (i) => receiveSessions(receiver, messages[i]))
}

async function sessionsOf(n: number, stream: string) {
    // n sessions of one stream: made on n streams by one sender, imported under one.
    const sender = await device('many', n)
    for (let i = 0; i < n; i++) await sender.ensureOutboundSession(streamId(1000 + i), MEGOLM, { shareShareSessionTimeoutMs: 0 } as any)
    return (await sender.exportRoomKeys()).map((s) => ({ ...s, streamId: stream }))
}

async function answer(n: number, rounds: number) {
    const c = await device('answer', n)
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
    if (events % sessions !== 0) throw new Error('backlog: events must be a multiple of sessions')
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

// As towns-e2ee bench's: 3 x 1,000 devices or sessions in all from 1,000 up
// (at least one repetition), 1,000 below and with --quick.
const reps = (size: number) => Math.max(1, Math.floor((quick || size < 1000 ? 1000 : 3000) / size))

type Family = { key: string; name: (size: number) => string; size: number; quickSize: number; run: (size: number) => Promise<number> }
const families: Family[] = [
    { key: 'megolm_encrypt', name: (b) => `megolm_encrypt_${payloadName(b)}`, size: 1024, quickSize: 1024,
      run: (b) => megolmEncrypt(b, eventsFor(quick ? 1000 : 5000, b)) },
    { key: 'megolm_decrypt', name: (b) => `megolm_decrypt_${payloadName(b)}`, size: 1024, quickSize: 1024,
      run: (b) => decryptWorkload(b, eventsFor(quick ? 1000 : 5000, b), MEGOLM) },
    { key: 'grpaes_encrypt', name: (b) => `grpaes_encrypt_${payloadName(b)}`, size: 1024, quickSize: 1024,
      run: (b) => grpaesEncrypt(b, eventsFor(quick ? 2000 : 10000, b)) },
    { key: 'grpaes_decrypt', name: (b) => `grpaes_decrypt_${payloadName(b)}`, size: 1024, quickSize: 1024,
      run: (b) => decryptWorkload(b, eventsFor(quick ? 2000 : 10000, b), HYBRID) },
    { key: 'share', name: (n) => `share_session_to_${n}_devices`, size: 1000, quickSize: 1000, run: (n) => share(n, reps(n)) },
    { key: 'receive', name: (n) => `receive_${n}_group_encryption_sessions`, size: 1000, quickSize: 300, run: (n) => receive(n) },
    { key: 'answer', name: (n) => `answer_new_device_solicitation_${n}_sessions`, size: 1000, quickSize: 1000,
      run: (n) => answer(n, reps(n)) },
    { key: 'backlog', name: (n) => `decrypt_backlog_${n}_events_100_sessions_cold`, size: 10000, quickSize: 2000,
      run: (n) => backlog(n, 100) },
]

const plan = runs ?? families.map((f) => ({ family: f.key, size: quick ? f.quickSize : f.size }))
for (const { family, size } of plan) {
    const f = families.find((x) => x.key === family)
    if (!f) {
        if (family === 'store') continue // ours alone: the client's store is in memory
        throw new Error(`no workload family ${family}`)
    }
    const name = f.name(size)
    if (only && !only.some((o) => family.includes(o) || name.includes(o))) continue
    const opsPerS = await f.run(size)
    process.stdout.write(JSON.stringify({ workload: name, family, size, ops_per_s: opsPerS }) + '\n')
}
process.exit(0) // timers the client leaves behind (share timeouts) would hold the process for 30 s
