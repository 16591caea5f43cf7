// The key exchange engine commands of the driver protocol (docs/driver.md,
// version 2) on the canonical SDK itself: @towns-protocol/sdk 0.0.455's
// ClientDecryptionExtensions (its BaseDecryptionExtensions engine and the
// client's host methods), StreamStateView_Members_Solicitations for the stored
// solicitations of each stream, StreamStateView's rule for who is entitled to
// key exchange, and the Client's own methods that share sessions to devices and
// streams. What is simulated is what is around them: the node (streams,
// membership, what is accepted), the published devices, on-chain entitlement,
// and the crypto backend, which models the sessions held by id (the engine
// only ever asks it which sessions are held, to decrypt and import session
// keys, and to export sessions).
//
// Time is @sinonjs/fake-timers' clock (Date, setTimeout), moved only by
// engine_advance; Math.random, as the SDK calls it for a response delay, is fed
// the timeline's values in order.
import FakeTimers from '@sinonjs/fake-timers'
import debug from 'debug'
import { fromBinary, fromJsonString, toJsonString } from '@bufbuild/protobuf'
import {
    EncryptedDataSchema,
    MemberPayload_KeyFulfillmentSchema,
    MemberPayload_KeySolicitationSchema,
    SessionKeysSchema,
    UserInboxPayload_GroupEncryptionSessionsSchema,
} from '@towns-protocol/proto'

type Sdk = {
    ClientDecryptionExtensions: any
    StreamStateView_Members_Solicitations: any
    StreamStateView: any
    Client: any
}
let sdk: Sdk | undefined
async function loadSdk(): Promise<Sdk> {
    // The SDK's own logging (on by default) stays off unless asked for.
    if (!process.env.TOWNS_ENGINE_LOG) {
        ;(debug as any).log = () => {}
        console.log = console.info = console.debug = () => {}
    }
    if (!sdk) {
        const [a, b, c, d] = await Promise.all([
            import('@towns-protocol/sdk/dist/clientDecryptionExtensions.js'),
            import('@towns-protocol/sdk/dist/streamStateView_Members_Solicitations.js'),
            import('@towns-protocol/sdk/dist/streamStateView.js'),
            import('@towns-protocol/sdk/dist/client.js'),
        ])
        sdk = {
            ClientDecryptionExtensions: a.ClientDecryptionExtensions,
            StreamStateView_Members_Solicitations: b.StreamStateView_Members_Solicitations,
            StreamStateView: c.StreamStateView,
            Client: d.Client,
        }
    }
    return sdk
}

export class EngineError extends Error {
    constructor(
        public code: string,
        message: string,
    ) {
        super(message)
    }
}
const bad = (m: string): never => {
    throw new EngineError('INVALID_ARGUMENT', m)
}
const fromB64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'))
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const byteSort = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b))

type Member = { userId: string; solicitations: any[] }
type Membership = 'join' | 'pending_join' | 'invite' | 'leave'

// One stream as the node and the stream state view hold it.
class WorldStream {
    joined = new Map<string, Member>() // appended joins (confirmed or not), with their solicitations
    joinedUsers = new Set<string>()
    pendingJoinedUsers = new Set<string>()
    invitedUsers = new Set<string>()
    leftUsers = new Set<string>()
    fulfilled = new Set<string>() // what the node has accepted, to refuse duplicates
    solicitations: any
    constructor(
        public streamId: string,
        public contentKind: string,
        public spaceId: string,
        S: Sdk,
    ) {
        this.solicitations = new S.StreamStateView_Members_Solicitations(streamId)
        this.solicitations.initSolicitations('snapshot', [], { event: new Uint8Array(), hash: new Uint8Array() })
    }
    // The SDK's StreamStateView_Members sets, for the view stub.
    members() {
        return {
            joined: this.joined,
            joinedParticipants: () => this.joinedUsers,
            joinedOrPendingJoinedParticipants: () => new Set([...this.joinedUsers, ...this.pendingJoinedUsers]),
            participants: () => new Set([...this.joinedUsers, ...this.invitedUsers, ...this.leftUsers]),
        }
    }
}

type Output = Record<string, unknown>

