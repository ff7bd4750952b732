import type { Knex } from 'knex'
import type { EngineLogger } from '../http/frame'

/** The channel the migration's triggers notify on when users, key holders or API keys change. */
export const IDENTITY_CHANNEL = 'identity_changed'
/** The name of those triggers, on each table whose rows make a caller (see the migration). */
export const IDENTITY_TRIGGER = 'identity_changed'

/** First and longest wait before listening again after the listening connection was lost. */
const RETRY_MS = [1_000, 30_000] as const

/**
 * Tells whether what a process remembers of callers is still what the database holds. Triggers
 * (migration `..._identity_change_notifications`) notify {@link IDENTITY_CHANNEL} at the commit of
 * every change to the tables callers are read from (users, key holders such as remotecis, API keys),
 * whoever makes it: the API, `npm run user`, SQL by hand, a TRUNCATE. Each process listens; each
 * notification starts a new `generation`, and a caller read in an older one is read again.
 *
 * `live` is false until the listener runs (and while it is lost, and for good when a table lacks the
 * trigger): then nothing remembered is trusted and every request reads the database. On PostgreSQL
 * the listener is one connection of its own per database (shared by every engine on that knex),
 * closed when the knex is destroyed; the embedded database, whose one thread holds it, delivers its
 * notifications with the answer of the statement that committed.
 */
export class IdentityChanges {
  generation = 0
  live = false
  /** True once its knex was destroyed: a new tracker serves the knex if it is initialised again. */
  stopped = false
  private connection: { end(): Promise<void> } | undefined
  private retry: NodeJS.Timeout | undefined
  private lostOnce = false

  constructor(
    private readonly db: Knex,
    private readonly tables: readonly string[],
    private readonly logger: EngineLogger,
    /** Forgets this tracker, so that a knex initialised again after its destroy gets a new one. */
    private readonly forget: () => void,
  ) {}

  /** True when a caller read in `generation` is still current. */
  current(generation: number): boolean {
    return this.live && generation === this.generation
  }

  /** Something changed (or may have, unseen): forget every caller read until now. */
  changed(): void {
    this.generation++
  }

  start(): void {
    const client = this.db.client as { config: { connection?: unknown }; pool?: { on?(event: string, listener: () => void): void } }
    client.pool?.on?.('poolDestroyRequest', () => this.stop())
    // The embedded database (core/data/embedded.ts) listens itself: one thread holds it.
    const embedded = (client as { embedded?: PGliteLike }).embedded
    void (embedded ? this.listenPGlite(embedded) : this.listenPostgres(0))
  }

  private stop(): void {
    this.stopped = true
    this.live = false
    this.changed()
    clearTimeout(this.retry)
    this.connection?.end().catch(() => {})
    this.connection = undefined
    this.forget()
  }

  /** The tables that lack the trigger (their changes would go unseen). */
  private async untriggered(query: (sql: string, values: unknown[]) => Promise<{ rows: Array<{ relname: string }> }>): Promise<string[]> {
    const { rows } = await query(
      'SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname = $1 AND NOT t.tgisinternal AND c.relname = ANY($2::text[])',
      [IDENTITY_TRIGGER, this.tables],
    )
    const found = new Set(rows.map((r) => r.relname))
    return this.tables.filter((t) => !found.has(t))
  }

  private refuse(missing: string[]): void {
    this.logger.warn?.(
      { tables: missing, trigger: IDENTITY_TRIGGER },
      'callers are not remembered between requests: these tables have no trigger telling of their changes (every request reads its caller from the database)',
    )
  }

  private async listenPGlite(pglite: PGliteLike): Promise<void> {
    try {
      const missing = await this.untriggered((sql, values) => pglite.run(sql, values))
      if (missing.length) return this.refuse(missing)
      await pglite.listen(IDENTITY_CHANNEL, () => this.changed())
      if (this.stopped) return
      this.changed()
      this.live = true
    } catch (err) {
      this.logger.warn?.({ err: (err as Error).message }, 'callers are not remembered between requests: listening for their changes failed')
    }
  }

