/** The benchmark's database: created when missing, migrated, seeded in SQL (generate_series). */
import path from 'node:path'
import type { Knex } from 'knex'
import pg from 'pg'
import { migrateLatest, openDatabase } from '../core'

export const DEFAULT_URL = 'postgres://postgres@127.0.0.1:5432/dci_bench'

/** Compiled, bench/ runs from dist/bench: the migrations are the compiled ones beside it. */
export const MIGRATIONS = path.resolve(__dirname, '..', 'migrations')

/** The database name of a URL; only `dci_bench*` databases are ever created, emptied or seeded here. */
export function benchDatabaseName(url: string): string {
  const name = decodeURIComponent(new URL(url).pathname.slice(1))
  if (!/^dci_bench\w*$/.test(name)) throw new Error(`refusing to touch database '${name}': benchmark databases are named dci_bench*`)
  return name
}

/** Creates the database of `url` when it does not exist (connecting to the server's `postgres` database). */
export async function ensureDatabase(url: string): Promise<void> {
  const name = benchDatabaseName(url)
  const admin = new URL(url)
  admin.pathname = '/postgres'
  const client = new pg.Client({ connectionString: admin.toString() })
  await client.connect()
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])
    if (!rowCount) await client.query(`CREATE DATABASE "${name}"`)
  } finally {
    await client.end()
  }
}

/** Opens (and migrates) the benchmark database: PostgreSQL at `url`, or PGlite in `dataDir`. */
export async function openBenchDatabase(target: { url?: string; dataDir?: string }): Promise<Knex> {
  if (target.url) await ensureDatabase(target.url)
  const db = openDatabase({ url: target.url, dataDir: target.dataDir, statementTimeout: 600_000 })
  await migrateLatest(db, MIGRATIONS)
  return db
}

export interface SeedSize {
  /** Number of componenttypes. */
  types: number
  /** Number of components, spread evenly over the types. */
  components: number
}

/** Rows in the tables now. */
export async function tableSizes(db: Knex): Promise<SeedSize> {
  const { rows } = await db.raw('SELECT (SELECT count(*) FROM componenttypes)::int AS types, (SELECT count(*) FROM components)::int AS components')
  return rows[0]
}

/**
 * Empties both tables and loads `size` rows with INSERT ... SELECT over generate_series, in batches of
 * 100,000 (progress is reported). Every row gets a 32-hex etag and distinct created_at/updated_at
 * (one millisecond apart, in insertion order); component names are `component-0000001`... and
 * component i belongs to type i mod types.
 */
export async function seed(db: Knex, size: SeedSize, progress: (done: number) => void = () => {}): Promise<void> {
  await db.raw('TRUNCATE components, componenttypes')
  await resetIdentity(db)
  await db.raw(
    `INSERT INTO componenttypes (name, etag, created_at, updated_at)
     SELECT 'type-' || lpad(i::text, 5, '0'), md5(random()::text || i), ts, ts
       FROM generate_series(1, ?::int) AS i, LATERAL (SELECT timestamptz '2026-01-01' + i * interval '1 second' AS ts) AS t`,
    [size.types],
  )
  const batch = 100_000
  for (let from = 1; from <= size.components; from += batch) {
    const to = Math.min(from + batch - 1, size.components)
    await db.raw(
      `WITH types AS (SELECT array_agg(id ORDER BY name) AS ids, count(*)::int AS n FROM componenttypes)
       INSERT INTO components (name, componenttype, etag, created_at, updated_at)
       SELECT 'component-' || lpad(i::text, 7, '0'), types.ids[1 + i % types.n], md5(random()::text || i), ts, ts
         FROM types, generate_series(?::int, ?::int) AS i,
              LATERAL (SELECT timestamptz '2026-02-01' + i * interval '1 millisecond' AS ts) AS t`,
      [from, to],
    )
    progress(to)
  }
  // Statistics for the planner, and the visibility map that lets counts use index-only scans.
  await db.raw('VACUUM ANALYZE componenttypes')
  await db.raw('VACUUM ANALYZE components')
}

/**
 * Empties the identity plugin's tables (users, their API keys, the audit trail), so that the
 * authenticated engine bootstraps its admin with the benchmark's ADMIN_PASSWORD at start, and the
 * audit rows of earlier runs do not grow the table from run to run.
 */
export async function resetIdentity(db: Knex): Promise<void> {
  await db.raw('TRUNCATE apikeys, audits, users')
}

/** A sample of existing rows the load generator draws its ids, names and types from. */
export async function sample(db: Knex, n = 1000): Promise<{ ids: string[]; names: string[]; types: string[] }> {
  const { rows } = await db.raw('SELECT id, name FROM components ORDER BY random() LIMIT ?', [n])
  const types = await db.raw('SELECT id FROM componenttypes ORDER BY random() LIMIT ?', [Math.min(n, 100)])
  return {
    ids: rows.map((r: { id: string }) => r.id),
    names: rows.map((r: { name: string }) => r.name),
    types: types.rows.map((r: { id: string }) => r.id),
  }
}
