import { randomUUID } from 'node:crypto'
import type { Knex } from 'knex'
import type { Context, Middleware } from 'koa'
import type { Cancellation } from '../data/cancellation'
import { unavailableError } from '../data/pg-errors'
import { ApiError, errors } from '../errors'
import { ClientClosedError, REFUSAL_CODES } from './admission'

/**
 * Where the engine reports what the client is not told (5xx causes) and, when asked, one line per
 * request. A pino logger fits as it is: `createEngine({ ..., logger: pino() })`.
 */
export interface EngineLogger {
  error(details: Record<string, unknown>, message: string): void
  warn?(details: Record<string, unknown>, message: string): void
  info?(details: Record<string, unknown>, message: string): void
  /** Whether a level is written at all (pino's): lets the request log skip lines that would be dropped. */
  isLevelEnabled?(level: string): boolean
}

/** The default logger: JSON lines, errors on stderr, request lines (when asked for) on stdout. */
export const consoleLogger: EngineLogger = {
  error: (details, message) => console.error(JSON.stringify({ level: 'error', msg: message, ...details })),
  info: (details, message) => console.log(JSON.stringify({ level: 'info', msg: message, ...details })),
}

const SANE_REQUEST_ID = /^[\w.:-]{1,128}$/

/** The request's id: kept if an outer middleware gave one, else the client's when it is sane, else new. */
export function assignRequestId(ctx: Context): string {
  if (typeof ctx.state.requestId === 'string') return ctx.state.requestId
  const given = ctx.get('X-Request-Id')
  const id = SANE_REQUEST_ID.test(given) ? given : randomUUID()
  ctx.state.requestId = id
  ctx.set('X-Request-Id', id)
  return id
}

