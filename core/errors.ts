/**
 * Every error the API answers with. Routes throw an {@link ApiError}; the error middleware turns it
 * into `{"message", "payload", "status_code"}`. Anything else that escapes is a 5xx whose details are
 * logged, never sent.
 */
export class ApiError extends Error {
  readonly status: number
  readonly payload: Record<string, unknown>
  readonly headers: Record<string, string>

  constructor(status: number, message: string, payload: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.payload = payload
    this.headers = headers
  }

  /** The JSON body sent to the client. */
  toJSON(): ErrorBody {
    return { message: this.message, payload: this.payload, status_code: this.status }
  }
}

/** The shape of every error response body. */
export interface ErrorBody {
  message: string
  payload: Record<string, unknown>
  status_code: number
}

/** The registry: one factory per error the API can answer with. */
export const errors = {
  invalidJson: () => new ApiError(400, 'Request body is not valid JSON'),
  bodyNotObject: () => new ApiError(400, 'Request body must be a JSON object'),
  tooDeep: (max: number) => new ApiError(400, `Request body is nested deeper than ${max} levels`, { max_depth: max }),
  protoKey: () => new ApiError(400, "Request body may not contain a '__proto__' key"),
  undecodableBody: () => new ApiError(400, 'Request body cannot be decoded with its Content-Encoding'),
  validation: (fieldErrors: Record<string, string>, unlisted = 0) =>
    new ApiError(400, 'Request body does not match the schema', unlisted ? { errors: fieldErrors, more_errors: unlisted } : { errors: fieldErrors }),
  badParameter: (name: string, message: string, payload: Record<string, unknown> = {}) =>
    new ApiError(400, `Invalid '${name}' parameter: ${message}`, payload),
  unknownParameter: (name: string, valid: string[]) =>
    new ApiError(400, `Unknown query parameter '${name}'`, { valid_parameters: valid }),
  invalidValue: (detail: string) => new ApiError(400, `Invalid value: ${detail}`),
  notFound: (what = 'Resource') => new ApiError(404, `${what} not found`),
  routeNotFound: (method: string, path: string) => new ApiError(404, `No route for ${method} ${path}`),
  methodNotAllowed: (method: string, allow: string) =>
    new ApiError(405, `Method ${method} is not allowed here`, { allowed_methods: allow.split(', ') }, { Allow: allow }),
  conflict: (message: string, payload: Record<string, unknown> = {}) => new ApiError(409, message, payload),
  ifMatchRequired: () => new ApiError(412, "'If-match' header must be provided"),
  preconditionFailed: (current?: string) =>
    new ApiError(412, "'If-match' header does not match the current ETag", current ? { etag: current } : {}),
  bodyTooLarge: (limit: string) => new ApiError(413, `Request body is larger than ${limit}`, { limit }),
  unsupportedMediaType: (type: string | undefined) =>
    new ApiError(415, 'Request body must be sent as application/json', { content_type: type ?? null }),
  unprocessable: (message: string, payload: Record<string, unknown> = {}) => new ApiError(422, message, payload),
  internal: (requestId?: string) =>
    new ApiError(500, 'Internal server error', requestId ? { request_id: requestId } : {}),
  unavailable: (retryAfter: number) =>
    new ApiError(503, 'Database unavailable, retry later', { retry_after: retryAfter }, { 'Retry-After': String(retryAfter) }),
  queryTimeout: () => new ApiError(503, 'The query took too long and was cancelled', { retry_after: 1 }, { 'Retry-After': '1' }),
} as const

/** What the database layer knows about the statement that failed, to word the error. */
export interface DbErrorContext {
  /** `write` for INSERT/UPDATE, `delete` for DELETE, `read` otherwise. */
  operation: 'read' | 'write' | 'delete'
  /** Resource name, for messages. */
  resource: string
  /** Maps a constraint name to a human description (filled by the registry). */
  describeConstraint?: (constraint: string) => { fields?: string[]; referenced?: string; referencing?: string } | undefined
}

interface PgError {
  code?: string
  constraint?: string
  detail?: string
}

// Node socket errors, and PostgreSQL classes 08 (connection exception), 53300 (too many connections)
// and 57P01-57P03 (the server is shutting down, crashed or starting up).
const CONNECTION_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH',
  '57P01', '57P02', '57P03', '53300', '08000', '08001', '08003', '08004', '08006',
])

