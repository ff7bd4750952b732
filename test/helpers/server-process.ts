import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Knex } from 'knex'
import { openDatabase } from '../../core'
import { ADMIN_AUTH, ADMIN_PASSWORD } from '../support'
import { createScratchDatabase, type ScratchDatabase } from './pg'
import { claimPort, releasePort } from './ports'

const ROOT = path.resolve(__dirname, '..', '..')

/** One JSON log line of a server process (pino), as parsed from its stdout. */
export type LogLine = Record<string, any> & { level: number; msg: string }

/** A `server.ts` process started by a test, with its log lines collected as they come. */
export interface ServerProcess {
  readonly child: ChildProcess
  readonly port: number
  /** `http://127.0.0.1:<port>` */
  readonly origin: string
  /** Every JSON line the process wrote on stdout so far. */
  readonly logs: LogLine[]
  /** Everything written on stderr, and stdout lines that were not JSON. */
  readonly otherOutput: string[]
  /** Its LOG_LEVEL: below info it writes no "listening" line. */
  readonly logLevel: string
  /** True until the process exits. */
  alive(): boolean
  /** Resolves with the exit code (null when killed by a signal) once the process has exited. */
  exited: Promise<number | null>
}

const started = new Set<ChildProcess>()

// The servers the tests start have user `admin` (super_admin) with ADMIN_PASSWORD: server.ts creates
// it on its first start on an empty database. Every API request but the index and openapi.json needs
// credentials, such as ADMIN_AUTH.
export { ADMIN_AUTH, ADMIN_PASSWORD }

/** `fetch` with the admin's credentials (headers given in `init` are kept, and win). */
export function adminFetch(url: string, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { ...init, headers: { authorization: ADMIN_AUTH, ...(init.headers as Record<string, string> | undefined) } })
}

/**
 * Spawns `server.ts` the way `npx tsx server.ts` would (node with tsx's CommonJS loader), on
 * 127.0.0.1:`port` (or `env.HOST`), with `env` added to this process's environment (ADMIN_PASSWORD is
 * {@link ADMIN_PASSWORD} unless `env` sets it). Does not wait for it to serve.
 */
export function spawnServer(port: number, env: Record<string, string>): ServerProcess {
  const logLevel = env.LOG_LEVEL ?? 'info'
  const child = spawn(process.execPath, ['--require', 'tsx/cjs', 'server.ts'], {
    cwd: ROOT,
    env: { ...process.env, ADMIN_PASSWORD, ...env, LOG_LEVEL: logLevel, PORT: String(port), HOST: env.HOST ?? '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  started.add(child)
  const logs: LogLine[] = []
  const otherOutput: string[] = []
  let pending = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk
    const lines = pending.split('\n')
    pending = lines.pop()!
    for (const line of lines) {
      if (!line.trim()) continue
      try {
        logs.push(JSON.parse(line))
      } catch {
        otherOutput.push(line)
      }
    }
  })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => otherOutput.push(chunk))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  exited.then(() => {
    started.delete(child)
    releasePort(port)
  })
  return {
    child,
    port,
    origin: `http://127.0.0.1:${port}`,
    logs,
    otherOutput,
    logLevel,
    alive: () => child.exitCode === null && child.signalCode === null,
    exited,
  }
}

/**
 * Waits for the process's own "listening" log line (another test run may have a server on the same
 * port), then polls `GET /api/v1/componenttypes?limit=0` with the admin's credentials until it
 * answers 200. Fails after `timeoutMs` or if the process exits.
 */
