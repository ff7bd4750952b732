/**
 * The Distributed CI control server: the engine, the resource plugins and an HTTP listener.
 * Configuration comes from the environment: PORT, HOST, DATABASE_URL, DATA_DIR, LOG_LEVEL, the
 * limits REQUEST_TIMEOUT_MS (30000), HEADERS_TIMEOUT_MS (10000), SHUTDOWN_TIMEOUT_MS (10000),
 * WRITE_TIMEOUT_MS (30000: a connection whose client stops reading its answer is closed after that
 * long without progress, and the answer freed; 0 turns it off), MAX_RESPONSE_BYTES
 * (4194304: the byte budget of one list answer) and MAX_FIELD_BYTES (65536: the largest JSON value a
 * write may store in an object, array or unbounded string field without `x-max-bytes`), and
 * identity: ADMIN_PASSWORD (the first start's admin; generated and logged once when unset),
 * JWT_JWKS_URL, JWT_ISSUER, JWT_AUDIENCE, JWT_CLAIM (accept JWTs of that issuer), and the HTTP edge:
 * ALLOWED_HOSTS (the Host names served, comma separated, `*` for any; default the loopback names when
 * HOST is a loopback address, required otherwise), CORS_ORIGINS (browser origins allowed, comma
 * separated, or `*`; default none), METRICS (`off` turns GET /metrics and its counting off) and
 * METRICS_TOKEN (a bearer token GET /metrics requires; without it only loopback peers are served).
 * GET /healthz and GET /readyz are always served, outside the API prefix, its authentication and the
 * Host check. A missing database, refused credentials or a bad DATABASE_URL stop start-up at once
 * (exit code 1, one log line naming what to fix); an unreachable or starting database is waited for.
 * Admission control: MAX_IN_FLIGHT (64; 0 turns admission control off), MAX_LISTS_IN_FLIGHT (half the
 * database pool), QUEUE_SIZE (64), QUEUE_TIMEOUT_MS (1000),
 * REFUSAL_PAUSE_MS (250: how long a connection answered 503 overloaded is not read), REQUEST_DEADLINE_MS (30000; 0: none).
 * Rate limits (off unless set): RATE_LIMIT (`600/60s`: requests per window per caller),
 * RATE_LIMIT_REDIS_URL (share the counts across processes through Redis).
 * Logs are JSON lines on stdout (pino), one per request.
 * Without DATABASE_URL the embedded database (PGlite) runs in a worker thread, holds DATA_DIR
 * exclusively (DATA_DIR/server.pid: a second server on the folder stops at start-up naming the
 * running pid) and answers statements past 10 s with 503 query_timeout (see core/data/embedded.ts).
 */
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import Redis from 'ioredis'
import type { Knex } from 'knex'
import pino from 'pino'
import {
  clientErrorHandler,
  closeStalledAnswers,
  createEngine,
  DEFAULT_MAX_FIELD_BYTES,
  DEFAULT_MAX_RESPONSE_BYTES,
  databaseUrlProblem,
  expectContinue,
  fatalStartupMessage,
  isLoopbackAddress,
  isTransientStartupError,
  LOOPBACK_HOSTS,
  migrateLatest,
  openDatabase,
  type AdmissionOptions,
  type Engine,
  type EngineOptions,
  type RateLimitOptions,
} from './core'
import { ensureAdmin, type JwtOptions } from './core/identity'
import { serverPlugins } from './resources'

// Compiled, this file runs from dist/; the schemas stay at the project root.
const root = fs.existsSync(path.join(__dirname, 'schemas')) ? __dirname : path.resolve(__dirname, '..')
const { version, description } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string; description: string }
const openapiInfo = { title: 'Distributed CI control server', version, description }

const logger = pino({ level: process.env.LOG_LEVEL || 'info', base: { pid: process.pid } })
let stopping = false

function numberFromEnv(name: string, fallback: number, unit = 'milliseconds'): number {
  const value = Number(process.env[name] || fallback)
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number of ${unit}`)
  return value
}

/** An optional whole number of the environment (undefined when unset or empty). */
function countFromEnv(name: string): number | undefined {
  const text = process.env[name]
  if (text === undefined || text === '') return undefined
  const value = Number(text)
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a whole number (got '${text}')`)
  return value
}

/** Admission control from the environment; MAX_IN_FLIGHT=0 turns it off. */
function admissionFromEnv(): AdmissionOptions | false {
  const maxInFlight = countFromEnv('MAX_IN_FLIGHT')
  if (maxInFlight === 0) return false
  return {
    maxInFlight,
    maxListsInFlight: countFromEnv('MAX_LISTS_IN_FLIGHT'),
    queueSize: countFromEnv('QUEUE_SIZE'),
    queueTimeoutMs: countFromEnv('QUEUE_TIMEOUT_MS'),
    refusalPauseMs: countFromEnv('REFUSAL_PAUSE_MS'),
    deadlineMs: countFromEnv('REQUEST_DEADLINE_MS'),
  }
}