// What pg, pg-pool and knex say when a socket dies without a code (knex's acquire timeout has its name).
const CONNECTION_MESSAGES =
  /Connection terminated|Connection ended unexpectedly|connection timeout|timeout expired|Client has encountered a connection error|Client was closed and is not queryable|Timeout acquiring a connection/i

/**
 * The error and the errors it wraps: objection's `nativeError`, `cause`, and an AggregateError's
 * `errors` (a failed connect to several addresses), a few levels deep.
 */
function* causes(err: unknown, depth = 0): Generator<PgError & { message?: string; name?: string }> {
  if (!err || typeof err !== 'object' || depth > 4) return
  yield err as PgError
  const e = err as { nativeError?: unknown; cause?: unknown; errors?: unknown }
  if (e.nativeError) yield* causes(e.nativeError, depth + 1)
  if (e.cause) yield* causes(e.cause, depth + 1)
  if (Array.isArray(e.errors)) for (const inner of e.errors.slice(0, 4)) yield* causes(inner, depth + 1)
}

/**
 * True when the error means the database cannot be reached (answered with 503): a refused or broken
 * socket, a connection PostgreSQL terminated, or no pooled connection free in time. Looks through
 * the wrappers objection and knex put around driver errors.
 */
export function isConnectionError(err: unknown): boolean {
  for (const e of causes(err)) {
    if (typeof e.code === 'string' && CONNECTION_CODES.has(e.code)) return true
    if (e.name === 'KnexTimeoutError' || CONNECTION_MESSAGES.test(e.message ?? '')) return true
  }
  return false
}

/** True when PostgreSQL cancelled the statement (57014: `statement_timeout`, or a cancel request). */
export function isStatementTimeout(err: unknown): boolean {
  for (const e of causes(err)) if (e.code === '57014') return true
  return false
}

/**
 * The 503 answer for an error of the database itself (unreachable, or too slow), whatever layer it
 * escaped from; undefined for any other error.
 */
export function unavailableError(err: unknown): ApiError | undefined {
  const answer = isStatementTimeout(err) ? errors.queryTimeout() : isConnectionError(err) ? errors.unavailable(2) : undefined
  if (answer) answer.cause = err // logged by the error middleware, never sent
  return answer
}

/**
 * Translates a database error into an {@link ApiError} by its PostgreSQL code, or returns undefined when
 * the error is not the client's doing (the caller then answers 5xx and logs it).
 */
export function translateDbError(err: unknown, ctx: DbErrorContext): ApiError | undefined {
  if (!err || typeof err !== 'object') return undefined
  // objection wraps driver errors (db-errors); the PostgreSQL fields stay on the native error.
  const e = ((err as { nativeError?: PgError }).nativeError ?? err) as PgError
  const described = e.constraint ? ctx.describeConstraint?.(e.constraint) : undefined
  switch (e.code) {
    case '23505': {
      const fields = described?.fields ?? []
      const what = fields.length ? fields.join(', ') : 'a unique key'
      return errors.conflict(`A ${ctx.resource} with the same ${what} already exists`, { fields })
    }
    case '23503': // foreign_key_violation
    case '23001': // restrict_violation (ON DELETE RESTRICT)
      if (ctx.operation === 'delete') {
        const by = described?.referencing
        return errors.conflict(`This ${ctx.resource} is still used${by ? ` by ${by}` : ''}`, by ? { referenced_by: by } : {})
      }
      return errors.unprocessable(
        `A related ${described?.referenced ?? 'resource'} does not exist`,
        described?.fields ? { fields: described.fields } : {},
      )
    case '23502':
      return errors.invalidValue('a required field is missing')
    case '23514':
      return errors.invalidValue('a value breaks a check constraint')
    case '22P02': // invalid text representation
    case '22003': // numeric value out of range
    case '22007': // invalid datetime format
    case '22008': // datetime field overflow
    case '22009': // invalid time zone displacement (an offset beyond +-15:59)
    case '22001': // string too long
    case '22021': // invalid byte sequence (NUL in text)
    case '22P05': // untranslatable character
    case '54000': // program limit exceeded (e.g. index row too large)
      return errors.invalidValue('the database refused a value for this resource')
    default:
      // 57014 (statement timeout) and connection errors: the database's fault, answered 503.
      return unavailableError(err)
  }
}
