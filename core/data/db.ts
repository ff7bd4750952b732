import fs from 'node:fs'
import path from 'node:path'
import knexFactory, { type Knex } from 'knex'
import { openEmbedded } from './embedded'

export { parseTimestamptz } from './timestamptz'

/** Where the data lives: PostgreSQL when `url` is set, else the embedded PGlite database. */
export interface DatabaseOptions {
  /** A PostgreSQL connection string (`postgres://user@host:port/db`). */
  url?: string
  /** Folder of the embedded database; omitted, it lives in memory (tests). */
  dataDir?: string
  /** Most connections one process opens to PostgreSQL, or sessions to the embedded database (default 10). */
  poolSize?: number
  /**
   * Milliseconds after which PostgreSQL cancels a statement (default 10000). On the embedded database,
   * counted from when the statement is queued, and the statement is rolled back (see embedded.ts).
   */
  statementTimeout?: number
  /** Milliseconds a query waits for a pooled connection, or for a new one to connect (default 5000). */
  acquireTimeout?: number
  /** Receives knex's warnings (a connection found broken and discarded...); default: the console. */
  logger?: { warn(details: Record<string, unknown>, message: string): void }
}

/**
 * Opens the database. PostgreSQL gives bigints and numerics as strings; PGlite is built with the same
 * parsers so that both databases give the same JavaScript types. The embedded database runs in a
 * worker thread, holds DATA_DIR exclusively (a second process is refused) and honours the statement
 * timeout from the server's side (see embedded.ts).
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
      // One line: knex's warning carries the stack of the driver's error after its first line.
      ...(logger ? { log: { warn: (message: string) => logger.warn({ source: 'knex' }, String(message).split('\n', 1)[0]) } } : {}),
    })
  }
  if (options.dataDir) fs.mkdirSync(options.dataDir, { recursive: true })
  // PGlite in a worker thread of its own (see embedded.ts): a PostgreSQL deployment never loads it.
  return openEmbedded({
    dataDir: options.dataDir,
    statementTimeout: options.statementTimeout ?? 10_000,
    poolSize: options.poolSize ?? 10,
    acquireTimeout: options.acquireTimeout ?? 5_000,
    logger: options.logger,
  })
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
    // Read from disk each time: a file deleted and written again under the same name (a draft
    // regenerated within the same second) must not be served from the module cache.
    const full = path.join(this.dir, file)
    delete require.cache[require.resolve(full)]
    return require(full) as Knex.Migration
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

/**
 * The database records migrations as applied (rows of `knex_migrations`) whose files are gone from the
 * folder: knex refuses to migrate or roll back until the files are back or the rows are removed. The
 * message says both ways out.
 */
export class MissingMigrationFilesError extends Error {
  constructor(
    readonly names: string[],
    readonly dir: string,
  ) {
    const folder = path.relative(process.cwd(), dir) || '.'
    const files = names.map((n) => `${folder}/${n}.ts`)
    super(
      `the database has applied migration${names.length > 1 ? 's' : ''} ${names.join(', ')} (rows of knex_migrations) but ${folder}/ has no such file. Either:\n` +
        `- restore the file${names.length > 1 ? 's' : ''}: git checkout HEAD -- ${files.join(' ')}  (deleted in an earlier commit: git log --diff-filter=D --oneline -- ${files.join(' ')} names it <commit>, then git checkout <commit>^ -- <file>); or\n` +
        `- keep ${names.length > 1 ? 'them' : 'it'} gone: undo by hand what ${names.length > 1 ? 'their' : 'its'} up() did (run the statements of ${names.length > 1 ? 'their' : 'its'} down(), readable with git show <commit>^:<file>), then remove the row${names.length > 1 ? 's' : ''}: ` +
        `DELETE FROM knex_migrations WHERE name IN (${names.map((n) => `'${n}'`).join(', ')});\n` +
        'Next time, undo a migration with `npm run db:rollback` before deleting its file.',
    )
    this.name = 'MissingMigrationFilesError'
  }
}

const CORRUPT = 'The migration directory is corrupt, the following files are missing: '

/** Runs a knex migrator call, turning its "directory is corrupt" error into {@link MissingMigrationFilesError}. */
async function explained<T>(dir: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (err) {
    const message = (err as Error)?.message ?? ''
    if (message.startsWith(CORRUPT)) throw new MissingMigrationFilesError(message.slice(CORRUPT.length).split(', '), dir)
    throw err
  }
}

/** Applies every pending migration of `dir` in one batch and returns their names, in the order they ran. */
export async function migrateLatest(knex: Knex, dir: string): Promise<string[]> {
  await ensureMigrationLock(knex)
  const [, applied] = (await explained(dir, () => knex.migrate.latest({ migrationSource: new FolderMigrationSource(dir) }))) as [number, string[]]
  return applied.map((name) => name.replace(/\.(ts|js)$/, ''))
}

/** The migrations of `dir`: those applied (oldest first) and those pending. */
export async function listMigrations(knex: Knex, dir: string): Promise<{ applied: string[]; pending: string[] }> {
  const source = new FolderMigrationSource(dir)
  const [applied, pending] = (await explained(dir, () => knex.migrate.list({ migrationSource: source }))) as [Array<{ name: string }>, string[]]
  return { applied: applied.map((m) => m.name), pending: pending.map((file) => source.getMigrationName(file)) }
}

/**
 * Undoes the last batch of migrations of `dir` (the ones one `migrateLatest` applied together), or only
 * the last migration with `{ one: true }`, running their `down()`; returns their names, in the order
 * they were undone (none when nothing is applied).
 */
export async function rollbackMigrations(knex: Knex, dir: string, options: { one?: boolean } = {}): Promise<string[]> {
  await ensureMigrationLock(knex)
  const migrationSource = new FolderMigrationSource(dir)
  const [, undone] = (await explained(dir, () => (options.one ? knex.migrate.down({ migrationSource }) : knex.migrate.rollback({ migrationSource })))) as [
    number,
    string[],
  ]
  return undone.map((name) => name.replace(/\.(ts|js)$/, ''))
}
