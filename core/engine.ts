import Koa, { type Middleware } from 'koa'
import compose from 'koa-compose'
import type { Knex } from 'knex'
import { errors } from './errors'
import { consoleLogger, engineFrame, jsonBody, requestLog, setSecurityHeaders, type EngineLogger } from './middleware'
import { buildOpenApiDocument, type OpenApiDocument, type OpenApiInfo } from './openapi'
import { buildRegistry, type Resource } from './registry'
import type { ResourcePlugin } from './resource'
import { buildRouter } from './routes'
import { loadSchemas } from './schema-loader'
import { checkSchemaDrift } from './schema-drift'

/** Options of {@link createEngine}; everything but `db` and `schemasDir` has a safe default. */
export interface EngineOptions {
  /** A knex instance on PostgreSQL or PGlite (see `openDatabase`). */
  db: Knex
  /** Folder holding one JSON Schema file per resource. */
  schemasDir: string
  /** Resource plugins (hooks, extra routes); a resource without special rules needs none. */
  plugins?: ResourcePlugin<any>[]
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
}

/** A running engine: its resources and the koa middleware that serves them. */
export interface Engine {
  readonly prefix: string
  readonly db: Knex
  /** Registered resources by singular name. */
  readonly resources: ReadonlyMap<string, Resource>
  /** A resource by singular name; its `repository` is the trusted internal API. */
  resource(name: string): Resource
  /** Koa middleware serving the API under `prefix`; other paths pass through untouched. */
  middleware(): Middleware
  /** A standalone koa app serving only the API, for `http.createServer(engine.app().callback())`. */
  app(): Koa
  /** The OpenAPI 3.1 document of the API, built once from the registered resources at start-up. */
  openapi(): OpenApiDocument
}

/**
 * Loads and checks every schema of `schemasDir`, builds each resource once (model, validators, query
 * parser) and returns the engine. Throws a `SchemaError` naming the file when a schema is refused.
 * The database must already be migrated (see `migrateLatest`): a table that does not match its schema
 * stops start-up with a `SchemaDriftError` naming the resource, the difference and the fix.
 */
export async function createEngine(options: EngineOptions): Promise<Engine> {
  const prefix = (options.prefix ?? '/api/v1').replace(/\/$/, '')
  const bodyLimit = options.bodyLimit ?? '1mb'
  const defs = loadSchemas(options.schemasDir)
  if (options.checkSchema ?? true) await checkSchemaDrift(options.db, defs)
  const limits = {
    defaultLimit: options.defaultLimit ?? 20,
    maxLimit: options.maxLimit ?? 200,
    maxOffset: options.maxOffset ?? 1_000_000,
  }
  const resources = buildRegistry(defs, options.plugins ?? [], options.db, limits)

  let served: Middleware | undefined
  const engine: Engine = {
    prefix,
    db: options.db,
    resources,
    resource(name) {
      const resource = resources.get(name)
      if (!resource) throw new Error(`no resource named '${name}'`)
      return resource
    },
    middleware() {
      served ??= build()
      const inner = served
      // The prefix belongs to the engine: its paths end here (404/405 included), others pass through.
      const below = `${prefix}/`
      return (ctx, next) => {
        const path = ctx.path
        return path === prefix || path.startsWith(below) ? inner(ctx, nothingAfter) : next()
      }
    },
    app() {
      const app = new Koa()
      if (options.logRequests) app.use(requestLog(options.logger ?? consoleLogger))
      app.use(engine.middleware())
      app.use(securityHeaders)
      app.use((ctx) => {
        ctx.status = 404
        ctx.body = errors.routeNotFound(ctx.method, ctx.path).toJSON()
      })
      return app
    },
    openapi() {
      return document
    },
  }
  // Built now, not on first request: a plugin's faulty description stops start-up.
  const document = buildOpenApiDocument(engine, limits, options.openapiInfo)

  function build(): Middleware {
    const router = buildRouter(engine, jsonBody({ limit: bodyLimit, maxDepth: options.maxDepth ?? 32 }))
    return compose([
      engineFrame({ bodyLimit, logger: options.logger }),
      router.routes() as Middleware,
      router.allowedMethods() as Middleware,
    ])
  }
  return engine
}

/** The end of the engine's chain: its paths never fall through to the host app. */
const nothingAfter = () => Promise.resolve()

// Paths outside the engine get the same security headers as its own answers.
const securityHeaders: Middleware = (ctx, next) => {
  setSecurityHeaders(ctx)
  return next()
}