  private async listenPostgres(attempt: number): Promise<void> {
    if (this.stopped) return
    let connection: PgConnectionLike | undefined
    try {
      // A connection of its own, with knex's settings, outside the pool: it stays in LISTEN.
      connection = (await (this.db.client as { acquireRawConnection(): Promise<PgConnectionLike> }).acquireRawConnection()) as PgConnectionLike
      const conn = connection
      conn.on('error', () => {}) // followed by 'end', handled there
      conn.on('notification', (message: { channel: string }) => {
        if (message.channel === IDENTITY_CHANNEL) this.changed()
      })
      conn.once('end', () => this.lost(conn))
      const missing = await this.untriggered((sql, values) => conn.query(sql, values))
      if (missing.length) {
        await conn.end()
        return this.refuse(missing)
      }
      await conn.query(`LISTEN ${IDENTITY_CHANNEL}`)
      // Nothing keeps the process alive for this connection alone.
      conn.connection?.stream?.unref?.()
      if (this.stopped) return void conn.end().catch(() => {})
      this.connection = conn
      this.changed()
      this.live = true
      if (this.lostOnce) this.logger.info?.({}, 'listening for changes of callers again: callers are remembered between requests')
    } catch (err) {
      connection?.end().catch(() => {})
      if (this.stopped) return
      const delay = Math.min(RETRY_MS[1], RETRY_MS[0] * 2 ** attempt)
      if (attempt === 0)
        this.logger.warn?.({ err: (err as Error).message, retry_in_ms: delay }, 'cannot listen for changes of callers: every request reads its caller')
      this.retry = setTimeout(() => void this.listenPostgres(attempt + 1), delay)
      this.retry.unref()
    }
  }

  private lost(connection: PgConnectionLike): void {
    if (this.connection !== connection) return
    this.connection = undefined
    this.live = false
    this.changed()
    if (this.stopped) return
    this.lostOnce = true
    this.logger.warn?.({}, 'lost the listener of changes of callers: every request reads its caller until it is back')
    void this.listenPostgres(0)
  }
}

interface PGliteLike {
  run(sql: string, values: unknown[]): Promise<{ rows: Array<{ relname: string }> }>
  listen(channel: string, callback: (payload: string) => void): Promise<unknown>
}

interface PgConnectionLike {
  query(sql: string, values?: unknown[]): Promise<{ rows: Array<{ relname: string }> }>
  on(event: string, listener: (...args: any[]) => void): void
  once(event: string, listener: () => void): void
  end(): Promise<void>
  connection?: { stream?: { unref?(): void } }
}

/** Every tracker of this process, for {@link changedHere}. */
const trackers = new Set<IdentityChanges>()

/**
 * A write of this process changed callers: every tracker of the process forgets its callers now,
 * without waiting for the NOTIFY of the commit (which other processes wait for, and which still comes).
 */
export function changedHere(): void {
  for (const tracker of trackers) tracker.changed()
}

/** One listener per database (knex instance) and set of tables, whoever asks: engines on one database share it. */
const watched = new WeakMap<Knex, Map<string, IdentityChanges>>()

/** The change tracker of a database's caller tables, listening from the first call on. */
export function identityChanges(db: Knex, tables: readonly string[], logger: EngineLogger): IdentityChanges {
  const key = [...tables].sort().join(',')
  let byTables = watched.get(db)
  if (!byTables) watched.set(db, (byTables = new Map()))
  let changes = byTables.get(key)
  if (!changes) {
    const made: IdentityChanges = new IdentityChanges(db, tables, logger, () => {
      byTables.delete(key)
      trackers.delete(made)
    })
    changes = made
    trackers.add(made)
    byTables.set(key, changes)
    changes.start()
  }
  return changes
}
