import type { ServerResponse } from 'node:http'
import type { Context, Middleware } from 'koa'
import { Cancellation } from '../data/cancellation'
import { ApiError, errors } from '../errors'

/**
 * How many requests one process serves at once, and how long a request may take. Every field has a
 * default; `createEngine({ admission: false })` turns all of it off.
 */
export interface AdmissionOptions {
  /** Most requests of the engine served at once (default 64). Past it, requests wait in a queue. */
  maxInFlight?: number
  /**
   * Most list requests (`GET` of a collection, and list actions) served at once (default: half the
   * database pool, at least 1). The rest of the pool stays free for cheap requests: a detail never
   * waits for a connection behind a crowd of costly lists. (A bound by the CPU count was tried and
   * measured: on 2 CPUs, 2 or 3 lists at once took a detail's p99 under the flood of
   * test/load-flood.test.ts from 111-121 ms to 35-49 ms, but cost cheap lists 15-28 % of their
   * throughput in bench/; see bench/RESULTS.md.)
   */
  maxListsInFlight?: number
  /** Most requests waiting for a place, per queue (default 64); past it, 503 `overloaded` at once. */
  queueSize?: number
  /** Longest wait in a queue, in milliseconds (default 1000); past it, 503 `overloaded`. */
  queueTimeoutMs?: number
  /**
   * After a 503 `overloaded`, how long the server waits before it reads the next request of that
   * keep-alive connection, in milliseconds (default 250; 0: at once). The refusal itself is sent at
   * once; a client that honours its `Retry-After` never notices, and one that loops on refusals is
   * slowed to a few per second per connection instead of as many as the event loop can answer.
   */
  refusalPauseMs?: number
  /**
   * Longest time a whole request may take once admitted, in milliseconds (default 30000; 0: none). Past
   * it the request answers 503 `deadline_exceeded` and its running statement is cancelled.
   */
  deadlineMs?: number
}

/** What {@link admission} needs besides the settings: which requests are lists. */
export interface AdmissionHost {
  /** True for a request of the costly class (lists). */
  isList(ctx: Context): boolean
}

/** Why a request was refused before any work: for logs, and the one place to count refusals. */
export type Refusal = 'queue_full' | 'queue_timeout' | 'rate_limited'

/** The codes of answers that refuse work rather than fail it: logged as one line each, without a stack. */
export const REFUSAL_CODES: ReadonlySet<string> = new Set(['overloaded', 'rate_limited', 'deadline_exceeded', 'unavailable', 'query_timeout'])

/**
 * Every refusal of the admission layer and the rate limiter is made here (the frame counts them, by
 * code, in the metrics). `what` names the queue or the limit; `headers` go with the answer.
 */
export function refuse(reason: Refusal, what: string, retryAfter = 1, headers: Record<string, string> = {}): ApiError {
  switch (reason) {
    case 'rate_limited':
      return errors.rateLimited(retryAfter, headers)
    case 'queue_full':
      return errors.overloaded(`${what} queue is full`, retryAfter)
    case 'queue_timeout':
      return errors.overloaded(`waited too long in the ${what} queue`, retryAfter)
  }
}

/** The abort reason of a request whose client hung up before its answer. */
export class ClientClosedError extends Error {
  constructor() {
    super('the client closed the connection before the answer')
    this.name = 'ClientClosedError'
  }
}

interface Waiter {
  resolve(): void
  reject(err: unknown): void
  timer: NodeJS.Timeout
  res: ServerResponse
  onClose(): void
}

/**
 * A counting semaphore with a bounded FIFO queue. Under the cap, taking a place is a counter
 * increment (no promise); a place given back goes to the oldest waiter, which runs at the next turn
 * of the event loop.
 */
export class Gate {
  inFlight = 0
  private readonly queue: Waiter[] = []

  constructor(
    readonly name: string,
    readonly max: number,
    readonly queueSize: number,
    readonly timeoutMs: number,
  ) {}

  /** Requests waiting now. */
  get waiting(): number {
    return this.queue.length
  }

  /** True when a request would be refused at once: every place taken and the queue full. */
  get full(): boolean {
    return this.inFlight >= this.max && this.queue.length >= this.queueSize
  }

  /** Takes a place if one is free now. */
  tryEnter(): boolean {
    if (this.inFlight >= this.max) return false
    this.inFlight++
    return true
  }

  /** Waits for a place (FIFO); refuses when the queue is full, after the timeout, or if the client leaves. */
  wait(res: ServerResponse): Promise<void> {
    if (this.queue.length >= this.queueSize) return Promise.reject(refuse('queue_full', this.name))
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        res,
        timer: setTimeout(() => {
          this.drop(waiter)
          reject(refuse('queue_timeout', this.name))
        }, this.timeoutMs),
        onClose: () => {
          this.drop(waiter)
          reject(new ClientClosedError())
        },
      }
      res.once('close', waiter.onClose)
      this.queue.push(waiter)
    })
  }

  /** Gives a place back: to the oldest waiter, else to the pool of free places. */
  leave(): void {
    const next = this.queue.shift()
    if (next === undefined) {
      this.inFlight--
      return
    }
    clearTimeout(next.timer)
    next.res.removeListener('close', next.onClose)
    // On the next turn of the event loop, not in this microtask chain: with the embedded database a
    // queue of requests would otherwise run back to back without the loop ever reading a socket.
    setImmediate(next.resolve)
  }

  private drop(waiter: Waiter): void {
    const i = this.queue.indexOf(waiter)
    if (i >= 0) this.queue.splice(i, 1)
    clearTimeout(waiter.timer)
    waiter.res.removeListener('close', waiter.onClose)
  }
}

