import fs from 'node:fs'
import path from 'node:path'
import knexFactory, { type Knex } from 'knex'

/** Where the data lives: PostgreSQL when `url` is set, else the embedded PGlite database. */
export interface DatabaseOptions {
  /** A PostgreSQL connection string (`postgres://user@host:port/db`). */
  url?: string
  /** Folder of the embedded database; omitted, it lives in memory (tests). */
  dataDir?: string
  /** Most connections one process opens to PostgreSQL (default 10). */
  poolSize?: number
  /** Milliseconds after which PostgreSQL cancels a statement (default 10000). */
  statementTimeout?: number
  /** Milliseconds a query waits for a pooled connection, or for a new one to connect (default 5000). */
  acquireTimeout?: number
  /** Receives knex's warnings (a connection found broken and discarded...); default: the console. */
  logger?: { warn(details: Record<string, unknown>, message: string): void }
}

/**
 * Opens the database. PostgreSQL gives bigints and numerics as strings; PGlite is built here with the
 * same parsers so that both databases give the same JavaScript types.
 */
export function openDatabase(options: DatabaseOptions): Knex {
  if (options.url) {
    const acquireTimeout = options.acquireTimeout ?? 5_000
    const logger = options.logger
    return knexFactory({
      client: 'pg',
      connection: {
        connectionString: options.url,
        statement_timeout: options.statementTimeout ?? 10_000,
        // A connect that hangs fails in bounded time; TCP keepalive finds peers that vanished silently.
        connectionTimeoutMillis: acquireTimeout,
        keepAlive: true,
      } as Knex.PgConnectionConfig,
      pool: {
        min: 0,
        max: options.poolSize ?? 10,
        idleTimeoutMillis: 10_000,
        // knex marks a client whose socket failed and discards it at the next acquire; this listener
        // stays for the client's whole life, so a late 'error' event can never crash the process.
        afterCreate(connection: import('events').EventEmitter, done: (err: Error | null, connection: unknown) => void) {
          connection.on('error', () => {})
          done(null, connection)
        },
      },
      acquireConnectionTimeout: acquireTimeout,
      ...(logger ? { log: { warn: (message: string) => logger.warn({ source: 'knex' }, String(message)) } } : {}),
    })
  }
  // Loaded lazily: a PostgreSQL deployment never pays for the WebAssembly build.
  const { PGlite } = require('@electric-sql/pglite') as typeof import('@electric-sql/pglite')
  const ClientPgLite = require('knex-pglite') as typeof import('knex-pglite')
  const parsers = { 20: (v: string) => v, 1700: (v: string) => v }
  if (options.dataDir) fs.mkdirSync(options.dataDir, { recursive: true })
  const pglite = new PGlite(options.dataDir ? { dataDir: options.dataDir, parsers } : { parsers })
  return knexFactory({ client: ClientPgLite, dialect: 'postgres', connection: () => ({ pglite }) } as unknown as Knex.Config)
}

/**
 * Reads migrations from a folder and names them without their extension, so a run through tsx
 * (`.ts`) and a compiled run (`.js`) record the same names in `knex_migrations`.
 */
export class FolderMigrationSource implements Knex.MigrationSource<string> {
  constructor(private readonly dir: string) {}

  async getMigrations(): Promise<string[]> {
    return fs
      .readdirSync(this.dir)
      .filter((f) => /\.(ts|js)$/.test(f) && !f.endsWith('.d.ts'))
      .sort()
  }

  getMigrationName(file: string): string {
    return file.replace(/\.(ts|js)$/, '')
  }

  async getMigration(file: string): Promise<Knex.Migration> {
    return require(path.join(this.dir, file)) as Knex.Migration
  }
}

/**
 * Makes knex's migration lock table hold exactly one row. knex creates it and inserts its row when it
 * finds the table empty: processes that start together on an empty database can each insert one, and
 * with two rows knex's lock (`UPDATE ... WHERE is_locked = 0` must touch one row) fails for good
 * ("Migration table is already locked"). The row is inserted here once, whoever comes first.
 */
export async function ensureMigrationLock(knex: Knex): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await knex.raw('CREATE TABLE IF NOT EXISTS knex_migrations_lock ("index" serial PRIMARY KEY, is_locked integer)')
      break
    } catch (err) {
      // Two sessions creating the same table at once: one loses on the catalog's unique index; the table exists then.
      const code = (err as { code?: string }).code
      if (attempt >= 3 || !['23505', '42P07', '42710'].includes(code ?? '')) throw err
    }
  }
  await knex.raw(
    'INSERT INTO knex_migrations_lock ("index", is_locked) SELECT 1, 0 WHERE NOT EXISTS (SELECT 1 FROM knex_migrations_lock) ON CONFLICT ("index") DO NOTHING',
  )
}

/** Applies every pending migration of `dir`. */
export async function migrateLatest(knex: Knex, dir: string): Promise<void> {
  await ensureMigrationLock(knex)
  await knex.migrate.latest({ migrationSource: new FolderMigrationSource(dir) })
}
