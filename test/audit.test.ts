import { randomUUID } from 'node:crypto'
import { expect } from 'chai'
import { definePlugin, type HookContext, type Params, type ResourceDefinition } from '../core'
import type { Db } from '../core/data/repository'
import { RowFactory, type ApiRow } from './conformance/rows'
import { clientOf, makeWorld, resetIdentityTables, type Client, type Member, type Transport, type World } from './helpers/callers'
import { expectError } from './helpers/errors'
import { serviceAgent } from './helpers/service-agent'
import type { TestApp } from './support'

/** Requests whose id starts with this are rolled back by the test plugin, after the audit row was written. */
const ROLLBACK = 'rollback-'

/** What the rolling-back hooks saw inside the write's transaction, by request id: the audit rows there. */
const seenInTransaction = new Map<string, number>()

const requestIdOf = (params: Params): string | undefined => (params.request?.id ?? params.requestId) as string | undefined

/**
 * A plugin installed after the identity plugin: its after hooks (of every write and every action) run
 * after the audit's, in the same transaction. For a request id starting with `rollback-` they count the
 * audit rows of that request visible in the transaction, then fail the write.
 */
const rollbackPlugin = definePlugin({
  name: 'rollback-after-audit',
  dependencies: ['identity'],
  setup(api) {
    api.errorCode('rolled_back', 409, 'The test plugin failed the write after its audit row was written.')
    const failAsked = async (params: Params, db: Db) => {
      const id = requestIdOf(params)
      if (!id?.startsWith(ROLLBACK)) return
      const [{ n }] = await db('audits').where({ request_id: id }).count({ n: '*' })
      seenInTransaction.set(id, Number(n))
      throw api.errors.create('rolled_back', 'rolled back by the test plugin')
    }
    const hook = (ctx: HookContext) => failAsked(ctx.params, ctx.db)
    api.hooks('*', { after: { create: hook, update: hook, remove: hook } })
    api.actionHooks({ after: (ctx) => failAsked(ctx.params, ctx.db) })
  },
})

interface AuditRow {
  identity_id: string | null
  identity_kind: string
  identity_name: string | null
  action: string
  resource: string
  row_id: string | null
  row_etag: string | null
  request_id: string | null
  created_at: string
}

