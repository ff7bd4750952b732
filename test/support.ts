import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Knex } from 'knex'
import supertest from 'supertest'
import { createEngine, migrateLatest, openDatabase, type Engine, type EngineOptions } from '../core'
import { ensureAdmin } from '../core/identity'
import { resourcePlugins as plugins, serverPlugins } from '../resources'
import { generateMigration } from '../tooling/migration-generator'

export const ROOT = path.resolve(__dirname, '..')
export const SCHEMAS = path.join(ROOT, 'schemas')
export const MIGRATIONS = path.join(ROOT, 'migrations')

/** Which database this run uses: PostgreSQL when DATABASE_URL is set, else embedded PGlite in memory. */
export const DATABASE = process.env.DATABASE_URL ? 'postgresql' : 'embedded'

let shared: Promise<Knex> | undefined

/** The database of this test run, opened and migrated once (PGlite takes seconds to start). */
export function testDatabase(): Promise<Knex> {
  shared ??= (async () => {
    const db = openDatabase({ url: process.env.DATABASE_URL || undefined })
    await migrateLatest(db, MIGRATIONS)
    return db
  })()
  return shared
}

export async function closeTestDatabase(): Promise<void> {
  if (!shared) return
  const db = await shared
  shared = undefined
  await db.destroy()
}

/**
 * Empties the tables of the given resources' plurals (default: the project's resources, and the
 * identity plugin's users, audits and API keys). Truncating teams empties users too (CASCADE): a test
 * that needs users creates them after this, e.g. with {@link serverApp}'s `reset`.
 */
export async function resetTables(db: Knex, tables = ['components', 'componenttypes', 'remotecis', 'teams', 'users', 'audits', 'apikeys']): Promise<void> {
  await db.raw(`TRUNCATE ${tables.map((t) => `"${t}"`).join(', ')} CASCADE`)
}

/** The table of every resource the engine serves (its plurals), for {@link resetTables} and checksums. */
export function engineTables(engine: Engine): string[] {
  return [...engine.resources.values()].map((r) => r.plural)
}

/**
 * A digest of each table's whole content (`md5` of every row as text, in id order), to prove that a
 * request changed nothing: equal digests before and after mean no row was added, removed or changed.
 */
export async function tableChecksums(db: Knex, tables: string[]): Promise<Record<string, string>> {
  // One statement for all tables (the fuzzer takes a checksum per request); UNION ALL plans fastest.
  const parts = tables.map(
    (table, i) => `SELECT ${i} AS i, count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t.id)), '') AS digest FROM "${table}" t`,
  )
  const { rows } = await db.raw(parts.join(' UNION ALL '))
  return Object.fromEntries((rows as Array<{ i: number; digest: string }>).map((r) => [tables[r.i], r.digest]))
}

/** The statements `db` sent while `work` ran (BEGIN and COMMIT included), and what `work` answered. */
export async function statementsOf<T>(db: Knex, work: () => Promise<T>): Promise<{ sql: string[]; result: T }> {
  const sql: string[] = []
  const record = (q: { sql: string }) => sql.push(q.sql)
  db.on('query', record)
  try {
    return { sql, result: await work() }
  } finally {
    db.removeListener('query', record)
  }
}

export interface TestApp {
  engine: Engine
  db: Knex
  http: ReturnType<typeof supertest>
}

/** An engine on the test database serving the project's schemas and plugins, with a supertest client. */
export async function testApp(options: Partial<EngineOptions> = {}): Promise<TestApp> {
  const db = await testDatabase()
  const engine = await createEngine({ db, schemasDir: SCHEMAS, plugins, ...options })
  return { engine, db, http: supertest(engine.app().callback()) }
}

/** The password of user `admin` (super_admin) of {@link serverApp}. */
export const ADMIN_PASSWORD = 'test-admin-password'

