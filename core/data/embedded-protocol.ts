/**
 * The messages between the server's thread (embedded.ts) and the embedded database's thread
 * (pglite-worker.ts), and the states of the cell they share for the statement in flight.
 */

/** Sent to the thread, not started yet. */
export const SENT = 0
/** Started by the thread. */
export const RUNNING = 1
/** Given up by the caller (its timeout): the thread does not start it, or rolls it back. */
export const CANCELLED = 2
/** Finished by the thread and being committed: too late to give up. */
export const FINISHING = 3

/**
 * The exit code of a thread that set the database's `shared_buffers` (see pglite-worker.ts) and
 * ended so that a new thread opens the database with it.
 */
export const CONFIGURED = 75

/** PostgreSQL's shared buffers in the embedded database (its default, 128MB, is memory touched at each start). */
export const SHARED_BUFFERS = '32MB'

/** What the server's thread sends. */
export type Request = { sql: string; params?: unknown[]; options?: Record<string, unknown> } | { listen: string } | { close: true }

/** A NOTIFY on a channel listened to, sent by the database's thread before the answer of the statement that committed it. */
export interface Notification {
  notification: string
  payload: string
}

/** What the database's thread answers to a statement: the result, or the error's fields, or that the caller had given up. */
export interface Reply {
  rows?: unknown[]
  fields?: unknown[]
  affectedRows?: number
  error?: Record<string, unknown>
  cancelled?: boolean
  /** An explicit transaction is open after this statement: its session holds the database until it ends. */
  inTransaction: boolean
}

/** What the database's thread says once: opened, or not. */
export interface Started {
  ready: boolean
  /** PostgreSQL's `server_version`. */
  version?: string
  error?: Record<string, unknown>
}