export class SdkEngine {
    private clock: any
    private streams = new Map<string, WorldStream>()
    private devices = new Map<string, { deviceKey: string; fallbackKey: string }[]>()
    private invalidKeys = new Set<string>()
    private onChainRead = new Map<string, boolean>() // stream|user -> Read
    private held = new Map<string, Map<string, { sessionKey: string; algorithm: string }>>()
    private cleartexts = new Map<string, string>() // olm ciphertext body -> SessionKeys JSON
    private outputs: Output[] = []
    private randoms: number[] = []
    private randomAt = 0
    private feedRandom = false
    private realRandom = Math.random
    private listeners = new Map<string, Set<(...a: any[]) => void>>()
    private ext: any
    private client: any
    private userId = ''
    private device = { deviceKey: '', fallbackKey: '' }
    private newSessionCount = 0
    private outbound = new Map<string, string>() // stream|algorithm -> session id
    private S!: Sdk

    async start(req: any): Promise<Output> {
        this.S = await loadSdk()
        const S = this.S
        this.userId = req.user_id ?? bad('missing user_id')
        this.device = { deviceKey: req.device_key ?? bad('missing device_key'), fallbackKey: req.fallback_key ?? '' }
        for (const s of req.streams ?? []) {
            const kind = { channel: 'channelContent', space: 'spaceContent', dm: 'dmChannelContent', gdm: 'gdmChannelContent' }[
                s.kind as string
            ]
            if (!kind) bad(`unknown stream kind ${s.kind}`)
            this.streams.set(s.stream_id, new WorldStream(s.stream_id, kind!, s.space_id ?? '', S))
        }
        for (const u of req.users ?? []) {
            this.devices.set(
                u.user_id,
                (u.devices ?? []).map((d: any) => {
                    if (d.invalid) this.invalidKeys.add(d.device_key)
                    return { deviceKey: d.device_key, fallbackKey: d.fallback_key }
                }),
            )
        }
        for (const m of req.members ?? []) this.applyMembership(m.stream_id, m.user_id, m.membership, false)
        for (const e of req.entitlements ?? []) this.onChainRead.set(`${e.stream_id}|${e.user_id}`, e.read === true)
        for (const s of req.held ?? []) this.hold(s.streamId, s.sessionId, s.sessionKey, s.algorithm)
        this.randoms = (req.random ?? []).map((x: number) => x / 4294967296)

        this.clock = FakeTimers.install({ now: Number(req.now_ms ?? 0), toFake: ['setTimeout', 'clearTimeout', 'Date', 'setInterval', 'clearInterval'] })
        Math.random = () => {
            if (!this.feedRandom) return this.realRandom()
            if (this.randoms.length === 0) return 0
            return this.randoms[this.randomAt++ % this.randoms.length]
        }
        this.client = this.makeClient()
        const crypto = this.makeCrypto()
        const entitlementDelegate = {
            isEntitled: async (_spaceId: string, streamId: string, userId: string) =>
                this.onChainRead.get(`${streamId}|${userId}`) ?? true,
        }
        const self = this
        class Harnessed extends S.ClientDecryptionExtensions {
            getRespondDelayMSForKeySolicitation(streamId: string, userId: string, opts: any) {
                self.feedRandom = true
                try {
                    return super.getRespondDelayMSForKeySolicitation(streamId, userId, opts)
                } finally {
                    self.feedRandom = false
                }
            }
        }
        this.ext = new Harnessed(
            this.client,
            crypto,
            entitlementDelegate,
            this.userId,
            this.device,
            undefined,
            'diff',
            { enableEphemeralKeySolicitations: req.ephemeral !== false },
        )
        if (typeof req.ephemeral_timeout_ms === 'number') this.ext.ephemeralTimeoutMs = req.ephemeral_timeout_ms
        this.ext.start()
        await this.settle()
        return {}
    }

    async stop(): Promise<void> {
        if (this.ext) {
            try {
                await Promise.race([this.ext.stop(), Promise.resolve()])
            } catch {
                /* stopping is best effort */
            }
        }
        Math.random = this.realRandom
        this.clock?.uninstall()
        this.clock = undefined
        this.ext = undefined
    }

    // ---- the world around the engine

    private emit(event: string, ...args: any[]) {
        for (const f of this.listeners.get(event) ?? []) f(...args)
    }

    private stream(id: string): WorldStream {
        return this.streams.get(id) ?? bad(`unknown stream ${id}`)
    }