// Headers for a JSON API: no sniffing, never framed, no document features, no referrer, revalidate.
export const SECURITY_HEADERS: ReadonlyArray<readonly [string, string]> = [
  ['X-Content-Type-Options', 'nosniff'],
  ['Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'"],
  ['X-Frame-Options', 'DENY'],
  ['Referrer-Policy', 'no-referrer'],
  ['Cache-Control', 'no-cache'],
]

/**
 * Sets the security headers of every answer. Straight on the node response: these are constant
 * strings set before anything is sent, which is all koa's `ctx.set` would check, per header.
 */
export function setSecurityHeaders(ctx: Pick<Context, 'res'>): void {
  for (const [name, value] of SECURITY_HEADERS) ctx.res.setHeader(name, value)
}

/**
 * What runs around every request the engine serves, as one middleware rather than three in a row
 * (fewer koa-compose frames per request): gives the request its id (the client's `X-Request-Id`
 * when it is sane) echoed in the response, sets the security headers, then answers errors as
 * {@link errorHandler} does.
 */
export function engineFrame(options: FrameOptions): Middleware {
  const handleErrors = errorHandler(options)
  return (ctx, next) => {
    assignRequestId(ctx)
    setSecurityHeaders(ctx)
    return handleErrors(ctx, next)
  }
}

/**
 * Logs one line per request once its response is sent or abandoned: method, path, status, duration in
 * milliseconds and request id (which it assigns, so the line and the `X-Request-Id` header agree).
 * Info level below 500, error level from 500. The engine adds it only when asked (`logRequests`).
 */
export function requestLog(logger: EngineLogger): Middleware {
  return async (ctx, next) => {
    const id = assignRequestId(ctx)
    const started = process.hrtime.bigint()
    ctx.state.requestLogged = true
    ctx.res.once('close', () => {
      const status = ctx.res.statusCode
      // Below 500 the line is an info line: not built at all when the logger drops those.
      if (status < 500 && (!logger.info || logger.isLevelEnabled?.('info') === false)) return
      const line = {
        request_id: id,
        method: ctx.method,
        path: ctx.path,
        status,
        duration_ms: Math.round(Number(process.hrtime.bigint() - started) / 1e4) / 100,
        ...(ctx.res.writableFinished ? {} : { aborted: true }),
        ...(ctx.state.refused as object | undefined),
      }
      if (status >= 500) logger.error(line, 'request')
      else logger.info?.(line, 'request')
    })
    await next()
  }
}

/** Turns errors from body parsing (http-errors from co-body/raw-body, zlib) into registry errors. */
function fromHttpError(
  err: { status?: number; type?: string; expose?: boolean; message?: string; name?: string; code?: string },
  limit: string,
): ApiError | undefined {
  if (err.type === 'entity.too.large' || err.status === 413) return errors.bodyTooLarge(limit)
  // zlib's Z_DATA_ERROR, Z_BUF_ERROR...: a gzip or deflate body that is not what it claims to be;
  // brotli's decoder errors (BROTLI_DECODER_ERROR_FORMAT_...) reach us as ERR__ERROR_FORMAT_....
  if (typeof err.code === 'string' && (err.code.startsWith('Z_') || err.code.startsWith('ERR__ERROR_'))) return errors.undecodableBody()
  // co-body gives JSON.parse failures status 400; @hapi/bourne refuses a "__proto__" key the same way.
  if (err.status === 400 && err.name === 'SyntaxError') return /prototype/.test(err.message ?? '') ? errors.protoKey() : errors.invalidJson()
  if (err.type === 'entity.parse.failed' || (err.status === 400 && /JSON/i.test(err.message ?? ''))) return errors.invalidJson()
  if (err.type === 'encoding.unsupported' || err.status === 415) return new ApiError(415, err.message ?? 'Unsupported content encoding')
  if (err.expose && err.status && err.status >= 400 && err.status < 500) return new ApiError(err.status, err.message ?? 'Bad request')
  return undefined
}

/**
 * The error for a request no route answered: 405 listing the path's methods when the path exists (the
 * router says 501, in plain text, to a method no route uses at all, such as PROPFIND), else 404.
 */
function unrouted(ctx: Context): ApiError {
  const allow = ctx.response.get('Allow')
  if (allow) return errors.methodNotAllowed(ctx.method, allow)
  ctx.remove('Allow')
  return errors.routeNotFound(ctx.method, ctx.path)
}

/** What the frame needs: the body limit (for its 413 message), the logger, the database (for 503s). */
export interface FrameOptions {
  bodyLimit: string
  logger?: EngineLogger
  db?: Knex
  /** Told the code of every refusal (the metrics' `http_requests_refused_total{reason}` counts them). */
  onRefused?: (code: string) => void
}

/**
 * Every answer that refuses work (overloaded, rate limited, past the deadline, the database out of
 * reach or too slow) passes here once: one log line without a stack (the cause's first line only),
 * or, when the request log is on, its code and reason added to the request's own line.
 */
function refused(ctx: Context, error: ApiError, logger: EngineLogger): void {
  const cause = error.cause as Error | undefined
  const reason = cause ? String(cause.message ?? cause).split('\n', 1)[0] : error.message
  if (ctx.state.requestLogged) {
    ctx.state.refused = { code: error.code, reason }
    return
  }
  const line = { request_id: ctx.state.requestId, method: ctx.method, path: ctx.path, status: error.status, code: error.code, reason }
  if (error.status >= 500) logger.error(line, 'refused')
  else (logger.warn ?? logger.error).call(logger, line, 'refused')
}

/**
 * Answers every error in the `{"message", "payload", "status_code"}` shape. ApiErrors and client-side
 * http errors are sent as they are; anything else is logged with the request id and answered 500
 * (or 503 when the database cannot be reached) without any detail of the cause.
 */
function errorHandler(options: FrameOptions): Middleware {
  const logger = options.logger ?? consoleLogger
  return async (ctx, next) => {
    let error: ApiError | undefined
    try {
      await next()
      if (ctx.body == null && [404, 405, 501].includes(ctx.status)) error = unrouted(ctx)
    } catch (err) {
      const cancellation = ctx.state.cancellation as Cancellation | undefined
      if (err instanceof ClientClosedError || (cancellation?.aborted && cancellation.reason instanceof ClientClosedError)) {
        // Nobody to answer: one line, whatever the abandoned work failed with (its cancelled statement).
        logger.info?.({ request_id: ctx.state.requestId, method: ctx.method, path: ctx.path }, 'client closed the connection, request abandoned')
        return
      }
      error = err instanceof ApiError ? err : fromHttpError(err as never, options.bodyLimit)
      if (!error) error = unavailableError(err, options.db)
      if (error && REFUSAL_CODES.has(error.code)) {
        refused(ctx, error, logger)
        options.onRefused?.(error.code)
      } else if (error && error.status >= 500) {
        // A 5xx the database layer already translated (503): still logged, with its cause.
        const cause = error.cause as Error | undefined
        logger.error(
          {
            request_id: ctx.state.requestId,
            method: ctx.method,
            path: ctx.path,
            status: error.status,
            err: String(cause?.stack ?? cause?.message ?? error.message),
          },
          error.message,
        )
      } else if (!error) {
        error = errors.internal(ctx.state.requestId)
        logger.error(
          { request_id: ctx.state.requestId, method: ctx.method, path: ctx.path, status: error.status, err: String((err as Error)?.stack ?? err) },
          'unhandled error',
        )
      }
    }
    if (!error) return
    ctx.status = error.status
    for (const [name, value] of Object.entries(error.headers)) ctx.set(name, value)
    // A body abandoned halfway (a failed decompression) leaves bytes on the socket that would be read
    // as the next request on a kept-alive connection: that connection must close after this answer.
    if (!ctx.req.complete) ctx.set('Connection', 'close')
    ctx.body = error.toJSON()
  }
}