describe('audit trail: one row per successful write, in the write transaction', function () {
  this.timeout(180_000)
  let world: World
  let rows: RowFactory

  const prefix = () => world.engine.prefix
  const auditsOf = (requestId: string): Promise<AuditRow[]> => world.db('audits').where({ request_id: requestId }).orderBy('created_at').orderBy('id')
  const auditCount = async () => Number((await world.db('audits').count({ n: '*' }))[0].n)
  const writable = () => [...world.engine.resources.values()].map((r) => r.def).filter((d) => !d.readOnly)

  before(async () => {
    world = await makeWorld([rollbackPlugin])
    const app: TestApp = { engine: world.engine, db: world.db, http: serviceAgent(world.engine, { trusted: true }) as unknown as TestApp['http'] }
    rows = new RowFactory(app)
  })
  // Later test files share the database: leave them the identity tables empty, as found.
  after(() => resetIdentityTables(world.db))

  /** A body to create a row of `def` as the super_admin: generated from the schema, owned by team A. */
  const createBody = async (def: ResourceDefinition) => {
    const pinned: Record<string, unknown> = def.owner && def.owner !== 'id' ? { [def.owner]: world.teams.A.id } : {}
    if (def.name === 'user') pinned.role = 'user'
    return rows.body(def.name, pinned)
  }

  /** The audit row's who, as the member's identity says. */
  const who = (member: Member) => ({ identity_id: member.identity.id, identity_kind: member.identity.kind, identity_name: member.identity.name })

  for (const transport of ['http', 'services'] as Transport[]) {
    describe(transport === 'http' ? 'over HTTP' : 'through the services and actions', () => {
      const as = (member: Member): Client => clientOf(world, member, transport)

      it('create, update and delete of every writable resource each append one row: who, what, which row, its new ETag, the request id', async () => {
        const boss = world.users.super
        const start = Date.now()
        for (const def of writable()) {
          const base = `${prefix()}/${def.plural}`
          const created = await as(boss)('POST', base, { body: await createBody(def), headers: { 'X-Request-Id': `create-${def.name}-${transport}` } })
          expect(created.status, created.text).to.equal(201)
          const row = created.body[def.name] as ApiRow
          const patch = rows.updateBody(def.name)
          if (def.name === 'user') patch.role = 'user'
          const updated = await as(boss)('PUT', `${base}/${row.id}`, {
            body: patch,
            headers: { 'If-Match': row.etag, 'X-Request-Id': `update-${def.name}-${transport}` },
          })
          expect(updated.status, updated.text).to.equal(204)
          const removed = await as(boss)('DELETE', `${base}/${row.id}`, {
            headers: { 'If-Match': updated.headers.etag, 'X-Request-Id': `delete-${def.name}-${transport}` },
          })
          expect(removed.status, removed.text).to.equal(204)

          const expected = [
            ['create', created.headers.etag],
            ['update', updated.headers.etag],
            ['delete', null],
          ] as const
          for (const [action, etag] of expected) {
            const audits = await auditsOf(`${action}-${def.name}-${transport}`)
            expect(audits, `${action} of ${def.name}`).to.have.length(1)
            expect(audits[0]).to.deep.include({
              ...who(boss),
              action,
              resource: def.name,
              row_id: row.id,
              row_etag: etag === null ? null : etag.replace(/"/g, ''),
              request_id: `${action}-${def.name}-${transport}`,
            })
            // When: stamped by the database during the test (its clock is this machine's, give or take).
            expect(new Date(audits[0].created_at).getTime()).to.be.within(start - 60_000, Date.now() + 60_000)
          }
        }
      })

      it("an action that writes appends its row (the action's name, the caller, the request id); reads and GET actions append none", async () => {
        const lab = world.remotecis.A
        const before = await auditCount()
        for (const path of [`/remotecis/${lab.row.id}/apikeys`, '/identity', `/remotecis/${lab.row.id}`, '/remotecis']) {
          const res = await as(lab)('GET', `${prefix()}${path}`, { headers: { 'X-Request-Id': `read-${transport}` } })
          expect(res.status, res.text).to.equal(200)
        }
        expect(await auditCount()).to.equal(before)

        const made = await as(lab)('POST', `${prefix()}/remotecis/${lab.row.id}/apikeys`, {
          body: { name: 'rotation' },
          headers: { 'X-Request-Id': `key-${transport}` },
        })
        expect(made.status, made.text).to.equal(201)
        const gone = await as(lab)('DELETE', `${prefix()}/remotecis/${lab.row.id}/apikeys/${made.body.apikey.id}`, {
          headers: { 'X-Request-Id': `unkey-${transport}` },
        })
        expect(gone.status, gone.text).to.equal(204)
        expect(await auditsOf(`key-${transport}`)).to.have.length(1)
        expect((await auditsOf(`key-${transport}`))[0]).to.deep.include({
          ...who(lab),
          action: 'create_remoteci_apikey',
          resource: 'remoteci',
          row_id: lab.row.id,
        })
        expect((await auditsOf(`unkey-${transport}`))[0]).to.deep.include({
          ...who(lab),
          action: 'delete_remoteci_apikey',
          resource: 'remoteci',
          row_id: lab.row.id,
        })
        expect(await auditCount()).to.equal(before + 2)
      })

      it('a write that fails (403, 404, 412, 400, 409) appends nothing', async () => {
        const user = world.users.userA
        const admin = world.users.adminA
        const own = world.remotecis.A.row
        const other = world.remotecis.B.row
        const before = await auditCount()
        const attempts: Array<[Member, string, string, Record<string, unknown> | undefined, Record<string, string>, number]> = [
          [user, 'PUT', `/remotecis/${own.id}`, { name: 'nope' }, { 'If-Match': '*' }, 403],
          [admin, 'PUT', `/remotecis/${other.id}`, { name: 'nope' }, { 'If-Match': '*' }, 404],
          [admin, 'DELETE', `/remotecis/${other.id}`, undefined, { 'If-Match': '*' }, 404],
          [admin, 'PUT', `/remotecis/${own.id}`, { name: 'nope' }, {}, 412],
          [admin, 'PUT', `/remotecis/${own.id}`, { name: 'nope' }, { 'If-Match': '"0123456789abcdef0123456789abcdef"' }, 412],
          [admin, 'POST', '/remotecis', { name: 12 }, {}, 400],
          [admin, 'POST', '/remotecis', { name: own.name }, {}, 409],
          [admin, 'POST', '/componenttypes', { name: 'not for admins' }, {}, 403],
          [user, 'POST', `/users/${admin.row.id}/apikeys`, {}, {}, 403],
          [admin, 'POST', `/users/${world.users.adminB.row.id}/apikeys`, {}, {}, 404],
        ]
        for (const [member, method, path, body, headers, status] of attempts) {
          const res = await as(member)(method, `${prefix()}${path}`, { body, headers })
          expect(res.status, `${method} ${path}: ${res.text}`).to.equal(status)
        }
        expect(await auditCount()).to.equal(before)
      })

      it('a write whose transaction rolls back after its audit row was written leaves no audit row, and no change', async () => {
        const admin = world.users.adminA
        const base = `${prefix()}/remotecis`
        const tag = `${ROLLBACK}${transport}-${randomUUID()}`
        const fail = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
          const id = `${tag}-${method}-${path.split('/').length}`
          const res = await as(admin)(method, path, { body, headers: { ...headers, 'X-Request-Id': id } })
          expectError(res, 409, 'rolled back by the test plugin', 'rolled_back')
          // Inside the transaction the audit row was there; after the rollback it is not.
          expect(seenInTransaction.get(id), `audit rows seen in the transaction of ${method} ${path}`).to.equal(1)
          expect(await auditsOf(id)).to.deep.equal([])
        }
        const before = await world.db('remotecis').orderBy('id')
        await fail('POST', base, { name: `never-${transport}` })
        const own = world.remotecis.A.row
        await fail('PUT', `${base}/${own.id}`, { name: `never-${transport}` }, { 'If-Match': '*' })
        await fail('DELETE', `${base}/${own.id}`, undefined, { 'If-Match': '*' })
        expect(await world.db('remotecis').orderBy('id')).to.deep.equal(before)
        const keys = await world.db('apikeys').orderBy('id')
        await fail('POST', `${base}/${own.id}/apikeys`, { name: 'never' })
        expect(await world.db('apikeys').orderBy('id')).to.deep.equal(keys)
      })
    })
  }

  it('writes of a transaction that throws (engine.transaction) leave no audit row', async () => {
    const before = await auditCount()
    const identity = { ...world.users.super.identity }
    const failure = await world.engine
      .transaction(async (tx) => {
        const type = await tx.service('componenttype').create({ name: 'never committed' }, { identity, requestId: 'aborted-transaction' })
        await tx.service('componenttype').update(type.id, { name: 'never renamed' }, { identity, ifMatch: type.etag, requestId: 'aborted-transaction' })
        expect(await tx.knex('audits').where({ request_id: 'aborted-transaction' })).to.have.length(2)
        throw new Error('abort')
      })
      .catch((err: Error) => err)
    expect(String(failure)).to.include('abort')
    expect(await auditCount()).to.equal(before)
    expect(await world.db('componenttypes').where({ name: 'never committed' })).to.deep.equal([])
  })

  // Declared after the transports' suites, so that it runs after their writes: mocha runs a suite's
  // own tests before its child suites.
  describe('the audits resource', () => {
    it('server code (no identity) is audited as the server', async () => {
      const row = await world.engine.service('componenttype').create({ name: 'made by the server' }, { requestId: 'server-write' })
      const [audit] = await auditsOf('server-write')
      expect(audit).to.deep.include({
        identity_id: null,
        identity_kind: 'server',
        identity_name: null,
        action: 'create',
        resource: 'componenttype',
        row_id: row.id,
        row_etag: row.etag,
      })
    })

    it('GET /audits takes the usual list parameters (super_admin); POST, PUT and DELETE on it answer 405, for every role', async () => {
      const boss = clientOf(world, world.users.super, 'http')
      const res = await boss('GET', `${prefix()}/audits?where=resource:remoteci,action:delete&sort=-created_at&limit=2`)
      expect(res.status, res.text).to.equal(200)
      const expected = await world.db('audits').where({ resource: 'remoteci', action: 'delete' }).count({ n: '*' })
      expect(Number(expected[0].n)).to.be.at.least(2)
      expect(res.body._meta.count).to.equal(Number(expected[0].n))
      expect(res.body.audits).to.have.length(2)
      for (const audit of res.body.audits) expect(audit).to.include({ resource: 'remoteci', action: 'delete' })
      const [some] = await world.db('audits').limit(1)
      for (const member of [world.users.super, world.users.adminA, world.users.userA, world.remotecis.A]) {
        const client = clientOf(world, member, 'http')
        for (const [method, path] of [
          ['POST', '/audits'],
          ['PUT', `/audits/${some.id}`],
          ['DELETE', `/audits/${some.id}`],
        ]) {
          const answer = await client(method, `${prefix()}${path}`, {
            body: method === 'DELETE' ? undefined : { action: 'forged', identity_kind: 'user' },
            headers: { 'If-Match': '*' },
          })
          expectError(answer, 405, undefined, 'method_not_allowed')
        }
      }
      expect(await world.db('audits').where({ action: 'forged' })).to.deep.equal([])
    })
  })
})
