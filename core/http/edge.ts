import { randomUUID } from 'node:crypto'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import cors from '@koa/cors'
import type { Context, Middleware } from 'koa'
import { errors } from '../errors'
import { assignRequestId, type EngineLogger, SECURITY_HEADERS, setSecurityHeaders } from './frame'

/**
 * The edge of the HTTP transport: which `Host` names are served, which browser origins may call
 * (CORS), Node's own answers to requests that are not valid HTTP, `Expect: 100-continue`, and koa's
 * reports of connections the client dropped.
 */

/** The loopback names served by default when the server is bound to a loopback address. */
export const LOOPBACK_HOSTS: readonly string[] = ['localhost', '127.0.0.1', '[::1]']

/** True for an address only this machine reaches (127.0.0.0/8, ::1, `localhost`). */
export function isLoopbackAddress(address: string): boolean {
  const a = address.toLowerCase().replace(/^\[|\]$/g, '')
  return a === 'localhost' || a === '::1' || a.startsWith('127.') || a.startsWith('::ffff:127.')
}

/**
 * A `Host` header's name and port (`[::1]:5000` → `[::1]`, `5000`), lower-cased; undefined when the
 * header is not a host name with an optional port.
 */
function splitHost(header: string): { name: string; port: string } | undefined {
  const host = header.toLowerCase()
  let name: string
  let rest: string
  if (host.startsWith('[')) {
    const end = host.indexOf(']')
    if (end < 0) return undefined
    name = host.slice(0, end + 1)
    rest = host.slice(end + 1)
  } else {
    const colon = host.indexOf(':')
    name = colon < 0 ? host : host.slice(0, colon)
    rest = colon < 0 ? '' : host.slice(colon)
  }
  if (rest && !/^:\d{1,5}$/.test(rest)) return undefined
  if (!name) return undefined
  return { name, port: rest.slice(1) }
}

/**
 * Checks the `allowedHosts` option at start-up: each entry is `*`, a host name or address (any port),
 * `name:port` (that port only) or `.example.com` (that name and every name below it). Throws naming
 * the entry when one is none of these.
 */
export function compileHostCheck(allowed: readonly string[]): ((header: string | undefined) => boolean) | undefined {
  if (allowed.includes('*')) return undefined
  const anyPort = new Set<string>()
  const exact = new Set<string>()
  const suffixes: string[] = []
  for (const raw of allowed) {
    const entry = raw.trim().toLowerCase()
    if (entry.startsWith('.') && splitHost(entry.slice(1))?.port === '') {
      suffixes.push(entry)
      anyPort.add(entry.slice(1))
      continue
    }
    const parsed = splitHost(entry)
    if (!parsed || /[/\s@]/.test(entry)) throw new Error(`allowed host '${raw}' is not a host name, an address, name:port, .domain or *`)
    if (parsed.port) exact.add(`${parsed.name}:${parsed.port}`)
    else anyPort.add(parsed.name)
  }
  return (header) => {
    if (!header) return false
    const parsed = splitHost(header)
    if (!parsed) return false
    if (anyPort.has(parsed.name) || exact.has(`${parsed.name}:${parsed.port}`)) return true
    for (const suffix of suffixes) if (parsed.name.endsWith(suffix)) return true
    return false
  }
}

/**
 * Answers 421 (`misdirected_request`, with a request id and the security headers) to a request whose
 * `Host` is not one of `allowed`: a page whose DNS name was rebound to this machine cannot drive it.
 * Undefined when every host is allowed (`*`).
 */
export function hostGuard(allowed: readonly string[], onRefused?: () => void): Middleware | undefined {
  const isAllowed = compileHostCheck(allowed)
  if (!isAllowed) return undefined
  return (ctx, next) => {
    if (isAllowed(ctx.req.headers.host)) return next()
    onRefused?.()
    assignRequestId(ctx)
    setSecurityHeaders(ctx)
    const error = errors.misdirected(ctx.req.headers.host ?? '')
    ctx.status = error.status
    ctx.set('Connection', 'close')
    ctx.body = error.toJSON()
    return Promise.resolve()
  }
}

/** Request headers a browser may send cross-origin, besides the CORS-safelisted ones. */
export const CORS_ALLOW_HEADERS = ['Authorization', 'Content-Type', 'If-Match', 'If-None-Match', 'Prefer', 'X-Request-Id']
/** Response headers a browser script may read. */
export const CORS_EXPOSE_HEADERS = [
  'ETag',
  'Location',
  'X-Request-Id',
  'Retry-After',
  'RateLimit',
  'RateLimit-Policy',
  'RateLimit-Limit',
  'RateLimit-Remaining',
  'RateLimit-Reset',
  'Link',
  'Preference-Applied',
  'Allow',
]

/**
 * The CORS policy (@koa/cors) for `origins`: `*` for any origin, else the listed origins
 * (`https://app.example.com`, checked and normalised at start-up). A request from another origin gets
 * no CORS header at all. Preflights (`OPTIONS` with `Access-Control-Request-Method`) are answered 204
 * with the allowed methods and headers, a request id and the security headers.
 */
