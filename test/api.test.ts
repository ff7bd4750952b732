import { expect } from 'chai'
import { expectError } from './helpers/errors'
import { createComponent, createType, resetTables, testApp, type TestApp } from './support'

const HEX32 = /^"[0-9a-f]{32}"$/
const MISSING = '00000000-0000-4000-8000-000000000000'

// The generic contract (ETags, 304, 404/409/412/422, paging, where, embed) is the conformance suite's,
// run for every resource over HTTP and through the services; these are the cases it does not cover.
describe('componenttypes and components over HTTP', () => {
  let app: TestApp
  before(async () => {
    app = await testApp()
  })
  beforeEach(async () => {
    await resetTables(app.db)
  })

  describe('the index', () => {
    for (const path of ['/api/v1', '/api/v1/']) {
      it(`GET ${path} answers the status, every resource with its URL and the OpenAPI link`, async () => {
        const res = await app.http.get(path).expect(200)
        expect(res.body).to.deep.equal({
          _status: 'OK',
          message: 'Resource API.',
          resources: {
            components: '/api/v1/components',
            componenttypes: '/api/v1/componenttypes',
            remotecis: '/api/v1/remotecis',
            teams: '/api/v1/teams',
          },
          links: { openapi: '/api/v1/openapi.json', docs: '/api/v1/docs/' },
        })
      })
    }

    it('POST /api/v1 answers 405 allowing GET', async () => {
      const res = await app.http.post('/api/v1').send({})
      expectError(res, 405, 'Method POST is not allowed here')
      expect(res.headers.allow).to.match(/GET/)
    })
  })

  describe('create and read', () => {
    it('POST creates a componenttype: 201, singular key, engine fields, quoted ETag, Location', async () => {
      const res = await app.http.post('/api/v1/componenttypes').send({ name: 'kikoolol' }).expect(201)
      const ct = res.body.componenttype
      expect(ct).to.include({ name: 'kikoolol' })
      expect(ct.id).to.match(/^[0-9a-f-]{36}$/)
      expect(ct.etag).to.match(/^[0-9a-f]{32}$/)
      expect(new Date(ct.created_at).toISOString()).to.equal(ct.created_at)
      expect(ct.updated_at).to.equal(ct.created_at)
      expect(res.headers.etag).to.equal(`"${ct.etag}"`)
      expect(res.headers.location).to.equal(`/api/v1/componenttypes/${ct.id}`)
    })

    it('POST creates a component that carries the id of its componenttype', async () => {
      const ct = await createType(app, 'rhel')
      const res = await app.http.post('/api/v1/components').send({ name: 'RHEL-9.4', componenttype: ct.id }).expect(201)
      expect(res.body.component).to.include({ name: 'RHEL-9.4', componenttype: ct.id })
      expect(res.headers.etag).to.match(HEX32)
    })

    it('the componenttype plugin stores names trimmed, so " rhel " collides with "rhel"', async () => {
      const ct = await createType(app, '  rhel ')
      expect(ct.name).to.equal('rhel')
      const res = await app.http.post('/api/v1/componenttypes').send({ name: 'rhel  ' }).expect(409)
      expectError(res.body, 409)
    })

    it('a blank componenttype name is refused with 400 naming the field', async () => {
      const res = await app.http.post('/api/v1/componenttypes').send({ name: '   ' }).expect(400)
      expectError(res.body, 400)
      expect(res.body.payload.errors).to.have.property('name')
    })

    it('every response of a GET, list included, carries an ETag', async () => {
      await createType(app, 'a')
      const res = await app.http.get('/api/v1/componenttypes').expect(200)
      expect(res.headers.etag).to.match(HEX32)
    })
  })

  describe('update with ETags', () => {
    it('If-Match compares strongly (RFC 9110): a weak tag of the current ETag answers 412 and changes nothing', async () => {
      const ct = await createType(app, 'a')
      for (const header of [`W/"${ct.etag}"`, `w/"${ct.etag}"`, `W/"nope", W/"${ct.etag}"`]) {
        expectError(await app.http.put(`/api/v1/componenttypes/${ct.id}`).set('If-Match', header).send({ name: 'b' }), 412, undefined, 'precondition_failed')
        expectError(await app.http.delete(`/api/v1/componenttypes/${ct.id}`).set('If-Match', header), 412, undefined, 'precondition_failed')
      }
      expect((await app.http.get(`/api/v1/componenttypes/${ct.id}`).expect(200)).body.componenttype).to.deep.equal(ct)
    })

    it('HEAD answers as GET: 304 when If-None-Match matches (a weak tag too), 200 with the ETag otherwise', async () => {
      const ct = await createType(app, 'a')
      await app.http.head(`/api/v1/componenttypes/${ct.id}`).set('If-None-Match', `"${ct.etag}"`).expect(304)
      await app.http.head(`/api/v1/componenttypes/${ct.id}`).set('If-None-Match', `W/"${ct.etag}"`).expect(304)
      await app.http.get(`/api/v1/componenttypes/${ct.id}`).set('If-None-Match', `W/"${ct.etag}"`).expect(304)
      const res = await app.http.head(`/api/v1/componenttypes/${ct.id}`).set('If-None-Match', '"other"').expect(200)
      expect(res.headers.etag).to.equal(`"${ct.etag}"`)
      const list = await app.http.get('/api/v1/componenttypes').expect(200)
      await app.http.head('/api/v1/componenttypes').set('If-None-Match', list.headers.etag).expect(304)
    })

    it('If-None-Match: * on a PUT or DELETE of an existing row answers 412 (a PUT never creates), of a missing one 404', async () => {
      const ct = await createType(app, 'a')
      const url = `/api/v1/componenttypes/${ct.id}`
      expectError(await app.http.put(url).set('If-Match', '*').set('If-None-Match', '*').send({ name: 'b' }), 412, undefined, 'precondition_failed')
      expectError(await app.http.delete(url).set('If-Match', '*').set('If-None-Match', '*'), 412, undefined, 'precondition_failed')
      const missing = '/api/v1/componenttypes/00000000-0000-4000-8000-000000000000'
      expectError(await app.http.put(missing).set('If-Match', '*').set('If-None-Match', '*').send({ name: 'b' }), 404, undefined, 'not_found')
      expect((await app.http.get(url).expect(200)).body.componenttype).to.deep.equal(ct)
    })

    it('If-None-Match with ETags on a write: 412 when the current one is listed, applied otherwise', async () => {
      const ct = await createType(app, 'a')
      const url = `/api/v1/componenttypes/${ct.id}`
      expectError(await app.http.put(url).set('If-Match', '*').set('If-None-Match', `"${ct.etag}"`).send({ name: 'b' }), 412, undefined, 'precondition_failed')
      const res = await app.http.put(url).set('If-Match', '*').set('If-None-Match', '"0123456789abcdef0123456789abcdef"').send({ name: 'b' }).expect(204)
      expect(res.headers.etag).to.not.equal(`"${ct.etag}"`)
    })

    it('PUT {} changes nothing: the ETag and updated_at stay; the If-Match check still applies', async () => {
      const ct = await createType(app, 'a')
      const url = `/api/v1/componenttypes/${ct.id}`
      const res = await app.http.put(url).set('If-Match', ct.etag).set('Prefer', 'return=representation').send({}).expect(200)
      expect(res.body.componenttype).to.deep.equal(ct)
      expect(res.headers.etag).to.equal(`"${ct.etag}"`)
      expectError(await app.http.put(url).set('If-Match', '"0123456789abcdef0123456789abcdef"').send({}), 412, undefined, 'precondition_failed')
      expectError(await app.http.put('/api/v1/componenttypes/00000000-0000-4000-8000-000000000000').set('If-Match', '*').send({}), 404, undefined, 'not_found')
    })

    it('If-Match is accepted quoted, unquoted, in a list, and as *; the header name is case-insensitive', async () => {
      const ct = await createType(app, 'a')
      let etag: string = ct.etag
      const forms = [(e: string) => `"${e}"`, (e: string) => e, (e: string) => `"nope", "${e}"`, () => '*']
      for (const [i, form] of forms.entries()) {
        const res = await app.http
          .put(`/api/v1/componenttypes/${ct.id}`)
          .set(i % 2 ? 'if-match' : 'IF-MATCH', form(etag))
          .send({ name: `n${i}` })
          .expect(204)
        etag = res.headers.etag.slice(1, -1)
      }
      const after = await app.http.get(`/api/v1/componenttypes/${ct.id}`)
      expect(after.body.componenttype.name).to.equal(`n${forms.length - 1}`)
    })

    it('PUT keeps the fields that are not sent', async () => {
      const ct = await createType(app, 'a')
      const c = await createComponent(app, 'c', ct.id)
      await app.http.put(`/api/v1/components/${c.id}`).set('If-Match', c.etag).send({ name: 'renamed' }).expect(204)
      const after = await app.http.get(`/api/v1/components/${c.id}`)
      expect(after.body.component).to.include({ name: 'renamed', componenttype: ct.id })
    })

    it('20 concurrent PUTs with the same ETag: exactly one 204, nineteen 412', async () => {
      const ct = await createType(app, 'race')
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          app.http
            .put(`/api/v1/componenttypes/${ct.id}`)
            .set('If-Match', ct.etag)
            .send({ name: `race-${i}` }),
        ),
      )
      const statuses = results.map((r) => r.status).sort()
      expect(statuses.filter((s) => s === 204)).to.have.length(1)
      expect(statuses.filter((s) => s === 412)).to.have.length(19)
      const winner = results.find((r) => r.status === 204)!
      const after = await app.http.get(`/api/v1/componenttypes/${ct.id}`)
      expect(after.headers.etag).to.equal(winner.headers.etag)
    })
  })

  describe('listing', () => {
    it('lists under the plural key with _meta.count, oldest first by default', async () => {
      const a = await createType(app, 'a')
      const b = await createType(app, 'b')
      const res = await app.http.get('/api/v1/componenttypes').expect(200)
      expect(res.body.componenttypes.map((x: any) => x.id)).to.deep.equal([a.id, b.id])
      expect(res.body._meta).to.deep.equal({ count: 2 })
      // The body is built around the rows serialised once: byte for byte what JSON.stringify writes.
      expect(res.text).to.equal(JSON.stringify(res.body))
    })

    it('limit defaults to 20 while _meta.count counts every matching row', async () => {
      for (let i = 0; i < 25; i++) await createType(app, `t${String(i).padStart(2, '0')}`)
      const res = await app.http.get('/api/v1/componenttypes').expect(200)
      expect(res.body.componenttypes).to.have.length(20)
      expect(res.body._meta.count).to.equal(25)
    })

    it('sort=field1,-field2 sorts by the first field then descending by the second', async () => {
      const t1 = await createType(app, 't1')
      const t2 = await createType(app, 't2')
      await createComponent(app, 'x', t1.id)
      await createComponent(app, 'y', t1.id)
      await createComponent(app, 'x', t2.id)
      const res = await app.http.get('/api/v1/components?sort=name,-created_at').expect(200)
      const got = res.body.components.map((c: any) => [c.name, c.componenttype])
      expect(got).to.deep.equal([
        ['x', t2.id],
        ['x', t1.id],
        ['y', t1.id],
      ])
    })

    it('sort=-name sorts descending', async () => {
      for (const name of ['b', 'c', 'a']) await createType(app, name)
      const res = await app.http.get('/api/v1/componenttypes?sort=-name').expect(200)
      expect(res.body.componenttypes.map((x: any) => x.name)).to.deep.equal(['c', 'b', 'a'])
    })

    it('rows that tie on the sort field come in a stable order (by id)', async () => {
      const ct = await createType(app, 't')
      for (let i = 0; i < 6; i++) await createComponent(app, 'same', ct.id)
      const res = await app.http.get('/api/v1/components?sort=name').expect(200)
      const ids = res.body.components.map((c: any) => c.id)
      expect(ids).to.deep.equal([...ids].sort())
    })

    it('where splits on the first colon only, so values may contain colons', async () => {
      await createType(app, 'a:b:c')
      const res = await app.http.get('/api/v1/componenttypes?where=name:a:b:c').expect(200)
      expect(res.body.componenttypes.map((x: any) => x.name)).to.deep.equal(['a:b:c'])
    })

    it('where on id and on created_at parses the value by its type', async () => {
      const a = await createType(app, 'a')
      await createType(app, 'b')
      const byId = await app.http.get(`/api/v1/componenttypes?where=id:${a.id}`).expect(200)
      expect(byId.body.componenttypes.map((x: any) => x.id)).to.deep.equal([a.id])
      const byDate = await app.http.get(`/api/v1/componenttypes?where=created_at:${a.created_at}`).expect(200)
      expect(byDate.body.componenttypes.map((x: any) => x.id)).to.include(a.id)
    })

    it('GET /componenttypes/:id/components lists the components of one type', async () => {
      const t1 = await createType(app, 't1')
      const t2 = await createType(app, 't2')
      await createComponent(app, 'b', t1.id)
      await createComponent(app, 'a', t1.id)
      await createComponent(app, 'z', t2.id)
      const res = await app.http.get(`/api/v1/componenttypes/${t1.id}/components?sort=name`).expect(200)
      expect(res.body.components.map((c: any) => c.name)).to.deep.equal(['a', 'b'])
      expect(res.body._meta.count).to.equal(2)
      const missing = await app.http.get(`/api/v1/componenttypes/${MISSING}/components`).expect(404)
      expectError(missing.body, 404)
    })
  })
})
