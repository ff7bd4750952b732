import bytes from 'bytes'
import Koa, { type Middleware } from 'koa'
import compose from 'koa-compose'
import type { Knex } from 'knex'
import { orphanTables } from '../tooling/catalog'
import { checkSchemaDrift, orphanMessage } from '../tooling/schema-drift'
import type { ErrorRegistry } from './errors'
import { errors } from './errors'
import { admission, admissionSettings, type AdmissionOptions } from './http/admission'
import { builtConsoleDir, webConsole } from './http/console'
import { apiDocs } from './http/docs'
import { jsonBody } from './http/body'
import { corsPolicy, hostGuard, koaErrorLogger } from './http/edge'
import { consoleLogger, engineFrame, requestLog, setSecurityHeaders, type EngineLogger } from './http/frame'
import { nodeHandler, type HandlerOptions, type NodeHandler } from './http/handler'
import { healthRoutes } from './http/health'
import { createMetrics, type EngineMetrics, metricsEndpoint, type MetricsOptions } from './http/metrics'
import { rateLimit, type RateLimitOptions } from './http/rate-limit'
import { buildRouter } from './http/routes'
import { buildOpenApiDocument, type OpenApiDocument, type OpenApiInfo } from './openapi/document'
import { compileAction, type CompiledAction } from './plugins/actions'
import type { Authenticator, Plugin } from './plugins/plugin'
import { buildResources, collectPlugins, type Resource } from './plugins/registry'
import { loadSchemas } from './schema/loader'
import { withParams } from './service/service'
import type { ResourceService } from './service/types'

/** Options of {@link createEngine}; everything but `db` and `schemasDir` has a safe default. */
/** The engine's default `maxFieldBytes`: the largest JSON value of a field without `x-max-bytes`. */
export const DEFAULT_MAX_FIELD_BYTES = 65_536

/** The engine's default `maxResponseBytes`: the byte budget of one list answer. */
export const DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024

export interface EngineOptions {
  /** A knex instance on PostgreSQL or PGlite (see `openDatabase`). */
  db: Knex
  /** Folder holding one JSON Schema file per resource. */
  schemasDir: string
  /**
   * Plugins, installed in dependency order (see `definePlugin`; `defineResource` makes the
   * per-resource form). A resource without special rules needs none.
   */
  plugins?: Plugin[]
  /** Mount point of the API (default `/api/v1`). */
  prefix?: string
  /** Page size when `limit` is not given (default 20). */
  defaultLimit?: number
  /** Largest `limit` a client may ask for (default 200). */
  maxLimit?: number
  /** Largest `offset` a client may ask for (default 1,000,000): bounds the cost of one page. */
  maxOffset?: number
  /** Largest request body (default `1mb`, in the `bytes` package's notation). */
  bodyLimit?: string
  /**
   * Largest JSON text, in UTF-8 bytes, a write may store in an object or array field, or a string
   * field without `maxLength`, whose schema gives no `x-max-bytes` (default 65,536). Over it, a 400
   * names the field and the limit.
   */
  maxFieldBytes?: number
  /**
   * Byte budget of one list answer (default 4 MiB): a page stops before the row that would take it
   * over, with `_meta.truncated` and `_meta.next_offset`; its first row is always sent. Measured by
   * the database as it reads the page, when `limit` rows at their largest could go over it.
   */
  maxResponseBytes?: number
  /** Deepest nesting of a request body (default 32). */
  maxDepth?: number
  /** Receives the causes of 5xx answers; defaults to JSON lines on stderr. A pino logger fits. */
  logger?: EngineLogger
  /**
   * When true, `app()` logs one line per request through `logger` (method, path, status, duration,
   * request id). Off by default: a library stays quiet; a host app may use `requestLog` itself.
   */
  logRequests?: boolean
  /**
   * Compare every schema with its live table at start-up and refuse to start on a difference (default
   * true; two catalog queries). Turn off only for a database you know matches.
   */
  checkSchema?: boolean
  /** Title, version and description of the OpenAPI document served at `<prefix>/openapi.json`. */
  openapiInfo?: OpenApiInfo
  /** The `message` of `GET <prefix>` (default: the OpenAPI title and a full stop). */
  indexMessage?: string
  /**
   * The API reference (Swagger UI over `openapi.json`) at `<prefix>/docs/`, public as `openapi.json`
   * is (default true); `app()` then also leads `GET /` to it.
   */
  docs?: boolean
  /**
   * The web console's built files (`console/dist`), served by `app()` at `/console/`, which `GET /`
   * then leads to. Default: this package's `console/dist` when it is built; `false`: no console.
   */
  console?: string | false
  /**
   * How HTTP requests are authenticated (a host's own function from a request to an identity); a
   * plugin may install one instead. Without one, callers are anonymous.
   */
  authenticator?: Authenticator
  /**
   * The `Host` names served (`localhost`, `api.example.com`, `name:port`, `.example.com` for a domain
   * and its subdomains, `*` for any); a request naming another host is answered 421
   * `misdirected_request`. Unset: any host (a library does not know where it is bound; `server.ts`
   * sets the loopback names when bound to loopback). `/healthz` and `/readyz` are exempt.
   */
  allowedHosts?: readonly string[]
  /**
   * Browser origins allowed to call the API cross-origin (`https://app.example.com`), or `*` for any.
   * Unset or empty: no CORS header at all (browsers then refuse cross-origin calls).
   */
  corsOrigins?: readonly string[] | '*'
  /**
   * Prometheus metrics (prom-client): counted for every request `app()` (or `middleware()`) serves,
   * and served by `app()` at `GET /metrics` to loopback peers, or to any peer with `token`. Off by
   * default; `engine.metrics` holds them when on.
   */
  metrics?: boolean | MetricsOptions
  /** `app()` serves `GET /healthz` and `GET /readyz` (default true). */
  health?: boolean
  /** The migrations folder `GET /readyz` checks for pending migrations (unset: not checked). */
  migrationsDir?: string
  /**
   * Admission control of the engine's requests (see {@link AdmissionOptions}: requests in flight,
   * lists in flight, queue, deadline); on by default, `false` turns it off.
   */
  admission?: AdmissionOptions | false
  /** A rate limit per caller (see {@link RateLimitOptions}); off unless given. */
  rateLimit?: RateLimitOptions
}

