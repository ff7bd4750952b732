import { expect } from 'chai'
import type { Knex } from 'knex'
import { createEngine, definePlugin, type Engine, type HookContext, type HookSet } from '../core'
import { isTransaction } from '../core/service/service'
import { resourcePlugins } from '../resources'
import { resetTables, SCHEMAS, statementsOf, testDatabase } from './support'

// What a set of hooks needs of a write (`needs`), and rows inserted by the write's own statement
// (`ctx.insertWith`): the statements each write sends, what the hooks see, and that a companion row
// exists if and only if its write does. On both databases.

/** What each hook call saw: the method, whether it ran in a transaction, the row before. */
interface Seen {
  method: string
  transaction: boolean
  before: Record<string, unknown> | undefined
}

/** A plugin hooking components with `needs`, recording what its before hook saw. */
function probe(name: string, needs: HookSet['needs'] | undefined, seen: Seen[], also: (ctx: HookContext) => void = () => {}) {
  return definePlugin({
    name,
    setup: (api) =>
      api.hooks('component', {
        before: {
          all: (ctx) => {
            if (ctx.method === 'find' || ctx.method === 'get') return
            seen.push({ method: ctx.method, transaction: isTransaction(ctx.db), before: ctx.before })
            also(ctx)
          },
        },
        ...(needs ? { needs } : {}),
      }),
  })
}

async function rejection(promise: Promise<unknown>): Promise<Error & { status?: number; code?: string }> {
  try {
    await promise
  } catch (err) {
    return err as Error
  }
  throw new Error('expected the call to fail')
}

