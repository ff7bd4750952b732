import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import type { Knex } from 'knex'
import supertest from 'supertest'
import { createEngine } from '../core'
import { verifyPassword } from '../core/identity'
import { serverPlugins } from '../resources'
import { PG_URL } from './helpers/pg'
import { runScript, type ScriptRun } from './helpers/scripts'
import { ownDatabase, withOwnDatabase, type OwnDatabase } from './helpers/server-process'
import { DATABASE, SCHEMAS } from './support'

/** Runs `npm run user -- ...args` as npm would, with `env` added to the environment. */
function runUser(args: string[], env: Record<string, string>): Promise<ScriptRun> {
  // No USER_PASSWORD from the caller's environment unless the test gives one.
  return runScript('scripts/user.ts', args, { USER_PASSWORD: '', ...env })
}

const USAGE = 'usage:\n  npm run user -- create <name> --team <team name>'

describe(`npm run user: creates users and resets passwords (${DATABASE})`, function () {
  this.timeout(240_000)
  let own: OwnDatabase
  let generated: string

  before(async function () {
    this.timeout(60_000)
    own = await ownDatabase('usercmd', Boolean(PG_URL))
  })
  after(async () => {
    await own?.dispose()
  })

  /** Runs `user` on this file's database. */
  const user = (args: string[], env: Record<string, string> = {}) => runUser(args, { ...own.env, ...env })

  /** On this file's database (the embedded one only once no command runs). */
  const withDatabase = <T>(check: (db: Knex) => Promise<T>) => withOwnDatabase(own, check)

  it('a wrong command line exits 2 with the usage on stderr, before opening any database', async () => {
    const nowhere = path.join(os.tmpdir(), `dci-usercmd-unused-${process.pid}`)
    const cases: Array<[string[], string]> = [
      [[], 'no command given'],
      [['delete', 'alice'], "unknown command 'delete'"],
      [['create', 'alice'], 'create: --team is required'],
      [['create', 'alice', '--team', 'ops', '--admin'], "Unknown option '--admin'"],
      [['password', 'alice', '--role', 'admin'], 'password: --role belongs to create'],
    ]
    const runs = await Promise.all(cases.map(([args]) => runUser(args, { DATABASE_URL: '', DATA_DIR: nowhere })))
    for (const [i, run] of runs.entries()) {
      const [args, message] = cases[i]
      expect(run.code, `${args.join(' ')}: ${run.stderr}`).to.equal(2)
      expect(run.stderr, args.join(' ')).to.include(`user: ${message}`)
      expect(run.stderr).to.include(USAGE)
      expect(run.stdout).to.equal('')
    }
    expect(fs.existsSync(nowhere), 'the embedded database was opened').to.equal(false)
  })

  it('an unreachable database exits 1 with the reason, without stack traces', async () => {
    const run = await runUser(['create', 'alice', '--team', 'ops', '--password', 'alice password 1'], { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none' })
    expect(run.code, run.stderr).to.equal(1)
    expect(run.stderr).to.include("user create 'alice' failed: connect ECONNREFUSED 127.0.0.1:1")
    expect(run.stderr).to.not.match(/\n\s+at /)
    expect(run.stdout).to.equal('')
  })

  it('create makes the team when it is missing and the user with the given password, role user by default', async () => {
    const run = await user(['create', 'alice', '--team', 'ops', '--password', 'alice password 1'])
    expect(run.code, run.stderr).to.equal(0)
    const lines = run.stdout.trim().split('\n')
    expect(lines).to.have.length(2)
    expect(lines[0]).to.match(/^created team 'ops' \([0-9a-f-]{36}\)$/)
    expect(lines[1]).to.match(/^created user 'alice' \([0-9a-f-]{36}\), role user, team 'ops'$/)
    expect(run.stdout + run.stderr).to.not.include('alice password 1')
  })

  it('create in an existing team takes the role, the email, and the password of USER_PASSWORD', async () => {
    const run = await user(['create', 'bob', '--team', 'ops', '--role', 'admin', '--email', 'bob@example.com'], { USER_PASSWORD: 'bob password 1' })
    expect(run.code, run.stderr).to.equal(0)
    expect(run.stdout.trim()).to.match(/^created user 'bob' \([0-9a-f-]{36}\), role admin, team 'ops'$/)
  })

  it('without --password nor USER_PASSWORD, a generated password is printed once, on one line', async () => {
    const run = await user(['create', 'carol', '--team', 'qa', '--role', 'super_admin'])
    expect(run.code, run.stderr).to.equal(0)
    const match = /^generated password of 'carol' \(shown once\): (\S+)$/m.exec(run.stdout)
    expect(match, run.stdout).to.not.equal(null)
    generated = match![1]
    expect(generated).to.have.length.of.at.least(20)
    expect(run.stdout.split(generated)).to.have.length(2)
    expect(run.stderr).to.not.include(generated)
  })

  it('a refused change exits 1 with the reason on stderr, and a refused user leaves no new team behind', async () => {
    const cases: Array<[string[], string]> = [
      [['create', 'alice', '--team', 'ops', '--password', 'another password'], "user create 'alice' failed: A user with the same name already exists"],
      [
        ['create', 'dave', '--team', 'newteam', '--role', 'boss', '--password', 'dave password'],
        "user create 'dave' failed: Request body does not match the schema; role: must be equal to one of the allowed values; (roles: super_admin, admin, user)",
      ],
      [['password', 'nobody', '--password', 'whatever password'], "user password 'nobody' failed: no user named 'nobody'"],
      [
        ['password', 'alice', '--password', 'short'],
        "user password 'alice' failed: Request body does not match the schema; password: must NOT have fewer than 8 characters",
      ],
    ]
    // One at a time: the embedded database is one process's at a time.
    for (const [args, message] of cases) {
      const run = await user(args)
      expect(run.code, `${args.join(' ')}: ${run.stdout}${run.stderr}`).to.equal(1)
      expect(run.stderr, args.join(' ')).to.include(message)
      expect(run.stdout, args.join(' ')).to.equal('')
    }
  })

  it('password sets a new password (from --password, or USER_PASSWORD)', async () => {
    const run = await user(['password', 'alice', '--password', 'alice password 2'])
    expect(run.code, run.stderr).to.equal(0)
    expect(run.stdout).to.equal("changed the password of user 'alice'\n")
    const env = await user(['password', 'bob'], { USER_PASSWORD: 'bob password 2' })
    expect(env.code, env.stderr).to.equal(0)
    expect(env.stdout).to.equal("changed the password of user 'bob'\n")
  })

  it('the database holds what the commands said, with Argon2id hashes only, and the server accepts the passwords', async () => {
    await withDatabase(async (db) => {
      const teams = await db('teams').select('id', 'name').orderBy('name')
      expect(teams.map((t) => t.name)).to.deep.equal(['ops', 'qa'])
      const teamOf = Object.fromEntries(teams.map((t) => [t.name, t.id]))
      const users = await db('users').select('name', 'email', 'role', 'team', 'password').orderBy('name')
      expect(users.map(({ password: _, ...u }) => u)).to.deep.equal([
        { name: 'alice', email: null, role: 'user', team: teamOf.ops },
        { name: 'bob', email: 'bob@example.com', role: 'admin', team: teamOf.ops },
        { name: 'carol', email: null, role: 'super_admin', team: teamOf.qa },
      ])
      const byName = Object.fromEntries(users.map((u) => [u.name, u.password as string]))
      for (const hash of Object.values(byName)) expect(hash).to.match(/^\$argon2id\$/)
      expect(await verifyPassword(byName.alice, 'alice password 2')).to.equal(true)
      expect(await verifyPassword(byName.alice, 'alice password 1')).to.equal(false)

      const engine = await createEngine({ db, schemasDir: SCHEMAS, plugins: serverPlugins() })
      const http = supertest(engine.app().callback())
      const identity = async (login: string, password: string) => {
        const res = await http.get('/api/v1/identity').auth(login, password)
        return res.status === 200 ? `${res.body.identity.name} ${res.body.identity.role}` : res.status
      }
      expect(await identity('alice', 'alice password 2')).to.equal('alice user')
      expect(await identity('alice', 'alice password 1')).to.equal(401)
      expect(await identity('bob@example.com', 'bob password 2')).to.equal('bob admin')
      expect(await identity('bob', 'bob password 1')).to.equal(401)
      expect(await identity('carol', generated)).to.equal('carol super_admin')
    })
  })
})