/** A transaction opened by {@link Engine.transaction}: services in it, and its knex transaction. */
export interface Transaction {
  readonly knex: Knex.Transaction
  /** The service of a resource whose calls join this transaction. */
  service(name: string): ResourceService
}

/** A running engine: its resources, services, actions, and the transports that serve them. */
export interface Engine {
  readonly prefix: string
  readonly db: Knex
  /** Registered resources by singular name. */
  readonly resources: ReadonlyMap<string, Resource>
  /** The engine's error codes: built-in ones and those plugins registered. */
  readonly errors: ErrorRegistry
  /** A resource by singular name. */
  resource(name: string): Resource
  /** The service of a resource: validation and hooks run for in-process calls as for HTTP ones. */
  service(name: string): ResourceService
  /** An action by name, to call in-process: `engine.action('x').call({ path, query, body }, params)`. */
  action(name: string): CompiledAction
  /**
   * Runs `work` in one database transaction: every service call made through `tx.service(...)` (or
   * with `{ transaction: tx }`) joins it; a throw rolls all of it back.
   */
  transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T>
  /** Koa middleware serving the API under `prefix`; other paths pass through untouched. */
  middleware(): Middleware
  /** A standalone koa app serving only the API, for `http.createServer(engine.app().callback())`. */
  app(): Koa
  /** A Node `(req, res, next?)` handler for node:http, Express, Fastify... (see {@link HandlerOptions}). */
  handler(options?: HandlerOptions): NodeHandler
  /** The OpenAPI 3.1 document of the API, built once from the registered resources at start-up. */
  openapi(): OpenApiDocument
  /**
   * Koa middleware answering `GET /healthz` and `GET /readyz` (see `healthRoutes`), other paths pass
   * through: a host app mounts it first, before any Host check or authentication of its own.
   */
  health(): Middleware
  /** The Prometheus metrics, when the `metrics` option is on: `metrics.refused.inc({ reason })` counts a refusal. */
  readonly metrics: EngineMetrics | undefined
}

/**
 * Installs the plugins, loads and checks every schema of `schemasDir` (and those plugins bring),
 * builds each resource once (model, validators, query parser, hooks, service) and returns the engine.
 * Throws a `SchemaError` naming the file when a schema is refused, and an error naming the plugins
 * when a dependency is missing or they form a cycle. The database must already be migrated (see
 * `migrateLatest`): a table that does not match its schema stops start-up with a `SchemaDriftError`;
 * resource tables that no schema owns are named in a warning through `logger.warn`, when it has one.
 */
