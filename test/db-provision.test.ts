import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import type { Knex } from 'knex'
import supertest from 'supertest'
import { createEngine } from '../core'
import { USER_ROLES } from '../core/identity'
import { serverPlugins } from '../resources'
import { PG_URL } from './helpers/pg'
import { runScript, type ScriptRun } from './helpers/scripts'
import { ownDatabase, withOwnDatabase, type OwnDatabase } from './helpers/server-process'
import { DATABASE, SCHEMAS, tableChecksums } from './support'

const CONFIRM = '--yes-i-really-want-to-lose-all-my-data'
const USAGE = `usage:\n  npm run db:provision -- [--password <password>] [--reset ${CONFIRM}]`
const TABLES = ['teams', 'users', 'remotecis', 'apikeys', 'componenttypes', 'components', 'audits']

/** What the demo set promises (README): 3 teams, 7 users, 6 remotecis with a key each, 5 types, 300 components. */
const DEMO = { teams: 3, users: 7, remotecis: 6, apikeys: 6, componenttypes: 5, components: 300 }

interface Printed {
  users: Array<{ name: string; email: string; team: string; role: string; password: string }>
  keys: Array<{ remoteci: string; team: string; token: string }>
}

/** The two credential tables of a run's output. */
function credentials(stdout: string): Printed {
  const section = (title: string) => {
    const lines = stdout.split('\n')
    const start = lines.findIndex((line) => line.startsWith(title))
    expect(start, `no '${title}' in:\n${stdout}`).to.be.greaterThan(-1)
    const end = lines.indexOf('', start)
    return lines.slice(start + 2, end === -1 ? undefined : end) // after the title and the column names
  }
  const users = section('Users (').map((line) => {
    const match = /^ {2}(\S+) +(\S+) +(\S+) +(\S+) +(.+)$/.exec(line)
    expect(match, line).to.not.equal(null)
    const [, name, email, team, role, password] = match!
    return { name, email, team, role, password }
  })
  const keys = section('Remoteci API keys (').map((line) => {
    const match = /^ {2}(\S+) +(\S+) +(dci_\S+)$/.exec(line)
    expect(match, line).to.not.equal(null)
    const [, remoteci, team, token] = match!
    return { remoteci, team, token }
  })
  return { users, keys }
}

