import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import type { Knex } from 'knex'
import supertest from 'supertest'
import { ApiError, createEngine, definePlugin, migrateLatest, type Engine, type HookContext, type Plugin } from '../core'
// The resources without the server's identity plugin: these tests call anonymously, over HTTP too.
import { resourcePlugins as plugins } from '../resources'
import { renderTypes } from '../tooling/type-generator'
import { generateMigration } from '../tooling/migration-generator'
import { auditTrail, type AuditEntry } from '../examples/plugins/audit-trail'
import { expectError } from './helpers/errors'
import { freshDatabase, MIGRATIONS, ROOT, SCHEMAS, resetTables, testDatabase } from './support'

const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'plugin-schemas')
const VAULT = path.join(FIXTURES, 'vault.json')
const VAULT_ENTRY = path.join(FIXTURES, 'vaultentry.json')

/** Expects `work` to reject with an ApiError of this status and code; returns it. */
async function rejects(work: Promise<unknown>, status: number, code: string): Promise<ApiError> {
  try {
    await work
  } catch (err) {
    expect(err).to.be.instanceOf(ApiError)
    expect((err as ApiError).status).to.equal(status)
    expect((err as ApiError).code).to.equal(code)
    return err as ApiError
  }
  throw new Error(`expected a ${status} ${code}`)
}

/** A plugin that logs every hook it runs as `<plugin>:<type>:<method>:<resource>`. */
function recorder(name: string, target: string, log: string[], dependencies?: string[]): Plugin {
  const hook = (label: string) => (ctx: HookContext) => void log.push(`${name}:${ctx.type}:${label}:${ctx.resource}`)
  return definePlugin({
    name,
    dependencies,
    setup(api) {
      log.push(`${name}:setup`)
      api.hooks(target, {
        before: { all: hook('all'), create: hook('create') },
        after: { all: hook('all'), create: hook('create') },
        error: { all: hook('all') },
      })
    },
  })
}