const WINDOW_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600 }

/** RATE_LIMIT (`600/60s`, `100/1m`, `5000/1h`; seconds when no unit) and RATE_LIMIT_REDIS_URL; undefined when RATE_LIMIT is unset. */
function rateLimitFromEnv(): { options: RateLimitOptions; redis?: Redis } | undefined {
  const text = process.env.RATE_LIMIT
  if (!text) return undefined
  const m = /^(\d+)\/(\d+)([smh]?)$/.exec(text.trim())
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new Error(`RATE_LIMIT must read <requests>/<window>, such as 600/60s or 100/1m (got '${text}')`)
  const options: RateLimitOptions = { points: Number(m[1]), windowSeconds: Number(m[2]) * WINDOW_UNITS[m[3] || 's'] }
  const url = process.env.RATE_LIMIT_REDIS_URL
  if (!url) return { options }
  // Commands fail at once while disconnected (the limiter then counts in memory); reconnects forever.
  const redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 })
  return { options: { ...options, redis }, redis }
}

/** The JWT issuer of the environment, if JWT_JWKS_URL names one. */
function jwtFromEnv(): JwtOptions | undefined {
  const jwksUrl = process.env.JWT_JWKS_URL
  if (!jwksUrl) return undefined
  return { jwksUrl, issuer: process.env.JWT_ISSUER || undefined, audience: process.env.JWT_AUDIENCE || undefined, claim: process.env.JWT_CLAIM || undefined }
}

/** A comma-separated list of the environment, without empty entries; undefined when unset or blank. */
function listFromEnv(name: string): string[] | undefined {
  const list = (process.env[name] ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean)
  return list.length ? list : undefined
}

/** The HTTP edge's engine options from the environment; throws naming the variable when one is wrong. */
function edgeFromEnv(host: string): Pick<EngineOptions, 'allowedHosts' | 'corsOrigins' | 'metrics'> {
  const allowedHosts = listFromEnv('ALLOWED_HOSTS') ?? (isLoopbackAddress(host) ? [...LOOPBACK_HOSTS] : undefined)
  if (!allowedHosts) {
    throw new Error(
      `ALLOWED_HOSTS must be set when HOST (${host}) is not a loopback address: the host names clients use to reach this server, comma separated (api.example.com,10.0.0.5), or * to serve any Host header`,
    )
  }
  const cors = listFromEnv('CORS_ORIGINS')
  const metrics = (process.env.METRICS ?? '').toLowerCase() === 'off' ? false : { token: process.env.METRICS_TOKEN || undefined }
  return { allowedHosts, corsOrigins: cors?.includes('*') ? '*' : cors, metrics }
}

/** Migrates and builds the engine, retrying transient failures with capped exponential backoff. */
async function startEngine(
  db: Knex,
  edge: Pick<EngineOptions, 'allowedHosts' | 'corsOrigins' | 'metrics'>,
  stopped: () => boolean,
  limits: { admission: AdmissionOptions | false; rateLimit?: RateLimitOptions },
): Promise<Engine | undefined> {
  for (let attempt = 1; ; attempt++) {
    try {
      const applied = await migrateLatest(db, path.join(__dirname, 'migrations'))
      if (applied.length) logger.info({ migrations: applied }, `applied ${applied.length} migration${applied.length > 1 ? 's' : ''}: ${applied.join(', ')}`)
      const engine = await createEngine({
        db,
        schemasDir: path.join(root, 'schemas'),
        plugins: serverPlugins({ jwt: jwtFromEnv() }),
        logger,
        logRequests: true,
        maxResponseBytes: numberFromEnv('MAX_RESPONSE_BYTES', DEFAULT_MAX_RESPONSE_BYTES, 'bytes'),
        maxFieldBytes: numberFromEnv('MAX_FIELD_BYTES', DEFAULT_MAX_FIELD_BYTES, 'bytes'),
        openapiInfo,
        indexMessage: 'Distributed CI.',
        migrationsDir: path.join(__dirname, 'migrations'),
        ...edge,
        admission: limits.admission,
        rateLimit: limits.rateLimit,
      })
      await ensureAdmin(engine, { password: process.env.ADMIN_PASSWORD || undefined, logger })
      return engine
    } catch (err) {
      if (!isTransientStartupError(err) || stopped()) throw err
      const delay = Math.round(Math.min(5_000, 250 * 2 ** (attempt - 1)) * (0.8 + Math.random() * 0.4))
      const e = err as { message?: string; code?: string }
      logger.warn({ attempt, retry_in_ms: delay, err: e?.message || String(err), code: e?.code }, 'database not ready, retrying')
      await new Promise((resolve) => setTimeout(resolve, delay))
      if (stopped()) return undefined
    }
  }
}

