import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { defineAction, definePlugin, loadSchemas, migrateLatest, type Page, type ResourceDefinition, type Row } from '../core'
import { generateMigration } from '../tooling/migration-generator'
import { hashPassword, verifyPassword } from '../core/identity'
import { collectPlugins } from '../core/plugins/registry'
import { SEARCH_COLUMN } from '../core/schema/derive'
import { plugins } from '../resources'
import { RowFactory, type ApiRow } from './conformance/rows'
import {
  clientOf,
  makeWorld,
  memberOf,
  resetIdentityTables,
  ROLES,
  serviceClient,
  type Answer,
  type Client,
  type Member,
  type Role,
  type Transport,
  type World,
} from './helpers/callers'
import { expectError } from './helpers/errors'
import { serviceAgent } from './helpers/service-agent'
import { freshDatabase, MIGRATIONS, ROOT, SCHEMAS, type TestApp } from './support'

// Mocha declares tests synchronously: the resources and actions are read from the same schema folder
// and plugins the engine is built from (the first test checks that both agree).
const contributions = collectPlugins(plugins, { error() {}, warn() {}, info() {} })
const definitions = loadSchemas(SCHEMAS, contributions.keywords, contributions.schemaFiles)
const byName = new Map(definitions.map((d) => [d.name, d]))
/** Resources whose rows hold API keys: those with a `create_<name>_apikey` action. */
const keyHolders = definitions.filter((d) => contributions.actions.some((a) => a.name === `create_${d.name}_apikey`))

const MISSING = '00000000-0000-4000-8000-00000000abcd'

type Scope = 'own' | 'other' | 'global'
type Operation = 'read' | 'create' | 'update' | 'delete'

/** Where the target rows of a resource live: a team-owned resource has own-team and other-team rows. */
function scopesOf(def: ResourceDefinition): Scope[] {
  return def.owner ? ['own', 'other'] : ['global']
}

const SCOPE_TEXT: Record<Scope, string> = { own: "a row of the caller's team", other: 'a row of another team', global: 'a row (no owner)' }

/**
 * The issue's rules, as the test's own oracle (not the implementation's): `x-access` names the roles of
 * an operation (an action falls back to `fallback`); else reads are for anyone, writes to a
 * team-owned resource for its admins, writes to anything else for super_admin. super_admin may always.
 */
function roleMay(def: ResourceDefinition, role: Role, operation: string, fallback: Operation = operation as Operation): boolean {
  if (role === 'super_admin') return true
  const declared = def.access[operation] ?? def.access[fallback]
  if (declared) return declared.includes(role)
  if (fallback === 'read') return true
  return def.owner !== undefined && def.owner !== 'id' ? role === 'admin' : false
}

/** True when the caller cannot see rows of this scope (another team's, for anyone but super_admin). */
function hiddenFrom(role: Role, scope: Scope | 'self'): boolean {
  return scope === 'other' && role !== 'super_admin'
}

interface Expected {
  status: number
  code?: string
}

function expectedRead(def: ResourceDefinition, role: Role, scope: Scope): Expected {
  if (hiddenFrom(role, scope)) return { status: 404, code: 'not_found' }
  if (!roleMay(def, role, 'read')) return { status: 403, code: 'forbidden' }
  return { status: 200 }
}

function expectedList(def: ResourceDefinition, role: Role): Expected {
  return roleMay(def, role, 'read') ? { status: 200 } : { status: 403, code: 'forbidden' }
}

function expectedWrite(def: ResourceDefinition, role: Role, scope: Scope, operation: 'update' | 'delete'): Expected {
  if (def.readOnly) return { status: 405, code: 'method_not_allowed' }
  // Another team's row is a 404 whatever the role: a 403 would tell that it exists.
  if (hiddenFrom(role, scope)) return { status: 404, code: 'not_found' }
  if (!roleMay(def, role, operation)) return { status: 403, code: 'forbidden' }
  // The caller's own team has members (the caller): deleting it is refused by the database.
  if (operation === 'delete' && def.owner === 'id' && scope === 'own') return { status: 409, code: 'still_referenced' }
  return { status: 204 }
}

type OwnerChoice = 'omitted' | 'own' | 'other' | 'global'

function ownerChoices(def: ResourceDefinition): OwnerChoice[] {
  return def.owner && def.owner !== 'id' ? ['omitted', 'own', 'other'] : ['global']
}

const CHOICE_TEXT: Record<OwnerChoice, string> = {
  omitted: 'without its owner field',
  own: "naming the caller's team",
  other: 'naming another team',
  global: 'a row',
}

function expectedCreate(def: ResourceDefinition, role: Role, choice: OwnerChoice): Expected {
  if (def.readOnly) return { status: 405, code: 'method_not_allowed' }
  if (!roleMay(def, role, 'create')) return { status: 403, code: 'forbidden' }
  if (choice === 'other' && role !== 'super_admin') return { status: 403, code: 'forbidden' }
  return { status: 201 }
}

function describeExpected(expected: Expected): string {
  return expected.code ? `${expected.status} ${expected.code}` : String(expected.status)
}

/** Asserts an answer's status (and error code), with the body in the message. */
function expectAnswer(res: Answer, expected: Expected): void {
  expect(res.status, `${res.status}: ${res.text}`).to.equal(expected.status)
  if (expected.code) expectError(res, expected.status, undefined, expected.code)
}

/** Fields of a resource that are never answered (write-only). */
function hiddenFields(def: ResourceDefinition): string[] {
  return def.fields.filter((f) => f.hidden).map((f) => f.name)
}