describe(`npm run db:provision: a demo set with its credentials (${DATABASE})`, function () {
  this.timeout(300_000)
  let own: OwnDatabase
  let first: Printed

  before(async function () {
    this.timeout(60_000)
    own = await ownDatabase('provision', Boolean(PG_URL))
  })
  after(async () => {
    await own?.dispose()
  })

  const provision = (args: string[] = []): Promise<ScriptRun> => runScript('scripts/db-provision.ts', args, own.env)

  /** On this file's database (the embedded one only while no script runs). */
  const withDatabase = <T>(check: (db: Knex) => Promise<T>) => withOwnDatabase(own, check)

  const counts = (db: Knex) =>
    Promise.all(TABLES.map(async (table) => [table, Number((await db(table).count({ n: '*' }))[0].n)] as const)).then(Object.fromEntries)
  const ids = async (db: Knex) => new Set((await Promise.all(TABLES.map((table) => db(table).pluck('id')))).flat())

  /** Who the server says each credential is (`name role team-name`), or the status of a refusal. */
  async function identities(db: Knex, printed: Printed) {
    const engine = await createEngine({ db, schemasDir: SCHEMAS, plugins: serverPlugins() })
    const http = supertest(engine.app().callback())
    const teams = Object.fromEntries((await db('teams').select('id', 'name')).map((t) => [t.id, t.name]))
    const who = (res: supertest.Response) =>
      res.status === 200 ? `${res.body.identity.kind} ${res.body.identity.name} ${res.body.identity.role} ${teams[res.body.identity.team]}` : res.status
    const basic: Record<string, unknown> = {}
    for (const user of printed.users) {
      basic[user.name] = who(await http.get('/api/v1/identity').auth(user.name, user.password))
      basic[user.email] = who(await http.get('/api/v1/identity').auth(user.email, user.password))
    }
    const bearer: Record<string, unknown> = {}
    for (const key of printed.keys) bearer[key.remoteci] = who(await http.get('/api/v1/identity').set('Authorization', `Bearer ${key.token}`))
    return { basic, bearer }
  }

  /** What {@link identities} answers when every printed credential is accepted. */
  const accepted = (printed: Printed) => ({
    basic: Object.fromEntries(printed.users.flatMap((u) => [u.name, u.email].map((login) => [login, `user ${u.name} ${u.role} ${u.team}`]))),
    bearer: Object.fromEntries(printed.keys.map((k) => [k.remoteci, `remoteci ${k.remoteci} remoteci ${k.team}`])),
  })

  it('a wrong command line, or --reset without the confirmation, exits 2 with the usage, before opening any database', async () => {
    const nowhere = path.join(os.tmpdir(), `dci-provision-unused-${process.pid}`)
    const cases: Array<[string[], string]> = [
      [['--reset'], `--reset deletes ALL the data of the database (every team, user, remoteci, component...); add ${CONFIRM} if that is what you want`],
      [[CONFIRM], `${CONFIRM} goes with --reset only`],
      [['--frobnicate'], "Unknown option '--frobnicate'"],
      [['demo'], "unexpected argument 'demo'"],
      [['--password'], "Option '--password <value>' argument missing"],
    ]
    const runs = await Promise.all(cases.map(([args]) => runScript('scripts/db-provision.ts', args, { DATABASE_URL: '', DATA_DIR: nowhere })))
    for (const [i, run] of runs.entries()) {
      const [args, message] = cases[i]
      expect(run.code, `${args.join(' ')}: ${run.stderr}`).to.equal(2)
      expect(run.stderr, args.join(' ')).to.include(`db:provision: ${message}`)
      expect(run.stderr).to.include(USAGE)
      expect(run.stderr).to.include('BEWARE, it erases all the data of the database')
      expect(run.stdout).to.equal('')
    }
    expect(fs.existsSync(nowhere), 'the embedded database was opened').to.equal(false)
  })

  it('fills a database beside its existing rows: the promised rows, users of every role in every team, and prints the credentials', async () => {
    // A row of someone else's, made the way an operator would: the demo set goes beside it.
    const user = await runScript('scripts/user.ts', ['create', 'ops-person', '--team', 'ops', '--password', 'ops password 1'], own.env)
    expect(user.code, user.stderr).to.equal(0)

    const run = await provision()
    expect(run.code, run.stderr).to.equal(0)
    expect(run.stdout).to.match(/^created 3 teams, 7 users, 6 remotecis with an API key each, 5 componenttypes, 300 components\n/)
    first = credentials(run.stdout)
    expect(first.users).to.have.length(DEMO.users)
    expect(first.keys).to.have.length(DEMO.remotecis)
    for (const u of first.users) expect(u.password).to.have.length.of.at.least(20) // generated
    expect(new Set(first.users.map((u) => u.password)).size, 'one password each').to.equal(DEMO.users)

    await withDatabase(async (db) => {
      // The operator's team and user beside the demo set.
      const n = await counts(db)
      expect({ ...n, audits: undefined }).to.deep.equal({ ...DEMO, teams: DEMO.teams + 1, users: DEMO.users + 1, audits: undefined })
      const teams = await db('teams').select('id', 'name').whereLike('name', 'demo-%').orderBy('name')
      expect(teams.map((t) => t.name)).to.deep.equal(['demo-acme', 'demo-globex', 'demo-initech'])
      for (const team of teams) {
        const roles = (await db('users').where({ team: team.id }).pluck('role')).sort()
        expect(roles, team.name).to.include.members(USER_ROLES.filter((r) => r !== 'super_admin'))
        expect(await db('remotecis').where({ team: team.id }).orderBy('name').pluck('name'), team.name).to.have.length(2)
      }
      expect((await db('users').where({ role: 'super_admin' }).pluck('name')).sort()).to.deep.equal(['demo-superadmin'])
      const perType = (await db('components as c')
        .join('componenttypes as t', 't.id', 'c.componenttype')
        .groupBy('t.name')
        .select('t.name')
        .count({ n: '*' })
        .orderBy('t.name')) as unknown as Array<{ name: string; n: string | number }>
      expect(perType.map((r) => [r.name, Number(r.n)])).to.deep.equal(
        ['ansible', 'dci-openshift-agent', 'openshift', 'openstack', 'rhel'].map((name) => [name, 60]),
      )
      // Each API key is a remoteci's, stored as a digest only.
      const keys = await db('apikeys').select('holder_kind', 'token_hash')
      expect(keys.map((k) => k.holder_kind)).to.deep.equal(Array(DEMO.apikeys).fill('remoteci'))
      for (const printed of first.keys) expect(JSON.stringify(keys)).to.not.include(printed.token)
      for (const hash of await db('users').pluck('password')) expect(hash).to.match(/^\$argon2id\$/)
      // Values a feeder would give: commit components have a sha, a url, a git repository.
      const agent = await db('components as c')
        .join('componenttypes as t', 't.id', 'c.componenttype')
        .where('t.name', 'dci-openshift-agent')
        .select('c.*')
        .first()
      expect(agent.sha).to.match(/^[0-9a-f]{40}$/)
      expect(agent.url).to.equal(`https://github.com/redhat-cip/dci-openshift-agent/commit/${agent.sha}`)
      expect(agent.git).to.equal('https://github.com/redhat-cip/dci-openshift-agent.git')
    })
  })

  it('every printed password logs in (by name and by email) and every printed API key authenticates as its remoteci', async () => {
    await withDatabase(async (db) => {
      expect(await identities(db, first)).to.deep.equal(accepted(first))
    })
  })

  it('a second run without --reset is refused (exit 1), names the rows in the way, and changes nothing', async () => {
    const before = await withDatabase((db) => tableChecksums(db, TABLES))
    const run = await provision()
    expect(run.code, run.stdout + run.stderr).to.equal(1)
    expect(run.stdout).to.equal('')
    expect(run.stderr).to.match(
      /^db:provision refused: the database already holds rows of the demo set; nothing was changed:\n {2}team 'demo-acme' \([0-9a-f-]{36}\)\n/,
    )
    expect(run.stderr).to.include('and 10 more') // 3 teams, 7 users, 5 componenttypes
    expect(run.stderr).to.include(`To replace everything in the database with the demo set: npm run db:provision -- --reset ${CONFIRM}`)
    expect(await withDatabase((db) => tableChecksums(db, TABLES))).to.deep.equal(before)
  })

  it('--reset without the confirmation exits 2, with the warning, and changes nothing', async () => {
    const before = await withDatabase((db) => tableChecksums(db, TABLES))
    const run = await provision(['--reset', '--password', 'demo password 1'])
    expect(run.code, run.stderr).to.equal(2)
    expect(run.stderr).to.include('--reset deletes ALL the data of the database')
    expect(run.stdout).to.equal('')
    expect(await withDatabase((db) => tableChecksums(db, TABLES))).to.deep.equal(before)
  })

  it('--reset with the confirmation empties every table and fills it again: the same counts, no old id, only the new credentials', async () => {
    const old = await withDatabase(async (db) => ({ counts: await counts(db), ids: await ids(db) }))
    const run = await provision(['--reset', CONFIRM, '--password', 'demo password 1'])
    expect(run.code, run.stderr).to.equal(0)
    const lines = run.stdout.split('\n')
    expect(lines[0]).to.equal(
      `reset: deleted ${DEMO.components} components, ${DEMO.componenttypes} componenttypes, ${DEMO.remotecis} remotecis, ${DEMO.teams + 1} teams, ` +
        `${DEMO.users + 1} users, ${old.counts.audits} audits, ${DEMO.apikeys} apikeys`,
    )
    expect(lines[1]).to.equal('created 3 teams, 7 users, 6 remotecis with an API key each, 5 componenttypes, 300 components')
    const again = credentials(run.stdout)
    for (const u of again.users) expect(u.password).to.equal('demo password 1')
    expect(again.users.map(({ password: _, ...u }) => u)).to.deep.equal(first.users.map(({ password: _, ...u }) => u))

    await withDatabase(async (db) => {
      const n = await counts(db)
      expect({ ...n, audits: undefined }).to.deep.equal({ ...DEMO, audits: undefined })
      // The audit rows of this run only: one per row created and per API key.
      expect(n.audits).to.equal(DEMO.teams + DEMO.users + DEMO.remotecis + DEMO.apikeys + DEMO.componenttypes + DEMO.components)
      const now = await ids(db)
      expect(
        [...now].filter((id) => old.ids.has(id)),
        'ids of before the reset',
      ).to.deep.equal([])
      expect(await db('teams').where({ name: 'ops' }).first()).to.equal(undefined)

      expect(await identities(db, again)).to.deep.equal(accepted(again))
      // The first run's passwords and keys are gone with their rows.
      const refused = await identities(db, first)
      expect(new Set([...Object.values(refused.basic), ...Object.values(refused.bearer)])).to.deep.equal(new Set([401]))
    })
  })
})