describe('services: one pipeline for every caller', function () {
  this.timeout(60_000)
  let db: Knex
  before(async () => {
    db = await testDatabase()
  })
  beforeEach(() => resetTables(db))

  describe('in-process calls run the rules HTTP calls run', () => {
    let engine: Engine
    before(async () => {
      engine = await createEngine({ db, schemasDir: SCHEMAS, plugins })
    })

    it('a create through the service runs the componenttype hook: " rhel " is stored trimmed and collides with "rhel"', async () => {
      const types = engine.service('componenttype')
      expect((await types.create({ name: ' rhel ' })).name).to.equal('rhel')
      const err = await rejects(types.create({ name: 'rhel' }), 409, 'conflict')
      expect(err.payload).to.deep.equal({ fields: ['name'] })
      await rejects(types.create({ name: '   ' }), 400, 'validation_failed')
      // The text rules too: no invisible characters, NFC.
      await rejects(engine.service('team').create({ name: 'ops\u200b' }), 400, 'validation_failed')
      expect((await engine.service('team').create({ name: 'cafe\u0301' })).name).to.equal('caf\u00e9')
    })

    it('a body that does not match the schema is refused in-process with the payload HTTP gives', async () => {
      const err = await rejects(engine.service('componenttype').create({ name: 3, extra: true }), 400, 'validation_failed')
      expect(err.payload).to.deep.equal({ errors: { name: 'must be string', extra: 'is not a field of this resource' } })
    })

    it('update and remove need ifMatch in-process too: missing 412 precondition_required, stale 412 precondition_failed', async () => {
      const types = engine.service('componenttype')
      const row = await types.create({ name: 'rhel' })
      await rejects(types.update(row.id, { name: 'x' }), 412, 'precondition_required')
      await rejects(types.update(row.id, { name: 'x' }, { ifMatch: '0123456789abcdef0123456789abcdef' }), 412, 'precondition_failed')
      const updated = await types.update(row.id, { name: 'fedora' }, { ifMatch: row.etag })
      expect(updated).to.include({ name: 'fedora' })
      await rejects(types.remove(row.id, { ifMatch: row.etag }), 412, 'precondition_failed')
      expect((await types.remove(row.id, { ifMatch: updated.etag })).id).to.equal(row.id)
      await rejects(types.get(row.id), 404, 'not_found')
    })

    it('find and get take structured queries and check them as the query string is checked', async () => {
      const types = engine.service('componenttype')
      for (const name of ['a', 'b', 'c']) await types.create({ name })
      const page = await types.find({ query: { sort: ['-name'], limit: 2 } })
      expect(page.items.map((r) => r.name)).to.deep.equal(['c', 'b'])
      expect(page.meta).to.deep.equal({ count: 3, next: page.meta.next })
      expect((await types.find({ query: { sort: ['-name'], limit: 2, after: page.meta.next } })).items.map((r) => r.name)).to.deep.equal(['a'])
      await rejects(types.find({ query: { sort: ['name'], limit: 2, after: page.meta.next } }), 400, 'invalid_parameter')
      expect((await types.find({ query: { where: { name: 'b' } } })).items).to.have.length(1)
      await rejects(types.find({ query: { where: { nope: 1 } } }), 400, 'invalid_parameter')
      await rejects(types.find({ query: { where: { name: 'a,b' } } }), 400, 'invalid_parameter')
    })

    it('trusted: true is the one door around the rules: no validation, no hooks', async () => {
      const row = await engine.service('componenttype').create({ name: ' spaced ' }, { trusted: true })
      expect(row.name).to.equal(' spaced ')
    })
  })

  describe('hooks', () => {
    it('run in a stated order: before on every resource then the resource own, after and error the other way round', async () => {
      const log: string[] = []
      // b depends on a but is listed first: a is installed (and its hooks registered) first.
      const b = recorder('b', 'componenttype', log, ['a'])
      const a = recorder('a', '*', log)
      const engine = await createEngine({ db, schemasDir: SCHEMAS, plugins: [b, a, ...plugins] })
      expect(log.splice(0)).to.deep.equal(['a:setup', 'b:setup'])
      await supertest(engine.app().callback()).post('/api/v1/componenttypes').send({ name: 'rhel' }).expect(201)
      expect(log.splice(0)).to.deep.equal([
        'a:before:all:componenttype',
        'a:before:create:componenttype',
        'b:before:all:componenttype',
        'b:before:create:componenttype',
        'b:after:all:componenttype',
        'b:after:create:componenttype',
        'a:after:all:componenttype',
        'a:after:create:componenttype',
      ])
      await rejects(engine.service('componenttype').create({ name: 'rhel' }), 409, 'conflict')
      expect(log.splice(0)).to.deep.equal([
        'a:before:all:componenttype',
        'a:before:create:componenttype',
        'b:before:all:componenttype',
        'b:before:create:componenttype',
        'b:error:all:componenttype',
        'a:error:all:componenttype',
      ])
      // a's hooks are on every resource, b's only on componenttype.
      await engine.service('team').find()
      expect(log.splice(0)).to.deep.equal(['a:before:all:team', 'a:after:all:team'])
    })

    it('tell the provider: http over HTTP, internal in-process; nested ctx.service calls are internal', async () => {
      const seen: string[] = []
      const probe = definePlugin({
        name: 'probe',
        setup(api) {
          api.hooks('*', { before: { all: (ctx) => void seen.push(`${ctx.resource}:${ctx.params.provider}`) } })
          api.hooks('component', { before: { create: async (ctx) => void (await ctx.service('componenttype').get(String(ctx.data!.componenttype))) } })
        },
      })
      const engine = await createEngine({ db, schemasDir: SCHEMAS, plugins: [probe, ...plugins] })
      const type = await engine.service('componenttype').create({ name: 'rhel' })
      await supertest(engine.app().callback()).post('/api/v1/components').send({ name: 'x', componenttype: type.id }).expect(201)
      expect(seen).to.deep.equal(['componenttype:internal', 'component:http', 'componenttype:internal'])
    })

    it('update and remove hooks see the row as it was before the write; after hooks see the result', async () => {
      const seen: Array<[string, unknown, unknown]> = []
      const watch = definePlugin({
        name: 'watch',
        setup(api) {
          api.hooks('team', {
            before: {
              update: (ctx) => void seen.push(['before update', ctx.before?.name, ctx.data?.name]),
              remove: (ctx) => void seen.push(['before remove', ctx.before?.name, ctx.id]),
            },
            after: { update: (ctx) => void seen.push(['after update', ctx.before?.name, (ctx.result as unknown as { name: string }).name]) },
          })
        },
      })
      const engine = await createEngine({ db, schemasDir: SCHEMAS, plugins: [watch] })
      const http = supertest(engine.app().callback())
      const team = (await http.post('/api/v1/teams').send({ name: 'old' }).expect(201)).body.team
      const res = await http.put(`/api/v1/teams/${team.id}`).set('If-Match', team.etag).send({ name: 'new' }).expect(204)
      await http.delete(`/api/v1/teams/${team.id}`).set('If-Match', res.headers.etag).expect(204)
      expect(seen).to.deep.equal([
        ['before update', 'old', 'new'],
        ['after update', 'old', 'new'],
        ['before remove', 'new', team.id],
      ])
      // A missing row is a 404 before any hook runs.
      seen.length = 0
      await http.put(`/api/v1/teams/${team.id}`).set('If-Match', '*').send({ name: 'x' }).expect(404)
      expect(seen).to.deep.equal([])
    })

    it('a write a hook makes through ctx.service joins the update: when the update fails, the hook write is rolled back', async () => {
      const stamp = definePlugin({
        name: 'stamp',
        setup(api) {
          // Each rename of a team records a componenttype named after the new name, in the same transaction.
          api.hooks('team', {
            before: { update: async (ctx) => void (await ctx.service('componenttype').create({ name: `renamed-to-${String(ctx.data!.name)}` })) },
          })
        },
      })
      const engine = await createEngine({ db, schemasDir: SCHEMAS, plugins: [stamp] })
      const teams = engine.service('team')
      await teams.create({ name: 'taken' })
      const team = await teams.create({ name: 'mine' })
      await rejects(teams.update(team.id, { name: 'taken' }, { ifMatch: team.etag }), 409, 'conflict')
      expect((await engine.service('componenttype').find()).items).to.deep.equal([])
      await teams.update(team.id, { name: 'free' }, { ifMatch: team.etag })
      expect((await engine.service('componenttype').find()).items.map((r) => r.name)).to.deep.equal(['renamed-to-free'])
    })

    it('a before hook may answer instead of the repository; an error hook may turn an error into a registered code, or recover', async () => {
      const rules = definePlugin({
        name: 'rules',
        setup(api) {
          api.errorCode('frozen', 403, 'The row is frozen.')
          api.hooks('team', {
            before: {
              get: (ctx) =>
                void (ctx.id === '00000000-0000-4000-8000-00000000cafe'
                  ? (ctx.result = { id: ctx.id, name: 'cached', etag: '0123456789abcdef0123456789abcdef' } as never)
                  : undefined),
              remove: () => {
                throw api.errors.create('frozen', 'Teams cannot be deleted')
              },
            },
            error: {
              create: (ctx) =>
                void ((ctx.error as ApiError).code === 'conflict' ? (ctx.error = api.errors.create('frozen', 'Team names are frozen')) : undefined),
              update: (ctx) => void ((ctx.error as ApiError).status === 404 ? (ctx.result = { recovered: true } as never) : undefined),
            },
          })
        },
      })
      const engine = await createEngine({ db, schemasDir: SCHEMAS, plugins: [rules] })
      const http = supertest(engine.app().callback())
      expect((await http.get('/api/v1/teams/00000000-0000-4000-8000-00000000cafe').expect(200)).body.team.name).to.equal('cached')
      const team = await engine.service('team').create({ name: 'ops' })
      expectError(await http.delete(`/api/v1/teams/${team.id}`).set('If-Match', '*'), 403, 'Teams cannot be deleted', 'frozen')
      expect((await engine.service('team').get(team.id)).name).to.equal('ops')
      expectError(await http.post('/api/v1/teams').send({ name: 'ops' }), 403, 'Team names are frozen', 'frozen')
      expect(await engine.service('team').update('00000000-0000-4000-8000-000000000001', { name: 'x' }, { ifMatch: '*' })).to.deep.equal({ recovered: true })
      const doc = engine.openapi()
      expect((doc.components.schemas.Forbidden as { properties: { code: { enum: string[] } } }).properties.code.enum).to.deep.equal(['forbidden', 'frozen'])
    })

    it('computed fields: an after hook adds them, outputFields documents them in the OpenAPI output schema', async () => {
      const computed = definePlugin({
        name: 'computed',
        setup(api) {
          api.outputFields('team', { display: { type: 'string', description: 'The name in capitals.' } })
          api.hooks('team', {
            after: {
              all: (ctx) => {
                const rows = ctx.method === 'find' ? (ctx.result as { items: Array<Record<string, unknown>> }).items : [ctx.result as Record<string, unknown>]
                for (const row of rows) row.display = String(row.name).toUpperCase()
              },
            },
          })
        },
      })
      const engine = await createEngine({ db, schemasDir: SCHEMAS, plugins: [computed] })
      const http = supertest(engine.app().callback())
      expect((await http.post('/api/v1/teams').send({ name: 'ops' }).expect(201)).body.team.display).to.equal('OPS')
      expect((await http.get('/api/v1/teams').expect(200)).body.teams[0].display).to.equal('OPS')
      const schema = engine.openapi().components.schemas.team as { properties: Record<string, unknown>; required: string[] }
      expect(schema.properties.display).to.deep.equal({ type: 'string', description: 'The name in capitals.', readOnly: true })
      expect(schema.required).to.include('display')
    })
  })

  describe('plugins', () => {
    const named = (name: string, dependencies?: string[]): Plugin => ({ name, dependencies, setup() {} })

    it('a missing dependency stops start-up naming both plugins', async () => {
      const err = await createEngine({ db, schemasDir: SCHEMAS, plugins: [named('audit', ['identity'])] }).catch((e: Error) => e)
      expect(String(err)).to.include("plugin 'audit' needs plugin 'identity', which is not registered")
    })

    it('a dependency cycle stops start-up naming the cycle', async () => {
      const err = await createEngine({ db, schemasDir: SCHEMAS, plugins: [named('a', ['b']), named('b', ['c']), named('c', ['a'])] }).catch((e: Error) => e)
      expect(String(err)).to.include('plugins depend on each other in a cycle: a -> b -> c -> a')
    })

    it('a plugin twice, hooks on an unknown resource, or one error code with two statuses stop start-up', async () => {
      expect(String(await createEngine({ db, schemasDir: SCHEMAS, plugins: [named('x'), named('x')] }).catch((e: Error) => e))).to.include(
        "plugin 'x' is registered twice",
      )
      const ghost = definePlugin({ name: 'ghost', setup: (api) => api.hooks('nothing', { before: { all: () => {} } }) })
      expect(String(await createEngine({ db, schemasDir: SCHEMAS, plugins: [ghost] }).catch((e: Error) => e))).to.include(
        "plugin 'ghost' hooks resource 'nothing'",
      )
      const clash = definePlugin({ name: 'clash', setup: (api) => api.errorCode('not_found', 410, 'Gone.') })
      expect(String(await createEngine({ db, schemasDir: SCHEMAS, plugins: [clash] }).catch((e: Error) => e))).to.include(
        "error code 'not_found' is already registered with status 404",
      )
    })
  })

  describe('actions', () => {
    let engine: Engine
    const bulk = definePlugin({
      name: 'bulk',
      setup(api) {
        api.action({
          name: 'create_componenttypes',
          method: 'POST',
          path: '/componenttypes/bulk',
          summary: 'Create several componenttypes at once, all or none',
          input: {
            type: 'object',
            properties: { names: { type: 'array', items: { type: 'string' }, minItems: 1 } },
            required: ['names'],
            additionalProperties: false,
          },
          output: { type: 'object', properties: { created: { type: 'integer' } }, required: ['created'] },
          status: 201,
          errors: ['conflict'],
          async handler(ctx) {
            for (const name of ctx.body.names as string[]) await ctx.service('componenttype').create({ name })
            return { created: (ctx.body.names as string[]).length }
          },
        })
      },
    })
    before(async () => {
      engine = await createEngine({ db, schemasDir: SCHEMAS, plugins: [...plugins, bulk] })
    })

    it('the components of a type, in-process: the same action HTTP serves, 404 for a missing or malformed type', async () => {
      const type = await engine.service('componenttype').create({ name: 'rhel' })
      await engine.service('component').create({ name: 'RHEL-9', componenttype: type.id })
      const page = (await engine.action('list_componenttype_components').call({ path: { id: type.id }, query: { sort: '-name' } })) as { items: unknown[] }
      expect(page.items).to.have.length(1)
      await rejects(engine.action('list_componenttype_components').call({ path: { id: '00000000-0000-4000-8000-000000000000' } }), 404, 'not_found')
      await rejects(engine.action('list_componenttype_components').call({ path: { id: 'nope' } }), 404, 'not_found')
    })

    it('an action checks its input, answers its status, and runs in one transaction: a failure halfway writes nothing', async () => {
      const http = supertest(engine.app().callback())
      expectError(await http.post('/api/v1/componenttypes/bulk').send({ names: [] }), 400, undefined, 'validation_failed')
      expect(
        (
          await http
            .post('/api/v1/componenttypes/bulk')
            .send({ names: ['a', 'b'] })
            .expect(201)
        ).body,
      ).to.deep.equal({ created: 2 })
      expectError(await http.post('/api/v1/componenttypes/bulk').send({ names: ['c', 'a'] }), 409, /already exists/, 'conflict')
      expect((await engine.service('componenttype').find({ query: { sort: 'name' } })).items.map((r) => r.name)).to.deep.equal(['a', 'b'])
    })

    it('an action is an OpenAPI operation with its body, answer and error statuses', () => {
      const op = (engine.openapi().paths['/componenttypes/bulk'] as Record<string, any>).post
      expect(op.operationId).to.equal('create_componenttypes')
      expect(op.requestBody.content['application/json'].schema.required).to.deep.equal(['names'])
      expect(Object.keys(op.responses)).to.have.members(['201', '400', '409', '413', '415', '5XX'])
    })
  })

  describe('transactions', () => {
    let engine: Engine
    before(async () => {
      engine = await createEngine({ db, schemasDir: SCHEMAS, plugins })
    })

    it('engine.transaction: service calls made in it commit together', async () => {
      await engine.transaction(async (tx) => {
        const type = await tx.service('componenttype').create({ name: 'rhel' })
        await engine.service('component').create({ name: 'RHEL-9', componenttype: type.id }, { transaction: tx })
      })
      expect((await engine.service('component').find()).meta.count).to.equal(1)
    })

    it('a throw rolls back every call made in the transaction, and the error reaches the caller', async () => {
      const err = await engine
        .transaction(async (tx) => {
          const type = await tx.service('componenttype').create({ name: 'rhel' })
          await tx.service('component').create({ name: 'RHEL-9', componenttype: type.id })
          // Inside, the rows are there.
          expect((await tx.service('component').find()).meta.count).to.equal(1)
          throw new Error('changed my mind')
        })
        .catch((e: Error) => e)
      expect(String(err)).to.include('changed my mind')
      expect((await engine.service('componenttype').find()).meta.count).to.equal(0)
      expect((await engine.service('component').find()).meta.count).to.equal(0)
    })
  })

  describe('the audit trail example plugin hooks every resource', () => {
    it('records each write of every resource with its provider, over HTTP and in-process', async () => {
      const entries: AuditEntry[] = []
      const engine = await createEngine({ db, schemasDir: SCHEMAS, plugins: [auditTrail((entry) => entries.push(entry)), ...plugins] })
      const http = supertest(engine.app().callback())
      const team = (await http.post('/api/v1/teams').send({ name: 'ops' }).expect(201)).body.team
      const type = await engine.service('componenttype').create({ name: 'rhel' })
      await http.delete(`/api/v1/teams/${team.id}`).set('If-Match', '*').expect(204)
      await http.post('/api/v1/teams').send({ name: 3 }).expect(400)
      expect(entries.map(({ resource, method, id, provider }) => ({ resource, method, id, provider }))).to.deep.equal([
        { resource: 'team', method: 'create', id: team.id, provider: 'http' },
        { resource: 'componenttype', method: 'create', id: type.id, provider: 'internal' },
        { resource: 'team', method: 'remove', id: team.id, provider: 'http' },
      ])
    })
  })
})