describe('access: role x operation x (own team, other team, global), generated from the schemas', function () {
  // The embedded database starts slowly on a loaded machine; a world hashes five passwords.
  this.timeout(180_000)
  let world: World
  let rows: RowFactory
  let fixtureHash: string

  /** A row as the API answers it (JSON, no write-only field, each alias key beside its field). */
  const asAnswered = (def: ResourceDefinition, row: Row): ApiRow => {
    const copy = JSON.parse(JSON.stringify(row))
    for (const field of def.fields) if (field.alias) copy[field.alias] = copy[field.name]
    for (const field of hiddenFields(def)) delete copy[field]
    // The full-text search column is the database's, never answered.
    delete copy[SEARCH_COLUMN]
    return copy
  }
  /** The stored row, as answered, or undefined when it is gone. */
  const stored = async (name: string, id: string): Promise<ApiRow | undefined> => {
    const row = await world.db(byName.get(name)!.plural).where({ id }).first()
    return row ? asAnswered(byName.get(name)!, row) : undefined
  }

  /**
   * A fresh row of `name` in `scope`, generated from its schema and written by trusted server code (no
   * rule applies, no audit row): own scope in team A (the callers' team), other scope in team B. The
   * team resource's own row is team A itself. Users get the role `user` and a hashed password.
   */
  const fixture = async (name: string, scope: Scope, overrides: Record<string, unknown> = {}): Promise<ApiRow> => {
    const def = byName.get(name)!
    if (def.owner === 'id' && scope === 'own') return (await stored(name, world.teams.A.id))!
    const pinned: Record<string, unknown> = { ...overrides }
    if (def.owner && def.owner !== 'id') pinned[def.owner] = scope === 'own' ? world.teams.A.id : world.teams.B.id
    if (name === 'user') pinned.role ??= 'user'
    for (const field of hiddenFields(def)) pinned[field] ??= fixtureHash
    const body = await rows.body(name, pinned)
    return asAnswered(def, await world.engine.service(name).create(body, { trusted: true }))
  }

  /** A valid PUT body from the schema (users keep the role `user`: promoting is a rule of its own). */
  const updateBody = (name: string): Record<string, unknown> => {
    const body = rows.updateBody(name)
    if (name === 'user') body.role = 'user'
    return body
  }

  const base = (def: ResourceDefinition) => `${world.engine.prefix}/${def.plural}`

  before(async () => {
    world = await makeWorld()
    fixtureHash = await hashPassword('a fixture password nobody uses')
    // Parent rows of generated bodies (a component's type...) are made by trusted server code too.
    const app: TestApp = { engine: world.engine, db: world.db, http: serviceAgent(world.engine, { trusted: true }) as unknown as TestApp['http'] }
    rows = new RowFactory(app)
  })
  // Later test files share the database: leave them the identity tables empty, as found.
  after(() => resetIdentityTables(world.db))

  it('covers exactly the resources the engine registered, users and audits included', () => {
    expect(definitions.map((d) => d.name)).to.have.members([...world.engine.resources.keys()])
    expect(definitions.map((d) => d.name)).to.include.members(['user', 'audit', 'team', 'remoteci'])
    expect(keyHolders.map((d) => d.name)).to.have.members(['user', 'remoteci'])
    for (const def of definitions) expect(world.engine.resource(def.name).def).to.deep.include({ owner: def.owner, readOnly: def.readOnly, access: def.access })
  })

  for (const transport of ['http', 'services'] as Transport[]) {
    describe(`through ${transport === 'http' ? 'HTTP (Basic for users, Bearer for the remoteci)' : 'the in-process services and actions (params.identity)'}`, () => {
      const as = (role: Role): Client => clientOf(world, memberOf(world, role), transport)

      if (transport === 'http') {
        it("each user's API key (Bearer) identifies the same caller as the user's Basic credential", async () => {
          for (const member of Object.values(world.users)) {
            const basic = await clientOf(world, member, 'http')('GET', `${world.engine.prefix}/identity`)
            const bearer = await clientOf(world, member, 'http', { bearer: true })('GET', `${world.engine.prefix}/identity`)
            expect(bearer.status, bearer.text).to.equal(200)
            expect(bearer.body).to.deep.equal(basic.body)
            expect(bearer.body.identity).to.deep.equal(member.identity)
          }
        })
      }

      for (const role of ROLES) {
        it(`${role}: GET /identity answers the caller`, async () => {
          const member = memberOf(world, role)
          const res = await as(role)('GET', `${world.engine.prefix}/identity`)
          expect(res.status, res.text).to.equal(200)
          expect(res.body.identity).to.include({
            id: member.row.id,
            kind: member.kind,
            role: member.kind === 'user' ? member.row.role : 'remoteci',
            team: world.teams.A.id,
          })
          expect(res.body.identity).to.not.have.property('password')
        })
      }

      for (const role of ROLES) {
        it(`${role}: GET /identity answers permissions by resource plural, each flag true exactly where the operation is not refused (403, or 405 on a read-only resource)`, async () => {
          const res = await as(role)('GET', `${world.engine.prefix}/identity`)
          expect(res.status, res.text).to.equal(200)
          expect(Object.keys(res.body)).to.have.members(['identity', 'permissions'])
          const permissions = res.body.permissions as Record<string, Record<Operation, boolean>>
          expect(Object.keys(permissions)).to.have.members(definitions.map((d) => d.plural))
          const refused = (answer: Answer) => answer.status === 403 || answer.status === 405
          for (const def of definitions) {
            const flags = permissions[def.plural]
            // The test's oracle of the rules first, then what the server does for each operation.
            const write = (operation: Operation) => !def.readOnly && roleMay(def, role, operation)
            expect(flags, def.plural).to.deep.equal({
              read: roleMay(def, role, 'read'),
              create: write('create'),
              update: write('update'),
              delete: write('delete'),
            })
            const said = (operation: Operation, answer: Answer) =>
              expect(!refused(answer), `${role} ${operation} ${def.plural}: flag ${flags[operation]}, answered ${answer.status} ${answer.text}`).to.equal(
                flags[operation],
              )
            said('read', await as(role)('GET', `${base(def)}?limit=1`))
            // A create in the caller's team (the owner omitted), the update and delete of a row the caller can see.
            const owner = def.owner && def.owner !== 'id' ? def.owner : undefined
            const body = await rows.body(def.name, def.name === 'user' ? { role: 'user' } : {})
            if (owner) delete body[owner]
            said('create', await as(role)('POST', base(def), { body }))
            const updated = await fixture(def.name, def.owner ? 'own' : 'global')
            said('update', await as(role)('PUT', `${base(def)}/${updated.id}`, { body: updateBody(def.name), headers: { 'If-Match': `"${updated.etag}"` } }))
            // The team's own row is still referenced by its members: a delete allowed by the role answers 409.
            const removed = await fixture(def.name, def.owner ? 'own' : 'global')
            said('delete', await as(role)('DELETE', `${base(def)}/${removed.id}`, { headers: { 'If-Match': `"${removed.etag}"` } }))
          }
          // The cases README.md states ("Identity and access").
          const known: Partial<Record<Role, Record<string, Partial<Record<Operation, boolean>>>>> = {
            super_admin: { audits: { read: true, create: false, update: false, delete: false }, componenttypes: { create: true }, teams: { delete: true } },
            admin: {
              remotecis: { read: true, create: true, update: true, delete: true },
              users: { create: true },
              audits: { read: false },
              componenttypes: { create: false },
            },
            user: { componenttypes: { read: true, create: false }, remotecis: { read: true, create: false, update: false }, audits: { read: false } },
            remoteci: { components: { read: true, create: false }, audits: { read: false }, remotecis: { update: false } },
          }
          for (const [plural, flags] of Object.entries(known[role] ?? {})) expect(permissions[plural], `${role} on ${plural}`).to.deep.include(flags)
        })
      }

      for (const def of definitions) {
        describe(`${def.plural}${def.owner ? ` (owned through ${def.owner})` : ''}${def.readOnly ? ' (read-only)' : ''}`, () => {
          for (const role of ROLES) {
            const list = expectedList(def, role)
            const listed = def.owner ? (role === 'super_admin' ? "every team's rows" : "the rows of the caller's team only") : 'every row'
            it(`${role}: GET /${def.plural} answers ${describeExpected(list)}${list.status === 200 ? `, with ${listed} in the page and in _meta.count` : ''}`, async () => {
              const made = await Promise.all(scopesOf(def).map(async (scope) => ({ scope, row: await fixture(def.name, scope) })))
              const res = await as(role)('GET', `${base(def)}?limit=200&sort=id`)
              expectAnswer(res, list)
              if (res.status !== 200) return
              const all: Array<Record<string, unknown>> = await world.db(def.plural).select('*')
              const visible = all.filter((r) => role === 'super_admin' || !def.owner || r[def.owner] === world.teams.A.id).map((r) => String(r.id))
              expect(res.body._meta.count).to.equal(visible.length)
              const ids = res.body[def.plural].map((r: ApiRow) => r.id)
              if (visible.length <= 200) expect(ids).to.have.members(visible)
              else expect(visible).to.include.members(ids)
              for (const { scope, row } of made) {
                if (hiddenFrom(role, scope)) expect(ids).to.not.include(row.id)
                else if (visible.length <= 200) expect(ids).to.include(row.id)
              }
              for (const r of res.body[def.plural]) for (const field of hiddenFields(def)) expect(r).to.not.have.property(field)
            })
          }

          // A resource with x-lookup is addressed by its lookup field too: the same rules apply to the row it names.
          const addressing = def.lookup ? ['id', def.lookup] : ['id']
          for (const [role, by] of ROLES.flatMap((r) => addressing.map((a) => [r, a] as const))) {
            const byText = by === 'id' ? '' : ` by ${by}`
            const at = (row: ApiRow) => `${base(def)}/${encodeURIComponent(String(row[by]))}`
            for (const scope of scopesOf(def)) {
              const read = expectedRead(def, role, scope)
              it(`${role}: GET${byText} of ${SCOPE_TEXT[scope]} answers ${describeExpected(read)}`, async () => {
                const row = await fixture(def.name, scope)
                const res = await as(role)('GET', at(row))
                expectAnswer(res, read)
                if (res.status === 200) expect(res.body).to.deep.equal({ [def.name]: row })
                if (res.status === 404) {
                  // Exactly what an id that does not exist answers: nothing tells the row exists.
                  const missing = await as(role)('GET', `${base(def)}/${MISSING}`)
                  expect(res.body).to.deep.equal(missing.body)
                }
              })

              for (const operation of ['update', 'delete'] as const) {
                const expected = expectedWrite(def, role, scope, operation)
                const verb = operation === 'update' ? 'PUT' : 'DELETE'
                it(`${role}: ${verb}${byText} of ${SCOPE_TEXT[scope]} with If-Match answers ${describeExpected(expected)}${expected.status < 300 ? '' : ' and changes nothing'}`, async () => {
                  const row = await fixture(def.name, scope)
                  const body = operation === 'update' ? updateBody(def.name) : undefined
                  const headers = { 'If-Match': `"${row.etag}"` }
                  const res = await as(role)(verb, at(row), { body, headers })
                  expectAnswer(res, expected)
                  const after = await stored(def.name, row.id)
                  if (expected.status === 204 && operation === 'delete') expect(after).to.equal(undefined)
                  else if (expected.status === 204) {
                    const visiblePatch = Object.fromEntries(Object.entries(body!).filter(([f]) => !hiddenFields(def).includes(f)))
                    expect(after).to.deep.include(visiblePatch)
                    expect(res.headers.etag).to.equal(`"${after!.etag}"`)
                    for (const field of hiddenFields(def))
                      expect(await verifyPassword((await world.db(def.plural).where({ id: row.id }).first())[field], body![field] as string)).to.equal(true)
                  } else expect(after).to.deep.equal(row)
                  if (expected.status === 404) {
                    const missing = await as(role)(verb, `${base(def)}/${MISSING}`, { body, headers: { 'If-Match': '*' } })
                    expect(res.body).to.deep.equal(missing.body)
                  }
                })
              }
            }

            for (const choice of ownerChoices(def)) {
              const expected = expectedCreate(def, role, choice)
              const owner = def.owner && def.owner !== 'id' ? def.owner : undefined
              const filled = expected.status === 201 && owner ? `, the row owned by ${choice === 'other' ? 'the named team' : "the caller's team"}` : ''
              it(`${role}: POST of ${CHOICE_TEXT[choice]} answers ${describeExpected(expected)}${filled}${expected.status === 201 ? '' : ' and adds nothing'}`, async () => {
                const pinned: Record<string, unknown> = def.name === 'user' ? { role: 'user' } : {}
                if (owner) pinned[owner] = choice === 'other' ? world.teams.B.id : world.teams.A.id
                const body = await rows.body(def.name, pinned)
                if (owner && choice === 'omitted') delete body[owner]
                const before = await world.db(def.plural).count({ n: '*' })
                const res = await as(role)('POST', base(def), { body })
                expectAnswer(res, expected)
                const afterCount = await world.db(def.plural).count({ n: '*' })
                if (expected.status !== 201) {
                  expect(afterCount).to.deep.equal(before)
                  return
                }
                const row = res.body[def.name]
                for (const field of hiddenFields(def)) expect(row).to.not.have.property(field)
                expect(await stored(def.name, row.id)).to.deep.equal(row)
                if (owner) expect(row[owner]).to.equal(choice === 'other' ? world.teams.B.id : world.teams.A.id)
              })
            }

            if (def.owner && def.owner !== 'id') {
              const owner = def.owner
              const moving: Expected = !roleMay(def, role, 'update')
                ? { status: 403, code: 'forbidden' }
                : role === 'super_admin'
                  ? { status: 204 }
                  : { status: 403, code: 'forbidden' }
              it(`${role}: PUT moving ${SCOPE_TEXT.own} to another team (${owner}) answers ${describeExpected(moving)}`, async () => {
                const row = await fixture(def.name, 'own')
                const res = await as(role)('PUT', `${base(def)}/${row.id}`, { body: { [owner]: world.teams.B.id }, headers: { 'If-Match': row.etag } })
                expectAnswer(res, moving)
                const after = await stored(def.name, row.id)
                if (moving.status === 204) expect(after![owner]).to.equal(world.teams.B.id)
                else expect(after).to.deep.equal(row)
              })
            }
          }

          for (const relation of def.fields.filter((f) => f.relation)) {
            const target = byName.get(relation.relation!.resource)!
            for (const role of ROLES) {
              if (!roleMay(def, role, 'read')) continue
              it(`${role}: embed=${relation.name} on the list and on a detail replaces the id by the ${target.name} row, or null where the caller may not see it`, async () => {
                const made = await Promise.all(scopesOf(def).map((scope) => fixture(def.name, scope)))
                const client = as(role)
                const expectedEmbed = async (relatedId: unknown) => {
                  if (relatedId == null) return null
                  const related = (await world.db(target.plural).where({ id: relatedId }).first()) as Record<string, unknown>
                  const seen = role === 'super_admin' || !target.owner || related[target.owner] === world.teams.A.id
                  return seen ? asAnswered(target, related as Row) : null
                }
                const page = await client('GET', `${base(def)}?embed=${relation.name}&limit=200&sort=id`)
                expect(page.status, page.text).to.equal(200)
                const raw = new Map(
                  (await world.db(def.plural).select('id', relation.name)).map((r: Record<string, unknown>) => [String(r.id), r[relation.name]]),
                )
                for (const row of page.body[def.plural]) expect(row[relation.name]).to.deep.equal(await expectedEmbed(raw.get(row.id)))
                for (const row of made) {
                  const one = await client('GET', `${base(def)}/${row.id}?embed=${relation.name}`)
                  if (hiddenFrom(role, def.owner ? (row[def.owner === 'id' ? 'id' : def.owner] === world.teams.A.id ? 'own' : 'other') : 'global')) {
                    expectAnswer(one, { status: 404, code: 'not_found' })
                    continue
                  }
                  expect(one.status, one.text).to.equal(200)
                  expect(one.body[def.name][relation.name]).to.deep.equal(await expectedEmbed(row[relation.name]))
                }
              })
            }
          }
        })
      }

      describe('nested routes', () => {
        for (const role of ROLES) {
          it(`${role}: GET /componenttypes/:id/components answers the components of that type only, counted; a missing type 404`, async () => {
            const type = await fixture('componenttype', 'global')
            const mine = [await fixture('component', 'global', { componenttype: type.id }), await fixture('component', 'global', { componenttype: type.id })]
            await fixture('component', 'global')
            const res = await as(role)('GET', `${world.engine.prefix}/componenttypes/${type.id}/components?sort=id`)
            expect(res.status, res.text).to.equal(200)
            expect(res.body._meta.count).to.equal(2)
            expect(res.body.components.map((c: ApiRow) => c.id)).to.have.members(mine.map((c) => c.id))
            expectAnswer(await as(role)('GET', `${world.engine.prefix}/componenttypes/${MISSING}/components`), { status: 404, code: 'not_found' })
          })
        }
      })

      describe('API keys of users and remotecis', () => {
        for (const holder of keyHolders) {
          for (const role of ROLES) {
            const member = () => memberOf(world, role)
            const targets: Array<Scope | 'self'> = ['own', 'other', ...((role === 'remoteci') === (holder.name === 'remoteci') ? (['self'] as const) : [])]
            for (const target of targets) {
              const targetText = target === 'self' ? 'the caller itself' : SCOPE_TEXT[target].replace('a row', `a ${holder.name}`)
              const holderRow = async (): Promise<ApiRow> => (target === 'self' ? asAnswered(holder, member().row) : fixture(holder.name, target))
              const expectedOf = (action: string): Expected => {
                if (hiddenFrom(role, target)) return { status: 404, code: 'not_found' }
                if (target === 'self' || roleMay(holder, role, action, 'update')) return { status: 0 }
                return { status: 403, code: 'forbidden' }
              }
              const keysOf = (id: string) => world.db('apikeys').where({ holder_kind: holder.name, holder_id: id }).select('id')
              const serverKey = async (id: string) =>
                (
                  (await world.engine.action(`create_${holder.name}_apikey`).call({ path: { id }, body: { name: 'made by the test' } })) as {
                    apikey: { id: string }
                  }
                ).apikey.id

              const create = expectedOf(`create_${holder.name}_apikey`)
              it(`${role}: POST /${holder.plural}/:id/apikeys on ${targetText} answers ${create.status ? describeExpected(create) : '201 with a token that identifies the holder'}`, async () => {
                const row = await holderRow()
                const before = (await keysOf(row.id)).length
                const res = await as(role)('POST', `${base(holder)}/${row.id}/apikeys`, { body: { name: 'ci' } })
                if (create.status) {
                  expectAnswer(res, create)
                  expect(await keysOf(row.id)).to.have.length(before)
                  return
                }
                expect(res.status, res.text).to.equal(201)
                expect(res.body.apikey.token).to.match(/^dci_/)
                expect(await keysOf(row.id)).to.have.length(before + 1)
                const who = await world.http.get(`${world.engine.prefix}/identity`).set('Authorization', `Bearer ${res.body.apikey.token}`).expect(200)
                expect(who.body.identity).to.include({ id: row.id, kind: holder.name })
              })

              const list = expectedOf(`list_${holder.name}_apikeys`)
              it(`${role}: GET /${holder.plural}/:id/apikeys on ${targetText} answers ${list.status ? describeExpected(list) : "200 with the holder's keys, without tokens"}`, async () => {
                const row = await holderRow()
                await serverKey(row.id)
                const res = await as(role)('GET', `${base(holder)}/${row.id}/apikeys`)
                if (list.status) return expectAnswer(res, list)
                expect(res.status, res.text).to.equal(200)
                expect(res.body.apikeys.map((k: { id: string }) => k.id)).to.have.members((await keysOf(row.id)).map((k: { id: string }) => k.id))
                for (const key of res.body.apikeys) expect(key).to.have.all.keys('id', 'name', 'created_at', 'last_used_at')
              })

              const remove = expectedOf(`delete_${holder.name}_apikey`)
              it(`${role}: DELETE /${holder.plural}/:id/apikeys/:keyid on ${targetText} answers ${remove.status ? `${describeExpected(remove)} and keeps the key` : '204 and the key is gone'}`, async () => {
                const row = await holderRow()
                const keyId = await serverKey(row.id)
                const res = await as(role)('DELETE', `${base(holder)}/${row.id}/apikeys/${keyId}`)
                const left = (await keysOf(row.id)).map((k: { id: string }) => k.id)
                if (remove.status) {
                  expectAnswer(res, remove)
                  expect(left).to.include(keyId)
                  return
                }
                expect(res.status, res.text).to.equal(204)
                expect(left).to.not.include(keyId)
              })

              if (hiddenFrom(role, target)) {
                it(`${role}: the API key routes of ${targetText} answer as those of a ${holder.name} that does not exist`, async () => {
                  const row = await holderRow()
                  const keyId = await serverKey(row.id)
                  for (const [method, suffix] of [
                    ['POST', '/apikeys'],
                    ['GET', '/apikeys'],
                    ['DELETE', `/apikeys/${keyId}`],
                  ]) {
                    const hidden = await as(role)(method, `${base(holder)}/${row.id}${suffix}`, { body: method === 'POST' ? {} : undefined })
                    const missing = await as(role)(method, `${base(holder)}/${MISSING}${suffix}`, { body: method === 'POST' ? {} : undefined })
                    expect(hidden.status).to.equal(404)
                    expect(hidden.body).to.deep.equal(missing.body)
                  }
                })
              }
            }
          }
        }
      })

      describe('users: self-service and the roles a team admin may give', () => {
        /** A user of team A made by server code with a known password, and its client. */
        const newUser = async (role = 'user'): Promise<{ row: Row; password: string; client: Client }> => {
          const password = `self-service-${Math.random().toString(36).slice(2)}`
          const row = await world.engine.service('user').create({ name: `self-${Math.random().toString(36).slice(2)}`, password, role, team: world.teams.A.id })
          const basic = `Basic ${Buffer.from(`${row.name}:${password}`).toString('base64')}`
          const identity = (await world.http.get(`${world.engine.prefix}/identity`).set('Authorization', basic).expect(200)).body.identity
          const member: Member = { kind: 'user', row, password, basic, bearer: basic, keyId: '', identity }
          return { row, password, client: clientOf(world, member, transport) }
        }
        const users = () => `${world.engine.prefix}/users`
        const storedUser = (id: string) => world.db('users').where({ id }).first()

        it('a team admin creates users of the team with the roles user and admin, never super_admin (403, nothing added)', async () => {
          const admin = as('admin')
          for (const role of ['user', 'admin']) {
            const res = await admin('POST', users(), { body: { name: `made-${role}-${transport}`, password: 'a long password', role } })
            expect(res.status, res.text).to.equal(201)
            expect(res.body.user).to.include({ role, team: world.teams.A.id })
          }
          const before = await world.db('users').count({ n: '*' })
          const res = await admin('POST', users(), { body: { name: `made-super-${transport}`, password: 'a long password', role: 'super_admin' } })
          expectAnswer(res, { status: 403, code: 'forbidden' })
          expect(await world.db('users').count({ n: '*' })).to.deep.equal(before)
        })

        it('a team admin may not promote a user of the team to super_admin, nor change or delete a super_admin of the team (403)', async () => {
          const { row } = await newUser()
          const promote = await as('admin')('PUT', `${users()}/${row.id}`, { body: { role: 'super_admin' }, headers: { 'If-Match': '*' } })
          expectAnswer(promote, { status: 403, code: 'forbidden' })
          expect((await storedUser(row.id)).role).to.equal('user')
          const boss = world.users.super.row
          const before = await storedUser(boss.id)
          expectAnswer(await as('admin')('PUT', `${users()}/${boss.id}`, { body: { email: 'taken@example.com' }, headers: { 'If-Match': '*' } }), {
            status: 403,
            code: 'forbidden',
          })
          expectAnswer(await as('admin')('DELETE', `${users()}/${boss.id}`, { headers: { 'If-Match': '*' } }), { status: 403, code: 'forbidden' })
          expect(await storedUser(boss.id)).to.deep.equal(before)
        })

        it('a super_admin makes and demotes super_admins of any team', async () => {
          const made = await as('super_admin')('POST', users(), {
            body: { name: `another-boss-${transport}`, password: 'a long password', role: 'super_admin', team: world.teams.B.id },
          })
          expect(made.status, made.text).to.equal(201)
          const res = await as('super_admin')('PUT', `${users()}/${made.body.user.id}`, {
            body: { role: 'user' },
            headers: { 'If-Match': made.body.user.etag },
          })
          expect(res.status, res.text).to.equal(204)
          expect((await storedUser(made.body.user.id)).role).to.equal('user')
        })

        it('a user changes their own password and email with If-Match (not without); the new password logs in, the old one no more', async () => {
          const { row, password, client } = await newUser()
          const fresh = `a new password ${transport}`
          const email = `${row.name}@example.org`
          const unconditional = await client('PUT', `${users()}/${row.id}`, { body: { password: fresh, email } })
          expectAnswer(unconditional, { status: 412, code: 'precondition_required' })
          const res = await client('PUT', `${users()}/${row.id}`, { body: { password: fresh, email }, headers: { 'If-Match': `"${row.etag}"` } })
          expect(res.status, res.text).to.equal(204)
          const after = await storedUser(row.id)
          expect(after.email).to.equal(email)
          expect(after.password).to.match(/^\$argon2id\$/)
          expect(await verifyPassword(after.password, fresh)).to.equal(true)
          const login = (secret: string) => `Basic ${Buffer.from(`${row.name}:${secret}`).toString('base64')}`
          await world.http.get(`${world.engine.prefix}/identity`).set('Authorization', login(fresh)).expect(200)
          expectError(await world.http.get(`${world.engine.prefix}/identity`).set('Authorization', login(password)), 401, undefined, 'unauthorized')
        })

        it('an admin and a super_admin change their own password too', async () => {
          for (const role of ['admin', 'super_admin']) {
            const { row, client } = await newUser(role)
            const res = await client('PUT', `${users()}/${row.id}`, { body: { password: 'another long password' }, headers: { 'If-Match': row.etag } })
            expect(res.status, res.text).to.equal(204)
          }
        })

        it('nobody changes their own role or team, super_admin included (403, nothing changed)', async () => {
          for (const [role, patch] of [
            ['user', { role: 'admin' }],
            ['user', { team: world.teams.B.id }],
            ['admin', { role: 'user' }],
            ['admin', { role: 'super_admin' }],
            ['admin', { team: world.teams.B.id }],
            ['super_admin', { role: 'admin' }],
            ['super_admin', { team: world.teams.B.id }],
            ['user', { password: 'a long password', role: 'admin' }],
          ] as Array<[string, Record<string, unknown>]>) {
            const { row, client } = await newUser(role)
            const res = await client('PUT', `${users()}/${row.id}`, { body: patch, headers: { 'If-Match': row.etag } })
            expectAnswer(res, { status: 403, code: 'forbidden' })
            expect(await storedUser(row.id)).to.deep.include({ role, team: world.teams.A.id, etag: row.etag })
          }
        })

        it('sending the role one already has is no change: with a new password it is self-service', async () => {
          const { row, client } = await newUser('user')
          const res = await client('PUT', `${users()}/${row.id}`, {
            body: { password: 'yet another password', role: 'user' },
            headers: { 'If-Match': row.etag },
          })
          expect(res.status, res.text).to.equal(204)
        })

        it('a user may not rename themselves (not self-service: 403); a team admin may', async () => {
          const plain = await newUser('user')
          expectAnswer(
            await plain.client('PUT', `${users()}/${plain.row.id}`, { body: { name: `${plain.row.name}-x` }, headers: { 'If-Match': plain.row.etag } }),
            {
              status: 403,
              code: 'forbidden',
            },
          )
          const admin = await newUser('admin')
          const res = await admin.client('PUT', `${users()}/${admin.row.id}`, {
            body: { name: `${admin.row.name}-x` },
            headers: { 'If-Match': admin.row.etag },
          })
          expect(res.status, res.text).to.equal(204)
        })

        it('a team admin may not create, list or revoke the API keys of a super_admin of the team (403): a key would make them super_admin', async () => {
          const boss = world.users.super
          const admin = as('admin')
          const keys = () => world.db('apikeys').where({ holder_kind: 'user', holder_id: boss.row.id }).orderBy('id')
          const before = await keys()
          expectAnswer(await admin('POST', `${users()}/${boss.row.id}/apikeys`, { body: { name: 'escalation' } }), { status: 403, code: 'forbidden' })
          expectAnswer(await admin('GET', `${users()}/${boss.row.id}/apikeys`), { status: 403, code: 'forbidden' })
          expectAnswer(await admin('DELETE', `${users()}/${boss.row.id}/apikeys/${boss.keyId}`), { status: 403, code: 'forbidden' })
          expect(await keys()).to.deep.equal(before)
          // The super_admin manages their own keys.
          const own = await as('super_admin')('POST', `${users()}/${boss.row.id}/apikeys`, { body: { name: 'own' } })
          expect(own.status, own.text).to.equal(201)
          expect((await as('super_admin')('DELETE', `${users()}/${boss.row.id}/apikeys/${own.body.apikey.id}`)).status).to.equal(204)
        })

        it("a user may not change another user's password, even in the same team (403)", async () => {
          const other = await newUser('user')
          const res = await as('user')('PUT', `${users()}/${other.row.id}`, {
            body: { password: 'hijacked password' },
            headers: { 'If-Match': other.row.etag },
          })
          expectAnswer(res, { status: 403, code: 'forbidden' })
          expect(await verifyPassword((await storedUser(other.row.id)).password, other.password)).to.equal(true)
        })
      })
    })
  }

  it('a service call without an identity is server code: no rule applies', async () => {
    const row = await fixture('remoteci', 'other')
    const res = await serviceClient(world.engine, {})('PUT', `${world.engine.prefix}/remotecis/${row.id}`, {
      body: { name: 'renamed by the server' },
      headers: { 'If-Match': '*' },
    })
    expect(res.status, res.text).to.equal(204)
  })
})

