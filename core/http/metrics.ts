import { createHash, timingSafeEqual } from 'node:crypto'
import type { Knex } from 'knex'
import type { Context, Middleware } from 'koa'
import type { Counter, Registry } from 'prom-client'
import { errors } from '../errors'
import { isLoopbackAddress } from './edge'
import { assignRequestId, setSecurityHeaders } from './frame'

/** Who may read `GET /metrics`. */
export interface MetricsOptions {
  /**
   * A bearer token (`Authorization: Bearer <token>`) required from every scraper. Without one, only
   * peers on a loopback address are served (a reverse proxy on the same machine counts as one: set a
   * token then).
   */
  token?: string
}

/** The label a request without a matched route is counted under (bounded cardinality: never the raw path). */
export const UNMATCHED_ROUTE = '(unmatched)'

/**
 * The engine's Prometheus metrics (prom-client), in a registry of their own:
 * - `http_requests_total{route,method,status}` and `http_request_duration_seconds{route,method,status}`
 *   (a histogram), where `route` is the router's pattern (`/api/v1/components/:id`), never the raw path;
 * - `http_requests_in_flight`;
 * - `db_pool_connections{state="used"|"free"}`, `db_pool_max`, `db_pool_pending_acquires`;
 * - `http_requests_refused_total{reason}`: counted by whatever refuses a request before it runs
 *   (`metrics.refused.inc({ reason: 'host' })`).
 */
export interface EngineMetrics {
  readonly registry: Registry
  /** Requests refused before they ran, by reason (`host`, `overloaded`, `rate_limited`...). */
  readonly refused: Counter<'reason'>
  /** Koa middleware that counts and times every request that passes through it. */
  readonly track: Middleware
  /** The metrics in the Prometheus text format. */
  text(): Promise<string>
}

const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

interface Recorders {
  count: { inc(): void }
  time: { observe(seconds: number): void }
}

/** Builds the metrics of one engine; the pool gauges read `db`'s pool when scraped, never per request. */
export function createMetrics(db: Knex): EngineMetrics {
  // Loaded lazily: an engine without metrics never pays for prom-client's start-up.
  const { Counter, Gauge, Histogram, Registry } = require('prom-client') as typeof import('prom-client')
  const registry = new Registry()
  const registers = [registry]
  const requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests answered, by route pattern, method and status',
    labelNames: ['route', 'method', 'status'],
    registers,
  })
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time from the request reaching the engine to its answer being ready, by route pattern, method and status',
    labelNames: ['route', 'method', 'status'],
    buckets: DURATION_BUCKETS,
    registers,
  })
  let inFlight = 0
  new Gauge({
    name: 'http_requests_in_flight',
    help: 'HTTP requests being served now',
    registers,
    collect() {
      this.set(inFlight)
    },
  })
  const pool = () => (db.client as { pool?: { numUsed(): number; numFree(): number; numPendingAcquires(): number; max: number } }).pool
  new Gauge({
    name: 'db_pool_connections',
    help: 'Database connections of the pool, by state (used by a query or transaction, or free)',
    labelNames: ['state'],
    registers,
    collect() {
      const p = pool()
      this.set({ state: 'used' }, p?.numUsed() ?? 0)
      this.set({ state: 'free' }, p?.numFree() ?? 0)
    },
  })
  new Gauge({
    name: 'db_pool_max',
    help: 'Most connections the pool opens',
    registers,
    collect() {
      this.set(pool()?.max ?? 0)
    },
  })
  new Gauge({
    name: 'db_pool_pending_acquires',
    help: 'Queries waiting for a pooled connection',
    registers,
    collect() {
      this.set(pool()?.numPendingAcquires() ?? 0)
    },
  })
  const refused = new Counter({ name: 'http_requests_refused_total', help: 'Requests refused before they ran, by reason', labelNames: ['reason'], registers })

  // route -> method -> status -> recorders: after the first request of a kind, recording one is two
  // map lookups and an array index, with no string built.
  const recorders = new Map<string, Map<string, Recorders[]>>()
  const recordersOf = (route: string, method: string, status: number): Recorders => {
    let byMethod = recorders.get(route)
    if (!byMethod) recorders.set(route, (byMethod = new Map()))
    let byStatus = byMethod.get(method)
    if (!byStatus) byMethod.set(method, (byStatus = []))
    let found = byStatus[status]
    if (!found) {
      const labels = [route, method, String(status)]
      found = byStatus[status] = { count: requests.labels(...labels), time: duration.labels(...labels) }
    }
    return found
  }

  const track: Middleware = async (ctx, next) => {
    inFlight++
    const started = performance.now()
    let status: number | undefined
    try {
      await next()
    } catch (err) {
      status = 500 // koa answers what escapes with 500
      throw err
    } finally {
      inFlight--
      const route = (ctx as { _matchedRoute?: string })._matchedRoute ?? (ctx.state.route as string | undefined) ?? UNMATCHED_ROUTE
      const r = recordersOf(route, ctx.method, status ?? ctx.status)
      r.count.inc()
      r.time.observe((performance.now() - started) / 1000)
    }
  }

  return { registry, refused, track, text: () => registry.metrics() }
}

const sha256 = (text: string) => createHash('sha256').update(text).digest()

/**
 * `GET /metrics`: the Prometheus text of `metrics`, to a peer with the bearer `token` when one is set,
 * else to a loopback peer only (403 otherwise; 401 for a missing or wrong token).
 */
export function metricsEndpoint(metrics: EngineMetrics, options: MetricsOptions = {}): Middleware {
  const expected = options.token ? sha256(`Bearer ${options.token}`) : undefined
  const serve = async (ctx: Context) => {
    ctx.state.route = '/metrics'
    assignRequestId(ctx)
    setSecurityHeaders(ctx)
    let error = ctx.method === 'GET' || ctx.method === 'HEAD' ? undefined : errors.methodNotAllowed(ctx.method, 'GET, HEAD')
    if (!error && expected) {
      // Compared as digests: equal lengths, in constant time.
      if (!timingSafeEqual(sha256(ctx.get('Authorization')), expected)) error = errors.unauthorized(['Bearer realm="metrics"'])
    } else if (!error && !isLoopbackAddress(ctx.req.socket.remoteAddress ?? '')) {
      error = errors.forbidden('Metrics are served to loopback peers only, or with the METRICS_TOKEN bearer token')
    }
    if (error) {
      ctx.status = error.status
      for (const [name, value] of Object.entries(error.headers)) ctx.set(name, value)
      ctx.body = error.toJSON()
      return
    }
    ctx.type = metrics.registry.contentType
    ctx.body = await metrics.text()
  }
  // Not async: every other request passes through without a promise of its own.
  return (ctx, next) => (ctx.path === '/metrics' ? serve(ctx) : next())
}
