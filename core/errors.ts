import { BUILTIN_ERROR_CODES, type ErrorBody, type ErrorCode } from '../client/protocol'

export type { ErrorBody, ErrorCode }

/**
 * Every error the API answers with. Services, hooks and routes throw an {@link ApiError}; the HTTP
 * layer turns it into `{"message", "payload", "status_code", "code"}`. Anything else that escapes is
 * a 5xx whose details are logged, never sent.
 */
export class ApiError extends Error {
  readonly status: number
  readonly code: string
  readonly payload: Record<string, unknown>
  readonly headers: Record<string, string>

  constructor(status: number, message: string, payload: Record<string, unknown> = {}, headers: Record<string, string> = {}, code = defaultCode(status)) {
    // An answer, not a fault: no stack trace is captured (nothing reads it, and capturing one was the
    // costliest part of refusing a request under a flood; see bench/RESULTS.md). A 5xx's cause keeps its own.
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(message)
    Error.stackTraceLimit = limit
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.payload = payload
    this.headers = headers
  }

  /** The JSON body sent to the client. */
  toJSON(): ErrorBody {
    return { message: this.message, payload: this.payload, status_code: this.status, code: this.code }
  }
}

/** The code of an error made with a status only (a plugin's `new ApiError(403, ...)`). */
const DEFAULT_CODES: Record<number, string> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  409: 'conflict',
  412: 'precondition_failed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  422: 'unprocessable',
  429: 'too_many_requests',
  500: 'internal',
  503: 'unavailable',
}

function defaultCode(status: number): string {
  return DEFAULT_CODES[status] ?? `http_${status}`
}

/** One entry of an {@link ErrorRegistry}. */
export interface ErrorCodeDefinition {
  status: number
  description: string
}

const CODE = /^[a-z][a-z0-9_]{1,63}$/

/**
 * The codes one engine answers with: the built-in ones plus those its plugins register. openapi.json
 * documents each status with its codes from here; the typed client types `code` by the built-in table.
 */
export class ErrorRegistry {
  private readonly codes = new Map<string, ErrorCodeDefinition>(Object.entries(BUILTIN_ERROR_CODES))

  /**
   * Registers a code (`forbidden`, 403, 'The caller may not...'). The same code with the same status
   * again is a no-op; with another status it is refused, naming the code.
   */
  define(code: string, status: number, description: string): void {
    if (!CODE.test(code)) throw new Error(`error code '${code}' must be snake_case (${CODE})`)
    if (!Number.isInteger(status) || status < 400 || status > 599) throw new Error(`error code '${code}': status ${status} is not 4xx or 5xx`)
    const known = this.codes.get(code)
    if (known && known.status !== status) throw new Error(`error code '${code}' is already registered with status ${known.status}`)
    if (!known) this.codes.set(code, { status, description })
  }

  /** An error with a registered code: its status comes from the registry. */
  create(code: string, message: string, payload: Record<string, unknown> = {}, headers: Record<string, string> = {}): ApiError {
    const known = this.codes.get(code)
    if (!known) throw new Error(`error code '${code}' is not registered`)
    return new ApiError(known.status, message, payload, headers, code)
  }

  has(code: string): boolean {
    return this.codes.has(code)
  }

  /** Every code by status, in registration order. */
  byStatus(): Map<number, Array<[code: string, definition: ErrorCodeDefinition]>> {
    const out = new Map<number, Array<[string, ErrorCodeDefinition]>>()
    for (const entry of this.codes) {
      const list = out.get(entry[1].status) ?? []
      list.push(entry)
      out.set(entry[1].status, list)
    }
    return out
  }
}

