// The decisions of protocol.md section 9 as the SDK itself takes them: its own
// methods (BaseDecryptionExtensions.processMissingKeys, enqueueKeySolicitation,
// processKeySolicitation, ClientDecryptionExtensions.getKeySolicitations and
// encryptAndShareGroupSessions) called on a stand-in `this` that answers
// their questions from a vector and records what they would post. client_ops.ts
// has the same rules written out; the vector verifier checks both.
import { BaseDecryptionExtensions, ClientDecryptionExtensions } from '@towns-protocol/sdk'

const quiet = { debug: () => {}, info: () => {}, error: () => {} }
const STREAM = '20' + '00'.repeat(31)

type Pending = { userId?: string; ephemeral?: boolean; deviceKey: string; isNewDevice: boolean; sessionIds: string[] }

// decideSolicitation: what processMissingKeys posts (null: nothing). pending
// lists stored solicitations (userId: the member whose record holds it) and
// our ephemeral records (ephemeral: true), in that order.
export async function sdkDecideSolicitation(ownUserId: string, ownDeviceKey: string, missing: string[], held: number,
                                            pending: Pending[]) {
    const records = new Map<string, any[]>()
    for (const p of pending.filter((x) => !x.ephemeral)) {
        const list = records.get(p.userId!) ?? []
        list.push({ deviceKey: p.deviceKey, fallbackKey: '', isNewDevice: p.isNewDevice, sessionIds: [...p.sessionIds] })
        records.set(p.userId!, list)
    }
    const ephemeral = pending.filter((x) => x.ephemeral).map((p) => ({
        deviceKey: p.deviceKey, fallbackKey: '', isNewDevice: p.isNewDevice, missingSessionIds: new Set(p.sessionIds),
    }))
    let posted: any = null
    const self: any = {
        log: quiet,
        userId: ownUserId,
        userDevice: { deviceKey: ownDeviceKey, fallbackKey: '' },
        opts: { enableEphemeralKeySolicitations: true },
        decryptionFailures: { [STREAM]: Object.fromEntries(missing.map((id) => [id, []])) },
        ownEphemeralSolicitations: new Map([[STREAM, ephemeral]]),
        client: {
            stream: () => ({ view: { getMembers: () => ({ joined: new Map([...records].map(([u, s]) => [u, { solicitations: s }])) }) } }),
        },
        hasStream: () => true,
        isUserEntitledToKeyExchange: async () => true,
        crypto: { getGroupSessionIds: async () => Array.from({ length: held }, (_, i) => `held${i}`) },
        sendKeySolicitation: async (args: any) => {
            posted = { isNewDevice: args.isNewDevice, sessionIds: args.missingSessionIds }
        },
    }
    self.getKeySolicitations = (s: string) => (ClientDecryptionExtensions.prototype as any).getKeySolicitations.call(self, s)
    await (BaseDecryptionExtensions.prototype as any).processMissingKeys.call(self, STREAM)
    return posted
}

// decideAnswer: a stored solicitation from another user, queued by
// enqueueKeySolicitation and processed by processKeySolicitation; known maps
// held session ids to their algorithm. null when nothing is posted.
export async function sdkDecideAnswer(known: Record<string, string>, ownDeviceKey: string,
                                      sol: { deviceKey: string; isNewDevice: boolean; sessionIds: string[] }, entitled: boolean) {
    const queue = { keySolicitations: [] as any[], keySolicitationsNeedsSort: false }
    const self: any = {
        log: quiet,
        userId: 'our user',
        userDevice: { deviceKey: ownDeviceKey, fallbackKey: '' },
        mainQueues: { ownKeySolicitations: [], ephemeralKeySolicitations: [] },
        streamQueues: { getQueue: () => queue },
        getRespondDelayMSForKeySolicitation: () => 0,
        checkStartTicking: () => {},
    }
    const solicitation = { deviceKey: sol.deviceKey, fallbackKey: '', isNewDevice: sol.isNewDevice, sessionIds: [...sol.sessionIds] }
    ;(BaseDecryptionExtensions.prototype as any).enqueueKeySolicitation.call(self, STREAM, 'hash', 'requester', solicitation, undefined, false)
    const item = queue.keySolicitations[0]
    if (!item) return null
    let fulfilled: string[] | null = null
    const shares: { algorithm: string; sessionIds: string[] }[] = []
    const worker: any = {
        log: quiet,
        hasStream: () => true,
        isValidEvent: () => ({ isValid: true }),
        isUserEntitledToKeyExchange: async () => entitled,
        crypto: {
            // Unsorted, as a store might give them: the SDK sorts.
            getGroupSessionIds: async () => Object.keys(known).reverse(),
            exportGroupSession: async (_s: string, id: string) =>
                known[id] === undefined ? undefined : { streamId: STREAM, sessionId: id, sessionKey: 'k', algorithm: known[id] },
        },
        sendKeyFulfillment: async (args: any) => {
            fulfilled = args.sessionIds
            return {}
        },
        client: {
            encryptAndShareGroupSessionsToDevice: async (_s: string, sessions: any[], algorithm: string) => {
                shares.push({ algorithm, sessionIds: sessions.map((x) => x.sessionId) })
            },
        },
    }
    worker.encryptAndShareGroupSessions = (args: any) =>
        (ClientDecryptionExtensions.prototype as any).encryptAndShareGroupSessions.call(worker, args)
    await (BaseDecryptionExtensions.prototype as any).processKeySolicitation.call(worker, item)
    if (fulfilled === null) return null
    return { fulfilledSessionIds: fulfilled, shares }
}
