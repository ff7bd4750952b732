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
  validation: (fieldErrors: Record<string, string>) =>
    new ApiError(400, 'Request body does not match the schema', { errors: fieldErrors }),
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

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', '57P01', '57P02', '57P03', '08000', '08001', '08003', '08006'])

/** True when the error means the database cannot be reached (answered with 503). */
export function isConnectionError(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false
  const e = err as PgError & { message?: string; name?: string }
  if (e.code && CONNECTION_CODES.has(e.code)) return true
  const m = e.message ?? ''
  return e.name === 'KnexTimeoutError' || /Connection terminated|connection timeout|Client has encountered a connection error/i.test(m)
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
    case '22001': // string too long
    case '22021': // invalid byte sequence (NUL in text)
    case '22P05': // untranslatable character
    case '54000': // program limit exceeded (e.g. index row too large)
      return errors.invalidValue('the database refused a value for this resource')
    case '57014': // statement timeout
      return new ApiError(503, 'The query took too long and was cancelled', {}, { 'Retry-After': '1' })
    default:
      if (isConnectionError(e) || isConnectionError(err)) return errors.unavailable(2)
      return undefined
  }
}