/** The engine's own errors, one factory each. */
export const errors = {
  invalidJson: () => new ApiError(400, 'Request body is not valid JSON', {}, {}, 'invalid_json'),
  bodyNotObject: () => new ApiError(400, 'Request body must be a JSON object', {}, {}, 'invalid_body'),
  tooDeep: (max: number) => new ApiError(400, `Request body is nested deeper than ${max} levels`, { max_depth: max }, {}, 'invalid_body'),
  protoKey: () => new ApiError(400, "Request body may not contain a '__proto__' key", {}, {}, 'invalid_body'),
  undecodableBody: () => new ApiError(400, 'Request body cannot be decoded with its Content-Encoding', {}, {}, 'invalid_body'),
  validation: (fieldErrors: Record<string, string>, unlisted = 0) =>
    new ApiError(
      400,
      'Request body does not match the schema',
      unlisted ? { errors: fieldErrors, more_errors: unlisted } : { errors: fieldErrors },
      {},
      'validation_failed',
    ),
  badParameter: (name: string, message: string, payload: Record<string, unknown> = {}) =>
    new ApiError(400, `Invalid '${name}' parameter: ${message}`, payload, {}, 'invalid_parameter'),
  badHeader: (name: string, message: string, payload: Record<string, unknown> = {}) =>
    new ApiError(400, `Invalid '${name}' header: ${message}`, { header: name, ...payload }, {}, 'invalid_header'),
  unknownParameter: (name: string, valid: string[]) =>
    new ApiError(400, `Unknown query parameter '${name}'`, { valid_parameters: valid }, {}, 'unknown_parameter'),
  invalidValue: (detail: string, payload: Record<string, unknown> = {}) => new ApiError(400, `Invalid value: ${detail}`, payload, {}, 'invalid_body'),
  unauthorized: (challenges: readonly string[]) =>
    new ApiError(401, 'Credentials are missing or wrong', {}, challenges.length ? { 'WWW-Authenticate': challenges.join(', ') } : {}, 'unauthorized'),
  notFound: (what = 'Resource') => new ApiError(404, `${what} not found`, {}, {}, 'not_found'),
  routeNotFound: (method: string, path: string) => new ApiError(404, `No route for ${method} ${path}`, {}, {}, 'route_not_found'),
  methodNotAllowed: (method: string, allow: string) =>
    new ApiError(405, `Method ${method} is not allowed here`, { allowed_methods: allow.split(', ') }, { Allow: allow }, 'method_not_allowed'),
  readOnly: (plural: string) =>
    new ApiError(
      405,
      `${plural} are read-only: only GET and HEAD are allowed`,
      { allowed_methods: ['GET', 'HEAD'] },
      { Allow: 'GET, HEAD' },
      'method_not_allowed',
    ),
  forbidden: (message = 'The caller may not do this') => new ApiError(403, message, {}, {}, 'forbidden'),
  conflict: (message: string, payload: Record<string, unknown> = {}) => new ApiError(409, message, payload, {}, 'conflict'),
  stillReferenced: (message: string, payload: Record<string, unknown> = {}) => new ApiError(409, message, payload, {}, 'still_referenced'),
  ifMatchRequired: () => new ApiError(412, "'If-match' header must be provided", {}, {}, 'precondition_required'),
  preconditionFailed: (current?: string) =>
    new ApiError(412, "'If-match' header does not match the current ETag", current ? { etag: current } : {}, {}, 'precondition_failed'),
  bodyTooLarge: (limit: string) => new ApiError(413, `Request body is larger than ${limit}`, { limit }, {}, 'payload_too_large'),
  unsupportedMediaType: (type: string | undefined, message = 'Request body must be sent as application/json') =>
    new ApiError(415, message, { content_type: type ?? null }, {}, 'unsupported_media_type'),
  relatedNotFound: (message: string, payload: Record<string, unknown> = {}) => new ApiError(422, message, payload, {}, 'related_not_found'),
  internal: (requestId?: string) => new ApiError(500, 'Internal server error', requestId ? { request_id: requestId } : {}, {}, 'internal'),
  unavailable: (retryAfter: number) =>
    new ApiError(503, 'Database unavailable, retry later', { retry_after: retryAfter }, { 'Retry-After': String(retryAfter) }, 'unavailable'),
  misdirected: (host: string) =>
    new ApiError(421, `This server does not serve the host '${host.slice(0, 100)}'`, { host: host.slice(0, 100) }, {}, 'misdirected_request'),
  notReady: (reason: string) => new ApiError(503, `Not ready: ${reason}`, { reason }, { 'Retry-After': '1' }, 'not_ready'),
  overloaded: (reason: string, retryAfter = 1) =>
    new ApiError(503, `The server is overloaded (${reason}), retry later`, { retry_after: retryAfter }, { 'Retry-After': String(retryAfter) }, 'overloaded'),
  deadlineExceeded: (deadlineMs: number) =>
    new ApiError(
      503,
      `The request took longer than ${deadlineMs} ms and was cancelled`,
      { retry_after: 1, deadline_ms: deadlineMs },
      { 'Retry-After': '1' },
      'deadline_exceeded',
    ),
  rateLimited: (retryAfter: number, headers: Record<string, string>) =>
    new ApiError(429, 'Too many requests, retry later', { retry_after: retryAfter }, { ...headers, 'Retry-After': String(retryAfter) }, 'rate_limited'),
  queryTimeout: () => new ApiError(503, 'The query took too long and was cancelled', { retry_after: 1 }, { 'Retry-After': '1' }, 'query_timeout'),
} as const
