// The derived scheme and media encryption (protocol.md sections 12, 13) on the
// canonical code, @towns-protocol/sdk-crypto 0.0.455 (its Node build, which is
// what Node resolves), shared by driver.ts and verify_vectors.ts:
//
// - derived: encrypting as the 0.0.455 SDK's Client.setSpaceImage,
//   setUserProfileImage and setUserBio do (deriveKeyAndIV, encryptAESGCM,
//   uint8ArrayToBase64, an EncryptedData with ciphertext and algorithm);
//   decrypting with decryptDerivedAESGCM, as its stream views do.
// - media: encryptChunkedAESGCM itself; the key and the IVs can be fed to it (its
//   random draws are answered from a list) so that its output is reproducible.
//   Per-chunk decryption is decryptAESGCM per chunk (the packages leave the loop
//   to the app); the whole-file form is the SDK's Client.getMediaPayload
//   (chunks concatenated, one decryptAESGCM).
//
// Errors carry the codes of this library (docs/driver.md): the SDK's
// Err.UNIMPLEMENTED is UNKNOWN_ALGORITHM; its plain Errors are told apart by
// their messages.
import nodeCrypto from 'node:crypto'
import { create } from '@bufbuild/protobuf'
import { EncryptedDataSchema, Err, type EncryptedData } from '@towns-protocol/proto'
import { AES_GCM_DERIVED_ALGORITHM } from '@towns-protocol/encryption'
import {
    decryptAESGCM,
    decryptDerivedAESGCM,
    deriveKeyAndIV,
    encryptAESGCM,
    encryptChunkedAESGCM,
    uint8ArrayToBase64,
} from '@towns-protocol/sdk-crypto'
import { DriverError } from './client_ops'

// The code of what sdk-crypto threw.
export function schemeCode(e: any, decrypting: boolean): string {
    if (e instanceof DriverError) return e.code
    if (e?.code === Err.UNIMPLEMENTED) return 'UNKNOWN_ALGORITHM'
    const m = String(e?.message ?? e).toLowerCase()
    if (m.includes('cannot encrypt undefined or empty data')) return 'EMPTY_PAYLOAD'
    if (m.includes('invalid key length')) return 'INVALID_ARGUMENT'
    if (m.includes('exceeds chunksize')) return 'INVALID_ARGUMENT'
    return decrypting ? 'DECRYPTION_FAILED' : 'INTERNAL'
}
const rethrow = (e: any, decrypting: boolean): never => {
    throw new DriverError(schemeCode(e, decrypting), String(e?.message ?? e))
}
const invalid = (m: string): never => {
    throw new DriverError('INVALID_ARGUMENT', m)
}

export async function derivedEncrypt(keyPhrase: string, plaintext: Uint8Array): Promise<EncryptedData> {
    try {
        const { key, iv } = await deriveKeyAndIV(keyPhrase)
        const { ciphertext } = await encryptAESGCM(plaintext, key, iv)
        return create(EncryptedDataSchema, { ciphertext: uint8ArrayToBase64(ciphertext), algorithm: AES_GCM_DERIVED_ALGORITHM })
    } catch (e) {
        return rethrow(e, false)
    }
}

export async function derivedDecrypt(keyPhrase: string, data: EncryptedData): Promise<Uint8Array> {
    try {
        return await decryptDerivedAESGCM(keyPhrase, data)
    } catch (e) {
        return rethrow(e, true)
    }
}

export interface Chunk {
    ciphertext: Uint8Array
    iv: Uint8Array
}

// Runs f with node:crypto's random draws answered from key (the one 32-byte
// getRandomValues) and ivs (the 12-byte randomBytes, in order). Requests are
// answered one at a time, so nothing else draws meanwhile.
async function withFedRandom<T>(key: Uint8Array, ivs: Uint8Array[], f: () => Promise<T>): Promise<T> {
    const web = globalThis.crypto as any
    const randomBytes = nodeCrypto.randomBytes
    let keyUsed = false
    let next = 0
    Object.defineProperty(web, 'getRandomValues', {
        configurable: true,
        writable: true,
        value: (a: Uint8Array) => {
            if (keyUsed || a.length !== key.length) throw new DriverError('INTERNAL', `unexpected draw of ${a.length} bytes`)
            keyUsed = true
            a.set(key)
            return a
        },
    })
    ;(nodeCrypto as any).randomBytes = (n: number) => {
        if (next >= ivs.length || n !== 12) throw new DriverError('INTERNAL', `unexpected draw of ${n} bytes`)
        return Buffer.from(ivs[next++])
    }
    try {
        const out = await f()
        if (!keyUsed || next !== ivs.length) throw new DriverError('INTERNAL', 'not every fed value was drawn')
        return out
    } finally {
        delete web.getRandomValues
        ;(nodeCrypto as any).randomBytes = randomBytes
    }
}

