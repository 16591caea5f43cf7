// Pairs conformance drivers (docs/driver.md) through scenarios, in every
// ordered pairing, and prints "N passed, N failed".
//   node --import tsx runner.ts --driver cpp="../../build/tools/towns-e2ee driver" --driver ts="node --import tsx driver.ts"
//   options: --only <scenario substring>, --pairing a,b
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { scenarios, type Ctx } from './scenarios'

export class Driver {
    proc: ChildProcessWithoutNullStreams
    private waiters: ((line: string) => void)[] = []
    private lines: string[] = []
    private nextId = 1
    stderr = ''
    exited?: number | null
    constructor(public kind: string, cmd: string) {
        this.proc = spawn(cmd, { shell: true, stdio: ['pipe', 'pipe', 'pipe'] })
        createInterface({ input: this.proc.stdout }).on('line', (l) => {
            const w = this.waiters.shift()
            if (w) w(l)
            else this.lines.push(l)
        })
        this.proc.stderr.on('data', (d) => (this.stderr = (this.stderr + d.toString()).slice(-4000)))
        this.proc.on('exit', (code) => {
            this.exited = code
            for (const w of this.waiters.splice(0)) w('')
        })
    }
    private nextLine(timeoutMs = 60000): Promise<string> {
        const l = this.lines.shift()
        if (l !== undefined) return Promise.resolve(l)
        if (this.exited !== undefined) return Promise.resolve('')
        return new Promise((resolve, reject) => {
            const t = setTimeout(() => reject(new Error(`${this.kind} driver: no reply in ${timeoutMs} ms`)), timeoutMs)
            this.waiters.push((line) => {
                clearTimeout(t)
                resolve(line)
            })
        })
    }
    // Sends a raw line and returns the parsed reply.
    async raw(line: string): Promise<any> {
        this.proc.stdin.write(line + '\n')
        const reply = await this.nextLine()
        if (reply === '') throw new Error(`${this.kind} driver exited (${this.exited}); stderr: ${this.stderr}`)
        try {
            return JSON.parse(reply)
        } catch {
            throw new Error(`${this.kind} driver wrote a line that is not JSON: ${reply.slice(0, 200)}`)
        }
    }
    async call(cmd: string, args: Record<string, unknown> = {}): Promise<any> {
        const id = this.nextId++
        const reply = await this.raw(JSON.stringify({ id, cmd, ...args }))
        if (reply.id !== id) throw new Error(`${this.kind} ${cmd}: reply id ${reply.id}, expected ${id}`)
        return reply
    }
    async ok(cmd: string, args: Record<string, unknown> = {}): Promise<any> {
        const reply = await this.call(cmd, args)
        if (reply.ok !== true) throw new Error(`${this.kind} ${cmd} failed: ${JSON.stringify(reply.error)}`)
        return reply
    }
    async err(cmd: string, args: Record<string, unknown>, code: string): Promise<any> {
        const reply = await this.call(cmd, args)
        if (reply.ok !== false || reply.error?.code !== code) {
            throw new Error(`${this.kind} ${cmd}: expected error ${code}, got ${JSON.stringify(reply.ok ? 'ok' : reply.error)}`)
        }
        return reply
    }
    async quit(): Promise<number | null> {
        if (this.exited === undefined) {
            this.proc.stdin.write(JSON.stringify({ id: 0, cmd: 'quit' }) + '\n')
            this.proc.stdin.end()
            await new Promise<void>((resolve) => {
                if (this.exited !== undefined) resolve()
                else this.proc.on('exit', () => resolve())
            })
        }
        return this.exited ?? null
    }
    kill() {
        if (this.exited === undefined) this.proc.kill('SIGKILL')
    }
}

async function main() {
    const drivers: Record<string, string> = {}
    let only: string | undefined
    let pairing: string[] | undefined
    const argv = process.argv.slice(2)
    for (let i = 0; i < argv.length; i++) {
        if (argv[i] === '--driver') {
            const [name, ...rest] = argv[++i].split('=')
            drivers[name] = rest.join('=')
        } else if (argv[i] === '--only') {
            only = argv[++i]
        } else if (argv[i] === '--pairing') {
            pairing = argv[++i].split(',')
        } else {
            console.error(`unknown argument ${argv[i]}`)
            process.exit(2)
        }
    }
    const names = Object.keys(drivers)
    if (names.length === 0) {
        console.error('give at least one --driver name=command')
        process.exit(2)
    }
    const pairs: [string, string][] = []
    for (const a of names) for (const b of names) pairs.push([a, b])
    let passed = 0
    let failed = 0
    for (const [a, b] of pairs) {
        if (pairing && (pairing[0] !== a || pairing[1] !== b)) continue
        for (const s of scenarios) {
            if (only && !s.name.includes(only)) continue
            const dir = mkdtempSync(join(tmpdir(), 'towns-interop-'))
            const started: Driver[] = []
            const ctx: Ctx = {
                a: () => { const d = new Driver(a, drivers[a]); started.push(d); return d },
                b: () => { const d = new Driver(b, drivers[b]); started.push(d); return d },
                kindA: a,
                kindB: b,
                dir,
            }
            const t0 = Date.now()
            try {
                await s.run(ctx)
                for (const d of started) {
                    const code = await d.quit()
                    if (code !== 0) throw new Error(`${d.kind} driver exited with ${code}`)
                }
                passed++
                console.log(`ok    ${s.name} [${a} -> ${b}] (${Date.now() - t0} ms)`)
            } catch (e: any) {
                failed++
                console.log(`FAIL  ${s.name} [${a} -> ${b}]: ${e?.message ?? e}`)
            } finally {
                for (const d of started) d.kill()
                rmSync(dir, { recursive: true, force: true })
            }
        }
    }
    console.log(`${passed} passed, ${failed} failed`)
    process.exit(failed === 0 ? 0 : 1)
}

if (process.argv[1]?.endsWith('runner.ts')) void main()
