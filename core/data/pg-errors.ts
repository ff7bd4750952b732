import type { Knex } from 'knex'
import { type ApiError, errors } from '../errors'

/** What the database layer knows about the statement that failed, to word the error. */
export interface DbErrorContext {
  /** `write` for INSERT/UPDATE, `delete` for DELETE, `read` otherwise. */
  operation: 'read' | 'write' | 'delete'
  /** Resource name, for messages. */
  resource: string
  /** The database the statement ran on: tells a full pool (overloaded) from an unreachable database. */
  db?: Knex
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
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  '57P01',
  '57P02',
  '57P03',
  '53300',
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
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

/** True when the error is knex's wait for a pooled connection running out: no statement ran. */
export function isPoolTimeout(err: unknown): boolean {
  for (const e of causes(err)) if (e.name === 'KnexTimeoutError' && /Timeout acquiring a connection/.test(e.message ?? '')) return true
  return false
}

/**
 * Whether every connection of `db`'s pool is in use: a wait for one that timed out then means too many
 * requests, not a database out of reach (whose connections fail to open, so are not in use). Without
 * `db` (or a pool to ask), a pool timeout is taken as overload.
 */
function poolFull(db: Knex | undefined): boolean {
  const pool = (db as { client?: { pool?: { numUsed(): number; max: number } } } | undefined)?.client?.pool
  return !pool || pool.numUsed() >= pool.max
}

/**
 * The 503 answer for an error of the database itself, whatever layer it escaped from: `query_timeout`
 * for a cancelled statement, `overloaded` for no free pooled connection in time (every connection of
 * `db` busy), `unavailable` when it cannot be reached; undefined for any other error.
 */
export function unavailableError(err: unknown, db?: Knex): ApiError | undefined {
  const answer = isStatementTimeout(err)
    ? errors.queryTimeout()
    : isPoolTimeout(err) && poolFull(db)
      ? errors.overloaded('no free database connection', 1)
      : isConnectionError(err)
        ? errors.unavailable(2)
        : undefined
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
      if (ctx.operation === 'delete' && described?.referencing) {
        // ON DELETE SET NULL would make two rows of another table equal on one of its unique keys.
        return errors.conflict(`Deleting this ${ctx.resource} would make two ${described.referencing} equal on (${fields.join(', ')})`, {
          fields,
          referenced_by: described.referencing,
        })
      }
      const what = fields.length ? fields.join(', ') : 'a unique key'
      return errors.conflict(`A ${ctx.resource} with the same ${what} already exists`, { fields })
    }
    case '23503': // foreign_key_violation
    case '23001': // restrict_violation (ON DELETE RESTRICT)
      if (ctx.operation === 'delete') {
        const by = described?.referencing
        return errors.stillReferenced(`This ${ctx.resource} is still used${by ? ` by ${by}` : ''}`, by ? { referenced_by: by } : {})
      }
      return errors.relatedNotFound(`A related ${described?.referenced ?? 'resource'} does not exist`, described?.fields ? { fields: described.fields } : {})
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
      // 57014 (statement timeout), a full pool and connection errors: answered 503.
      return unavailableError(err, ctx.db)
  }
}

/**
 * Why start-up cannot succeed however long it waits, as one message that names what to fix, or
 * undefined when the error is not one of those: the database of `url` does not exist (3D000), its
 * user or password is refused (28P01, 28000), or its host name is unknown (ENOTFOUND). The URL's
 * password never appears in the message.
 */
export function fatalStartupMessage(err: unknown, url?: string): string | undefined {
  const target = describeUrl(url)
  for (const e of causes(err)) {
    switch (e.code) {
      case '3D000':
        return `database "${target.database}" does not exist on ${target.server}: create it (createdb -h ${target.host} -p ${target.port} -U ${target.user} ${target.database}, or CREATE DATABASE "${target.database}") or name another database in DATABASE_URL`
      case '28P01':
        return `PostgreSQL on ${target.server} refused the password of user "${target.user}": fix the user or password in DATABASE_URL`
      case '28000':
        return `PostgreSQL on ${target.server} refused user "${target.user}" (${e.message ?? 'invalid authorization'}): fix the user in DATABASE_URL, create the role, or allow it in pg_hba.conf`
      case 'ENOTFOUND':
        return `the host "${target.host}" of DATABASE_URL is not known (DNS lookup failed: ENOTFOUND): fix the host in DATABASE_URL`
    }
  }
  return undefined
}

/**
 * Checks that `url` is a PostgreSQL connection URL before anything connects with it; returns the
 * problem as a message naming the variable (without the password), or undefined when it is fine.
 */
export function databaseUrlProblem(url: string, variable = 'DATABASE_URL'): string | undefined {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return `${variable} is not a URL (expected postgres://user:password@host:port/database)`
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    return `${variable} must start with postgres:// or postgresql://, not ${parsed.protocol}// (expected postgres://user:password@host:port/database)`
  }
  if (parsed.port && !/^\d+$/.test(parsed.port)) return `${variable} has a bad port '${parsed.port}'`
  return undefined
}

/** The parts of a connection URL that messages name (never the password). */
function describeUrl(url: string | undefined): { host: string; port: string; user: string; database: string; server: string } {
  let parsed: URL | undefined
  try {
    parsed = url ? new URL(url) : undefined
  } catch {
    parsed = undefined
  }
  const host = parsed?.hostname || 'localhost'
  const port = parsed?.port || '5432'
  const user = decodeURIComponent(parsed?.username || '') || process.env.PGUSER || process.env.USER || 'postgres'
  const database = decodeURIComponent(parsed?.pathname.slice(1) || '') || user
  return { host, port, user, database, server: `${host}:${port}` }
}

/**
 * Errors worth waiting out at start-up: the database is unreachable (connection refused or reset, a
 * DNS failure that may pass: EAI_AGAIN), starting (57P03) or full (53300), or another server process
 * runs the same migrations at this moment (knex's lock, or PostgreSQL's race on creating the same
 * table). Anything else stops start-up at once: a missing database, refused credentials or an unknown
 * host ({@link fatalStartupMessage}), a bad schema, a failing migration.
 */
export function isTransientStartupError(err: unknown): boolean {
  if (fatalStartupMessage(err) !== undefined) return false
  if (isConnectionError(err)) return true
  const e = err as { code?: string; name?: string; message?: string; constraint?: string }
  // 42P07 and 42710: a table (or its row type) another process just created; 40P01: deadlock.
  if (e?.code === '42P07' || e?.code === '42710' || e?.code === '40P01') return true
  // The same race, lost on the catalog's unique indexes of type or relation names.
  if (e?.code === '23505' && (e.constraint === 'pg_type_typname_nsp_index' || e.constraint === 'pg_class_relname_nsp_index')) return true
  return e?.name === 'MigrationLocked' || /Migration table is already locked/.test(e?.message ?? '')
}
