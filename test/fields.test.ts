import { expect } from 'chai'
import { ADMIN_AUTH, createComponent, createType, resetTables, serverApp, testApp, type TestApp } from './support'

describe('fields: answering only some keys of each row', () => {
  let app: TestApp
  let type: Record<string, any>
  let component: Record<string, any>
  before(async function () {
    this.timeout(120_000)
    app = await testApp()
    await resetTables(app.db)
    type = await createType(app, 'rhel')
    component = await createComponent(app, 'RHEL-9.4', type.id)
    await createComponent(app, 'RHEL-8.10', type.id)
  })

  it('a list answers each row with the chosen keys, id and etag always, in the order rows have them', async () => {
    const res = await app.http.get('/api/v1/components?fields=name,created_at&sort=name').expect(200)
    expect(res.body.components.map((c: object) => Object.keys(c))).to.deep.equal([
      ['id', 'name', 'created_at', 'etag'],
      ['id', 'name', 'created_at', 'etag'],
    ])
    expect(res.body.components.map((c: { name: string }) => c.name)).to.deep.equal(['RHEL-8.10', 'RHEL-9.4'])
    expect(res.body._meta).to.deep.equal({ count: 2 })
  })

  it('a key of an embedded relation follows it with a dot; the embedded row keeps its id and etag', async () => {
    const res = await app.http.get('/api/v1/components?fields=name,componenttype.name&embed=componenttype&sort=name').expect(200)
    expect(res.body.components[0]).to.deep.equal({
      id: res.body.components[0].id,
      name: 'RHEL-8.10',
      etag: res.body.components[0].etag,
      componenttype: { id: type.id, name: 'rhel', etag: type.etag },
    })
    // The relation alone keeps the whole embedded row.
    const whole = await app.http.get('/api/v1/components?fields=componenttype&embed=componenttype&limit=1').expect(200)
    expect(whole.body.components[0].componenttype).to.deep.equal(type)
  })

  it('a detail takes fields too; its ETag is still the row version', async () => {
    const res = await app.http.get(`/api/v1/components/${component.id}?fields=name,componenttype_id`).expect(200)
    expect(res.body).to.deep.equal({ component: { id: component.id, name: 'RHEL-9.4', etag: component.etag, componenttype_id: type.id } })
    expect(res.headers.etag).to.equal(`"${component.etag}"`)
  })

  it('the list ETag digests the answer: another selection is another ETag, and If-None-Match still answers 304', async () => {
    const names = await app.http.get('/api/v1/components?fields=name').expect(200)
    const all = await app.http.get('/api/v1/components').expect(200)
    expect(names.headers.etag).to.not.equal(all.headers.etag)
    await app.http.get('/api/v1/components?fields=name').set('If-None-Match', names.headers.etag).expect(304)
  })

  it('in process: find and get take fields as text or as a list', async () => {
    const page = await app.engine.service('component').find({ query: { fields: ['name'], sort: 'name' } })
    expect(page.items.map((r) => Object.keys(r))).to.deep.equal([
      ['id', 'name', 'etag'],
      ['id', 'name', 'etag'],
    ])
    const row = await app.engine.service('component').get(component.id, { query: { fields: 'sha' } })
    expect(row).to.deep.equal({ id: component.id, sha: null, etag: component.etag })
  })

  it('an unknown key, a dotted key without its embed, or a dotted key the relation lacks: 400 saying what is valid', async () => {
    const unknown = await app.http.get('/api/v1/components?fields=name,nope').expect(400)
    expect(unknown.body.code).to.equal('invalid_parameter')
    expect(unknown.body.message).to.equal("Invalid 'fields' parameter: unknown field 'nope' of components")
    expect(unknown.body.payload.fields).to.include.members(['id', 'etag', 'name', 'componenttype', 'componenttype_id', 'data', 'created_at'])
    const noEmbed = await app.http.get('/api/v1/components?fields=componenttype.name').expect(400)
    expect(noEmbed.body.message).to.equal("Invalid 'fields' parameter: 'componenttype.name' selects inside an embedded componenttype: add embed=componenttype")
    const inner = await app.http.get('/api/v1/components?fields=componenttype.nope&embed=componenttype').expect(400)
    expect(inner.body.payload.fields).to.deep.equal(['id', 'created_at', 'updated_at', 'etag', 'name'])
    const notRelation = await app.http.get(`/api/v1/components/${component.id}?fields=name.x`).expect(400)
    expect(notRelation.body.message).to.equal("Invalid 'fields' parameter: 'name' is not a relation of components")
    await app.http.get('/api/v1/components?fields=name&fields=sha').expect(400)
  })

  it('a write-only field is not a key to select', async () => {
    const server = await serverApp()
    const res = await server.http.get('/api/v1/users?fields=name,password').set('Authorization', ADMIN_AUTH).expect(400)
    expect(res.body.payload.fields).to.include('name').and.not.include('password')
    const ok = await server.http.get('/api/v1/users?fields=name').set('Authorization', ADMIN_AUTH).expect(200)
    expect(ok.body.users.map((u: object) => Object.keys(u))).to.deep.equal([['id', 'name', 'etag']])
  })
})
