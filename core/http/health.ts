import type { Knex } from 'knex'
import type { Context, Middleware } from 'koa'
import { listMigrations } from '../data/db'
import { type ApiError, errors } from '../errors'
import { assignRequestId, setSecurityHeaders } from './frame'

/** What `GET /readyz` checks. */
export interface HealthOptions {
  db: Knex
  /** The migrations folder: ready only when none of its migrations is pending. Unset: not checked. */
  migrationsDir?: string
  /** Milliseconds the database has to answer (default 1000). */
  timeoutMs?: number
}

/** Why the engine is not ready to serve, or undefined when it is. */
export async function readiness(options: HealthOptions): Promise<string | undefined> {
  const timeoutMs = options.timeoutMs ?? 1_000
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`the database did not answer within ${timeoutMs} ms`), timeoutMs)
  })
  const check = (async () => {
    try {
      await options.db.raw('SELECT 1')
    } catch {
      return 'the database cannot be reached'
    }
    if (!options.migrationsDir) return undefined
    try {
      const { pending } = await listMigrations(options.db, options.migrationsDir)
      return pending.length ? `${pending.length} migration${pending.length > 1 ? 's are' : ' is'} pending` : undefined
    } catch {
      return 'the applied migrations cannot be read'
    }
  })()
  try {
    return await Promise.race([check, late])
  } finally {
    clearTimeout(timer)
  }
}

function answer(ctx: Context, route: string, status: number, body: object, headers: Record<string, string> = {}): void {
  ctx.state.route = route
  assignRequestId(ctx)
  setSecurityHeaders(ctx)
  for (const [name, value] of Object.entries(headers)) ctx.set(name, value)
  ctx.status = status
  ctx.body = body
}

/**
 * `GET /healthz` (200 `{"status":"ok"}` while the process serves) and `GET /readyz` (200
 * `{"status":"ready"}` when `SELECT 1` answers within the timeout and no migration is pending, else
 * 503 `not_ready` naming why). Outside the API prefix and its authentication; a host app mounts it
 * before its own Host check, as the engine's `app()` does, so a load balancer may probe by address.
 */
export function healthRoutes(options: HealthOptions): Middleware {
  const serve = async (ctx: Context, path: string) => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      const error = errors.methodNotAllowed(ctx.method, 'GET, HEAD')
      return answer(ctx, path, error.status, error.toJSON(), error.headers)
    }
    if (path === '/healthz') return answer(ctx, path, 200, { status: 'ok' })
    const reason = await readiness(options)
    if (!reason) return answer(ctx, path, 200, { status: 'ready' })
    const error: ApiError = errors.notReady(reason)
    answer(ctx, path, error.status, error.toJSON(), error.headers)
  }
  // Not async: every other request passes through without a promise of its own.
  return (ctx, next) => {
    const path = ctx.path
    return path === '/healthz' || path === '/readyz' ? serve(ctx, path) : next()
  }
}