async function main(): Promise<void> {
  const port = Number(process.env.PORT ?? 5000)
  const host = process.env.HOST ?? '127.0.0.1'
  const url = process.env.DATABASE_URL || undefined
  const requestTimeout = numberFromEnv('REQUEST_TIMEOUT_MS', 30_000)
  const headersTimeout = Math.min(numberFromEnv('HEADERS_TIMEOUT_MS', 10_000), requestTimeout || Infinity)
  const shutdownTimeout = numberFromEnv('SHUTDOWN_TIMEOUT_MS', 10_000)
  const admission = admissionFromEnv()
  const limited = rateLimitFromEnv()
  const edge = edgeFromEnv(host)
  const urlProblem = url && databaseUrlProblem(url)
  if (urlProblem) throw new Error(urlProblem)
  // knex's warnings (a connection that failed) wait until start-up is done: until then each failure is
  // said once, as a retry or as the fatal line naming what to fix.
  let started = false
  const dbLogger = { warn: (details: Record<string, unknown>, message: string) => started && logger.warn(details, message) }
  const db = openDatabase({ url, dataDir: url ? undefined : path.resolve(process.env.DATA_DIR ?? 'data'), logger: dbLogger })
  const writeTimeout = numberFromEnv('WRITE_TIMEOUT_MS', 30_000)

  let server: http.Server | undefined
  const inFlight = new Set<http.ServerResponse>()
  const exit = (code: number) => {
    limited?.redis?.disconnect()
    db.destroy()
      .catch((err) => logger.error({ err: String(err?.message ?? err) }, 'closing the database failed'))
      .finally(() => {
        logger.info('stopped')
        process.exit(code)
      })
  }
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    logger.info({ signal, in_flight: inFlight.size }, 'shutting down')
    if (!server) return exit(0) // still starting: nothing to drain
    // Stop accepting. net.Server's close, not http.Server's: the latter also drops idle keep-alive
    // sockets right now, and a client may be writing its next request on one of them. Deferred past
    // this poll phase so connections the kernel already queued (the event loop may have been busy)
    // are accepted and answered, not reset with the listening socket.
    setImmediate(() => net.Server.prototype.close.call(server, () => exit(0)))
    // Responses not sent yet tell their client to close; after them the sockets close themselves.
    for (const res of inFlight) if (!res.headersSent) res.setHeader('Connection', 'close')
    setTimeout(() => server!.closeIdleConnections(), Math.min(1_000, server.keepAliveTimeout)).unref()
    setTimeout(() => {
      logger.warn({ in_flight: inFlight.size }, 'shutdown deadline reached, closing the remaining connections')
      server!.closeAllConnections()
    }, shutdownTimeout).unref()
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))

  const engine = await startEngine(db, edge, () => stopping, { admission, rateLimit: limited?.options }).catch((err) => {
    // Said once, naming what to fix: the database, the user, the host of DATABASE_URL.
    const fatal = fatalStartupMessage(err, url)
    if (fatal) throw Object.assign(new Error(fatal), { code: (err as { code?: string }).code })
    throw err
  })
  if (!engine || stopping) return // a signal came during start-up: stop() is already exiting
  started = true
  const handle = engine.app().callback()
  const onRequest: http.RequestListener = (req, res) => {
    if (stopping) res.setHeader('Connection', 'close')
    inFlight.add(res)
    res.once('close', () => inFlight.delete(res))
    handle(req, res)
  }
  // requireHostHeader off: a request without Host reaches the engine, whose Host check answers it in JSON.
  server = http.createServer({ requestTimeout, headersTimeout, connectionsCheckingInterval: 1_000, requireHostHeader: false }, onRequest)
  // Node's own answers to requests it cannot parse (400, 408, 431) in the engine's JSON shape, logged.
  server.on('clientError', clientErrorHandler(logger))
  // `100 Continue` only once the engine starts reading the body, that is for a request it accepts.
  server.on('checkContinue', expectContinue(onRequest))
  // Memory, CPU, event-loop delay of this process beside the engine's own (prom-client loaded only then).
  if (engine.metrics) (require('prom-client') as typeof import('prom-client')).collectDefaultMetrics({ register: engine.metrics.registry })
  // An answer whose client stopped reading (it waits in the socket's buffer) is dropped with its
  // connection after WRITE_TIMEOUT_MS without progress.
  closeStalledAnswers(server, writeTimeout, (stalled) => logger.info(stalled, 'connection closed: answer not read'))
  server.on('error', (err) => {
    logger.fatal({ err: err.message }, 'cannot listen')
    exit(1)
  })
  server.listen(port, host, () => {
    logger.info({ url: `http://${host}:${port}${engine.prefix}`, database: url ? 'postgresql' : 'embedded' }, 'listening')
  })
}

main().catch((err) => {
  if (stopping) return // a signal during start-up: the database was closed under the migrations
  logger.fatal({ err: String(err?.message ?? err), ...(err?.code ? { code: err.code } : {}) }, 'start-up failed')
  process.exit(1)
})