    private applyMembership(streamId: string, userId: string, op: Membership, emit: boolean) {
        const s = this.stream(streamId)
        switch (op) {
            case 'join':
            case 'pending_join':
                if (!s.joined.has(userId)) s.joined.set(userId, { userId, solicitations: [] })
                if (op === 'pending_join') {
                    s.pendingJoinedUsers.add(userId)
                } else {
                    s.pendingJoinedUsers.delete(userId)
                    s.leftUsers.delete(userId)
                    if (!s.joinedUsers.has(userId)) {
                        s.joinedUsers.add(userId)
                        if (emit) this.emit('streamNewUserJoined', streamId, userId)
                    }
                }
                break
            case 'invite':
                s.invitedUsers.add(userId)
                break
            case 'leave':
                s.joined.delete(userId)
                s.joinedUsers.delete(userId)
                s.invitedUsers.delete(userId)
                s.pendingJoinedUsers.delete(userId)
                s.leftUsers.add(userId)
                break
            default:
                bad(`unknown membership ${op}`)
        }
    }

    private hold(streamId: string, sessionId: string, sessionKey: string, algorithm: string) {
        let m = this.held.get(streamId)
        if (!m) this.held.set(streamId, (m = new Map()))
        m.set(sessionId, { sessionKey, algorithm })
    }

    private record(o: Output) {
        this.outputs.push({ at_ms: Date.now(), ...o })
    }

    // The node: a stored solicitation or fulfillment from anyone (our engine
    // included) is applied to the stream state, which tells the engine.
    private postSolicitation(streamId: string, userId: string, sol: any, ephemeral: boolean): boolean {
        const s = this.stream(streamId)
        if (ephemeral) {
            this.emit("newKeySolicitation", streamId, "ev", userId, sol, undefined, true)
            return true
        }
        const member = s.joined.get(userId)
        if (!member) return false // key solicitation from non-member: refused
        s.solicitations.applySolicitation(member, 'ev', sol, undefined, {
            emit: (...a: any[]) => this.emit(a[0], ...a.slice(1)),
        })
        return true
    }

    private postFulfillment(streamId: string, fromUserId: string, f: any, ephemeral: boolean): boolean {
        const s = this.stream(streamId)
        const key = `${ephemeral ? 'e' : 's'}|${f.deviceKey}|${[...f.sessionIds].sort(byteSort).join(',')}`
        if (s.fulfilled.has(key)) return false
        s.fulfilled.add(key)
        const requester = '0x' + toHex(f.userAddress)
        if (ephemeral) {
            this.emit('ephemeralKeyFulfillment', {
                streamId,
                userId: requester,
                deviceKey: f.deviceKey,
                sessionIds: f.sessionIds,
                senderUserId: fromUserId,
            })
            return true
        }
        const member = s.joined.get(requester)
        if (!member) return true // applied to nobody (the SDK's view would throw; the node accepted it)
        s.solicitations.applyFulfillment(member, f, { emit: (...a: any[]) => this.emit(a[0], ...a.slice(1)) })
        return true
    }

