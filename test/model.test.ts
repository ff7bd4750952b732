import { expect } from 'chai'
import { engineTables, resetTables, testApp, type TestApp } from './support'

describe('the objection model of a resource, for plugin queries', () => {
  let app: TestApp
  before(async () => {
    app = await testApp()
  })
  beforeEach(async () => {
    await resetTables(app.db, engineTables(app.engine))
  })

  it('reads the rows the API wrote, JSON fields parsed', async () => {
    const team = (await app.http.post('/api/v1/teams').send({ name: 'lab' }).expect(201)).body.team
    const sent = { name: 'ci-1', team: team.id, data: { arch: ['x86_64', 'aarch64'], gpu: false } }
    const created = (await app.http.post('/api/v1/remotecis').send(sent).expect(201)).body.remoteci
    const rows = await app.engine.resource('remoteci').model.query(app.db).where('team', team.id)
    expect(rows).to.have.length(1)
    expect(rows[0]).to.include({ id: created.id, name: 'ci-1', etag: created.etag })
    expect((rows[0] as unknown as { data: unknown }).data).to.deep.equal(sent.data)
  })

  it('writes rows the API then serves, JSON fields stringified', async () => {
    const team = (await app.http.post('/api/v1/teams').send({ name: 'lab' }).expect(201)).body.team
    const inserted = await app.engine
      .resource('remoteci')
      .model.query(app.db)
      .insert({ name: 'ci-2', team: team.id, data: { tags: ['a', 'b'] }, etag: '0123456789abcdef0123456789abcdef' } as never)
      .returning('*')
    const res = await app.http.get(`/api/v1/remotecis/${(inserted as unknown as { id: string }).id}`).expect(200)
    expect(res.body.remoteci).to.include({ name: 'ci-2', team: team.id })
    expect(res.body.remoteci.data).to.deep.equal({ tags: ['a', 'b'] })
    expect(res.headers.etag).to.equal('"0123456789abcdef0123456789abcdef"')
  })
})
