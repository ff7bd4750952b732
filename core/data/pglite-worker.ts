/**
 * The embedded database's thread: PGlite (PostgreSQL compiled to WebAssembly, single-threaded) runs
 * here, off the server's event loop, and runs the statements `embedded.ts` sends it, one at a time.
 *
 * Cancellation: PGlite cannot be interrupted mid-statement (no statement_timeout in the WebAssembly
 * build), so the caller gives up on its side and flags it in a shared cell; a statement that was not a
 * transaction's own runs here in a transaction of its own, rolled back when the flag says the caller
 * gave up, so a statement answered "timed out" never takes effect, as with PostgreSQL's cancel.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { parentPort, workerData } from 'node:worker_threads'
import type { PGlite as PGliteType } from '@electric-sql/pglite'
import { CONFIGURED, FINISHING, type Notification, type Reply, type Request, RUNNING, SENT, SHARED_BUFFERS, type Started } from './embedded-protocol'
import { parseTimestamptz } from './timestamptz'

// Statements that must not or need not run in a transaction of their own: reads, transaction control,
// and those PostgreSQL refuses in a transaction block.
const UNWRAPPED =
  /^\s*(select|begin|start|commit|end|rollback|savepoint|release|set|show|vacuum|alter\s+system|create\s+database|drop\s+database|(create|drop)\s+index\s+concurrently)\b/i

/** An error's fields, for postMessage (which keeps only name, message and stack of an Error). */
function fieldsOf(err: unknown): Record<string, unknown> {
  if (!err || typeof err !== 'object') return { message: String(err) }
  const out: Record<string, unknown> = { name: (err as Error).name, message: (err as Error).message }
  for (const [key, value] of Object.entries(err)) if (value === undefined || ['string', 'number', 'boolean'].includes(typeof value)) out[key] = value
  return out
}

async function main(): Promise<void> {
  const port = parentPort!
  const { dataDir, initOnly, configured, state } = workerData as { dataDir?: string; initOnly: boolean; configured: boolean; state: SharedArrayBuffer }
  const cell = new Int32Array(state)
  const { PGlite } = require('@electric-sql/pglite') as typeof import('@electric-sql/pglite')
  // PostgreSQL's types as pg gives them: bigint and numeric as strings, timestamptz by postgres-date's rules.
  const parsers = { 20: (v: string) => v, 1700: (v: string) => v, 1184: parseTimestamptz }
  let db: PGliteType
  try {
    db = new PGlite(dataDir ? { dataDir, parsers } : { parsers })
    await db.waitReady
    // The shared_buffers initdb writes, 128MB, is WebAssembly memory that PGlite touches at each start
    // (RSS 306 MB against 174 MB with 32MB, measured). A folder that has initdb's value gets ours
    // (ALTER SYSTEM), which takes effect when PostgreSQL starts: this thread ends and a new one opens
    // the folder (`configured`, so that it never loops). A value set by ALTER SYSTEM is kept.
    if (dataDir && !configured) {
      const { rows: setting } = await db.query<{ sourcefile: string | null }>(`SELECT sourcefile FROM pg_settings WHERE name = 'shared_buffers'`)
      if (!setting[0]?.sourcefile?.endsWith('postgresql.auto.conf')) {
        await db.exec(`ALTER SYSTEM SET shared_buffers = '${SHARED_BUFFERS}'`)
        await db.close()
        process.exit(initOnly ? 0 : CONFIGURED)
      }
    }
    if (initOnly) {
      // A new DATA_DIR, made and written: this thread ends, and its memory with it (see embedded.ts).
      await db.close()
      process.exit(0)
    }
    // In memory, initdb ran here in a second PGlite, closed now: its memory (hundreds of MB of
    // WebAssembly) goes back at the next collection, which this quiet thread may not run for long.
    setFlagsFromString('--expose-gc')
    ;(runInNewContext('gc') as () => void)()
    const { rows } = await db.query<{ server_version: string }>('SHOW server_version')
    port.postMessage({ ready: true, version: rows[0].server_version } satisfies Started)
  } catch (err) {
    port.postMessage({ ready: false, error: fieldsOf(err) } satisfies Started)
    return
  }

  const run = async (sql: string, params?: unknown[], options?: Record<string, unknown>): Promise<Reply> => {
    // Given up before it started: not run at all.
    if (Atomics.compareExchange(cell, 0, SENT, RUNNING) !== SENT) return { cancelled: true, inTransaction: db.isInTransaction() }
    const wrap = !db.isInTransaction() && !UNWRAPPED.test(sql)
    if (wrap) await db.query('BEGIN')
    try {
      const result = await db.query(sql, params, options)
      const done = Atomics.compareExchange(cell, 0, RUNNING, FINISHING) === RUNNING
      if (wrap) await db.query(done ? 'COMMIT' : 'ROLLBACK')
      if (!done) return { cancelled: true, inTransaction: db.isInTransaction() }
      return { rows: result.rows, fields: result.fields, affectedRows: result.affectedRows, inTransaction: db.isInTransaction() }
    } catch (err) {
      Atomics.store(cell, 0, FINISHING)
      if (wrap && db.isInTransaction()) await db.query('ROLLBACK')
      return { error: fieldsOf(err), inTransaction: db.isInTransaction() }
    }
  }

  const listen = async (channel: string): Promise<Reply> => {
    Atomics.store(cell, 0, FINISHING)
    await db.listen(channel, (payload) => port.postMessage({ notification: channel, payload } satisfies Notification))
    return { inTransaction: db.isInTransaction() }
  }

  port.on('message', (message: Request) => {
    if ('close' in message) {
      // Closed (its files written): the port closes too, which is what lets this thread end. Left
      // open, its listener would keep the thread alive until the caller's grace period stopped it.
      db.close().then(
        () => {
          port.postMessage({ closed: true })
          port.close()
        },
        (err) => {
          port.postMessage({ closed: true, error: fieldsOf(err) })
          port.close()
        },
      )
      return
    }
    const work = 'listen' in message ? listen(message.listen) : run(message.sql, message.params, message.options)
    work.then(
      (reply) => port.postMessage(reply),
      (err) => port.postMessage({ error: fieldsOf(err), inTransaction: false }),
    )
  })
}

main().catch((err) => parentPort!.postMessage({ ready: false, error: fieldsOf(err) }))
