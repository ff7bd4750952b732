import type { EventEmitter } from 'node:events'
import type { Context, Middleware } from 'koa'
import { LRUCache } from 'lru-cache'
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible'
import { ApiError } from '../errors'
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
  return addressKey(ctx)
}

/** The key a client's address is counted under. */
function addressKey(ctx: Context): string {
  return `ip:${ctx.ip}`
}

/** The two middlewares of a rate limit. */
export interface RateLimiter {
  /**
   * After authentication: counts one point per request of each caller; past the limit, 429
   * `rate_limited` with `Retry-After`. Every answer it lets through or refuses carries the
   * `RateLimit-Policy` and `RateLimit` fields of draft-ietf-httpapi-ratelimit-headers (drafts 09 to
   * 11: `RateLimit-Policy: "default";q=600;w=60`, `RateLimit: "default";r=599;t=60`).
   */
  counted: Middleware
  /**
   * Before authentication: a request refused 401 (wrong or unknown credentials) counts one point
   * against its client's address, in the same limit. An address past it is answered 429 before its
   * credentials are checked (a password hash costs tens of milliseconds of CPU), until its window
   * ends. Each process keeps the addresses it saw refused; the counts themselves are shared through
   * Redis when it is given, so a guesser spread over N processes gets at most N more tries.
   */
  failedLogins: Middleware
}

/** Addresses kept as refused, at most: the oldest go first. */
const REFUSED_ADDRESSES = 10_000

/** The rate limit of the engine's requests (see {@link RateLimiter}). */
export function rateLimit(options: RateLimitOptions, logger?: EngineLogger): RateLimiter {
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

  const refused = (res: RateLimiterRes) =>
    refuse('rate_limited', 'rate limit', Math.max(1, Math.ceil(res.msBeforeNext / 1000)), { 'RateLimit-Policy': policy, RateLimit: state(res) })

  const counted: Middleware = async (ctx, next) => {
    let res: RateLimiterRes
    try {
      res = await limiter.consume(rateLimitKey(ctx))
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err
      throw refused(err)
    }
    ctx.set('RateLimit-Policy', policy)
    ctx.set('RateLimit', state(res))
    return next()
  }

  // Address -> the answer of its last refused count, until the end of its window.
  const blocked = new LRUCache<string, RateLimiterRes>({ max: REFUSED_ADDRESSES })
  const failedLogins: Middleware = async (ctx, next) => {
    const key = addressKey(ctx)
    const known = blocked.get(key)
    if (known) throw refused(known)
    try {
      return await next()
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        try {
          await limiter.consume(key)
        } catch (over) {
          if (!(over instanceof RateLimiterRes)) throw err
          blocked.set(key, over, { ttl: Math.max(1, over.msBeforeNext) })
        }
      }
      throw err
    }
  }

  return { counted, failedLogins }
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