export async function waitUntilServing(server: ServerProcess, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (!['info', 'debug', 'trace'].includes(server.logLevel)) break
    if (server.logs.some((l) => l.msg === 'listening')) break
    if (!server.alive()) break
    if (Date.now() > deadline) throw new Error(`server on ${server.port} did not listen within ${timeoutMs} ms: ${JSON.stringify(server.logs.slice(-3))}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  for (;;) {
    if (!server.alive()) {
      const code = await server.exited
      throw new Error(`server on ${server.port} exited with ${code}: ${JSON.stringify(server.logs.slice(-3))} ${server.otherOutput.join('').slice(-2000)}`)
    }
    try {
      const res = await adminFetch(`${server.origin}/api/v1/componenttypes?limit=0`, { signal: AbortSignal.timeout(5_000) })
      await res.arrayBuffer()
      if (res.status === 200) return
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`server on ${server.port} did not serve within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

/**
 * Claims a free port of the test range, spawns `server.ts` on it and waits until it serves. Tries
 * another port when the server cannot listen (another test run took the port meanwhile).
 */
export async function startServer(env: Record<string, string>, timeoutMs = 120_000): Promise<ServerProcess> {
  for (let attempt = 1; ; attempt++) {
    const server = spawnServer(await claimPort(), env)
    try {
      await waitUntilServing(server, timeoutMs)
      return server
    } catch (err) {
      if (attempt >= 3 || server.alive() || !server.logs.some((l) => l.msg === 'cannot listen')) throw err
    }
  }
}

/** Where a server under test keeps its data: a scratch PostgreSQL database, or an embedded one in a temp folder. */
export interface OwnDatabase {
  /** The scratch PostgreSQL database, when the server runs on PostgreSQL. */
  scratch?: ScratchDatabase
  /** The environment that points `server.ts` at it (DATABASE_URL, or DATA_DIR for the embedded one). */
  env: Record<string, string>
  /** Drops the scratch database or removes the folder. */
  dispose(): Promise<void>
}

/**
 * Runs `check` on `own`'s database: the scratch PostgreSQL database's connection, or the embedded one
 * opened for the call and closed after it (open it only while no server or script holds the folder).
 */
export async function withOwnDatabase<T>(own: OwnDatabase, check: (db: Knex) => Promise<T>): Promise<T> {
  const db = own.scratch ? own.scratch.db : openDatabase({ dataDir: own.env.DATA_DIR })
  try {
    return await check(db)
  } finally {
    if (!own.scratch) await db.destroy()
  }
}

/** A database for one test file's servers: PostgreSQL (a scratch database named after `purpose`) or embedded. */
export async function ownDatabase(purpose: string, postgresql: boolean): Promise<OwnDatabase> {
  if (postgresql) {
    const scratch = await createScratchDatabase(purpose)
    return { scratch, env: { DATABASE_URL: scratch.url }, dispose: () => scratch.drop() }
  }
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `dci-${purpose}-`))
  return {
    env: { DATABASE_URL: '', DATA_DIR: dataDir },
    dispose: async () => fs.rmSync(dataDir, { recursive: true, force: true }),
  }
}

/** Resolves with the first log line matching `predicate`, waiting up to `timeoutMs`. */
export async function waitForLog(server: ServerProcess, predicate: (line: LogLine) => boolean, timeoutMs: number): Promise<LogLine> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const found = server.logs.find(predicate)
    if (found) return found
    if (Date.now() > deadline) throw new Error(`no matching log line within ${timeoutMs} ms; got ${JSON.stringify(server.logs.slice(-5))}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Sends `signal` and waits up to `timeoutMs` for the exit code; SIGKILLs the process if it does not exit. */
export async function stopServer(server: ServerProcess, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<number | null | 'timeout'> {
  if (!server.alive()) return server.exited
  server.child.kill(signal)
  const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), timeoutMs).unref())
  const result = await Promise.race([server.exited, timer])
  if (result === 'timeout') {
    server.child.kill('SIGKILL')
    await server.exited
  }
  return result
}

/** SIGKILLs every server process the tests started that is still running, and waits for them. */
export async function killAllServers(): Promise<void> {
  const running = [...started]
  for (const child of running) child.kill('SIGKILL')
  await Promise.all(running.map((child) => (child.exitCode === null && child.signalCode === null ? new Promise((r) => child.once('exit', r)) : undefined)))
}

// A test run that crashes must not leave servers holding the ports.
process.once('exit', () => {
  for (const child of started) child.kill('SIGKILL')
})
