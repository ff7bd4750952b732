import type { EventEmitter } from 'node:events'
import type { Context, Middleware } from 'koa'
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible'
import { refuse } from './admission'
import type { EngineLogger } from './frame'

/**
 * A rate limit per caller: `points` requests per `windowSeconds` (a fixed window, as
 * rate-limiter-flexible counts). The caller is its identity when an authenticator named one, else
 * the client's address.
 */
export interface RateLimitOptions {
  /** Requests one caller may make per window. */
  points: number
  /** The window, in seconds. */
  windowSeconds: number
  /**
   * A connected ioredis client: the counts are shared by every process given the same Redis and
   * `keyPrefix`. Without it, each process counts in its own memory. The caller owns the client
   * (and quits it at shutdown). While Redis is unreachable each process counts in memory instead.
   */
  redis?: EventEmitter & { status?: string }
  /** Prefix of the keys in Redis (default `dci-rate`). */
  keyPrefix?: string
}

/** The rate limit's name in the `RateLimit-Policy` and `RateLimit` headers. */
const POLICY = '"default"'

/** Who is counted: the identity's kind and id (or name) when there is one, else the client's address. */
export function rateLimitKey(ctx: Context): string {
  const identity = ctx.state.identity as Record<string, unknown> | undefined
  if (identity) {
    const id = identity.id ?? identity.name ?? identity.sub
    if (typeof id === 'string' || typeof id === 'number') return `${typeof identity.kind === 'string' ? identity.kind : 'caller'}:${id}`
  }
  return `ip:${ctx.ip}`
}

/**
 * The rate limit middleware: counts one point per request of each caller; past the limit, 429
 * `rate_limited` with `Retry-After`. Every answer it lets through or refuses carries the
 * `RateLimit-Policy` and `RateLimit` fields of draft-ietf-httpapi-ratelimit-headers (drafts 09 to 11:
 * `RateLimit-Policy: "default";q=600;w=60`, `RateLimit: "default";r=599;t=60`).
 */
export function rateLimit(options: RateLimitOptions, logger?: EngineLogger): Middleware {
  const { points, windowSeconds } = options
  if (!Number.isInteger(points) || points < 1) throw new Error(`rateLimit.points must be a positive integer (got ${points})`)
  if (!Number.isInteger(windowSeconds) || windowSeconds < 1) throw new Error(`rateLimit.windowSeconds must be a positive integer (got ${windowSeconds})`)
  const keyPrefix = options.keyPrefix ?? 'dci-rate'
  const memory = new RateLimiterMemory({ points, duration: windowSeconds, keyPrefix })
  const limiter = options.redis
    ? new RateLimiterRedis({
        storeClient: options.redis,
        points,
        duration: windowSeconds,
        keyPrefix,
        // Not connected: count in this process's memory at once rather than wait for Redis.
        rejectIfRedisNotReady: true,
        insuranceLimiter: memory,
      })
    : memory
  if (options.redis) watchRedis(options.redis, logger)
  const policy = `${POLICY};q=${points};w=${windowSeconds}`
  const state = (res: RateLimiterRes) => `${POLICY};r=${Math.max(0, res.remainingPoints)};t=${Math.ceil(res.msBeforeNext / 1000)}`

  return async (ctx, next) => {
    let res: RateLimiterRes
    try {
      res = await limiter.consume(rateLimitKey(ctx))
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err
      const retryAfter = Math.max(1, Math.ceil(err.msBeforeNext / 1000))
      throw refuse('rate_limited', 'rate limit', retryAfter, { 'RateLimit-Policy': policy, RateLimit: state(err) })
    }
    ctx.set('RateLimit-Policy', policy)
    ctx.set('RateLimit', state(res))
    return next()
  }
}

/** One warning line when Redis becomes unreachable, one info line when it is back: not one per request. */
function watchRedis(redis: EventEmitter, logger: EngineLogger | undefined): void {
  let down = false
  redis.on('error', (err: Error) => {
    if (down) return
    down = true
    logger?.warn?.({ err: String(err?.message ?? err) }, 'rate limit store (Redis) unreachable: each process counts in its own memory until it is back')
  })
  redis.on('ready', () => {
    if (!down) return
    down = false
    logger?.info?.({}, 'rate limit store (Redis) is back: counts are shared again')
  })
}