/**
 * A team-owned resource whose rows relate to another team-owned resource of any team (a job of team A
 * run on a remoteci of team B), which the server's schemas do not have yet: its embeds and a nested
 * route show what a caller may not see as null, or not at all. Its table comes from a migration
 * generated from its schema, on a database of its own.
 */
describe('access: embeds and nested routes across teams (a test resource: jobs of a team, run on remotecis of any team)', function () {
  this.timeout(180_000)
  const JOB = path.join(ROOT, 'test', 'fixtures', 'identity-schemas', 'job.json')
  const IDENTITY_SCHEMAS = path.join(ROOT, 'core', 'identity', 'schemas')
  const listRemoteciJobs = defineAction({
    name: 'list_remoteci_jobs',
    method: 'GET',
    path: '/remotecis/:id/jobs',
    summary: 'List the jobs run on one remoteci',
    description: 'A test route.',
    pathParams: { id: { resource: 'remoteci', description: 'Id of a remoteci.' } },
    list: 'job',
    async handler(ctx): Promise<Page> {
      await ctx.service('remoteci').get(ctx.path.id)
      const where = [ctx.query.where, `remoteci:${ctx.path.id}`].filter(Boolean).join(',')
      return ctx.service('job').find({ query: { ...ctx.query, where } })
    },
  })
  const jobs = definePlugin({
    name: 'jobs',
    dependencies: ['identity'],
    setup(api) {
      api.resource(JOB)
      api.action(listRemoteciJobs)
    },
  })
  let fresh: Awaited<ReturnType<typeof freshDatabase>>
  let world: World
  const dirs: string[] = []
  /** Jobs by name: `<team><remoteci's team>`: AA, AB (team A's job on remoteci B), BA, BB. */
  const made: Record<string, ApiRow> = {}

  before(async () => {
    fresh = await freshDatabase()
    const migrations = fs.mkdtempSync(path.join(os.tmpdir(), 'dci-migrations-'))
    dirs.push(migrations)
    for (const f of fs.readdirSync(MIGRATIONS)) fs.copyFileSync(path.join(MIGRATIONS, f), path.join(migrations, f))
    // The identity plugin's schemas too: a job relates to an audit.
    const identitySchemas = fs.readdirSync(IDENTITY_SCHEMAS).map((f) => path.join(IDENTITY_SCHEMAS, f))
    await generateMigration({ db: fresh.db, schemasDir: SCHEMAS, migrationsDir: migrations, resources: ['job'], schemaFiles: [...identitySchemas, JOB] })
    await migrateLatest(fresh.db, migrations)
    world = await makeWorld([jobs], fresh.db)
    const { A, B } = world.remotecis
    for (const [name, team, remoteci] of [
      ['AA', world.teams.A, A],
      ['AB', world.teams.A, B],
      ['BA', world.teams.B, A],
      ['BB', world.teams.B, B],
    ] as const) {
      made[name] = JSON.parse(JSON.stringify(await world.engine.service('job').create({ name, team: team.id, remoteci: remoteci.row.id })))
    }
  })
  after(async () => {
    await fresh?.drop()
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true })
  })

  // As answered: the stored row and its alias key team_id.
  const remoteciRow = async (id: string) => {
    const { [SEARCH_COLUMN]: _search, ...row } = JSON.parse(JSON.stringify(await world.db('remotecis').where({ id }).first()))
    return { ...row, team_id: row.team }
  }

  for (const transport of ['http', 'services'] as Transport[]) {
    for (const role of ROLES) {
      const everything = role === 'super_admin'
      it(`${role} (${transport}): ${everything ? 'every job, each remoteci embedded' : "the team's jobs only; a remoteci of another team embeds as null, on the list and on a detail"}`, async () => {
        const client = clientOf(world, memberOf(world, role), transport)
        const page = await client('GET', `${world.engine.prefix}/jobs?embed=remoteci,team&sort=name`)
        expect(page.status, page.text).to.equal(200)
        const names = everything ? ['AA', 'AB', 'BA', 'BB'] : ['AA', 'AB']
        expect(page.body.jobs.map((j: ApiRow) => j.name)).to.deep.equal(names)
        expect(page.body._meta.count).to.equal(names.length)
        for (const job of page.body.jobs) {
          const remoteci = made[job.name].remoteci
          const seen = everything || (await remoteciRow(remoteci)).team === world.teams.A.id
          expect(job.remoteci, `${job.name}'s remoteci`).to.deep.equal(seen ? await remoteciRow(remoteci) : null)
          expect(job.team.id).to.equal(made[job.name].team)
        }
        const detail = await client('GET', `${world.engine.prefix}/jobs/${made.AB.id}?embed=remoteci`)
        expect(detail.status, detail.text).to.equal(200)
        expect(detail.body.job.remoteci).to.deep.equal(everything ? await remoteciRow(made.AB.remoteci) : null)
        // Without embed the id stays: the caller's own row says where it runs.
        expect((await client('GET', `${world.engine.prefix}/jobs/${made.AB.id}`)).body.job.remoteci).to.equal(made.AB.remoteci)
        expectAnswer(
          await client('GET', `${world.engine.prefix}/jobs/${made.BA.id}?embed=remoteci`),
          everything ? { status: 200 } : { status: 404, code: 'not_found' },
        )
      })

      it(`${role} (${transport}): GET /remotecis/:id/jobs lists ${everything ? "every team's jobs of the remoteci" : "the team's jobs of its team's remoteci only, and answers 404 for a remoteci of another team"}`, async () => {
        const client = clientOf(world, memberOf(world, role), transport)
        const own = await client('GET', `${world.engine.prefix}/remotecis/${world.remotecis.A.row.id}/jobs?sort=name`)
        expect(own.status, own.text).to.equal(200)
        const names = everything ? ['AA', 'BA'] : ['AA']
        expect(own.body.jobs.map((j: ApiRow) => j.name)).to.deep.equal(names)
        expect(own.body._meta.count).to.equal(names.length)
        const other = await client('GET', `${world.engine.prefix}/remotecis/${world.remotecis.B.row.id}/jobs?sort=name`)
        if (everything) expect(other.body.jobs.map((j: ApiRow) => j.name)).to.deep.equal(['AB', 'BB'])
        else expectAnswer(other, { status: 404, code: 'not_found' })
      })
    }

    for (const role of ROLES) {
      const everything = role === 'super_admin'
      it(`${role} (${transport}): a query through the remoteci relation sees only the remotecis the role may see (${everything ? 'every team' : 'its team'}), over one hop and two`, async () => {
        const client = clientOf(world, memberOf(world, role), transport)
        const jobs = async (query: string) => {
          const page = await client('GET', `${world.engine.prefix}/jobs?sort=name&query=${encodeURIComponent(query)}`)
          expect(page.status, page.text).to.equal(200)
          return page.body.jobs.map((j: ApiRow) => j.name)
        }
        // Job AB is team A's, on remoteci B: a caller of team A sees the job, not the remoteci.
        expect(await jobs('eq(remoteci.name,lab-b)')).to.deep.equal(everything ? ['AB', 'BB'] : [])
        expect(await jobs('not(eq(remoteci.name,lab-b))')).to.deep.equal(everything ? ['AA', 'BA'] : ['AA', 'AB'])
        expect(await jobs('eq(remoteci.team.name,team-b)')).to.deep.equal(everything ? ['AB', 'BB'] : [])
        expect(await jobs('eq(remoteci.team.name,team-a)')).to.deep.equal(everything ? ['AA', 'BA'] : ['AA'])
        // Through a relation to a resource the role may not read at all: 403, as listing it would be.
        const audits = await client('GET', `${world.engine.prefix}/jobs?query=${encodeURIComponent('null(audit.action)')}`)
        if (everything) expect(audits.status, audits.text).to.equal(200)
        else expectAnswer(audits, { status: 403, code: 'forbidden' })
        if (!everything) expect(audits.body.message).to.equal(`The role ${role} may not read audits`)
      })

      it(`${role} (${transport}): fields keeps only the chosen keys after the access checks: ${everything ? 'every remoteci embedded' : 'a remoteci of another team still embeds as null'}`, async () => {
        const client = clientOf(world, memberOf(world, role), transport)
        const page = await client('GET', `${world.engine.prefix}/jobs?sort=name&embed=remoteci&fields=name,remoteci.name`)
        expect(page.status, page.text).to.equal(200)
        const byName = Object.fromEntries(page.body.jobs.map((j: ApiRow) => [j.name, j]))
        expect(Object.keys(byName.AB).sort()).to.deep.equal(['etag', 'id', 'name', 'remoteci'])
        expect(byName.AB.remoteci).to.deep.equal(everything ? { id: world.remotecis.B.row.id, name: 'lab-b', etag: byName.AB.remoteci.etag } : null)
        expect(byName.AA.remoteci).to.include({ name: 'lab-a' }).and.have.all.keys('id', 'name', 'etag')
      })
    }

    for (const role of ['admin', 'super_admin'] as const) {
      it(`${role} (${transport}): a job naming a remoteci of another team is ${role === 'admin' ? 'refused as one naming a missing remoteci (422, the same body): no existence leak' : 'created (a super_admin sees every team)'}; an update to it likewise`, async () => {
        const client = clientOf(world, memberOf(world, role), transport)
        const missing = await client('POST', `${world.engine.prefix}/jobs`, {
          body: { name: `gone-${role}`, remoteci: '00000000-0000-4000-8000-000000000000' },
        })
        expect(missing.status, missing.text).to.equal(422)
        const other = await client('POST', `${world.engine.prefix}/jobs`, { body: { name: `other-${role}`, remoteci: world.remotecis.B.row.id } })
        const update = await client('PUT', `${world.engine.prefix}/jobs/${made.AA.id}`, {
          body: { remoteci: world.remotecis.B.row.id },
          headers: { 'if-match': '*' },
        })
        if (role === 'admin') {
          expect(other.status, other.text).to.equal(422)
          expect(other.body).to.deep.equal(missing.body)
          expect(update.status, update.text).to.equal(422)
          expect(update.body).to.deep.equal(missing.body)
          expect(
            await world
              .db('jobs')
              .where({ name: `other-${role}` })
              .first(),
          ).to.equal(undefined)
          expect((await world.db('jobs').where({ id: made.AA.id }).first()).remoteci).to.equal(made.AA.remoteci)
        } else {
          expect(other.status, other.text).to.equal(201)
          expect(update.status, update.text).to.be.oneOf([200, 204])
          await world.engine.service('job').update(made.AA.id, { remoteci: made.AA.remoteci }, { ifMatch: '*' })
          await world.engine.service('job').remove(other.body.job.id, { ifMatch: '*' })
        }
      })
    }
  }
})