describe('write-only fields and resources a plugin brings', function () {
  this.timeout(120_000)
  let fresh: Awaited<ReturnType<typeof freshDatabase>>
  let engine: Engine
  let http: ReturnType<typeof supertest>
  const dirs: string[] = []
  const owner = definePlugin({
    name: 'vaults',
    setup(api) {
      api.keyword({ name: 'x-keeper', on: 'resource', check: (value) => (typeof value === 'string' ? undefined : 'must name a field') })
      api.resource(VAULT)
      api.resource(VAULT_ENTRY)
    },
  })

  before(async () => {
    fresh = await freshDatabase()
    await migrateLatest(fresh.db, MIGRATIONS)
    // The plugin's tables come from a migration generated from its schema files, as for any resource.
    const schemas = fs.mkdtempSync(path.join(os.tmpdir(), 'dci-schemas-'))
    const migrations = fs.mkdtempSync(path.join(os.tmpdir(), 'dci-migrations-'))
    dirs.push(schemas, migrations)
    for (const f of [...fs.readdirSync(SCHEMAS).map((f) => path.join(SCHEMAS, f)), VAULT, VAULT_ENTRY]) fs.copyFileSync(f, path.join(schemas, path.basename(f)))
    for (const f of fs.readdirSync(MIGRATIONS)) fs.copyFileSync(path.join(MIGRATIONS, f), path.join(migrations, f))
    await generateMigration({
      db: fresh.db,
      schemasDir: schemas,
      migrationsDir: migrations,
      resources: ['vault', 'vaultentry'],
      keywords: [{ name: 'x-keeper', on: 'resource' }],
    })
    await migrateLatest(fresh.db, migrations)
    engine = await createEngine({ db: fresh.db, schemasDir: SCHEMAS, plugins: [owner] })
    http = supertest(engine.app().callback())
  })
  after(async () => {
    await fresh?.drop()
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true })
  })

  it('a schema keyword is refused unless a plugin adds it, and its check runs', async () => {
    const bare = definePlugin({ name: 'bare', setup: (api) => api.resource(VAULT) })
    expect(String(await createEngine({ db: fresh.db, schemasDir: SCHEMAS, plugins: [bare], checkSchema: false }).catch((e: Error) => e))).to.include(
      "vault.json: unsupported top-level keyword 'x-keeper'",
    )
    const strict = definePlugin({
      name: 'strict',
      setup: (api) => {
        api.keyword({ name: 'x-keeper', on: 'resource', check: () => 'is never right' })
        api.resource(VAULT)
      },
    })
    expect(String(await createEngine({ db: fresh.db, schemasDir: SCHEMAS, plugins: [strict], checkSchema: false }).catch((e: Error) => e))).to.include(
      'vault.json: x-keeper is never right',
    )
    // The engine's own keywords (x-owner...) are not a plugin's to add.
    const clash = definePlugin({ name: 'clash', setup: (api) => api.keyword({ name: 'x-owner', on: 'resource' }) })
    expect(String(await createEngine({ db: fresh.db, schemasDir: SCHEMAS, plugins: [clash], checkSchema: false }).catch((e: Error) => e))).to.include(
      "plugin 'clash': schema keyword 'x-owner' is the engine's own",
    )
  })

  it('a write-only field is accepted on writes and never answered: POST, detail, list, PUT representation, embed', async () => {
    const created = await http.post('/api/v1/vaults').send({ name: 'prod', secret: 's3cret' }).expect(201)
    expect(created.body.vault).to.not.have.property('secret')
    const id = created.body.vault.id
    expect((await http.get(`/api/v1/vaults/${id}`).expect(200)).body.vault).to.not.have.property('secret')
    expect((await http.get('/api/v1/vaults').expect(200)).body.vaults[0]).to.not.have.property('secret')
    const put = await http.put(`/api/v1/vaults/${id}`).set('If-Match', '*').set('Prefer', 'return=representation').send({ secret: 'rotated' }).expect(200)
    expect(put.body.vault).to.not.have.property('secret')
    await http.post('/api/v1/vaultentries').send({ label: 'db', vault: id }).expect(201)
    const embedded = (await http.get('/api/v1/vaultentries?embed=vault').expect(200)).body.vaultentries[0].vault
    expect(embedded).to.include({ id, name: 'prod' }).and.not.have.property('secret')
    expect(JSON.stringify((await http.get(`/api/v1/vaultentries?embed=vault`)).body)).to.not.include('rotated')
    // Stored as sent: trusted code reads it.
    expect((await engine.service('vault').get(id, { trusted: true })).secret).to.equal('rotated')
  })

  it('a write-only field cannot be filtered or sorted on, which would leak it', async () => {
    expectError(await http.get('/api/v1/vaults?where=secret:s3cret'), 400, /unknown field 'secret'/, 'invalid_parameter')
    expectError(await http.get('/api/v1/vaults?sort=secret'), 400, /unknown field 'secret'/, 'invalid_parameter')
  })

  it('openapi.json documents it on create and update bodies only; the generated output type leaves it out', async () => {
    const schemas = engine.openapi().components.schemas as Record<string, { properties: Record<string, unknown> }>
    expect(schemas.vault.properties).to.not.have.property('secret')
    expect(schemas['vault.create'].properties.secret).to.deep.include({ type: 'string', writeOnly: true })
    expect(schemas['vault.update'].properties).to.have.property('secret')
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dci-schemas-'))
    dirs.push(dir)
    for (const f of [...fs.readdirSync(SCHEMAS).map((f) => path.join(SCHEMAS, f)), VAULT]) fs.copyFileSync(f, path.join(dir, path.basename(f)))
    const types = (await renderTypes(dir, { keywords: [{ name: 'x-keeper', on: 'resource' }] })).get('vault.ts')!
    const [output, input] = types.split('export interface VaultInput')
    expect(output).to.not.match(/secret\??:/)
    expect(input).to.match(/secret: string/)
  })
})
