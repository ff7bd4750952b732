import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { ApiError, createEngine, definePlugin, loadSchemas, migrateLatest, type Row } from '../core'
import { compileListQuery, embedPaths, MAX_EMBED_PATHS } from '../core/query/list-query'
import { plugins as serverPlugins } from '../resources'
import { generateMigration } from '../tooling/migration-generator'
import { type Answer, clientOf, makeWorld, memberOf, ROLES, type Transport, type World } from './helpers/callers'
import { expectError } from './helpers/errors'
import { freshDatabase, MIGRATIONS, ROOT, SCHEMAS, statementsOf } from './support'

const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'identity-schemas')
const BADGE = path.join(FIXTURES, 'badge.json')
const TRACE = path.join(FIXTURES, 'trace.json')
const IDENTITY_SCHEMAS = path.join(ROOT, 'core', 'identity', 'schemas')
const MISSING = '00000000-0000-4000-8000-000000000000'

type Json = Record<string, any>

/**
 * Nested embeds over a chain of three relations of test resources: trace -> badge -> user -> team
 * (a badge may also point at an audit line, which only super_admins read). Traces and badges belong
 * to no team; users and teams do. Their tables come from a migration generated from their schemas, on
 * a database of its own.
 */
describe('nested embeds: embed=badge.user.team on traces (trace -> badge -> user -> team)', function () {
  this.timeout(180_000)
  const fixtures = definePlugin({
    name: 'traces',
    dependencies: ['identity'],
    setup(api) {
      api.resource(BADGE)
      api.resource(TRACE)
    },
  })
  let fresh: Awaited<ReturnType<typeof freshDatabase>>
  let world: World
  const dirs: string[] = []
  /** Badges and traces by name, as created. */
  const badges: Record<string, Row> = {}
  const traces: Record<string, Row> = {}
  let auditId: string
  const prefix = () => world.engine.prefix

  before(async () => {
    fresh = await freshDatabase()
    const migrations = fs.mkdtempSync(path.join(os.tmpdir(), 'dci-migrations-'))
    dirs.push(migrations)
    for (const f of fs.readdirSync(MIGRATIONS)) fs.copyFileSync(path.join(MIGRATIONS, f), path.join(migrations, f))
    const identitySchemas = fs.readdirSync(IDENTITY_SCHEMAS).map((f) => path.join(IDENTITY_SCHEMAS, f))
    await generateMigration({
      db: fresh.db,
      schemasDir: SCHEMAS,
      migrationsDir: migrations,
      resources: ['badge', 'trace'],
      schemaFiles: [...identitySchemas, BADGE, TRACE],
    })
    await migrateLatest(fresh.db, migrations)
    world = await makeWorld([fixtures], fresh.db)
    auditId = (await world.db('audits').first('id')).id
    const badge = (name: string, data: Json) => world.engine.service('badge').create({ name, ...data })
    badges.bA = await badge('bA', { user: world.users.userA.row.id, audit: auditId })
    badges.bB = await badge('bB', { user: world.users.userB.row.id })
    badges.bNobody = await badge('bNobody', {})
    badges.bGhost = await badge('bGhost', {})
    const trace = (name: string, badgeId?: string) => world.engine.service('trace').create(badgeId ? { name, badge: badgeId } : { name })
    // tA1 and tA2 share a badge; tDangling's badge and bGhost's user are no rows.
    traces.tA1 = await trace('tA1', badges.bA.id)
    traces.tA2 = await trace('tA2', badges.bA.id)
    traces.tB = await trace('tB', badges.bB.id)
    traces.tDangling = await trace('tDangling')
    traces.tGhost = await trace('tGhost', badges.bGhost.id)
    traces.tNobody = await trace('tNobody', badges.bNobody.id)
    traces.tNone = await trace('tNone')
    // Ids of no row, written with the foreign keys' triggers off (as rows imported before a constraint).
    await world.db.transaction(async (trx) => {
      await trx.raw('SET LOCAL session_replication_role = replica')
      await trx('badges').update({ user: MISSING }).where({ id: badges.bGhost.id })
      await trx('traces').update({ badge: MISSING }).where({ id: traces.tDangling.id })
    })
    badges.bGhost.user = MISSING
    traces.tDangling.badge = MISSING
  })
  after(async () => {
    await fresh?.drop()
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true })
  })

  /** A row as a super_admin reads it over HTTP now (write-only fields left out). */
  const current = async (plural: string, id: string): Promise<Json> => {
    const res = await clientOf(world, world.users.super, 'http')('GET', `${prefix()}/${plural}/${id}`)
    expect(res.status, res.text).to.equal(200)
    return Object.values(res.body)[0] as Json
  }
  /** The badge of a trace as `embed=badge.user[.team]` should answer it (null when none), as one who sees every team. */
  const expectedBadge = async (trace: Row, depth: 1 | 2 | 3): Promise<Json | null> => {
    if (!trace.badge || trace.badge === MISSING) return null
    const badge = await current('badges', trace.badge as string)
    if (depth === 1 || badge.user === null) return badge
    if (badge.user === MISSING) return { ...badge, user: null }
    const user = await current('users', badge.user)
    return { ...badge, user: depth === 2 ? user : { ...user, team: await current('teams', user.team) } }
  }
  const byName = (answer: Answer, plural = 'traces') => {
    expect(answer.status, answer.text).to.equal(200)
    return Object.fromEntries(answer.body[plural].map((row: Json) => [row.name, row]))
  }

  for (const transport of ['http', 'services'] as Transport[]) {
    describe(`through ${transport === 'http' ? 'HTTP' : 'the in-process services'}`, () => {
      const superClient = () => clientOf(world, world.users.super, transport)

      it('a list with embed=badge.user.team embeds three levels; a null or dangling relation is null, and nothing below it', async () => {
        const listed = byName(await superClient()('GET', `${prefix()}/traces?embed=badge.user.team&sort=name`))
        expect(Object.keys(listed)).to.have.members(Object.keys(traces))
        for (const [name, trace] of Object.entries(traces)) {
          expect(listed[name].badge, `${name}'s badge`).to.deep.equal(await expectedBadge(trace, 3))
        }
        expect(listed.tA1.badge.user.team.name).to.equal('team-a')
        expect(listed.tB.badge.user.team.name).to.equal('team-b')
        expect(listed.tDangling.badge).to.equal(null)
        expect(listed.tNone.badge).to.equal(null)
        expect(listed.tGhost.badge.user).to.equal(null)
        expect(listed.tNobody.badge.user).to.equal(null)
        // The level not embedded keeps its id.
        expect(listed.tA1.badge.audit).to.equal(auditId)
      })

      it('embed=badge.user embeds two levels (the user keeps its team id); the implied level may be named too, in any order', async () => {
        const two = byName(await superClient()('GET', `${prefix()}/traces?embed=badge.user&sort=name`))
        for (const [name, trace] of Object.entries(traces)) expect(two[name].badge, name).to.deep.equal(await expectedBadge(trace, 2))
        expect(two.tA1.badge.user.team).to.equal(world.teams.A.id)
        const named = byName(await superClient()('GET', `${prefix()}/traces?embed=badge.user,badge,badge.user&sort=name`))
        expect(named).to.deep.equal(two)
      })

      it('a detail embeds nested too, and answers null for a dangling relation', async () => {
        const detail = await superClient()('GET', `${prefix()}/traces/${traces.tA1.id}?embed=badge.user.team`)
        expect(detail.status, detail.text).to.equal(200)
        expect(detail.body.trace.badge).to.deep.equal(await expectedBadge(traces.tA1, 3))
        const dangling = await superClient()('GET', `${prefix()}/traces/${traces.tDangling.id}?embed=badge.user`)
        expect(dangling.body.trace).to.include({ name: 'tDangling', badge: null })
        const ghost = await superClient()('GET', `${prefix()}/traces/${traces.tGhost.id}?embed=badge.user.team`)
        expect(ghost.body.trace.badge).to.include({ name: 'bGhost', user: null })
      })

      it('a path of four relations answers 400 naming the limit, on a list and on a detail', async () => {
        for (const url of [`${prefix()}/traces?embed=badge.user.team.x`, `${prefix()}/traces/${traces.tA1.id}?embed=badge,badge.user.team.name`]) {
          const body = expectError(
            await superClient()('GET', url),
            400,
            /^Invalid 'embed' parameter: 'badge\.user\.team\.(x|name)' follows more than 3 relations$/,
            'invalid_parameter',
          )
          expect(body.payload).to.deep.equal({ max_depth: 3 })
        }
      })

      it('an unknown step of a path answers 400 listing the relations valid at that level', async () => {
        const second = expectError(
          await superClient()('GET', `${prefix()}/traces?embed=badge.nope`),
          400,
          "Invalid 'embed' parameter: 'nope' of 'badge' is not a relation of badges",
          'invalid_parameter',
        )
        expect(second.payload).to.deep.equal({ path: 'badge', relations: ['user', 'audit'] })
        const third = expectError(
          await superClient()('GET', `${prefix()}/traces/${traces.tA1.id}?embed=badge.user.name`),
          400,
          "Invalid 'embed' parameter: 'name' of 'badge.user' is not a relation of users",
        )
        expect(third.payload).to.deep.equal({ path: 'badge.user', relations: ['team'] })
        const first = expectError(
          await superClient()('GET', `${prefix()}/traces?embed=nope.user`),
          400,
          "Invalid 'embed' parameter: 'nope' is not a relation of traces",
        )
        expect(first.payload).to.deep.equal({ relations: ['badge'] })
        // An empty step is no relation either.
        expectError(
          await superClient()('GET', `${prefix()}/traces?embed=badge..user`),
          400,
          "Invalid 'embed' parameter: '' of 'badge' is not a relation of badges",
        )
      })

      it('fields selects inside nested embeds; each embedded row keeps its id and etag', async () => {
        const listed = byName(await superClient()('GET', `${prefix()}/traces?embed=badge.user.team&fields=name,badge.user.team.name,badge.name&sort=name`))
        const a = listed.tA1
        expect(a).to.deep.equal({
          id: traces.tA1.id,
          etag: traces.tA1.etag,
          name: 'tA1',
          badge: {
            id: badges.bA.id,
            etag: badges.bA.etag,
            name: 'bA',
            user: { id: world.users.userA.row.id, etag: a.badge.user.etag, team: { id: world.teams.A.id, etag: a.badge.user.team.etag, name: 'team-a' } },
          },
        })
        expect(listed.tGhost.badge).to.deep.equal({ id: badges.bGhost.id, etag: badges.bGhost.etag, name: 'bGhost', user: null })
        // A relation named alone keeps the whole embedded row, its own embeds included.
        const detail = await superClient()('GET', `${prefix()}/traces/${traces.tA1.id}?embed=badge.user.team&fields=badge.user`)
        expect(detail.body.trace.badge.user).to.deep.equal((await expectedBadge(traces.tA1, 3))!.user)
        expect(Object.keys(detail.body.trace.badge).sort()).to.deep.equal(['etag', 'id', 'user'])
      })

      it('fields inside a nested embed: a path not embedded, an unknown key, a write-only key or a step too deep answer 400 saying what is valid', async () => {
        const notEmbedded = expectError(
          await superClient()('GET', `${prefix()}/traces?embed=badge&fields=badge.user.name`),
          400,
          "Invalid 'fields' parameter: 'badge.user.name' selects inside an embedded badge.user: add embed=badge.user",
        )
        expect(notEmbedded.payload).to.deep.equal({ embed: 'badge.user' })
        const unknown = expectError(
          await superClient()('GET', `${prefix()}/traces?embed=badge.user&fields=badge.user.nope`),
          400,
          "Invalid 'fields' parameter: unknown field 'nope' of the embedded badge.user",
        )
        expect(unknown.payload.fields).to.include.members(['id', 'etag', 'name', 'email', 'role', 'team', 'team_id']).and.not.include('password')
        expectError(
          await superClient()('GET', `${prefix()}/traces/${traces.tA1.id}?embed=badge.user&fields=badge.user.password`),
          400,
          "Invalid 'fields' parameter: unknown field 'password' of the embedded badge.user",
        )
        const notRelation = expectError(
          await superClient()('GET', `${prefix()}/traces?embed=badge.user&fields=badge.name.x`),
          400,
          "Invalid 'fields' parameter: 'name' is not a relation of the embedded badge",
        )
        expect(notRelation.payload).to.deep.equal({ relations: ['user', 'audit'] })
        expectError(
          await superClient()('GET', `${prefix()}/traces?embed=badge.user.team&fields=badge.user.team.id.x`),
          400,
          "Invalid 'fields' parameter: 'id' is not a relation of the embedded badge.user.team",
        )
      })

      for (const role of ROLES) {
        const everything = role === 'super_admin'
        it(`${role}: ${everything ? 'every user embedded at level 2' : 'a user of another team embeds as null at level 2, its own team below its own users'}; no password at any depth`, async () => {
          const client = clientOf(world, memberOf(world, role), transport)
          const answer = await client('GET', `${prefix()}/traces?embed=badge.user.team&sort=name`)
          const listed = byName(answer)
          expect(answer.text).to.not.include('"password"')
          expect(listed.tA1.badge.user).to.deep.equal((await expectedBadge(traces.tA1, 3))!.user)
          expect(listed.tA2.badge.user.team.name).to.equal('team-a')
          expect(listed.tB.badge).to.include({ name: 'bB' })
          expect(listed.tB.badge.user).to.deep.equal(everything ? (await expectedBadge(traces.tB, 3))!.user : null)
          const detail = await client('GET', `${prefix()}/traces/${traces.tB.id}?embed=badge.user`)
          expect(detail.status, detail.text).to.equal(200)
          expect(detail.text).to.not.include('"password"')
          expect(detail.body.trace.badge.user).to.deep.equal(everything ? await current('users', world.users.userB.row.id) : null)
        })

        it(`${role}: embedding audits, which only super_admins read, ${everything ? 'works' : 'is a 403'} at level 1 and at level 2, on a list and a detail`, async () => {
          const client = clientOf(world, memberOf(world, role), transport)
          const urls = [
            `${prefix()}/badges?embed=audit`,
            `${prefix()}/traces?embed=badge.audit`,
            `${prefix()}/traces/${traces.tA1.id}?embed=badge.audit`,
            `${prefix()}/traces/${traces.tA1.id}?embed=badge.user.team,badge.audit`,
          ]
          for (const url of urls) {
            const answer = await client('GET', url)
            if (everything) expect(answer.status, answer.text).to.equal(200)
            else expectError(answer, 403, `The role ${role} may not read audits`, 'forbidden')
          }
          if (everything) {
            const detail = await client('GET', urls[2])
            expect(detail.body.trace.badge.audit).to.deep.equal(await current('audits', auditId))
          }
        })
      }
    })
  }

  it('the weak ETag of a detail digests every embedded row at every level: a change at level 2 or 3 changes it, and If-None-Match answers 304 until then', async () => {
    const http = clientOf(world, world.users.super, 'http')
    const url = `${prefix()}/traces/${traces.tB.id}?embed=badge.user.team`
    const first = await http('GET', url)
    expect(first.status, first.text).to.equal(200)
    expect(first.headers.etag).to.match(/^W\/"[0-9a-f]{32}"$/)
    expect((await http('GET', url, { headers: { 'If-None-Match': first.headers.etag } })).status).to.equal(304)
    // Level 2: the user's e-mail.
    const userB = world.users.userB.row.id
    expect((await http('PUT', `${prefix()}/users/${userB}`, { body: { email: 'userb-moved@example.com' }, headers: { 'If-Match': '*' } })).status).to.equal(204)
    const second = await http('GET', url, { headers: { 'If-None-Match': first.headers.etag } })
    expect(second.status).to.equal(200)
    expect(second.body.trace.badge.user.email).to.equal('userb-moved@example.com')
    expect(second.headers.etag).to.not.equal(first.headers.etag)
    expect((await http('GET', url, { headers: { 'If-None-Match': second.headers.etag } })).status).to.equal(304)
    // Level 3: the team's name (named back after).
    const teamB = world.teams.B.id
    expect((await http('PUT', `${prefix()}/teams/${teamB}`, { body: { name: 'team-b-renamed' }, headers: { 'If-Match': '*' } })).status).to.equal(204)
    try {
      const third = await http('GET', url, { headers: { 'If-None-Match': second.headers.etag } })
      expect(third.status).to.equal(200)
      expect(third.headers.etag).to.not.equal(second.headers.etag)
      // Without the third level, the team is not in the answer: its change does not show in the ETag.
      const twoLevels = `${prefix()}/traces/${traces.tB.id}?embed=badge.user`
      const before = await http('GET', twoLevels)
      expect((await http('PUT', `${prefix()}/teams/${teamB}`, { body: { name: 'team-b' }, headers: { 'If-Match': '*' } })).status).to.equal(204)
      expect((await http('GET', twoLevels, { headers: { 'If-None-Match': before.headers.etag } })).status).to.equal(304)
    } finally {
      await world.engine.service('team').update(teamB, { name: 'team-b' }, { trusted: true })
    }
    // A weak ETag never passes If-Match.
    expect((await http('PUT', `${prefix()}/traces/${traces.tB.id}`, { body: { name: 'tB' }, headers: { 'If-Match': second.headers.etag } })).status).to.equal(
      412,
    )
  })

  it('one statement per embedded path, whatever the number of rows (no statement per row), on a list and a detail', async () => {
    const service = world.engine.service('trace')
    const more: string[] = []
    // Rows enough for a statement per row to show: badges of every user, and traces of them.
    for (const member of Object.values(world.users)) {
      const badge = await world.engine.service('badge').create({ name: `of-${member.row.name}`, user: member.row.id })
      for (let i = 0; i < 3; i++) more.push((await service.create({ name: `t-${member.row.name}-${i}`, badge: badge.id })).id)
    }
    try {
      const few = await statementsOf(world.db, () => service.find({ query: { embed: ['badge.user.team'], limit: 2, count: 'none', sort: 'name' } }))
      const many = await statementsOf(world.db, () => service.find({ query: { embed: 'badge.user.team', limit: 100, count: 'none' } }))
      expect(many.result.items.length).to.be.above(20)
      const users = new Set(many.result.items.map((t) => (t.badge as Json | null)?.user?.id).filter(Boolean))
      expect(users.size, 'distinct users embedded').to.be.at.least(5)
      for (const { sql } of [few, many]) {
        expect(sql, sql.join('\n')).to.have.length(4)
        expect(sql.slice(1).every((s) => /\bwhere "id" in\b/i.test(s))).to.equal(true)
      }
      const detail = await statementsOf(world.db, () => service.get(traces.tA1.id, { query: { embed: 'badge.user.team' } }))
      expect(detail.sql).to.have.length(4)
      // Under a null badge, no statement for the levels below.
      const none = await statementsOf(world.db, () => service.get(traces.tNone.id, { query: { embed: 'badge.user.team' } }))
      expect(none.sql).to.have.length(1)
    } finally {
      await world.db('traces').whereIn('id', more).delete()
      await world.db('badges').where('name', 'like', 'of-%').delete()
    }
  })

  it("the response byte budget counts each nested level's largest row", async () => {
    // A budget small enough that every page of traces is measured as PostgreSQL reads it.
    const engine = await createEngine({ db: world.db, schemasDir: SCHEMAS, plugins: [...serverPlugins, fixtures], maxResponseBytes: 4_096 })
    /** The bytes the budgeted statement adds per row for its embedded rows (its fourth binding from the end). */
    const embedBytes = async (embed: string) => {
      const seen: unknown[][] = []
      const record = (q: { sql: string; bindings?: unknown[] }) => {
        if (/row_to_json/.test(q.sql)) seen.push(q.bindings ?? [])
      }
      world.db.on('query', record)
      try {
        await engine.service('trace').find({ query: { embed, limit: 200 } })
      } finally {
        world.db.removeListener('query', record)
      }
      expect(seen, `the budgeted statement of embed=${embed}`).to.have.length(1)
      return Number(seen[0][seen[0].length - 4])
    }
    const one = await embedBytes('badge')
    const two = await embedBytes('badge.user')
    const three = await embedBytes('badge.user.team')
    expect(one).to.be.above(0)
    expect(two).to.be.above(one)
    expect(three).to.be.above(two)
    expect(await embedBytes('badge.user.team,badge.audit')).to.be.above(three)
  })

  it('OpenAPI: embed lists every path up to three relations, fields every key inside them (no write-only one)', () => {
    const doc = world.engine.openapi() as Json
    const params = Object.fromEntries(doc.paths['/traces'].get.parameters.map((p: Json) => [p.name, p]))
    expect(params.embed.schema.items.enum).to.deep.equal(['badge', 'badge.user', 'badge.user.team', 'badge.audit'])
    expect(params.embed.description).to.include('at most 3 relations deep')
    const fields: string[] = params.fields.schema.items.enum
    expect(fields).to.include.members(['name', 'badge', 'badge.name', 'badge.user.email', 'badge.user.team.name', 'badge.audit.action'])
    expect(fields.filter((f) => f.endsWith('password'))).to.deep.equal([])
    const detail = Object.fromEntries(doc.paths['/traces/{id}'].get.parameters.map((p: Json) => [p.name, p]))
    expect(detail.embed.schema.items.enum).to.deep.equal(params.embed.schema.items.enum)
  })
})