    private makeClient() {
        const S = this.S
        const w = this
        const client: any = {
            userId: this.userId,
            userInboxStreamId: 'a1' + this.userId.replace(/^0x/, ''),
            // Every stream is up to date, the user's inbox stream included.
            streams: {
                getStreams: () =>
                    [...w.streams.keys(), 'a1' + w.userId.replace(/^0x/, '')].map((streamId) => ({ streamId, isUpToDate: true })),
            },
            on: (e: string, f: any) => {
                if (!w.listeners.has(e)) w.listeners.set(e, new Set())
                w.listeners.get(e)!.add(f)
            },
            off: (e: string, f: any) => w.listeners.get(e)?.delete(f),
            emit: () => false,
            stream: (streamId: string) => {
                const s = w.streams.get(streamId)
                if (!s) return undefined
                const view: any = {
                    isInitialized: true,
                    contentKind: s.contentKind,
                    channelContent: { spaceId: s.spaceId },
                    getMembers: () => s.members(),
                }
                view.getUsersEntitledToKeyExchange = S.StreamStateView.prototype.getUsersEntitledToKeyExchange.bind(view)
                view.userIsEntitledToKeyExchange = S.StreamStateView.prototype.userIsEntitledToKeyExchange.bind(view)
                return {
                    view,
                    updateDecryptedContentError: (eventId: string, err: any) =>
                        w.record({ kind: 'decryption_error', stream_id: streamId, event_id: eventId, missing_session: err.missingSession === true }),
                }
            },
            decryptGroupEvent: async (streamId: string, eventId: string, _kind: string, data: any) => {
                const sessionId = data.sessionId && data.sessionId.length > 0 ? data.sessionId : toHex(data.sessionIdBytes)
                if (!w.held.get(streamId)?.has(sessionId)) throw new Error('Session not found')
                w.record({ kind: 'decrypted', stream_id: streamId, event_id: eventId })
            },
            downloadNewInboxMessages: async () => {},
            ackInboxStream: async () => {},
            setPendingUsernames: async () => {},
            uploadDeviceKeys: async () => {},
            makeEventAndAddToStream: async (streamId: string, payload: any, opts: { ephemeral?: boolean }) => {
                const ephemeral = opts?.ephemeral === true
                const content = payload.value.content
                if (content.case === 'keySolicitation') {
                    const sol = content.value
                    w.record({
                        kind: 'solicitation',
                        stream_id: streamId,
                        device_key: sol.deviceKey,
                        is_new_device: sol.isNewDevice,
                        session_ids: [...sol.sessionIds],
                        ephemeral,
                    })
                    w.postSolicitation(streamId, w.userId, sol, ephemeral)
                } else if (content.case === 'keyFulfillment') {
                    const f = content.value
                    const accepted = w.postFulfillment(streamId, w.userId, f, ephemeral)
                    w.record({
                        kind: 'fulfillment',
                        stream_id: streamId,
                        user_id: '0x' + toHex(f.userAddress),
                        device_key: f.deviceKey,
                        session_ids: [...f.sessionIds],
                        ephemeral,
                        accepted,
                    })
                    if (!accepted) throw new Error('DUPLICATE_EVENT')
                } else {
                    bad(`unexpected event ${content.case}`)
                }
            },
            downloadSingleUserDeviceInfo: async (userId: string) => ({ devices: w.devices.get(userId) ?? [] }),
            getStreamLastMiniblockHash: async () => ({ hash: new Uint8Array(32), miniblockNum: 1n }),
            makeEventWithHashAndAddToStream: async (toStreamId: string, payload: any) => {
                const g = payload.value.content.value
                w.record({
                    kind: 'share',
                    stream_id: toHex(g.streamId),
                    to_user_id: '0x' + toStreamId.slice(2, 42),
                    algorithm: g.algorithm,
                    session_ids: [...g.sessionIds],
                    device_keys: Object.keys(g.ciphertexts).sort(byteSort),
                })
            },
            logCall: () => {},
            logError: () => {},
            logInfo: () => {},
            cryptoBackend: {
                getUserDevice: () => w.device,
                encryptWithDeviceKeys: async (_payload: string, keys: { deviceKey: string }[]) => {
                    const out: Record<string, string> = {}
                    for (const k of keys) {
                        if (w.invalidKeys.has(k.deviceKey)) throw new Error(`olm refuses device ${k.deviceKey}`)
                        out[k.deviceKey] = 'ct'
                    }
                    return out
                },
            },
        }
        for (const name of [
            'encryptAndShareGroupSessionsToDevice',
            '_encryptAndShareGroupSessionsToDevice',
            '_makeShareGroupSessionsContent',
            'encryptAndShareGroupSessionsToStream',
            'getUsersEntitledToKeyExchange',
            'encryptWithDeviceKeys',
            'userDeviceKey',
        ]) {
            client[name] = S.Client.prototype[name].bind(client)
        }
        return client
    }

    private makeCrypto() {
        const w = this
        return {
            hasSessionKey: async (streamId: string, sessionId: string, _algorithm: string) => w.held.get(streamId)?.has(sessionId) ?? false,
            decryptWithDeviceKey: async (ciphertext: string, _senderKey: string) => {
                const c = w.cleartexts.get(ciphertext)
                if (c === undefined) throw new Error('olm: BAD_MESSAGE_MAC')
                return c
            },
            importSessionKeys: async (streamId: string, sessions: any[]) => {
                for (const s of sessions) w.hold(streamId, s.sessionId, s.sessionKey, s.algorithm)
            },
            getGroupSessionIds: async (streamId: string) => [...(w.held.get(streamId)?.keys() ?? [])],
            exportGroupSession: async (streamId: string, sessionId: string) => {
                const s = w.held.get(streamId)?.get(sessionId)
                return s ? { streamId, sessionId, sessionKey: s.sessionKey, algorithm: s.algorithm } : undefined
            },
        }
    }

