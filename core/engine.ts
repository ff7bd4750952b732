import Koa, { type Middleware } from 'koa'
import compose from 'koa-compose'
import type { Knex } from 'knex'
import { errors } from './errors'
import { errorHandler, jsonBody, requestId, type EngineLogger } from './middleware'
import { buildRegistry, type Resource } from './registry'
import type { ResourcePlugin } from './resource'
import { buildRouter } from './routes'
import { loadSchemas } from './schema-loader'

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
  /** Receives the causes of 5xx answers; defaults to JSON lines on stderr. */
  logger?: EngineLogger
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
}

/**
 * Loads and checks every schema of `schemasDir`, builds each resource once (model, validators, query
 * parser) and returns the engine. Throws a `SchemaError` naming the file when a schema is refused.
 * The database must already be migrated (see `migrateLatest`).
 */
export async function createEngine(options: EngineOptions): Promise<Engine> {
  const prefix = (options.prefix ?? '/api/v1').replace(/\/$/, '')
  const bodyLimit = options.bodyLimit ?? '1mb'
  const defs = loadSchemas(options.schemasDir)
  const resources = buildRegistry(defs, options.plugins ?? [], options.db, {
    defaultLimit: options.defaultLimit ?? 20,
    maxLimit: options.maxLimit ?? 200,
    maxOffset: options.maxOffset ?? 1_000_000,
  })

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
      return (ctx, next) => (ctx.path === prefix || ctx.path.startsWith(`${prefix}/`) ? inner(ctx, async () => {}) : next())
    },
    app() {
      const app = new Koa()
      app.use(engine.middleware())
      app.use((ctx) => {
        ctx.status = 404
        ctx.body = errors.routeNotFound(ctx.method, ctx.path).toJSON()
      })
      return app
    },
  }

  function build(): Middleware {
    const router = buildRouter(engine)
    return compose([
      requestId(),
      securityHeaders,
      errorHandler({ bodyLimit, logger: options.logger }),
      jsonBody({ limit: bodyLimit, maxDepth: options.maxDepth ?? 32 }),
      router.routes() as Middleware,
      router.allowedMethods() as Middleware,
    ])
  }
  return engine
}

const securityHeaders: Middleware = async (ctx, next) => {
  ctx.set('X-Content-Type-Options', 'nosniff')
  ctx.set('Cache-Control', 'no-cache')
  await next()
}