describe('the embed parser (no database)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dci-knot-'))
  // A knot has six relations to knots: enough paths to go over the bound.
  const knotFile = path.join(dir, 'knot.json')
  const steps = ['a', 'b', 'c', 'd', 'e', 'f']
  const relation = { type: 'string', format: 'uuid', 'x-relation': { resource: 'knot', onDelete: 'set null' } }
  fs.writeFileSync(knotFile, JSON.stringify({ title: 'knot', type: 'object', properties: Object.fromEntries(steps.map((s) => [s, relation])) }))
  const defs = loadSchemas(SCHEMAS, [], [knotFile])
  fs.rmSync(dir, { recursive: true, force: true })
  const knot = defs.find((d) => d.name === 'knot')!
  const parser = compileListQuery(knot, { defaultLimit: 20, maxLimit: 200, maxOffset: 1_000_000 }, undefined, (name) => defs.find((d) => d.name === name))
  const refusal = (embed: string) => {
    try {
      parser.parseList({ embed })
    } catch (err) {
      if (err instanceof ApiError) return err
      throw err
    }
    throw new Error(`embed=${embed.slice(0, 40)} was accepted`)
  }

  it('a path comes after the paths it implies, each once, in the order given', () => {
    expect(embedPaths('a.b.c,a,d,a.b')).to.deep.equal(['a', 'a.b', 'a.b.c', 'd'])
    expect(parser.parseList({ embed: 'c.b,a.e.f,c' }).embed).to.deep.equal(['c', 'c.b', 'a', 'a.e', 'a.e.f'])
    expect(parser.parseDetail({ embed: 'a,a' }).embed).to.deep.equal(['a'])
  })

  it(`${MAX_EMBED_PATHS} paths (those implied included) are accepted, one more is a 400 naming the bound`, () => {
    // 25 leaves under a.a ... a.e: 1 + 5 + 25 = 31 paths; with a.f, 32; with a.f.a instead, 1 + 6 + 26 = 33.
    const leaves = steps.slice(0, 5).flatMap((second) => steps.map((third) => `a.${second}.${third}`))
    expect(parser.parseList({ embed: leaves.slice(0, 25).join(',') }).embed).to.have.length(1 + 5 + 25)
    expect(parser.parseList({ embed: [...leaves.slice(0, 25), 'a.f'].join(',') }).embed).to.have.length(MAX_EMBED_PATHS)
    const err = refusal([...leaves.slice(0, 25), 'a.f.a'].join(','))
    expect(err.status).to.equal(400)
    expect(err.message).to.equal(`Invalid 'embed' parameter: 33 paths (with those the dotted ones imply) are more than the maximum of ${MAX_EMBED_PATHS}`)
    expect(err.payload).to.deep.equal({ max_paths: MAX_EMBED_PATHS })
  })

  it('a path of thousands of steps is refused as too deep, its message cut short', () => {
    const err = refusal(`${'a.'.repeat(4_000)}a`)
    expect(err.payload).to.deep.equal({ max_depth: 3 })
    expect(err.message.length).to.be.below(320)
  })
})
