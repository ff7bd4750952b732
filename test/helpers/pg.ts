import knexFactory, { type Knex } from 'knex'

/** The PostgreSQL of this run (from DATABASE_URL), or undefined on the embedded database. */
export const PG_URL = process.env.DATABASE_URL || undefined

/** `url` with its database name replaced by `name`. */
export function withDatabase(url: string, name: string): string {
  const u = new URL(url)
  u.pathname = `/${name}`
  return u.toString()
}

/** `url` pointing at another host port (a proxy) instead of PostgreSQL's own. */
export function withPort(url: string, port: number): string {
  const u = new URL(url)
  u.hostname = '127.0.0.1'
  u.port = String(port)
  return u.toString()
}

/** A PostgreSQL database made for one test file, with a direct connection to check its rows. */
export interface ScratchDatabase {
  name: string
  url: string
  /** One direct connection (no proxy), for checks. */
  db: Knex
  /** Connections to this database other than the checker's own. */
  backends(): Promise<number>
  /** Closes the checker and drops the database, terminating any connection left. */
  drop(): Promise<void>
}

/**
 * Creates an empty database `dci_scale_<purpose>_<pid>` on the server of DATABASE_URL. The servers
 * the tests spawn migrate it themselves.
 */
export async function createScratchDatabase(purpose: string): Promise<ScratchDatabase> {
  if (!PG_URL) throw new Error('DATABASE_URL is not set')
  const name = `dci_scale_${purpose}_${process.pid}`
  const admin = knexFactory({ client: 'pg', connection: PG_URL, pool: { min: 0, max: 1 } })
  try {
    await admin.raw(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
    await admin.raw(`CREATE DATABASE "${name}"`)
  } finally {
    await admin.destroy()
  }
  const url = withDatabase(PG_URL, name)
  const db = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 1 } })
  return {
    name,
    url,
    db,
    async backends() {
      const { rows } = await db.raw('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = ? AND pid <> pg_backend_pid()', [name])
      return rows[0].n
    },
    async drop() {
      await db.destroy()
      const admin = knexFactory({ client: 'pg', connection: PG_URL!, pool: { min: 0, max: 1 } })
      try {
        await admin.raw(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
      } finally {
        await admin.destroy()
      }
    },
  }
}