/**
 * Once `res` (a refusal) is sent, stops reading its connection for `ms`: the next request of a client
 * that loops on refusals waits in the kernel's buffer instead of taking the event loop from the
 * requests that are served. A connection that closes meanwhile is let go.
 */
function holdConnection(res: ServerResponse, ms: number): void {
  const socket = res.socket
  if (ms <= 0 || !socket) return
  res.once('finish', () => {
    if (socket.destroyed) return
    socket.pause()
    const timer = setTimeout(() => {
      socket.removeListener('close', release)
      if (!socket.destroyed) socket.resume()
    }, ms)
    timer.unref()
    const release = () => clearTimeout(timer)
    socket.once('close', release)
  })
}

/** The admission settings in force, defaults applied. */
export interface AdmissionSettings {
  maxInFlight: number
  maxListsInFlight: number
  queueSize: number
  queueTimeoutMs: number
  refusalPauseMs: number
  deadlineMs: number
}

/** The options with their defaults. */
export function admissionSettings(options: AdmissionOptions, poolSize: number): AdmissionSettings {
  const settings = {
    maxInFlight: options.maxInFlight ?? 64,
    maxListsInFlight: options.maxListsInFlight ?? Math.max(1, Math.floor(poolSize / 2)),
    queueSize: options.queueSize ?? 64,
    queueTimeoutMs: options.queueTimeoutMs ?? 1_000,
    refusalPauseMs: options.refusalPauseMs ?? 250,
    deadlineMs: options.deadlineMs ?? 30_000,
  }
  for (const [name, value] of Object.entries(settings)) {
    const least = name === 'maxInFlight' || name === 'maxListsInFlight' ? 1 : 0
    if (!Number.isInteger(value) || value < least) throw new Error(`admission.${name} must be an integer of at least ${least} (got ${value})`)
  }
  return settings
}

/** The two middlewares of admission control, and their gates (for tests and metrics). */
export interface Admission {
  /** Before anything else of a request: the cap on requests in flight, the signal and the deadline. */
  admit: Middleware
  /**
   * After authentication, around the work: the cap on lists in flight. After it, so that checking
   * credentials (a password hash takes tens of milliseconds) never holds a list place.
   */
  lists: Middleware
  gates: { all: Gate; lists: Gate }
}

/**
 * Admission control of the engine's requests: at most `maxInFlight` at once (lists also at most
 * `maxListsInFlight`), the others waiting in a short FIFO queue, and past that a fast 503
 * `overloaded` with `Retry-After`. Each admitted request gets a {@link Cancellation}
 * (`ctx.state.cancellation`; `params.signal` of its service calls is its AbortSignal) that aborts when
 * the client hangs up or the deadline passes;
 * at the deadline the request answers 503 `deadline_exceeded` at once.
 */
export function admission(settings: AdmissionSettings, host: AdmissionHost): Admission {
  const all = new Gate('request', settings.maxInFlight, settings.queueSize, settings.queueTimeoutMs)
  const lists = new Gate('list', settings.maxListsInFlight, settings.queueSize, settings.queueTimeoutMs)
  const { deadlineMs } = settings

  /** Runs the request with its signal and deadline. */
  function run(ctx: Context, next: () => Promise<unknown>): Promise<unknown> {
    const cancellation = new Cancellation()
    ctx.state.cancellation = cancellation
    const res = ctx.res
    const onClose = () => {
      if (!res.writableFinished) cancellation.abort(new ClientClosedError())
    }
    res.once('close', onClose)
    if (deadlineMs === 0) {
      return next().finally(() => res.removeListener('close', onClose))
    }
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        const err = errors.deadlineExceeded(deadlineMs)
        cancellation.abort(err)
        reject(err)
      }, deadlineMs)
      next().then(
        (value) => {
          clearTimeout(timer)
          res.removeListener('close', onClose)
          resolve(value)
        },
        (err) => {
          clearTimeout(timer)
          res.removeListener('close', onClose)
          reject(err)
        },
      )
    })
  }

  const admit: Middleware = async (ctx, next) => {
    // A list that would find the list queue full is refused here, before routing and authentication:
    // under a flood of lists, most requests are such refusals, and the cheaper each one is, the sooner
    // the event loop reaches the other requests (a detail's p50 under test/load-flood.test.ts's flood).
    if (lists.full && host.isList(ctx)) {
      holdConnection(ctx.res, settings.refusalPauseMs)
      throw refuse('queue_full', lists.name)
    }
    try {
      if (!all.tryEnter()) await all.wait(ctx.res)
    } catch (err) {
      if (err instanceof ApiError) holdConnection(ctx.res, settings.refusalPauseMs)
      throw err
    }
    try {
      await run(ctx, next)
    } catch (err) {
      if (err instanceof ApiError && err.code === 'overloaded') holdConnection(ctx.res, settings.refusalPauseMs)
      throw err
    } finally {
      all.leave()
    }
  }
  const listGate: Middleware = async (ctx, next) => {
    if (!host.isList(ctx)) return next()
    if (!lists.tryEnter()) {
      // A list waiting for a list place gives its request place back meanwhile (and takes one again
      // once admitted, beyond the cap if need be: by at most maxListsInFlight): else a crowd of
      // waiting lists would fill every request place and a detail or a write behind them would be
      // queued and refused, which is what the list cap exists to prevent.
      all.leave()
      try {
        await lists.wait(ctx.res)
      } finally {
        all.inFlight++
      }
    }
    try {
      await next()
    } finally {
      lists.leave()
    }
  }
  return { admit, lists: listGate, gates: { all, lists } }
}