describe('access: q (full-text search) finds only the rows the caller may list', function () {
  this.timeout(180_000)
  let world: World
  before(async () => {
    world = await makeWorld()
  })
  after(() => resetIdentityTables(world.db))

  for (const transport of ['http', 'services'] as Transport[]) {
    for (const role of ROLES) {
      const everything = role === 'super_admin'
      it(`${role} (${transport}): q on remotecis and teams answers ${everything ? "every team's matching rows" : "its team's matching rows only"}, in the page and in every count`, async () => {
        const client = clientOf(world, memberOf(world, role), transport)
        const names = async (plural: string, query: string, count = 'exact') => {
          const res = await client('GET', `${world.engine.prefix}/${plural}?sort=name&count=${count}&${query}`)
          expect(res.status, res.text).to.equal(200)
          const found = res.body[plural].map((r: ApiRow) => r.name)
          if (count !== 'none') expect(res.body._meta.count).to.equal(found.length)
          return found
        }
        // The plain list is scoped as it always was; q never widens it.
        expect(await names('remotecis', '')).to.deep.equal(everything ? ['lab-a', 'lab-b'] : ['lab-a'])
        for (const count of ['exact', 'estimate', 'none']) {
          expect(await names('remotecis', 'q=lab', count)).to.deep.equal(everything ? ['lab-a', 'lab-b'] : ['lab-a'])
          expect(await names('teams', 'q=team', count)).to.deep.equal(everything ? ['team-a', 'team-b'] : ['team-a'])
        }
        expect(await names('remotecis', `q=${encodeURIComponent('lab-b')}`)).to.deep.equal(everything ? ['lab-b'] : [])
        expect(await names('remotecis', `q=${encodeURIComponent('b or a')}`)).to.deep.equal(everything ? ['lab-a', 'lab-b'] : ['lab-a'])
        expect(await names('teams', `q=${encodeURIComponent('team -a')}`)).to.deep.equal(everything ? ['team-b'] : [])
      })
    }
  }
})
