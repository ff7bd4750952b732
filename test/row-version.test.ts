import path from 'node:path'
import { expect } from 'chai'
import { ApiError, type Engine } from '../core'
import { expectError } from './helpers/errors'
import { engineTables, generatedApp, resetTables, ROOT, type GeneratedApp } from './support'

// A resource made for these cases, next to the project's own (test/fixtures/schemas/gadget.json): a
// relation with onDelete "set null", a composite unique key with an optional member (team, name), a
// case-insensitive unique key (code) and a plain one (label). Its table is made by `npm run
// db:generate`, as a new schema file's would be.
const GADGET = path.join(ROOT, 'test', 'fixtures', 'schemas', 'gadget.json')

describe('every change to a row changes its ETag; unique keys with null members and case-insensitive keys', () => {
  let app: GeneratedApp
  let engine: Engine
  let http: GeneratedApp['http']
  let db: GeneratedApp['db']

  before(async function () {
    this.timeout(180_000)
    app = await generatedApp([GADGET])
    ;({ engine, http, db } = app)
  })
  after(async () => app?.close())
  beforeEach(async () => resetTables(db, engineTables(engine)))

  const team = async (name: string) => (await http.post('/api/v1/teams').send({ name }).expect(201)).body.team
  const gadget = async (body: Record<string, unknown>) => (await http.post('/api/v1/gadgets').send(body).expect(201)).body.gadget

  it('the generated migration installs the row-version trigger and writes the unique keys it cannot write with knex in SQL', () => {
    expect(app.migration).to.include('CREATE OR REPLACE FUNCTION row_version() RETURNS trigger')
    expect(app.migration).to.include('CREATE TRIGGER row_version BEFORE UPDATE ON "gadgets" FOR EACH ROW EXECUTE FUNCTION row_version()')
    expect(app.migration).to.include('CREATE TRIGGER row_version BEFORE UPDATE ON "teams" FOR EACH ROW EXECUTE FUNCTION row_version()')
    expect(app.migration).to.include('ALTER TABLE "gadgets" ADD CONSTRAINT "gadgets_team_name_unique" UNIQUE NULLS NOT DISTINCT ("team", "name")')
    expect(app.migration).to.include('CREATE UNIQUE INDEX "gadgets_code_unique" ON "gadgets" (lower("code"))')
    expect(app.migration).to.include("t.unique(['label'])")
  })

  describe('changes the database makes on its own', () => {
    it('DELETE of a team nulls its gadgets (set null): each has a new ETag and updated_at; a stale If-Match is 412, If-None-Match with the old ETag is 200', async () => {
      const ops = await team('ops')
      const before = await gadget({ name: 'g1', team: ops.id })
      const other = await gadget({ name: 'g2' })
      await new Promise((resolve) => setTimeout(resolve, 5))
      await http.delete(`/api/v1/teams/${ops.id}`).set('If-Match', ops.etag).expect(204)

      const res = await http.get(`/api/v1/gadgets/${before.id}`).set('If-None-Match', `"${before.etag}"`).expect(200)
      const after = res.body.gadget
      expect(after.team).to.equal(null)
      expect(after.etag).to.match(/^[0-9a-f]{32}$/)
      expect(after.etag).to.not.equal(before.etag)
      expect(res.headers.etag).to.equal(`"${after.etag}"`)
      expect(Date.parse(after.updated_at)).to.be.greaterThan(Date.parse(before.updated_at))
      expectError(await http.put(`/api/v1/gadgets/${before.id}`).set('If-Match', before.etag).send({ name: 'stale' }), 412)
      await http.put(`/api/v1/gadgets/${before.id}`).set('If-Match', after.etag).send({ name: 'fresh' }).expect(204)
      // The row that did not reference the team is untouched.
      expect((await http.get(`/api/v1/gadgets/${other.id}`).expect(200)).body.gadget.etag).to.equal(other.etag)
    })

    it('the same through the services: a stale ifMatch is refused with 412 after the set null', async () => {
      const service = engine.service('gadget')
      const ops = await engine.service('team').create({ name: 'ops' })
      const before = await service.create({ name: 'g1', team: ops.id })
      await engine.service('team').remove(ops.id as string, { ifMatch: ops.etag as string })
      const after = await service.get(before.id as string)
      expect(after.team).to.equal(null)
      expect(after.etag).to.not.equal(before.etag)
      const err = await service.update(before.id as string, { name: 'stale' }, { ifMatch: before.etag as string }).catch((e: unknown) => e)
      expect(err).to.be.instanceOf(ApiError)
      expect((err as ApiError).status).to.equal(412)
    })

    it('an UPDATE by raw SQL gives a new ETag and updated_at; one that sets the etag itself keeps the one it set', async () => {
      const before = await gadget({ name: 'g1' })
      await db.raw(`UPDATE gadgets SET label = 'by hand' WHERE id = ?`, [before.id])
      const after = (await http.get(`/api/v1/gadgets/${before.id}`).set('If-None-Match', `"${before.etag}"`).expect(200)).body.gadget
      expect(after.label).to.equal('by hand')
      expect(after.etag).to.match(/^[0-9a-f]{32}$/)
      expect(after.etag).to.not.equal(before.etag)
      expect(Date.parse(after.updated_at)).to.be.at.least(Date.parse(before.updated_at))
      const chosen = 'c'.repeat(32)
      await db.raw(`UPDATE gadgets SET label = 'chosen', etag = ? WHERE id = ?`, [chosen, before.id])
      expect((await http.get(`/api/v1/gadgets/${before.id}`).expect(200)).body.gadget.etag).to.equal(chosen)
    })

    it("the engine's own PUT makes exactly one new ETag, the one it answers; a PUT that changes nothing keeps it", async () => {
      const before = await gadget({ name: 'g1' })
      const put = await http
        .put(`/api/v1/gadgets/${before.id}`)
        .set('If-Match', before.etag)
        .set('Prefer', 'return=representation')
        .send({ name: 'g2' })
        .expect(200)
      const answered = put.body.gadget.etag
      expect(put.headers.etag).to.equal(`"${answered}"`)
      expect((await http.get(`/api/v1/gadgets/${before.id}`).expect(200)).body.gadget.etag).to.equal(answered)
      await http.put(`/api/v1/gadgets/${before.id}`).set('If-Match', answered).send({}).expect(204)
      await http.put(`/api/v1/gadgets/${before.id}`).set('If-Match', answered).send({ name: 'g2' }).expect(204)
      expect((await http.get(`/api/v1/gadgets/${before.id}`).expect(200)).body.gadget.etag).to.not.equal(answered)
    })
  })

  describe('a composite unique key with an optional member (NULLS NOT DISTINCT)', () => {
    it('over HTTP: two rows with the same name and no team are a 409 naming the key; with different teams or names they are fine', async () => {
      const ops = await team('ops')
      await gadget({ name: 'g1' })
      const res = await http.post('/api/v1/gadgets').send({ name: 'g1' })
      const body = expectError(res, 409)
      expect(body.payload.fields).to.deep.equal(['team', 'name'])
      expect(body.message).to.include('team, name')
      await gadget({ name: 'g1', team: ops.id })
      await gadget({ name: 'g2' })
      expectError(await http.post('/api/v1/gadgets').send({ name: 'g1', team: ops.id }), 409)
    })

    it('through the services, and on update: setting a row to the name of another row with no team is a 409', async () => {
      const service = engine.service('gadget')
      await service.create({ name: 'g1' })
      const second = await service.create({ name: 'g2' })
      for (const attempt of [() => service.create({ name: 'g1' }), () => service.update(second.id as string, { name: 'g1' }, { ifMatch: '*' })]) {
        const err = await attempt().catch((e: unknown) => e)
        expect(err).to.be.instanceOf(ApiError)
        expect((err as ApiError).status).to.equal(409)
        expect((err as ApiError).payload).to.deep.equal({ fields: ['team', 'name'] })
      }
    })

    it('a team deleted under two gadgets of one name (set null) is refused: they would become duplicates', async () => {
      const [a, b] = [await team('a'), await team('b')]
      await gadget({ name: 'g', team: a.id })
      await gadget({ name: 'g' })
      const body = expectError(
        await http.delete(`/api/v1/teams/${a.id}`).set('If-Match', a.etag),
        409,
        'Deleting this team would make two gadgets equal on (team, name)',
      )
      expect(body.payload).to.deep.equal({ fields: ['team', 'name'], referenced_by: 'gadgets' })
      await gadget({ name: 'g', team: b.id })
    })
  })

  describe('case-insensitive unique keys (x-case-insensitive)', () => {
    it('over HTTP: RHEL after rhel is a 409 naming the field on the opted-in key; the plain key takes both', async () => {
      await gadget({ name: 'g1', code: 'rhel', label: 'rhel' })
      const body = expectError(await http.post('/api/v1/gadgets').send({ name: 'g2', code: 'RHEL' }), 409)
      expect(body.payload.fields).to.deep.equal(['code'])
      expect(body.message).to.include('code')
      const second = await gadget({ name: 'g3', code: 'fedora', label: 'RHEL' })
      expect(second.label).to.equal('RHEL')
      // The value is stored as sent: only the comparison ignores case.
      expect((await http.get(`/api/v1/gadgets?where=code:rhel`).expect(200)).body.gadgets.map((g: { code: string }) => g.code)).to.deep.equal(['rhel'])
      expectError(await http.put(`/api/v1/gadgets/${second.id}`).set('If-Match', second.etag).send({ code: 'Rhel' }), 409)
    })

    it('through the services: RHEL after rhel is a 409 on the opted-in key, allowed on the plain key', async () => {
      const service = engine.service('gadget')
      await service.create({ name: 'g1', code: 'rhel', label: 'rhel' })
      const err = await service.create({ name: 'g2', code: 'RHEL' }).catch((e: unknown) => e)
      expect(err).to.be.instanceOf(ApiError)
      expect((err as ApiError).status).to.equal(409)
      expect((err as ApiError).payload).to.deep.equal({ fields: ['code'] })
      expect((await service.create({ name: 'g3', label: 'RHEL' })).label).to.equal('RHEL')
    })
  })
})
