/**
 * The wire contract both sides read: the error body and the error codes the engine itself answers
 * with. Pure data, no imports: the server's error registry starts from this table and the client
 * types `code` by it. Plugins register more codes on the server (documented in openapi.json).
 */

/** The shape of every error response body. */
export interface ErrorBody {
  message: string
  payload: Record<string, unknown>
  status_code: number
  /** Stable, machine-readable: switch on it, not on `message`. */
  code: string
}

/** The fields the server adds to every row and owns: clients read them, never write them. */
export const ENGINE_FIELD_NAMES = ['id', 'created_at', 'updated_at', 'etag'] as const

/** The name of one of them. */
export type EngineFieldName = (typeof ENGINE_FIELD_NAMES)[number]

/** Every code the engine answers with, its HTTP status and when. */
export const BUILTIN_ERROR_CODES = {
  invalid_json: { status: 400, description: 'The body is not valid JSON.' },
  invalid_body: { status: 400, description: 'The body is not a JSON object, is nested too deep, or holds a value that cannot be stored as sent.' },
  validation_failed: { status: 400, description: 'The body does not match the schema; `payload.errors` maps each field to its error.' },
  invalid_parameter: { status: 400, description: 'A query parameter has a bad value; `payload` lists what is valid.' },
  unknown_parameter: { status: 400, description: 'A query parameter the route does not take.' },
  invalid_query: {
    status: 400,
    description:
      'The `query` expression is malformed or names an unknown field, operator or value; `payload.position` says where, `payload.expected` what could be there.',
  },
  invalid_header: { status: 400, description: 'A request header has a bad value (`If-Match` listing more than 16 tags...); `payload.header` names it.' },
  unauthorized: { status: 401, description: 'Credentials are missing or wrong (`WWW-Authenticate` says which schemes the server takes).' },
  forbidden: { status: 403, description: 'The caller is known but may not do this.' },
  not_found: { status: 404, description: 'No row has this id.' },
  route_not_found: { status: 404, description: 'No route has this path.' },
  method_not_allowed: { status: 405, description: 'The path exists but not with this method (`Allow` lists its methods).' },
  conflict: { status: 409, description: 'The write breaks a unique key.' },
  still_referenced: { status: 409, description: 'Other rows still point at this row.' },
  precondition_required: { status: 412, description: '`If-Match` is missing.' },
  precondition_failed: { status: 412, description: '`If-Match` does not match the current ETag: someone changed the row since it was read.' },
  payload_too_large: { status: 413, description: 'The body is larger than the server accepts.' },
  unsupported_media_type: { status: 415, description: 'The body is not sent as `application/json`.' },
  misdirected_request: { status: 421, description: 'The `Host` header names a host this server does not serve (`ALLOWED_HOSTS`).' },
  related_not_found: { status: 422, description: 'A relation field names a row that does not exist.' },
  rate_limited: { status: 429, description: 'The caller sent more requests than its rate limit allows (`Retry-After`, `RateLimit`, `RateLimit-Policy`).' },
  internal: { status: 500, description: 'The server failed; `payload.request_id` names the log line.' },
  unavailable: { status: 503, description: 'The database cannot be reached (`Retry-After`).' },
  query_timeout: { status: 503, description: 'A statement ran past its timeout (`Retry-After`).' },
  not_ready: { status: 503, description: '`GET /readyz` only: the database does not answer in time or a migration is pending.' },
  bad_request: { status: 400, description: 'The request is not valid HTTP (a bad request line or header); answered before any route.' },
  request_timeout: { status: 408, description: 'The request line and headers did not arrive in time.' },
  headers_too_large: { status: 431, description: 'The request headers are larger than the server accepts.' },
  overloaded: {
    status: 503,
    description: 'The server has too many requests in flight, or no free database connection in time: retry after `Retry-After` seconds.',
  },
  deadline_exceeded: { status: 503, description: "The request ran past the server's deadline for a whole request and was cancelled (`Retry-After`)." },
} as const satisfies Record<string, { status: number; description: string }>

/** A code the engine itself answers with. */
export type BuiltinErrorCode = keyof typeof BUILTIN_ERROR_CODES

/** A built-in code, or one a server plugin registered. */
export type ErrorCode = BuiltinErrorCode | (string & {})