    // ---- the commands

    // Lets the engine run everything that is due now.
    private async settle() {
        for (let i = 0; i < 50; i++) await this.clock.tickAsync(0)
    }

    async advance(req: any): Promise<Output> {
        const to = Number(req.to_ms)
        const now = Date.now()
        if (!(to >= now)) bad('to_ms is before now')
        if (to > now) await this.clock.tickAsync(to - now)
        await this.settle()
        return {}
    }

    async input(req: any): Promise<Output> {
        const ev = req.event ?? bad('missing event')
        switch (ev.type) {
            case 'membership':
                this.applyMembership(ev.stream_id, ev.user_id, ev.membership, true)
                break
            case 'encrypted': {
                const data = fromBinary(EncryptedDataSchema, fromB64(ev.encrypted_data_pb))
                this.ext.enqueueNewEncryptedContent(ev.stream_id, ev.event_id, 'text', data)
                break
            }
            case 'new_sessions': {
                const g = fromBinary(UserInboxPayload_GroupEncryptionSessionsSchema, fromB64(ev.group_encryption_sessions_pb))
                const mine = g.ciphertexts[this.device.deviceKey]
                if (mine !== undefined && typeof ev.session_keys_json === 'string') {
                    fromJsonString(SessionKeysSchema, ev.session_keys_json) // well formed
                    this.cleartexts.set(mine, ev.session_keys_json)
                }
                this.ext.enqueueNewGroupSessions(g, ev.from_user_id ?? '')
                break
            }
            case 'solicitation': {
                const sol = fromBinary(MemberPayload_KeySolicitationSchema, fromB64(ev.key_solicitation_pb))
                this.postSolicitation(ev.stream_id, ev.user_id, sol, ev.ephemeral === true)
                break
            }
            case 'fulfillment': {
                const f = fromBinary(MemberPayload_KeyFulfillmentSchema, fromB64(ev.key_fulfillment_pb))
                this.postFulfillment(ev.stream_id, ev.user_id, f, ev.ephemeral === true)
                break
            }
            case 'snapshot': {
                // The stream read again from a snapshot: the stream view hands
                // every joined member's solicitations to the engine.
                const st = this.stream(ev.stream_id)
                st.solicitations.initSolicitations(
                    'snapshot',
                    [...st.joined.values()].map((m) => ({ userId: m.userId, solicitations: m.solicitations })),
                    { event: new Uint8Array(), hash: new Uint8Array() },
                    { emit: (...a: any[]) => this.emit(a[0], ...a.slice(1)) },
                )
                break
            }
            case 'entitlement':
                this.onChainRead.set(`${ev.stream_id}|${ev.user_id}`, ev.read === true)
                break
            case 'send': {
                // Our user sends on the stream: the client creates the stream's
                // outbound session when it has none and shares it with the stream.
                // megolm: the device's own outbound session of the stream;
                // grpaes: any hybrid session held for the stream, received ones
                // too (the encryption package's getHybridGroupSessionKeyForStream).
                const k = `${ev.stream_id}|${ev.algorithm}`
                const hybridHeld =
                    ev.algorithm === 'grpaes' &&
                    [...(this.held.get(ev.stream_id)?.values() ?? [])].some((x) => x.algorithm === 'grpaes')
                if (!this.outbound.has(k) && !hybridHeld) {
                    const sessionId = `new-${++this.newSessionCount}`
                    this.outbound.set(k, sessionId)
                    this.hold(ev.stream_id, sessionId, 'key', ev.algorithm)
                    void this.client.encryptAndShareGroupSessionsToStream(
                        ev.stream_id,
                        [{ streamId: ev.stream_id, sessionId, sessionKey: 'key', algorithm: ev.algorithm }],
                        ev.algorithm,
                        [],
                    )
                }
                break
            }
            default:
                bad(`unknown event type ${ev.type}`)
        }
        await this.settle()
        return {}
    }

    outputsTaken(): Output[] {
        const o = this.outputs
        this.outputs = []
        return o
    }
}

export { toJsonString }