export function corsPolicy(origins: readonly string[] | '*'): Middleware | undefined {
  const any = origins === '*' || origins.includes('*')
  if (!any && origins.length === 0) return undefined
  const listed = new Set(
    any
      ? []
      : (origins as readonly string[]).map((raw) => {
          let url: URL
          try {
            url = new URL(raw.trim())
          } catch {
            throw new Error(`CORS origin '${raw}' is not an origin such as https://app.example.com`)
          }
          if (url.origin === 'null' || url.pathname.length > 1 || url.search || url.hash) {
            throw new Error(`CORS origin '${raw}' is not an origin such as https://app.example.com (scheme, host and port only)`)
          }
          return url.origin
        }),
  )
  const policy = cors({
    origin: any ? '*' : (ctx: Context) => (listed.has(ctx.get('Origin')) ? ctx.get('Origin') : ''),
    allowMethods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowHeaders: CORS_ALLOW_HEADERS,
    exposeHeaders: CORS_EXPOSE_HEADERS,
    maxAge: 600,
  })
  return (ctx, next) => {
    // Without Origin there is nothing to do: not even a Vary header (the answer does not vary with it).
    if (!ctx.req.headers.origin) return next()
    if (ctx.method === 'OPTIONS') {
      assignRequestId(ctx)
      setSecurityHeaders(ctx)
    }
    return policy(ctx, next)
  }
}

/** The requests that wait for `100 Continue` until their body is read (see {@link expectContinue}). */
const awaitingContinue = new WeakSet<IncomingMessage>()

/**
 * A `checkContinue` listener for node:http: `server.on('checkContinue', expectContinue(handler))`.
 * The request goes to `handler` without `100 Continue`; the engine sends it when it starts reading
 * the body, that is once the route, the method, the credentials, the `Content-Type` and the
 * `Content-Length` are known good. Any refusal before that is the final answer (404, 405, 401, 413,
 * 415...), sent without the body ever being read (and Node closes that connection).
 */
export function expectContinue(handler: (req: IncomingMessage, res: ServerResponse) => void): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    awaitingContinue.add(req)
    handler(req, res)
  }
}

/** Sends `100 Continue` if this request still waits for it; called right before its body is read. */
export function continueIfAwaited(req: IncomingMessage, res: ServerResponse): void {
  if (!awaitingContinue.delete(req) || res.headersSent) return
  res.writeContinue()
}

/** Node's errors of a connection the client closed or reset: nothing to answer, nothing wrong here. */
const CLIENT_GONE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END'])

/** True when `err` only says the client went away. */
export function isClientGone(err: unknown): boolean {
  const code = (err as { code?: string } | undefined)?.code
  return code !== undefined && CLIENT_GONE.has(code)
}

// What Node answers by default for each parser error, and the engine's code for it.
function clientErrorAnswer(code: string | undefined): { status: number; error: string; message: string } {
  if (code === 'HPE_HEADER_OVERFLOW') return { status: 431, error: 'headers_too_large', message: 'Request headers are too large' }
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'ERR_HTTP_HEADERS_TIMEOUT') {
    return { status: 408, error: 'request_timeout', message: 'The request did not arrive in time' }
  }
  if (code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW') return { status: 413, error: 'payload_too_large', message: 'Request chunk extensions are too large' }
  return { status: 400, error: 'bad_request', message: 'The request is not valid HTTP' }
}

/**
 * A `clientError` listener for node:http: `server.on('clientError', clientErrorHandler(logger))`.
 * Where Node would answer a request it cannot parse in plain text (a bad request line: 400, headers
 * too slow: 408, headers too large: 431), this answers in the engine's JSON error shape with an
 * `X-Request-Id` and the security headers, logs one line, and closes the connection. A client that
 * reset the connection is logged in one info line.
 */
export function clientErrorHandler(logger: EngineLogger): (err: Error & { code?: string }, socket: Duplex) => void {
  return (err, socket) => {
    if (isClientGone(err) || !socket.writable || (socket as { bytesWritten?: number }).bytesWritten) {
      // With a response under way (node:http's `_httpMessage`), koa's error event says it, with the request.
      if (!(socket as { _httpMessage?: unknown })._httpMessage) logger.info?.({ code: err.code, err: err.message }, 'client connection closed')
      socket.destroy()
      return
    }
    const answer = clientErrorAnswer(err.code)
    const id = randomUUID()
    const body = JSON.stringify({ message: answer.message, payload: { request_id: id }, status_code: answer.status, code: answer.error })
    const head = [
      `HTTP/1.1 ${answer.status} ${http.STATUS_CODES[answer.status]}`,
      'Content-Type: application/json; charset=utf-8',
      `Content-Length: ${Buffer.byteLength(body)}`,
      `X-Request-Id: ${id}`,
      ...SECURITY_HEADERS.map(([name, value]) => `${name}: ${value}`),
      'Connection: close',
    ]
    ;(logger.warn ?? logger.error).call(logger, { request_id: id, status: answer.status, code: err.code, err: err.message }, 'malformed request')
    socket.end(`${head.join('\r\n')}\r\n\r\n${body}`)
  }
}

/**
 * A listener for koa's `error` event (`app.on('error', ...)`), which by default prints a multi-line
 * stack on stderr: a client that went away is one info line; anything else is one error line with
 * the stack in a field.
 */
export function koaErrorLogger(logger: EngineLogger): (err: Error & { code?: string }, ctx?: Context) => void {
  return (err, ctx) => {
    const details = { request_id: ctx?.state?.requestId, method: ctx?.method, path: ctx?.path, code: err?.code }
    if (isClientGone(err)) {
      logger.info?.({ ...details, err: err.message }, 'client connection closed')
      return
    }
    logger.error({ ...details, err: String(err?.stack ?? err) }, 'response failed')
  }
}
