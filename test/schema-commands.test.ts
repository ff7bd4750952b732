import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'chai'
import type { Knex } from 'knex'
import { openDatabase } from '../core'
import { PG_URL } from './helpers/pg'
import { killAllServers, ownDatabase, spawnServer, startServer, stopServer, type OwnDatabase } from './helpers/server-process'
import { claimPort } from './helpers/ports'
import { runScript } from './helpers/scripts'
import { DATABASE, MIGRATIONS } from './support'

/** The project's migrations by name, oldest first. */
const PROJECT_MIGRATIONS = fs
  .readdirSync(MIGRATIONS)
  .filter((f) => f.endsWith('.ts'))
  .sort()
  .map((f) => f.replace(/\.ts$/, ''))

describe(`start-up and npm run db:rollback on the server's database (${DATABASE})`, function () {
  this.timeout(240_000)
  let own: OwnDatabase

  /** Runs `work` on the server's database while no server holds it (PGlite opens a folder in one process only). */
  async function onDatabase<T>(work: (db: Knex) => Promise<T>): Promise<T> {
    if (own.scratch) return work(own.scratch.db)
    const db = openDatabase({ dataDir: own.env.DATA_DIR })
    try {
      return await work(db)
    } finally {
      await db.destroy()
    }
  }

  before(async () => {
    own = await ownDatabase('schema_commands', Boolean(PG_URL))
  })
  after(async () => {
    await killAllServers()
    await own?.dispose()
  })

  it('start-up logs the migrations it applied (none the second time) and names a table no schema owns', async () => {
    let server = await startServer({ ...own.env })
    const applied = server.logs.filter((l) => l.msg.startsWith('applied '))
    expect(applied.map((l) => [l.level, l.msg, l.migrations])).to.deep.equal([
      [30, `applied ${PROJECT_MIGRATIONS.length} migrations: ${PROJECT_MIGRATIONS.join(', ')}`, PROJECT_MIGRATIONS],
    ])
    expect(server.logs.filter((l) => /no schema owns/.test(l.msg))).to.deep.equal([])
    await stopServer(server)

    await onDatabase((db) => db.raw('CREATE TABLE legacy_widgets (id uuid PRIMARY KEY, etag text, created_at timestamptz, updated_at timestamptz)'))
    server = await startServer({ ...own.env })
    expect(server.logs.filter((l) => l.msg.startsWith('applied '))).to.deep.equal([])
    const warnings = server.logs.filter((l) => /no schema owns/.test(l.msg))
    expect(warnings.map((l) => [l.level, l.tables])).to.deep.equal([[40, ['legacy_widgets']]])
    expect(warnings[0].msg).to.include('no schema owns table legacy_widgets')
    await stopServer(server)
  })

  it('npm run db:generate names the table no schema owns, and refuses to drop a table a schema owns', async () => {
    const before = fs.readdirSync(MIGRATIONS)
    try {
      const run = await runScript('scripts/db-generate.ts', [], own.env)
      expect([run.code, run.stdout]).to.deep.equal([0, 'nothing to do: the database matches the schemas\n'])
      expect(run.stderr).to.include('warning: no schema owns table legacy_widgets')
      const refused = await runScript('scripts/db-generate.ts', ['--drop', 'teams'], own.env)
      expect([refused.code, refused.stdout, refused.stderr]).to.deep.equal([1, '', 'db:generate failed: --drop teams: table teams belongs to resource team\n'])
      const malformed = await runScript('scripts/db-generate.ts', ['--rename', 'legacy_widgets'], own.env)
      expect([malformed.code, malformed.stderr]).to.deep.equal([1, 'db:generate failed: --rename takes <old table>=<new table>, not legacy_widgets\n'])
    } finally {
      // The project's own folder: a file written by mistake must not stay.
      for (const f of fs.readdirSync(MIGRATIONS)) if (!before.includes(f)) fs.rmSync(path.join(MIGRATIONS, f))
    }
    expect(fs.readdirSync(MIGRATIONS)).to.deep.equal(before)
  })

  it('npm run db:rollback -- --one undoes the last migration and says so; the next start-up applies it again', async () => {
    const last = PROJECT_MIGRATIONS[PROJECT_MIGRATIONS.length - 1]
    const run = await runScript('scripts/db-rollback.ts', ['--one'], own.env)
    expect([run.code, run.stdout, run.stderr]).to.deep.equal([0, `undid 1 migration, last applied first:\n  ${last}\n`, ''])
    const server = await startServer({ ...own.env })
    expect(server.logs.filter((l) => l.msg.startsWith('applied ')).map((l) => l.migrations)).to.deep.equal([[last]])
    await stopServer(server)
  })

  it('an applied migration whose file is gone: start-up and npm run db:rollback stop, saying how to recover', async () => {
    const gone = '20990101000000_create_gadgets'
    await onDatabase((db) => db('knex_migrations').insert({ name: gone, batch: 99, migration_time: new Date() }))
    const server = spawnServer(await claimPort(), { ...own.env })
    expect(await server.exited).to.equal(1)
    const fatal = server.logs.find((l) => l.msg === 'start-up failed')
    expect(fatal?.err).to.include(`the database has applied migration ${gone} (rows of knex_migrations) but migrations/ has no such file`)
    expect(fatal?.err).to.include(`git checkout HEAD -- migrations/${gone}.ts`)
    expect(fatal?.err).to.include(`DELETE FROM knex_migrations WHERE name IN ('${gone}');`)

    const run = await runScript('scripts/db-rollback.ts', [], own.env)
    expect(run.code).to.equal(1)
    expect(run.stderr).to.include(`db:rollback failed: the database has applied migration ${gone}`)
    expect(run.stderr).to.include(`DELETE FROM knex_migrations WHERE name IN ('${gone}');`)

    // The second way out, for a migration that changed nothing: its row removed, the server starts.
    await onDatabase((db) => db('knex_migrations').where({ name: gone }).delete())
    await stopServer(await startServer({ ...own.env }))
  })
})