/** `Authorization` of user `admin` of {@link serverApp}. */
export const ADMIN_AUTH = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`

export interface ServerApp extends TestApp {
  /** Empties the tables ({@link resetTables}), then creates team and user `admin` again, as a first start does. */
  reset(): Promise<void>
}

/**
 * An engine on the test database with the server's plugins (identity and access on), as server.ts
 * builds it: every request but the index and openapi.json needs credentials, such as
 * {@link ADMIN_AUTH}. Starts from empty tables and user `admin` with {@link ADMIN_PASSWORD}.
 */
export async function serverApp(options: Partial<EngineOptions> = {}): Promise<ServerApp> {
  const db = await testDatabase()
  const engine = await createEngine({ db, schemasDir: SCHEMAS, plugins: serverPlugins(), ...options })
  const reset = async () => {
    await resetTables(db)
    await ensureAdmin(engine, { password: ADMIN_PASSWORD })
  }
  await reset()
  return { engine, db, http: supertest(engine.app().callback()), reset }
}

/** Creates a componenttype and returns it. */
export async function createType(app: TestApp, name: string): Promise<Record<string, any>> {
  const res = await app.http.post('/api/v1/componenttypes').send({ name }).expect(201)
  return res.body.componenttype
}

/** Creates a component of a type and returns it. */
export async function createComponent(app: TestApp, name: string, componenttype: string): Promise<Record<string, any>> {
  const res = await app.http.post('/api/v1/components').send({ name, componenttype }).expect(201)
  return res.body.component
}

/** A database of its own: a fresh in-memory PGlite, or a new `dci_schema_<random>` on DATABASE_URL's server. */
export async function freshDatabase(): Promise<{ db: Knex; drop(): Promise<void> }> {
  const url = process.env.DATABASE_URL
  if (!url) {
    const db = openDatabase({})
    return { db, drop: () => db.destroy() }
  }
  const name = `dci_schema_${randomBytes(6).toString('hex')}`
  // CREATE and DROP DATABASE copy and remove files: on a loaded machine they can outlast the default
  // 10 s statement timeout (a DROP was cancelled so in a CI try), which is for requests, not for these.
  const admin = openDatabase({ url, poolSize: 1, statementTimeout: 300_000 })
  await admin.raw(`CREATE DATABASE "${name}"`)
  const target = new URL(url)
  target.pathname = `/${name}`
  const db = openDatabase({ url: target.toString(), poolSize: 2 })
  return {
    db,
    async drop() {
      await db.destroy()
      await admin.raw(`DROP DATABASE IF EXISTS "${name}"`)
      await admin.destroy()
    },
  }
}

export interface GeneratedApp extends TestApp {
  /** The text of the migration `npm run db:generate` wrote. */
  migration: string
  /** Drops the database and the temp folders. */
  close(): Promise<void>
}

/**
 * An engine (without the identity plugin) on a database of its own ({@link freshDatabase}) serving the
 * project's schemas plus the given schema files, every table made by `npm run db:generate` as a new
 * schema file's would be.
 */
export async function generatedApp(schemaFiles: string[]): Promise<GeneratedApp> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dci-generated-'))
  const schemasDir = path.join(dir, 'schemas')
  const migrationsDir = path.join(dir, 'migrations')
  fs.mkdirSync(schemasDir)
  for (const f of fs.readdirSync(SCHEMAS)) fs.copyFileSync(path.join(SCHEMAS, f), path.join(schemasDir, f))
  for (const file of schemaFiles) fs.copyFileSync(file, path.join(schemasDir, path.basename(file)))
  const fresh = await freshDatabase()
  const close = async () => {
    await fresh.drop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
  try {
    const result = await generateMigration({ db: fresh.db, schemasDir, migrationsDir })
    await migrateLatest(fresh.db, migrationsDir)
    const engine = await createEngine({ db: fresh.db, schemasDir, plugins })
    return { engine, db: fresh.db, http: supertest(engine.app().callback()), migration: fs.readFileSync(result.file!, 'utf8'), close }
  } catch (err) {
    await close()
    throw err
  }
}