describe('hooks that say what they need of a write, and rows written with the write', () => {
  let db: Knex
  let typeId: string
  let teamId: string
  const engineWith = (...plugins: ReturnType<typeof probe>[]) => createEngine({ db, schemasDir: SCHEMAS, plugins: [...resourcePlugins, ...plugins] })

  before(async function () {
    this.timeout(60_000)
    db = await testDatabase()
  })
  beforeEach(async () => {
    await resetTables(db)
    const plain = await engineWith()
    typeId = (await plain.service('componenttype').create({ name: 'rhel' })).id
    teamId = (await plain.service('team').create({ name: 'lab' })).id
  })
  after(async () => {
    await resetTables(db)
  })

  it('a write whose hooks need neither a transaction nor the row runs as one statement, outside a transaction, without ctx.before', async () => {
    const seen: Seen[] = []
    const engine = await engineWith(probe('light', { transaction: false, before: false }, seen))
    const components = engine.service('component')
    const created = await statementsOf(db, () => components.create({ name: 'c1', componenttype: typeId }))
    const updated = await statementsOf(db, () => components.update(created.result.id, { name: 'c2' }, { ifMatch: '*' }))
    const removed = await statementsOf(db, () => components.remove(created.result.id, { ifMatch: '*' }))
    for (const { sql } of [created, updated, removed]) expect(sql).to.have.length(1)
    expect(created.sql[0]).to.match(/^insert into "components"/)
    expect(updated.sql[0]).to.match(/^update "components"/)
    expect(removed.sql[0]).to.match(/^delete from "components"/)
    expect(seen).to.deep.equal([
      { method: 'create', transaction: false, before: undefined },
      { method: 'update', transaction: false, before: undefined },
      { method: 'remove', transaction: false, before: undefined },
    ])
    expect(updated.result.name).to.equal('c2')
    expect((await components.find()).items).to.deep.equal([])
  })

  it('a set of hooks that says nothing keeps the transaction and the locked row before, whatever the other sets say', async () => {
    const seen: Seen[] = []
    const engine = await engineWith(probe('light', { transaction: false, before: false }, []), probe('plain', undefined, seen))
    const components = engine.service('component')
    const row = await components.create({ name: 'c1', componenttype: typeId })
    const updated = await statementsOf(db, () => components.update(row.id, { name: 'c2' }, { ifMatch: row.etag }))
    expect(updated.sql.map((s) => s.split(' ')[0].toLowerCase())).to.deep.equal(['begin;', 'select', 'update', 'commit;'])
    expect(updated.sql[1]).to.match(/for update$/)
    expect(seen.map((s) => [s.method, s.transaction])).to.deep.equal([
      ['create', true],
      ['update', true],
    ])
    expect(seen[1].before).to.include({ id: row.id, name: 'c1', etag: row.etag })
  })

  it('needs a transaction but not the row: the write in a transaction, no read before it', async () => {
    const seen: Seen[] = []
    const engine = await engineWith(probe('tx', { before: false }, seen))
    const components = engine.service('component')
    const row = await components.create({ name: 'c1', componenttype: typeId })
    const updated = await statementsOf(db, () => components.update(row.id, { name: 'c2' }, { ifMatch: '*' }))
    expect(updated.sql.map((s) => s.split(' ')[0].toLowerCase())).to.deep.equal(['begin;', 'update', 'commit;'])
    expect(seen[1]).to.deep.equal({ method: 'update', transaction: true, before: undefined })
  })

  it('needs.before as a function decides per call, from the params; the row before implies a transaction', async () => {
    const seen: Seen[] = []
    const engine = await engineWith(probe('chooser', { transaction: false, before: (ctx) => ctx.params.wantRow === true }, seen))
    const components = engine.service('component')
    const row = await components.create({ name: 'c1', componenttype: typeId })
    const without = await statementsOf(db, () => components.update(row.id, { name: 'c2' }, { ifMatch: '*' }))
    const withRow = await statementsOf(db, () => components.update(row.id, { name: 'c3' }, { ifMatch: '*', wantRow: true }))
    expect(without.sql).to.have.length(1)
    expect(withRow.sql.map((s) => s.split(' ')[0].toLowerCase())).to.deep.equal(['begin;', 'select', 'update', 'commit;'])
    expect(seen.slice(1).map((s) => [s.transaction, s.before?.name])).to.deep.equal([
      [false, undefined],
      [true, 'c2'],
    ])
  })

  it('without the row before, a missing row is still a 404 and a stale ETag a 412, and nothing is written', async () => {
    const engine = await engineWith(probe('light', { transaction: false, before: false }, []))
    const components = engine.service('component')
    const row = await components.create({ name: 'c1', componenttype: typeId })
    expect((await rejection(components.update(row.id, { name: 'x' }, { ifMatch: '0123456789abcdef0123456789abcdef' }))).status).to.equal(412)
    expect((await rejection(components.remove('00000000-0000-4000-8000-000000000000', { ifMatch: '*' }))).status).to.equal(404)
    expect((await components.get(row.id)).name).to.equal('c1')
  })

  describe('ctx.insertWith', () => {
    /**
     * Each write of a component also inserts a remoteci of team `lab`, named after a column of the
     * written row: its name (create), its new ETag (update), its id (remove); remoteci names are unique in a team.
     */
    const NAMED_AFTER = { create: 'name', update: 'etag', remove: 'id' } as Record<string, string>
    const companions = (needs: HookSet['needs'] | undefined) =>
      probe('companions', needs, [], (ctx) => ctx.insertWith('remoteci', { team: teamId, data: { from: ctx.method } }, { name: NAMED_AFTER[ctx.method] }))
    const remotecis = async (engine: Engine) =>
      (await engine.service('remoteci').find({ query: { sort: ['created_at'], limit: 50 } })).items.map((r) => [r.name, r.data])

    it('a companion row is inserted by the write statement itself: one statement for the write and its row', async () => {
      const engine = await engineWith(companions({ transaction: false, before: false }))
      const components = engine.service('component')
      const created = await statementsOf(db, () => components.create({ name: 'c1', componenttype: typeId }))
      expect(created.sql).to.have.length(1)
      expect(created.sql[0]).to.match(/^WITH "written" AS \(insert into "components".*"companion_0" AS \(INSERT INTO "remotecis"/)
      // The answer is the written component, as without a companion.
      expect(created.result).to.include({ name: 'c1', componenttype: typeId })
      expect(Object.keys(await components.get(created.result.id))).to.have.members(Object.keys(created.result))
      const updated = await statementsOf(db, () => components.update(created.result.id, { name: 'c2' }, { ifMatch: created.result.etag }))
      expect(updated.sql).to.have.length(1)
      expect(updated.result).to.include({ id: created.result.id, name: 'c2' })
      const removed = await statementsOf(db, () => components.remove(created.result.id, { ifMatch: updated.result.etag }))
      expect(removed.sql).to.have.length(1)
      // One row per write, with the written row's column copied, and its JSON field stored as JSON.
      expect(await remotecis(engine)).to.deep.equal([
        ['c1', { from: 'create' }],
        [updated.result.etag, { from: 'update' }],
        [created.result.id, { from: 'remove' }],
      ])
    })

    it('a write that fails (412, 404, a unique key) inserts no companion row', async () => {
      const engine = await engineWith(companions({ transaction: false, before: false }))
      const components = engine.service('component')
      const row = await components.create({ name: 'c1', componenttype: typeId })
      const failures = [
        components.update(row.id, { name: 'stale' }, { ifMatch: '0123456789abcdef0123456789abcdef' }),
        components.update('00000000-0000-4000-8000-000000000000', { name: 'missing' }, { ifMatch: '*' }),
        components.remove(row.id, { ifMatch: '0123456789abcdef0123456789abcdef' }),
        components.create({ name: 'orphan', componenttype: '00000000-0000-4000-8000-000000000000' }),
      ]
      expect((await Promise.all(failures.map(rejection))).map((e) => e.status)).to.deep.equal([412, 404, 412, 422])
      expect(await remotecis(engine)).to.deep.equal([['c1', { from: 'create' }]])
    })

    it('in a transaction (hooks that need one, or engine.transaction), the companion row commits and rolls back with its write', async () => {
      const engine = await engineWith(companions(undefined))
      const components = engine.service('component')
      const row = await components.create({ name: 'c1', componenttype: typeId })
      await rejection(
        engine.transaction(async (tx) => {
          await tx.service('component').update(row.id, { name: 'rolled back' }, { ifMatch: '*' })
          throw new Error('changed my mind')
        }),
      )
      expect((await components.get(row.id)).name).to.equal('c1')
      expect(await remotecis(engine)).to.deep.equal([['c1', { from: 'create' }]])
    })

    it('a PUT that changes nothing still answers the row and inserts its companion row, in one statement', async () => {
      const engine = await engineWith(companions({ transaction: false, before: false }))
      const components = engine.service('component')
      const row = await components.create({ name: 'c1', componenttype: typeId })
      const same = await statementsOf(db, () => components.update(row.id, {}, { ifMatch: row.etag }))
      expect(same.sql).to.have.length(1)
      expect(same.result.etag).to.equal(row.etag)
      expect(await remotecis(engine)).to.deep.equal([
        ['c1', { from: 'create' }],
        [row.etag, { from: 'update' }],
      ])
    })

    it('is refused outside the before hooks of a write, for an unknown resource or field', async () => {
      const calls: Array<(ctx: HookContext) => void> = [
        (ctx) => ctx.insertWith('nothing', {}),
        (ctx) => ctx.insertWith('remoteci', { colour: 'red' }),
        (ctx) => ctx.insertWith('remoteci', { team: teamId }, { name: 'colour' }),
      ]
      const messages: string[] = []
      for (const call of calls) {
        const engine = await engineWith(probe('bad', { transaction: false, before: false }, [], call))
        messages.push((await rejection(engine.service('component').create({ name: 'c', componenttype: typeId }))).message)
      }
      expect(messages[0]).to.include('nothing')
      expect(messages[1]).to.include("remoteci has no field 'colour'")
      expect(messages[2]).to.include("component has no field 'colour'")
      const late = definePlugin({
        name: 'late',
        setup: (api) => api.hooks('component', { after: { create: (ctx) => ctx.insertWith('remoteci', { team: teamId }, { name: 'name' }) } }),
      })
      const engine = await createEngine({ db, schemasDir: SCHEMAS, plugins: [...resourcePlugins, late] })
      expect((await rejection(engine.service('component').create({ name: 'late', componenttype: typeId }))).message).to.include('only before hooks')
      // The after hook's throw rolled the create back: its hooks needed a transaction.
      expect((await engine.service('component').find({ query: { where: { name: 'late' } } })).items).to.deep.equal([])
      expect(await remotecis(engine)).to.deep.equal([])
    })
  })

  it('a plugin naming something else than transaction or before in needs is refused at start-up', async () => {
    const odd = definePlugin({ name: 'odd', setup: (api) => api.hooks('component', { before: { all: () => {} }, needs: { lock: true } as HookSet['needs'] }) })
    const err = await rejection(createEngine({ db, schemasDir: SCHEMAS, plugins: [...resourcePlugins, odd] }))
    expect(err.message).to.include("plugin 'odd'").and.include("not 'lock'")
  })
})