export async function mediaEncrypt(data: Uint8Array, chunkSize: number, fed?: { key: Uint8Array; ivs: Uint8Array[] }) {
    if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) invalid('chunk_size must be positive')
    let out: { chunks: Chunk[]; secretKey: Uint8Array }
    if (fed === undefined || data.length === 0 || chunkSize <= 16) {
        // A chunk size of 16 or less fails in the SDK too: a piece is empty
        // ("Cannot encrypt undefined or empty data") or a chunk would exceed it.
        try {
            out = await encryptChunkedAESGCM(data, chunkSize)
        } catch (e: any) {
            if (data.length > 0 && chunkSize <= 16) throw new DriverError('INVALID_ARGUMENT', String(e?.message ?? e))
            return rethrow(e, false)
        }
        if (chunkSize <= 16) throw new DriverError('INTERNAL', 'the SDK accepted a chunk size of 16 or less')
    } else {
        // The explicit key and IVs are this library's (encrypt_chunked_media_with):
        // the SDK draws them; its draws are answered with them.
        if (fed.key.length !== 32) invalid(`the media key must be 32 bytes, got ${fed.key.length}`)
        const count = Math.ceil(data.length / (chunkSize - 16))
        if (fed.ivs.length !== count) invalid(`${count} IVs needed, got ${fed.ivs.length}`)
        if (fed.ivs.some((iv) => iv.length !== 12)) invalid('an IV is not 12 bytes')
        if (new Set(fed.ivs.map((iv) => Buffer.from(iv).toString('hex'))).size !== fed.ivs.length) invalid('an IV is used for two chunks')
        try {
            out = await withFedRandom(fed.key, fed.ivs, () => encryptChunkedAESGCM(data, chunkSize))
        } catch (e) {
            return rethrow(e, false)
        }
    }
    return { secretKey: new Uint8Array(out.secretKey), chunks: out.chunks.map((c) => ({ ciphertext: new Uint8Array(c.ciphertext), iv: new Uint8Array(c.iv) })) }
}

function mediaDecryptError(e: any): never {
    // The SDK checks the key's length and the IV's; a key is the caller's
    // argument, an IV comes with the data.
    const m = String(e?.message ?? e).toLowerCase()
    if (m.includes('invalid key length')) throw new DriverError('INVALID_ARGUMENT', String(e?.message ?? e))
    throw new DriverError('DECRYPTION_FAILED', String(e?.message ?? e))
}

// Per-chunk form: decryptAESGCM of each chunk under its own IV, concatenated.
export async function mediaDecryptChunks(key: Uint8Array, chunks: Chunk[]): Promise<Uint8Array> {
    if (chunks.length === 0) invalid('no chunks to decrypt')
    const parts: Uint8Array[] = []
    try {
        // Fresh copies: the Node build reads the tag at buffer offsets.
        for (const c of chunks) parts.push(await decryptAESGCM(new Uint8Array(c.ciphertext), key, new Uint8Array(c.iv)))
    } catch (e) {
        mediaDecryptError(e)
    }
    return new Uint8Array(Buffer.concat(parts))
}

// Whole-file form: Client.getMediaPayload.
export async function mediaDecryptWholeFile(key: Uint8Array, iv: Uint8Array, chunks: Uint8Array[]): Promise<Uint8Array> {
    if (chunks.length === 0) invalid('no chunks to decrypt')
    const data = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0))
    let offset = 0
    for (const c of chunks) {
        data.set(c, offset)
        offset += c.length
    }
    try {
        return new Uint8Array(await decryptAESGCM(data, key, iv))
    } catch (e) {
        return mediaDecryptError(e)
    }
}
