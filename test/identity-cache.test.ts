import { expect } from 'chai'
import type { Knex } from 'knex'
import supertest from 'supertest'
import { createEngine, migrateLatest, type EngineLogger } from '../core'
import { hashPassword } from '../core/identity'
import { identityChanges, type IdentityChanges } from '../core/identity/changes'
import { serverPlugins } from '../resources'
import { DATABASE, freshDatabase, MIGRATIONS, resetTables, SCHEMAS, statementsOf, testDatabase } from './support'

// Verified credentials are remembered between requests and answered without reading the database,
// as long as nothing changed in the tables callers are read from; the migration's triggers notify
// each change, whoever makes it. On both databases (PGlite delivers a notification with the answer
// of the statement that committed; PostgreSQL on the listening connection, right after the commit).

const TABLES = ['users', 'remotecis', 'apikeys']
const IDENTITY_TABLES = ['components', 'componenttypes', 'remotecis', 'apikeys', 'audits', 'users', 'teams']
const PASSWORD = 'root password 1'
const basic = (login: string, password: string) => `Basic ${Buffer.from(`${login}:${password}`).toString('base64')}`

const quiet: EngineLogger = { error: () => {}, warn: () => {}, info: () => {} }

/** Waits until `done()` holds, polling; fails after `ms`. */
async function until(done: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** An engine as server.ts builds it (identity on), a user `root` (super_admin) and an API key of root. */
async function world(db: Knex, logger: EngineLogger = quiet) {
  const engine = await createEngine({ db, schemasDir: SCHEMAS, plugins: serverPlugins(), logger })
  const team = await engine.service('team').create({ name: 'admin' })
  const root = await engine.service('user').create({ name: 'root', password: PASSWORD, role: 'super_admin', team: team.id })
  const { apikey } = (await engine.action('create_user_apikey').call({ path: { id: root.id }, body: {} })) as { apikey: { id: string; token: string } }
  const http = supertest(engine.app().callback())
  /** GET /identity with these credentials: the status, the identity, and the statements it cost. */
  const identify = async (authorization: string) => {
    const { sql, result } = await statementsOf(db, () => http.get('/api/v1/identity').set('authorization', authorization))
    return { status: result.status, identity: result.body.identity as Record<string, unknown> | undefined, statements: sql }
  }
  return { engine, root, team, apikey, identify, bearer: `Bearer ${apikey.token}` }
}

describe(`remembered credentials, forgotten at each change of callers (${DATABASE})`, function () {
  this.timeout(60_000)
  let db: Knex
  let w: Awaited<ReturnType<typeof world>>
  let changes: IdentityChanges
  const ROOT = basic('root', PASSWORD)

  /** Runs `work`, then waits until its change was heard (PGlite: at once; PostgreSQL: on the listening connection). */
  async function change(work: () => Promise<unknown>): Promise<void> {
    const generation = changes.generation
    await work()
    await until(() => changes.generation > generation, 'the change was notified')
  }

  before(async () => {
    db = await testDatabase()
  })
  beforeEach(async () => {
    await resetTables(db, IDENTITY_TABLES)
    w = await world(db)
    await w.identify(ROOT) // the first request starts listening
    changes = identityChanges(db, TABLES, quiet)
    await until(() => changes.live, 'listening')
    // The request above may have been remembered if the listener came up while it ran: a change
    // (a statement trigger fires on an UPDATE of no row) makes every test start with nobody remembered.
    await change(() => db.raw('UPDATE users SET name = name WHERE false'))
  })
  after(async () => {
    await resetTables(db, IDENTITY_TABLES)
  })

  it('a remembered Basic or API key credential reads nothing: no statement per request', async () => {
    for (const authorization of [ROOT, w.bearer]) {
      const first = await w.identify(authorization)
      expect(first.status).to.equal(200)
      expect(first.statements.length, first.statements.join('\n')).to.be.at.least(1)
      for (let i = 0; i < 5; i++) {
        const again = await w.identify(authorization)
        expect(again.identity).to.deep.equal(first.identity)
        expect(again.statements, authorization.split(' ')[0]).to.deep.equal([])
      }
    }
  })

  it('requests that bring the same Basic credential at once share one check: the user is read (and the password hashed) once', async () => {
    const http = supertest(w.engine.app().callback())
    const { sql, result } = await statementsOf(db, () => Promise.all(Array.from({ length: 12 }, () => http.get('/api/v1/identity').set('authorization', ROOT))))
    for (const res of result) expect(res.status).to.equal(200)
    const reads = sql.filter((statement) => /from "users"/i.test(statement) && /"password"/.test(statement))
    expect(reads, sql.join('\n')).to.have.length(1)
    // A wrong password shared by concurrent requests is refused to each of them.
    const wrong = basic('root', 'not the password')
    const refused = await Promise.all(Array.from({ length: 4 }, () => http.get('/api/v1/identity').set('authorization', wrong)))
    for (const res of refused) expect(res.status).to.equal(401)
  })

  it('changes made by hand in SQL apply to the next request: a role, a password, a removed user, a revoked key', async () => {
    const remembered = async (authorization: string) => {
      await w.identify(authorization)
      expect((await w.identify(authorization)).statements).to.deep.equal([])
    }
    await remembered(ROOT)
    await remembered(w.bearer)
    await change(() => db('users').update({ role: 'admin' }).where({ id: w.root.id }))
    expect((await w.identify(ROOT)).identity).to.include({ role: 'admin' })
    expect((await w.identify(w.bearer)).identity).to.include({ role: 'admin' })

    await remembered(ROOT)
    const other = await hashPassword('another password')
    await change(() => db('users').update({ password: other }).where({ id: w.root.id }))
    expect((await w.identify(ROOT)).status).to.equal(401)
    expect((await w.identify(basic('root', 'another password'))).status).to.equal(200)

    await remembered(w.bearer)
    await change(() => db('apikeys').delete().where({ id: w.apikey.id }))
    expect((await w.identify(w.bearer)).status).to.equal(401)

    const fresh = basic('root', 'another password')
    await remembered(fresh)
    await change(() => db.raw('TRUNCATE users'))
    expect((await w.identify(fresh)).status).to.equal(401)
  })

  it("a key's last use is written, but does not make anyone read their caller again", async () => {
    await w.identify(w.bearer)
    await until(async () => (await db('apikeys').first('last_used_at').where({ id: w.apikey.id }))?.last_used_at != null, 'last_used_at is written')
    const generation = changes.generation
    await w.identify(w.bearer)
    expect((await w.identify(w.bearer)).statements).to.deep.equal([])
    expect(changes.generation).to.equal(generation)
  })

  it('another engine on the same database shares the listener and hears the first one’s changes', async () => {
    const second = supertest((await createEngine({ db, schemasDir: SCHEMAS, plugins: serverPlugins(), logger: quiet })).app().callback())
    const asSecond = async () => (await second.get('/api/v1/identity').set('authorization', w.bearer)).status
    expect(await asSecond()).to.equal(200)
    expect(identityChanges(db, TABLES, quiet)).to.equal(changes)
    await change(() => w.engine.action('delete_user_apikey').call({ path: { id: w.root.id, keyid: w.apikey.id } }))
    expect(await asSecond()).to.equal(401)
  })
})

describe(`remembered credentials, when changes cannot be heard (${DATABASE})`, function () {
  this.timeout(120_000)

  it('a caller table without the trigger: every request reads its caller, and a warning names the table', async () => {
    const fresh = await freshDatabase()
    try {
      await migrateLatest(fresh.db, MIGRATIONS)
      await fresh.db.raw('DROP TRIGGER identity_changed ON remotecis')
      const lines: Array<{ details: Record<string, unknown>; message: string }> = []
      const logger: EngineLogger = { ...quiet, warn: (details, message) => void lines.push({ details, message }) }
      const w = await world(fresh.db, logger)
      const ROOT = basic('root', PASSWORD)
      await w.identify(ROOT)
      await until(() => lines.length > 0, 'the warning')
      expect(lines[0].details).to.deep.include({ tables: ['remotecis'] })
      expect(lines[0].message).to.include('no trigger')
      for (let i = 0; i < 3; i++) {
        const again = await w.identify(ROOT)
        expect(again.status).to.equal(200)
        expect(again.statements).to.have.length(1)
        expect(again.statements[0]).to.match(/from "users"/)
      }
      expect(identityChanges(fresh.db, TABLES, quiet).live).to.equal(false)
    } finally {
      await fresh.drop()
    }
  })

  it('PostgreSQL: a lost listener reads callers at every request until it listens again; destroying the knex closes it', async function () {
    if (DATABASE !== 'postgresql') return this.skip()
    const fresh = await freshDatabase()
    let dropped = false
    try {
      await migrateLatest(fresh.db, MIGRATIONS)
      const w = await world(fresh.db)
      const ROOT = basic('root', PASSWORD)
      await w.identify(ROOT)
      const changes = identityChanges(fresh.db, TABLES, quiet)
      await until(() => changes.live, 'listening')
      const listeners = async () =>
        (await fresh.db.raw("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN identity_changed'")).rows as Array<{
          pid: number
        }>
      expect(await listeners()).to.have.length(1)
      await w.identify(ROOT)
      expect((await w.identify(ROOT)).statements).to.deep.equal([])

      // The listener may be back within milliseconds, so the loss is seen by its new generation (a
      // poll of `live` alone can miss the moment it was false): what was remembered is read again.
      const before = changes.generation
      await fresh.db.raw('SELECT pg_terminate_backend(?)', [(await listeners())[0].pid])
      await until(() => changes.generation > before, 'the listener is known lost')
      const meanwhile = await w.identify(ROOT)
      expect(meanwhile.status).to.equal(200)
      expect(meanwhile.statements).to.have.length(1)

      await until(() => changes.live, 'listening again', 20_000)
      await w.identify(ROOT)
      expect((await w.identify(ROOT)).statements).to.deep.equal([])

      const name = (await fresh.db.raw('SELECT current_database() AS name')).rows[0].name as string
      await fresh.drop()
      dropped = true
      expect(name).to.match(/^dci_schema_/)
    } finally {
      if (!dropped) await fresh.drop()
    }
  })
})