export async function createEngine(options: EngineOptions): Promise<Engine> {
  const prefix = (options.prefix ?? '/api/v1').replace(/\/$/, '')
  const bodyLimit = options.bodyLimit ?? '1mb'
  const contributions = collectPlugins(options.plugins ?? [], options.logger)
  const defs = loadSchemas(options.schemasDir, contributions.keywords, contributions.schemaFiles)
  if (options.checkSchema ?? true) {
    await checkSchemaDrift(options.db, defs)
    // Tables no schema owns do not stop start-up, but their foreign keys still bind the tables they reference.
    if (options.logger?.warn) {
      const orphans = await orphanTables(
        options.db,
        defs.map((d) => d.plural),
      )
      if (orphans.length) options.logger.warn({ tables: orphans }, orphanMessage(orphans))
    }
  }
  const limits = {
    defaultLimit: options.defaultLimit ?? 20,
    maxLimit: options.maxLimit ?? 200,
    maxOffset: options.maxOffset ?? 1_000_000,
  }
  const sizes = {
    maxFieldBytes: positiveInteger('maxFieldBytes', options.maxFieldBytes ?? DEFAULT_MAX_FIELD_BYTES),
    maxResponseBytes: positiveInteger('maxResponseBytes', options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES),
    bodyLimitBytes: bytes.parse(bodyLimit) ?? 1024 * 1024,
  }
  const resources = buildResources(defs, contributions, options.db, limits, sizes)
  if (options.authenticator && contributions.authenticator) {
    throw new Error(`an authenticator is given in the options and plugin '${contributions.authenticator.by}' installs another`)
  }
  const authenticator = options.authenticator ?? contributions.authenticator?.authenticator
  const resource = (name: string) => {
    const found = resources.get(name)
    if (!found) throw new Error(`no resource named '${name}'`)
    return found
  }
  const actionHost = {
    knex: options.db,
    errors: contributions.errors,
    service: (name: string) => resource(name).service,
    checkList: (name: string, query: Record<string, string | string[] | undefined>) => void resource(name).query.parseList(query),
    plural: (name: string) => resource(name).plural,
    hooks: contributions.actionHooks,
    definition: (name: string) => resource(name).def,
    definitions: () => [...resources.values()].map((r) => r.def),
  }
  const actions = new Map(contributions.actions.map((a) => [a.name, compileAction(a, actionHost)]))
  // Built now, not on first request: an action's faulty description stops start-up.
  const document = buildOpenApiDocument(
    {
      prefix,
      resources,
      actions: contributions.actions,
      errors: contributions.errors,
      limits,
      securitySchemes: authenticator ? (authenticator.securitySchemes ?? {}) : undefined,
      rateLimit: options.rateLimit,
    },
    options.openapiInfo,
  )
  const openapiText = JSON.stringify(document)
  // Checked now: a bad setting stops start-up.
  const admitted = options.admission === false ? undefined : admissionSettings(options.admission ?? {}, poolSize(options.db))
  const limited = options.rateLimit ? rateLimit(options.rateLimit, options.logger) : undefined
  const indexMessage = options.indexMessage ?? `${document.info.title}.`

  const logger = options.logger ?? consoleLogger
  const metrics = options.metrics ? createMetrics(options.db) : undefined
  const metricsOptions = typeof options.metrics === 'object' ? options.metrics : {}
  // Built once; undefined when the feature is off, so it costs nothing per request.
  const guard = options.allowedHosts ? hostGuard(options.allowedHosts, metrics && (() => metrics.refused.inc({ reason: 'host' }))) : undefined
  const cors = options.corsOrigins ? corsPolicy(options.corsOrigins) : undefined
  const health = healthRoutes({ db: options.db, migrationsDir: options.migrationsDir })
  const consoleDir = options.console === undefined ? builtConsoleDir() : options.console

  let served: Middleware | undefined
  /** The engine's paths, behind the edge middleware (metrics, Host check, CORS) that are on and `outer` asks for. */
  const mount = (outer: boolean): Middleware => {
    served ??= build()
    const edge = outer ? [metrics?.track, guard, cors].filter((m): m is Middleware => m !== undefined) : []
    const inner = edge.length ? compose([...edge, served]) : served
    // The prefix belongs to the engine: its paths end here (404/405 included), others pass through.
    const below = `${prefix}/`
    return (ctx, next) => {
      const path = ctx.path
      return path === prefix || path.startsWith(below) ? inner(ctx, nothingAfter) : next()
    }
  }
  const engine: Engine = {
    prefix,
    db: options.db,
    resources,
    errors: contributions.errors,
    resource,
    service: (name) => resource(name).service,
    action(name) {
      const action = actions.get(name)
      if (!action) throw new Error(`no action named '${name}'`)
      return action
    },
    transaction(work) {
      return options.db.transaction((trx) => work({ knex: trx, service: (name) => withParams(resource(name).service, { transaction: trx }) }))
    },
    metrics,
    middleware() {
      return mount(true)
    },
    health() {
      return health
    },
    app() {
      const app = new Koa()
      // koa's default prints a multi-line stack on stderr, also for a client that went away.
      app.on('error', koaErrorLogger(logger))
      if (options.logRequests) app.use(requestLog(logger))
      if (metrics) app.use(metrics.track)
      // Before the Host check: a load balancer probes by address.
      if (options.health ?? true) app.use(health)
      if (guard) app.use(guard)
      if (metrics) app.use(metricsEndpoint(metrics, metricsOptions))
      if (cors) app.use(cors)
      app.use(mount(false))
      app.use(securityHeaders)
      if (consoleDir !== false) app.use(webConsole(consoleDir, prefix))
      // `/` leads to the console when it is built, else to the API reference.
      const home = consoleDir ? '/console/' : (options.docs ?? true) ? `${prefix}/docs/` : undefined
      if (home) {
        app.use((ctx, next) => {
          if (ctx.path !== '/' || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return next()
          ctx.status = 302
          ctx.set('Location', home)
          ctx.body = { message: `See ${home}` }
          return undefined
        })
      }
      app.use((ctx) => {
        ctx.status = 404
        ctx.body = errors.routeNotFound(ctx.method, ctx.path).toJSON()
      })
      return app
    },
    handler(handlerOptions) {
      return nodeHandler(engine.app(), prefix, handlerOptions)
    },
    openapi() {
      return document
    },
  }

  function build(): Middleware {
    const admitting = admitted && admission(admitted, { isList: listMatcher(prefix, resources, [...actions.values()]) })
    const router = buildRouter(
      {
        prefix,
        resources,
        actions: [...actions.values()],
        openapiJson: (base) => (base ? JSON.stringify({ ...document, servers: [{ url: `${base}${prefix}` }] }) : openapiText),
        authenticator,
        authenticatorHost: { db: options.db, definition: (name) => resource(name).def },
        rateLimit: limited?.counted,
        failedLogins: limited?.failedLogins,
        listGate: admitting ? admitting.lists : undefined,
        index: (base) => ({
          _status: 'OK',
          message: indexMessage,
          resources: Object.fromEntries([...resources.values()].map((r) => [r.plural, `${base}${prefix}/${r.plural}`])),
          links: { openapi: `${base}${prefix}/openapi.json`, ...((options.docs ?? true) && { docs: `${base}${prefix}/docs/` }) },
        }),
      },
      jsonBody({ limit: bodyLimit, maxDepth: options.maxDepth ?? 32 }),
    )
    const frame = engineFrame({ bodyLimit, logger: options.logger, db: options.db, onRefused: metrics && ((code) => metrics.refused.inc({ reason: code })) })
    const routed = [router.routes() as Middleware, router.allowedMethods() as Middleware]
    const api = compose(admitting ? [frame, admitting.admit, ...routed] : [frame, ...routed])
    if (!(options.docs ?? true)) return api
    // The reference's files: a chain of their own, chosen by path, never queued by admission control.
    // Not one more middleware in the API's chain: each one costs every request a promise and a frame
    // (about 5 % of a detail GET in bench/, measured when it was one).
    const docs = compose([frame, apiDocs(prefix, document.info.title)])
    const docsRoot = `${prefix}/docs`
    const docsBelow = `${docsRoot}/`
    return (ctx, next) => {
      const path = ctx.path
      return path === docsRoot || path.startsWith(docsBelow) ? docs(ctx, next) : api(ctx, next)
    }
  }
  return engine
}

/** Connections of a knex instance's pool (1 for the embedded database). */
function poolSize(db: Knex): number {
  const client = db.client as { pool?: { max?: number }; config?: { pool?: { max?: number } } }
  return client.pool?.max ?? client.config?.pool?.max ?? 10
}

/**
 * Whether a request is a list (the costly class of admission control): a GET or HEAD of a resource's
 * collection or of a list action's path. Built once: a Set lookup, and a regular expression per list action.
 */
function listMatcher(
  prefix: string,
  resources: ReadonlyMap<string, Resource>,
  actions: readonly CompiledAction[],
): (ctx: { method: string; path: string }) => boolean {
  const collections = new Set<string>()
  for (const r of resources.values()) collections.add(`${prefix}/${r.plural}`).add(`${prefix}/${r.plural}/`)
  const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  const patterns = actions
    .filter((a) => a.listKey && a.definition.method === 'GET')
    .map(
      (a) =>
        new RegExp(
          `^${literal(prefix)}${a.definition.path
            .split('/')
            .map((part) => (part.startsWith(':') ? '[^/]+' : literal(part)))
            .join('/')}/?$`,
        ),
    )
  return (ctx) => (ctx.method === 'GET' || ctx.method === 'HEAD') && (collections.has(ctx.path) || patterns.some((p) => p.test(ctx.path)))
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${name} must be a positive integer (got ${value})`)
  return value
}

/** The end of the engine's chain: its paths never fall through to the host app. */
const nothingAfter = () => Promise.resolve()

// Paths outside the engine get the same security headers as its own answers.
const securityHeaders: Middleware = (ctx, next) => {
  setSecurityHeaders(ctx)
  return next()
}
