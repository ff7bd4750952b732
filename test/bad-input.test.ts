import { expect } from 'chai'
import type { Response } from 'supertest'
import { gzipSync } from 'node:zlib'
import { LIST_PARAMETERS } from '../core/query/list-query'
import { expectError } from './helpers/errors'
import { createComponent, createType, engineTables, resetTables, testApp, type TestApp } from './support'

const MISSING = '00000000-0000-4000-8000-000000000000'
const TYPE_FIELDS = ['id', 'created_at', 'updated_at', 'name']
// What an error body must never show: SQL statements, or stack frames.
/** Every row of every table the engine serves, to prove that a refused write changed nothing. */
async function snapshot(app: TestApp): Promise<Record<string, unknown[]>> {
  const rows: Record<string, unknown[]> = {}
  for (const table of engineTables(app.engine)) rows[table] = await app.db(table).select().orderBy('id')
  return rows
}

/** Runs a request and asserts the database holds exactly the same rows afterwards. */
async function unchanged(app: TestApp, request: () => PromiseLike<Response>): Promise<Response> {
  const before = await snapshot(app)
  const res = await request()
  expect(await snapshot(app)).to.deep.equal(before)
  return res
}

/** A JSON object nested `depth` levels deep (the body itself is level 1). */
function nested(depth: number): string {
  return `{"name":${'{"a":'.repeat(depth - 2)}{}${'}'.repeat(depth - 2)}}`
}

describe('bad input: 4xx answers with a JSON error body, and nothing changes', () => {
  let app: TestApp
  let type: Record<string, any>
  let component: Record<string, any>
  const TYPES = '/api/v1/componenttypes'
  const COMPONENTS = '/api/v1/components'
  const typeUrl = () => `${TYPES}/${type.id}`

  before(async function () {
    this.timeout(120_000) // PGlite takes long to start on a loaded machine
    app = await testApp()
  })
  beforeEach(async () => {
    await resetTables(app.db)
    type = await createType(app, 'rhel')
    component = await createComponent(app, 'RHEL-9.4', type.id)
  })

  describe('request bodies that are not a JSON object', () => {
    it('POST with invalid JSON answers 400 and creates nothing', async () => {
      const res = await unchanged(app, () => app.http.post(TYPES).set('Content-Type', 'application/json').send('{"name": '))
      expectError(res, 400, 'Request body is not valid JSON')
    })

    it('PUT with invalid JSON answers 400 and changes nothing', async () => {
      const res = await unchanged(app, () => app.http.put(typeUrl()).set('If-Match', type.etag).set('Content-Type', 'application/json').send("{'name': 'x'}"))
      expectError(res, 400, 'Request body is not valid JSON')
    })

    for (const [what, text] of [
      ['an array', '[{"name":"x"}]'],
      ['a string', '"x"'],
      ['a number', '42'],
      ['null', 'null'],
      ['true', 'true'],
    ]) {
      it(`POST with a body that is ${what} answers 400 "must be a JSON object" and creates nothing`, async () => {
        const res = await unchanged(app, () => app.http.post(TYPES).set('Content-Type', 'application/json').send(text))
        expectError(res, 400, 'Request body must be a JSON object')
      })
    }

    it('PUT with an array body answers 400 and changes nothing', async () => {
      const res = await unchanged(app, () => app.http.put(typeUrl()).set('If-Match', type.etag).set('Content-Type', 'application/json').send('[]'))
      expectError(res, 400, 'Request body must be a JSON object')
    })

    it('a body nested 33 levels deep answers 400 naming the limit of 32', async () => {
      const res = await unchanged(app, () => app.http.post(TYPES).set('Content-Type', 'application/json').send(nested(33)))
      expect(expectError(res, 400, 'Request body is nested deeper than 32 levels').payload).to.deep.equal({ max_depth: 32 })
    })

    it('a body nested exactly 32 levels deep passes the depth check (and fails the schema)', async () => {
      const res = await unchanged(app, () => app.http.post(TYPES).set('Content-Type', 'application/json').send(nested(32)))
      expect(expectError(res, 400, 'Request body does not match the schema').payload.errors).to.have.keys('name')
    })

    it('a body of 200,000 nested arrays answers 400 (too deep), not a crash', async () => {
      const text = `{"name":${'['.repeat(200_000)}${']'.repeat(200_000)}}`
      const res = await unchanged(app, () => app.http.post(TYPES).set('Content-Type', 'application/json').send(text))
      expectError(res, 400, 'Request body is nested deeper than 32 levels')
    })
  })

  describe('bodies that break the schema', () => {
    it('POST with an empty object lists every missing required field', async () => {
      const res = await unchanged(app, () => app.http.post(COMPONENTS).send({}))
      const body = expectError(res, 400, 'Request body does not match the schema')
      expect(body.payload.errors).to.deep.equal({ name: 'is required', componenttype: 'is required' })
    })

    it('POST with no body at all answers 400 naming the required field', async () => {
      const res = await unchanged(app, () => app.http.post(TYPES))
      expect(expectError(res, 400).payload.errors).to.deep.equal({ name: 'is required' })
    })

    it('POST with two bad fields lists an error for each of them', async () => {
      const res = await unchanged(app, () => app.http.post(COMPONENTS).send({ name: 5, componenttype: 'not-a-uuid' }))
      const { errors } = expectError(res, 400, 'Request body does not match the schema').payload
      expect(errors).to.have.all.keys('name', 'componenttype')
      expect(errors.name).to.equal('must be string')
      expect(errors.componenttype).to.match(/format "uuid"/)
    })

    it('an unknown field answers 400 naming that field and only it', async () => {
      const res = await unchanged(app, () => app.http.post(TYPES).send({ name: 'x', foo: 1 }))
      expect(expectError(res, 400).payload.errors).to.deep.equal({ foo: 'is not a field of this resource' })
    })

    it('a body of 5,000 unknown fields lists the first 100 and counts the others, so the error stays small', async () => {
      const body: Record<string, number> = { name: 1 }
      for (let i = 0; i < 5_000; i++) body[`unknown_${i}`] = i
      const res = await unchanged(app, () => app.http.post(TYPES).send(body))
      const { payload } = expectError(res, 400, 'Request body does not match the schema')
      expect(Object.keys(payload.errors)).to.have.length(100)
      expect(payload.errors.name).to.equal('must be string')
      expect(payload.more_errors).to.equal(4_901)
      expect(res.text.length).to.be.below(JSON.stringify(body).length)
    })

    it('an unknown field on PUT answers 400 naming it and changes nothing', async () => {
      const res = await unchanged(app, () => app.http.put(typeUrl()).set('If-Match', type.etag).send({ foo: 'bar' }))
      expect(expectError(res, 400).payload.errors).to.deep.equal({ foo: 'is not a field of this resource' })
    })

    for (const key of ['constructor', 'toString', 'hasOwnProperty', 'valueOf']) {
      it(`an unknown field named like an Object method ("${key}") is named in the error`, async () => {
        const res = await unchanged(app, () => app.http.post(TYPES).send({ name: 'x', [key]: 1 }))
        expect(expectError(res, 400).payload.errors).to.deep.equal({ [key]: 'is not a field of this resource' })
      })
    }

    it('a "__proto__" key answers 400, never 500, and creates nothing', async () => {
      const res = await unchanged(app, () => app.http.post(TYPES).set('Content-Type', 'application/json').send('{"name":"x","__proto__":{"admin":true}}'))
      expectError(res, 400, "Request body may not contain a '__proto__' key")
    })

    it('a "constructor": {"prototype": ...} key answers 400 naming the unknown field', async () => {
      const res = await unchanged(app, () =>
        app.http.post(TYPES).set('Content-Type', 'application/json').send('{"name":"x","constructor":{"prototype":{"admin":true}}}'),
      )
      expect(expectError(res, 400).payload.errors).to.deep.equal({ constructor: 'is not a field of this resource' })
    })

    for (const field of ['id', 'etag', 'created_at', 'updated_at']) {
      it(`POST with the engine-owned field "${field}" is refused as read-only`, async () => {
        const value = field === 'id' ? MISSING : field === 'etag' ? '0123456789abcdef0123456789abcdef' : '2024-01-01T00:00:00.000Z'
        const res = await unchanged(app, () => app.http.post(TYPES).send({ name: 'x', [field]: value }))
        expect(expectError(res, 400).payload.errors).to.deep.equal({ [field]: 'is read-only: the server sets it' })
      })

      it(`PUT with the engine-owned field "${field}" is refused as read-only and changes nothing`, async () => {
        const res = await unchanged(app, () =>
          app.http
            .put(typeUrl())
            .set('If-Match', type.etag)
            .send({ [field]: type[field] }),
        )
        expect(expectError(res, 400).payload.errors).to.deep.equal({ [field]: 'is read-only: the server sets it' })
      })
    }

    for (const [what, value] of [
      ['a number', 42],
      ['a boolean', true],
      ['an array', ['x']],
      ['an object', { x: 1 }],
    ] as const) {
      it(`a name that is ${what} answers 400 "must be string"`, async () => {
        const res = await unchanged(app, () => app.http.post(TYPES).send({ name: value }))
        expect(expectError(res, 400).payload.errors).to.deep.equal({ name: 'must be string' })
      })
    }

    it('null for a required field answers 400 on POST', async () => {
      const res = await unchanged(app, () => app.http.post(TYPES).send({ name: null }))
      expect(expectError(res, 400).payload.errors).to.deep.equal({ name: 'must be string' })
    })

    it('null for a required field answers 400 on PUT and changes nothing', async () => {
      const res = await unchanged(app, () => app.http.put(`${COMPONENTS}/${component.id}`).set('If-Match', component.etag).send({ componenttype: null }))
      expect(expectError(res, 400).payload.errors).to.have.keys('componenttype')
    })

    it('an empty name answers 400 (minLength)', async () => {
      const res = await unchanged(app, () => app.http.post(TYPES).send({ name: '' }))
      expect(expectError(res, 400).payload.errors).to.have.keys('name')
    })

    it('a componenttype id in urn:uuid: form, which PostgreSQL refuses, is a schema error naming the field', async () => {
      const res = await unchanged(app, () => app.http.post(COMPONENTS).send({ name: 'c', componenttype: `urn:uuid:${type.id}` }))
      const body = expectError(res, 400, 'Request body does not match the schema')
      expect(body.payload.errors).to.have.all.keys('componenttype')
    })
  })

  describe('values PostgreSQL refuses are 4xx, never 5xx', () => {
    it('a name of 10,000 characters answers 400 naming the 255 limit', async () => {
      const res = await unchanged(app, () => app.http.post(TYPES).send({ name: 'x'.repeat(10_000) }))
      expect(expectError(res, 400).payload.errors).to.deep.equal({ name: 'must NOT have more than 255 characters' })
    })

    it('a name with a NUL character answers 400 on POST and creates nothing', async () => {
      const res = await unchanged(app, () => app.http.post(TYPES).send({ name: 'a\u0000b' }))
      expect(expectError(res, 400, undefined, 'validation_failed').payload.errors).to.deep.equal({ name: 'must be one line without control characters' })
    })

    it('a name with a NUL character answers 400 on PUT and changes nothing', async () => {
      const res = await unchanged(app, () => app.http.put(typeUrl()).set('If-Match', type.etag).send({ name: 'a\u0000b' }))
      expect(expectError(res, 400, undefined, 'validation_failed').payload.errors).to.deep.equal({ name: 'must be one line without control characters' })
    })

    for (const [what, name, error] of [
      ['a line break', 'a\nb', 'must be one line without control characters'],
      ['an ESC', 'rhel\u001b[31m', 'must be one line without control characters'],
      ['a zero width space', 'rhel\u200b', 'must not contain invisible format characters (U+200B, U+202E, U+FEFF...)'],
      ['only a zero width space', '\u200b', 'must not contain invisible format characters (U+200B, U+202E, U+FEFF...)'],
      ['a right-to-left override', 'lehr\u202e', 'must not contain invisible format characters (U+200B, U+202E, U+FEFF...)'],
      ['only spaces (minLength 1)', '   ', 'must not be blank'],
    ]) {
      it(`a team name with ${what} answers 400 naming the field and creates nothing`, async () => {
        const res = await unchanged(app, () => app.http.post('/api/v1/teams').send({ name }))
        expect(expectError(res, 400, undefined, 'validation_failed').payload.errors).to.deep.equal({ name: error })
      })
    }

    it('text is stored in NFC: "café" composed and decomposed are one name, and one unique key; where finds either', async () => {
      const composed = 'caf\u00e9'
      const decomposed = 'cafe\u0301'
      const created = await app.http.post('/api/v1/teams').send({ name: decomposed }).expect(201)
      expect(created.body.team.name).to.equal(composed)
      expectError(await unchanged(app, () => app.http.post('/api/v1/teams').send({ name: composed })), 409, undefined, 'conflict')
      const found = await app.http
        .get('/api/v1/teams')
        .query({ where: `name:${decomposed}` })
        .expect(200)
      expect(found.body.teams.map((t: { id: string }) => t.id)).to.deep.equal([created.body.team.id])
    })

    it('emoji sequences keep their zero width joiners', async () => {
      const name = 'family 👩‍👩‍👧'
      expect((await app.http.post('/api/v1/teams').send({ name }).expect(201)).body.team.name).to.equal(name)
    })

    it('a NUL character inside an object field (jsonb) answers 400 naming the field and creates nothing', async () => {
      const team = (await app.http.post('/api/v1/teams').send({ name: 'ci' }).expect(201)).body.team
      const res = await unchanged(app, () => app.http.post('/api/v1/remotecis').send({ name: 'lab', team: team.id, data: { key: 'a\u0000b' } }))
      expect(expectError(res, 400, undefined, 'validation_failed').payload.errors).to.deep.equal({
        data: 'must not contain a NUL character (U+0000), which cannot be stored',
      })
    })

    it('a lone UTF-16 surrogate inside an object field (jsonb) answers 400 and creates nothing', async () => {
      const team = (await app.http.post('/api/v1/teams').send({ name: 'ci' }).expect(201)).body.team
      const text = `{"name":"lab","team":"${team.id}","data":{"key":"\\ud800"}}`
      const res = await unchanged(app, () => app.http.post('/api/v1/remotecis').set('Content-Type', 'application/json').send(text))
      expectError(res, 400, /^Invalid value/)
    })

    it('a key given twice answers 400 naming it, at the top or nested in an object field, and creates nothing', async () => {
      const team = (await app.http.post('/api/v1/teams').send({ name: 'ci' }).expect(201)).body.team
      const post = (text: string) => unchanged(app, () => app.http.post('/api/v1/remotecis').set('Content-Type', 'application/json').send(text))
      const top = expectError(await post(`{"name":"a","name":"b","team":"${team.id}"}`), 400, "Invalid value: the key 'name' is given twice", 'invalid_body')
      expect(top.payload).to.deep.equal({ field: 'name' })
      const inner = expectError(await post(`{"name":"a","team":"${team.id}","data":{"x":[{"k":1,"k":2}]}}`), 400, undefined, 'invalid_body')
      expect(inner.payload).to.deep.equal({ field: 'data.x[0].k' })
      // The same key in two different objects is fine.
      await app.http
        .post('/api/v1/remotecis')
        .set('Content-Type', 'application/json')
        .send(`{"name":"a","team":"${team.id}","data":{"a":{"k":1},"b":{"k":2}}}`)
        .expect(201)
    })

    for (const literal of ['12345678901234567890', '9007199254740993', '1e-400', '-0', '-0.0', '1.00000000000000000001']) {
      it(`the number ${literal}, which would not read back as written, answers 400 naming its field and creates nothing`, async () => {
        const team = (await app.http.post('/api/v1/teams').send({ name: 'ci' }).expect(201)).body.team
        const text = `{"name":"lab","team":"${team.id}","data":{"n":${literal}}}`
        const res = await unchanged(app, () => app.http.post('/api/v1/remotecis').set('Content-Type', 'application/json').send(text))
        const body = expectError(res, 400, /cannot be stored exactly/, 'invalid_body')
        expect(body.payload).to.deep.equal({ field: 'data.n' })
      })
    }

    it('numbers that read back as written are stored: 1.0, 1.5e1, 0.1, 1e300, 9007199254740991, 0', async () => {
      const team = (await app.http.post('/api/v1/teams').send({ name: 'ci' }).expect(201)).body.team
      const text = `{"name":"lab","team":"${team.id}","data":{"a":1.0,"b":1.5e1,"c":0.1,"d":1e300,"e":9007199254740991,"f":0}}`
      const res = await app.http.post('/api/v1/remotecis').set('Content-Type', 'application/json').send(text).expect(201)
      expect(res.body.remoteci.data).to.deep.equal({ a: 1, b: 15, c: 0.1, d: 1e300, e: 9007199254740991, f: 0 })
    })

    it('a body in another charset than UTF-8 answers 415 and creates nothing; utf-8 and UTF8 are taken', async () => {
      for (const charset of ['latin1', 'iso-8859-1', 'utf-16']) {
        const res = await unchanged(app, () => app.http.post(TYPES).set('Content-Type', `application/json; charset=${charset}`).send('{"name":"caf\u00e9"}'))
        expectError(res, 415, 'Request body must be JSON in UTF-8', 'unsupported_media_type')
      }
      await app.http.post(TYPES).set('Content-Type', 'application/json; charset=utf-8').send('{"name":"a"}').expect(201)
      await app.http.post(TYPES).set('Content-Type', 'application/json; charset=UTF8').send('{"name":"b"}').expect(201)
    })

    it('a "__proto__" key nested inside an object field answers 400 and creates nothing', async () => {
      const team = (await app.http.post('/api/v1/teams').send({ name: 'ci' }).expect(201)).body.team
      const text = `{"name":"lab","team":"${team.id}","data":{"__proto__":{"admin":true}}}`
      const res = await unchanged(app, () => app.http.post('/api/v1/remotecis').set('Content-Type', 'application/json').send(text))
      expectError(res, 400, "Request body may not contain a '__proto__' key")
    })

    it('unicode and emoji names are stored and read back as sent, and found by where', async () => {
      const name = 'Ünïcødé 日本語 ✓ 🚀 👩‍👩‍👧 ﷽'
      const created = await app.http.post(TYPES).send({ name }).expect(201)
      const id = created.body.componenttype.id
      expect((await app.http.get(`${TYPES}/${id}`).expect(200)).body.componenttype.name).to.equal(name)
      const found = await app.http.get(`${TYPES}?where=${encodeURIComponent(`name:${name}`)}`).expect(200)
      expect(found.body.componenttypes.map((t: any) => t.id)).to.deep.equal([id])
    })

    it('maxLength counts characters: 255 emoji are accepted, 256 answer 400', async () => {
      await app.http
        .post(TYPES)
        .send({ name: '🚀'.repeat(255) })
        .expect(201)
      const res = await unchanged(app, () => app.http.post(TYPES).send({ name: '🚀'.repeat(256) }))
      expect(expectError(res, 400).payload.errors).to.have.keys('name')
    })
  })

  describe('where', () => {
    const where = async (value: string, url = TYPES) => app.http.get(`${url}?where=${value}`)

    it('an unknown field answers 400 naming it and listing the valid fields', async () => {
      const body = expectError(await where('nope:1'), 400, "Invalid 'where' parameter: unknown field 'nope'")
      expect(body.payload.fields).to.deep.equal(TYPE_FIELDS)
    })

    it('a clause without a colon answers 400', async () => {
      const body = expectError(await where('name'), 400, /^Invalid 'where' parameter: 'name' is not of the form field:value/)
      expect(body.payload.fields).to.deep.equal(TYPE_FIELDS)
    })

    it('an empty field name (":x") answers 400', async () => {
      expectError(await where(':x'), 400, /^Invalid 'where' parameter: ':x' is not of the form field:value/)
    })

    it('an empty clause after a comma ("name:a,") answers 400', async () => {
      expectError(await where('name:a,'), 400, /^Invalid 'where' parameter/)
    })

    it('a value that is not a uuid for id answers 400 naming the field', async () => {
      const body = expectError(await where('id:123'), 400, /^Invalid 'where' parameter: '123' is not a valid value for 'id'/)
      expect(body.payload.field).to.equal('id')
    })

    it('a value that is not a uuid for a relation field answers 400', async () => {
      const body = expectError(await where('componenttype:abc', COMPONENTS), 400, /^Invalid 'where' parameter/)
      expect(body.payload.field).to.equal('componenttype')
    })

    it('a uuid in urn:uuid: form, which PostgreSQL refuses, answers 400 naming the field', async () => {
      const body = expectError(await where(`id:urn:uuid:${type.id}`), 400, /^Invalid 'where' parameter/)
      expect(body.payload.field).to.equal('id')
    })

    for (const date of ['yesterday', '2024-01-01', '2024-02-30T00:00:00Z', '2024-01-01T25:00:00Z']) {
      it(`created_at:${date} answers 400 naming created_at`, async () => {
        const body = expectError(await where(`created_at:${encodeURIComponent(date)}`), 400, /^Invalid 'where' parameter/)
        expect(body.payload.field).to.equal('created_at')
      })
    }

    for (const date of ['2024-01-01T00:00:00+20:00', '0000-01-01T00:00:00Z']) {
      it(`created_at:${date}, a date PostgreSQL refuses, answers 400, not 500`, async () => {
        expectError(await where(`created_at:${encodeURIComponent(date)}`), 400)
      })
    }

    it('an object field (jsonb) cannot be filtered on: 400 saying it is an object or array', async () => {
      const body = expectError(
        await where('data:x', '/api/v1/remotecis'),
        400,
        "Invalid 'where' parameter: field 'data' is an object or array, which cannot be filtered on",
      )
      expect(body.payload.field).to.equal('data')
      expect(body.payload.fields).to.not.include('data')
    })

    it('a NUL byte answers 400', async () => {
      expectError(await where('name:a%00b'), 400, "Invalid 'where' parameter: contains a NUL character")
    })

    it('a value longer than the field allows answers 400, naming the field and its maxLength', async () => {
      const body = expectError(await where(`name:${'x'.repeat(1000)}`), 400, "Invalid 'where' parameter: the value of 'name' is longer than 255 characters")
      expect(body.payload).to.deep.equal({ field: 'name', max_length: 255 })
    })
  })

  describe('sort', () => {
    for (const [what, value] of [
      ['an unknown field', 'nope'],
      ['a lone "-"', '-'],
      ['an empty item ("name,")', 'name,'],
      ['a duplicated field ("name,name")', 'name,name'],
      ['a field both ways ("name,-name")', 'name,-name'],
      ['a field of another resource', 'componenttype'],
    ]) {
      it(`${what} answers 400 listing the valid fields`, async () => {
        const body = expectError(await app.http.get(`${TYPES}?sort=${value}`), 400, /^Invalid 'sort' parameter: /)
        expect(body.payload.fields).to.deep.equal(TYPE_FIELDS)
      })
    }
  })

  describe('limit and offset', () => {
    for (const value of ['-1', 'abc', '1.5', '201', '1e2', '', '99999999999999999999', String(Number.MAX_SAFE_INTEGER + 2)]) {
      it(`limit=${value} answers 400 naming limit and its maximum of 200`, async () => {
        const body = expectError(await app.http.get(`${TYPES}?limit=${value}`), 400, /^Invalid 'limit' parameter: /)
        expect(body.payload).to.deep.equal({ max: 200 })
      })
    }

    it('limit=200, the maximum itself, is accepted', async () => {
      await app.http.get(`${TYPES}?limit=200`).expect(200)
    })

    for (const value of ['-1', 'abc', '0x10', '1000001']) {
      it(`offset=${value} answers 400 naming offset and its maximum`, async () => {
        const body = expectError(await app.http.get(`${TYPES}?offset=${value}`), 400, /^Invalid 'offset' parameter: /)
        expect(body.payload).to.deep.equal({ max: 1_000_000 })
      })
    }
  })

  describe('embed', () => {
    it('an unknown relation answers 400 listing the relations', async () => {
      const body = expectError(await app.http.get(`${COMPONENTS}?embed=nope`), 400, /^Invalid 'embed' parameter: 'nope' is not a relation of components/)
      expect(body.payload.relations).to.deep.equal(['componenttype'])
    })

    it('an unknown relation on a detail route answers 400', async () => {
      const body = expectError(await app.http.get(`${COMPONENTS}/${component.id}?embed=name`), 400, /^Invalid 'embed' parameter/)
      expect(body.payload.relations).to.deep.equal(['componenttype'])
    })

    it('embed on componenttypes, which have no relation, answers 400 with an empty list', async () => {
      const body = expectError(await app.http.get(`${TYPES}?embed=componenttype`), 400, /^Invalid 'embed' parameter/)
      expect(body.payload.relations).to.deep.equal([])
    })
  })

  describe('unknown and repeated query parameters', () => {
    it('an unknown parameter on a list answers 400 naming it and listing the valid ones', async () => {
      const body = expectError(await app.http.get(`${TYPES}?foo=1`), 400, "Unknown query parameter 'foo'")
      expect(body.payload.valid_parameters).to.deep.equal([...LIST_PARAMETERS])
      expect(body.payload.valid_parameters).to.include.members(['where', 'sort', 'limit', 'offset', 'embed'])
    })

    it('a list parameter on a detail route answers 400: only embed and fields are valid there', async () => {
      const body = expectError(await app.http.get(`${typeUrl()}?limit=1`), 400, "Unknown query parameter 'limit'")
      expect(body.payload.valid_parameters).to.deep.equal(['embed', 'fields'])
    })

    it('a bracketed parameter ("where[name]=x") is unknown, not parsed as an object', async () => {
      expectError(await app.http.get(`${TYPES}?where[name]=x`), 400, "Unknown query parameter 'where[name]'")
    })

    it('"__proto__" as a parameter is unknown', async () => {
      expectError(await app.http.get(`${TYPES}?__proto__=1`), 400, "Unknown query parameter '__proto__'")
    })

    it('an unknown parameter on the components of a type answers 400', async () => {
      expectError(await app.http.get(`${typeUrl()}/components?nope=1`), 400, "Unknown query parameter 'nope'")
    })

    for (const query of [
      'limit=1&limit=2',
      'offset=0&offset=1',
      'where=name:a&where=name:b',
      'sort=name&sort=id',
      'embed=componenttype&embed=componenttype',
      'q=a&q=b',
    ]) {
      const name = query.split('=')[0]
      it(`a repeated parameter (${query}) answers 400 naming it`, async () => {
        expectError(await app.http.get(`${COMPONENTS}?${query}`), 400, `Invalid '${name}' parameter: given more than once`)
      })
    }
  })

  describe('unknown and malformed ids', () => {
    for (const id of ['not-a-uuid', '1', `${MISSING}x`, `{${MISSING}}`, '%00', '%E0%A4%A']) {
      it(`GET /componenttypes/${id} answers 404, not a database error`, async () => {
        expectError(await app.http.get(`${TYPES}/${id}`), 404, 'componenttype not found')
      })

      it(`PUT /componenttypes/${id} answers 404 and changes nothing`, async () => {
        const res = await unchanged(app, () => app.http.put(`${TYPES}/${id}`).set('If-Match', '*').send({ name: 'x' }))
        expectError(res, 404, 'componenttype not found')
      })

      it(`DELETE /componenttypes/${id} answers 404 and deletes nothing`, async () => {
        const res = await unchanged(app, () => app.http.delete(`${TYPES}/${id}`).set('If-Match', '*'))
        expectError(res, 404, 'componenttype not found')
      })
    }

    it('GET of an unknown uuid answers 404', async () => {
      expectError(await app.http.get(`${TYPES}/${MISSING}`), 404, 'componenttype not found')
    })

    it('PUT of an unknown uuid answers 404 and creates nothing', async () => {
      const res = await unchanged(app, () => app.http.put(`${TYPES}/${MISSING}`).set('If-Match', '*').send({ name: 'x' }))
      expectError(res, 404, 'componenttype not found')
    })

    it('DELETE of an unknown uuid answers 404 and deletes nothing', async () => {
      const res = await unchanged(app, () => app.http.delete(`${TYPES}/${MISSING}`).set('If-Match', '*'))
      expectError(res, 404, 'componenttype not found')
    })

    it('the components of a malformed type id answer 404', async () => {
      expectError(await app.http.get(`${TYPES}/not-a-uuid/components`), 404, 'componenttype not found')
    })
  })

  describe('unknown routes and methods', () => {
    for (const path of ['/api/v1/nothing', '/api/v1/componenttype', `/api/v1/componenttypes/${MISSING}/nothing`]) {
      it(`GET ${path} answers 404 naming the route`, async () => {
        expectError(await app.http.get(path), 404, `No route for GET ${path}`)
      })
    }

    it('POST to an unknown route under /api/v1 answers 404 and creates nothing', async () => {
      const res = await unchanged(app, () => app.http.post('/api/v1/nothing').send({ name: 'x' }))
      expectError(res, 404, 'No route for POST /api/v1/nothing')
    })

    it('POST of a form body to an unknown route answers 404, not 415: the route is checked first', async () => {
      const res = await unchanged(app, () => app.http.post('/api/v1/nothing').type('form').send('name=x'))
      expectError(res, 404, 'No route for POST /api/v1/nothing')
    })

    it('POST of invalid JSON to an unknown route answers 404, not 400', async () => {
      const res = await unchanged(app, () => app.http.post('/api/v1/nothing').set('Content-Type', 'application/json').send('{"name":'))
      expectError(res, 404, 'No route for POST /api/v1/nothing')
    })

    // GET / leads to the console or the API reference (test/docs.test.ts).
    for (const path of ['/nothing', '/api/v2/componenttypes', '/api/v1x']) {
      it(`GET ${path}, outside the API, answers a JSON 404 from engine.app()`, async () => {
        expectError(await app.http.get(path), 404, `No route for GET ${path}`)
      })
    }

    it('PATCH on a detail route answers 405 with Allow, and changes nothing', async () => {
      const res = await unchanged(app, () => app.http.patch(typeUrl()).send({ name: 'x' }))
      const body = expectError(res, 405, 'Method PATCH is not allowed here')
      expect(res.headers.allow).to.equal('HEAD, GET, PUT, DELETE')
      expect(body.payload.allowed_methods).to.deep.equal(['HEAD', 'GET', 'PUT', 'DELETE'])
    })

    it('DELETE on a list route answers 405 with Allow, and deletes nothing', async () => {
      const res = await unchanged(app, () => app.http.delete(TYPES).set('If-Match', '*'))
      const body = expectError(res, 405, 'Method DELETE is not allowed here')
      expect(res.headers.allow).to.equal('HEAD, GET, POST')
      expect(body.payload.allowed_methods).to.deep.equal(['HEAD', 'GET', 'POST'])
    })

    it('POST on a detail route answers 405 with Allow, and creates nothing', async () => {
      const res = await unchanged(app, () => app.http.post(typeUrl()).send({ name: 'x' }))
      expectError(res, 405, 'Method POST is not allowed here')
      expect(res.headers.allow).to.equal('HEAD, GET, PUT, DELETE')
    })

    it('POST of a text/plain body on a detail route answers 405, not 415', async () => {
      const res = await unchanged(app, () => app.http.post(typeUrl()).set('Content-Type', 'text/plain').send('hello'))
      expectError(res, 405, 'Method POST is not allowed here')
      expect(res.headers.allow).to.equal('HEAD, GET, PUT, DELETE')
    })

    it('PUT of a body over the limit on a list route answers 405, not 413', async () => {
      const res = await unchanged(app, () => app.http.put(TYPES).send({ name: 'x'.repeat(1_100_000) }))
      expectError(res, 405, 'Method PUT is not allowed here')
    })

    it('a method no route implements (PROPFIND) answers a JSON 405 with Allow on a known path', async () => {
      const res = await app.http.propfind(typeUrl())
      expectError(res, 405, 'Method PROPFIND is not allowed here')
      expect(res.headers.allow).to.equal('HEAD, GET, PUT, DELETE')
    })

    it('a method no route implements (PROPFIND) answers a JSON 404 on an unknown path', async () => {
      const res = await app.http.propfind('/api/v1/nothing')
      expectError(res, 404, 'No route for PROPFIND /api/v1/nothing')
      expect(res.headers).to.not.have.property('allow')
    })
  })

  describe('conflicts and broken relations', () => {
    it('POST of a duplicate componenttype name answers 409 naming the field and creates nothing', async () => {
      const res = await unchanged(app, () => app.http.post(TYPES).send({ name: 'rhel' }))
      const body = expectError(res, 409, 'A componenttype with the same name already exists')
      expect(body.payload).to.deep.equal({ fields: ['name'] })
    })

    it('PUT renaming a componenttype to a taken name answers 409 and changes nothing', async () => {
      const other = await createType(app, 'fedora')
      const res = await unchanged(app, () => app.http.put(`${TYPES}/${other.id}`).set('If-Match', other.etag).send({ name: 'rhel' }))
      expectError(res, 409, 'A componenttype with the same name already exists')
    })

    it('DELETE of a componenttype still used by components answers 409 and deletes nothing', async () => {
      const res = await unchanged(app, () => app.http.delete(typeUrl()).set('If-Match', type.etag))
      const body = expectError(res, 409, 'This componenttype is still used by components')
      expect(body.payload).to.deep.equal({ referenced_by: 'components' })
    })

    it('POST of a component whose componenttype does not exist answers 422 and creates nothing', async () => {
      const res = await unchanged(app, () => app.http.post(COMPONENTS).send({ name: 'c', componenttype: MISSING }))
      const body = expectError(res, 422, 'A related componenttype does not exist')
      expect(body.payload).to.deep.equal({ fields: ['componenttype'] })
    })

    it('PUT of a component to a componenttype that does not exist answers 422 and changes nothing', async () => {
      const res = await unchanged(app, () => app.http.put(`${COMPONENTS}/${component.id}`).set('If-Match', component.etag).send({ componenttype: MISSING }))
      expectError(res, 422, 'A related componenttype does not exist')
    })
  })

  describe('body size, media type and encoding', () => {
    it('a body over 1 MB answers 413 naming the limit and creates nothing', async () => {
      const res = await unchanged(app, () => app.http.post(TYPES).send({ name: 'x'.repeat(1_100_000) }))
      const body = expectError(res, 413, 'Request body is larger than 1mb')
      expect(body.payload).to.deep.equal({ limit: '1mb' })
    })

    it('createEngine({ bodyLimit }) sets the limit: 100 bytes refused with 413, a smaller body accepted', async () => {
      const small = await testApp({ bodyLimit: '64b' })
      const res = await unchanged(app, () => small.http.post(TYPES).send({ name: 'y'.repeat(100) }))
      expect(expectError(res, 413, 'Request body is larger than 64b').payload).to.deep.equal({ limit: '64b' })
      await small.http.post(TYPES).send({ name: 'small' }).expect(201)
    })

    for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
      it(`POST sent as ${contentType} answers 415 and creates nothing`, async () => {
        const res = await unchanged(app, () => app.http.post(TYPES).set('Content-Type', contentType).send('name=x'))
        const body = expectError(res, 415, 'Request body must be sent as application/json')
        expect(body.payload).to.deep.equal({ content_type: contentType })
      })
    }

    it('PUT sent as text/plain answers 415 and changes nothing', async () => {
      const res = await unchanged(app, () => app.http.put(typeUrl()).set('If-Match', type.etag).set('Content-Type', 'text/plain').send('{"name":"x"}'))
      expectError(res, 415, 'Request body must be sent as application/json')
    })

    it('a body streamed in chunks, with no Content-Length, over the limit answers 413 and creates nothing', async () => {
      const res = await unchanged(app, () => {
        const req = app.http.post(TYPES).set('Content-Type', 'application/json')
        req.write('{"name":"')
        for (let i = 0; i < 11; i++) req.write('x'.repeat(100_000))
        req.write('"}')
        return req
      })
      expectError(res, 413, 'Request body is larger than 1mb')
    })

    it('POST of a body without any Content-Type answers 415 and creates nothing', async () => {
      const res = await unchanged(app, () => app.http.post(TYPES).send(Buffer.from('{"name":"x"}')))
      expect(expectError(res, 415).payload).to.deep.equal({ content_type: null })
    })

    it('an unsupported Content-Encoding answers 415 and creates nothing', async () => {
      const res = await unchanged(app, () => app.http.post(TYPES).set('Content-Type', 'application/json').set('Content-Encoding', 'br2').send('{"name":"x"}'))
      expectError(res, 415, /Content-Encoding/)
    })

    it('a body claiming gzip that is not gzip answers 400, not 500, and creates nothing', async () => {
      const res = await unchanged(app, () => app.http.post(TYPES).set('Content-Type', 'application/json').set('Content-Encoding', 'gzip').send('{"name":"x"}'))
      expectError(res, 400, 'Request body cannot be decoded with its Content-Encoding')
    })

    it('a real gzip JSON body is accepted, so the two refusals below are about the data', async () => {
      const gz = gzipSync(Buffer.from('{"name":"zipped"}'))
      await app.http
        .post(TYPES)
        .set('Content-Type', 'application/json')
        .set('Content-Encoding', 'gzip')
        .serialize((raw) => raw)
        .send(gz)
        .expect(201)
    })

    it('a small gzip body that inflates past the limit answers 413 and creates nothing', async () => {
      const gz = gzipSync(Buffer.from(`{"name":"x"${' '.repeat(2_000_000)}}`))
      expect(gz.length).to.be.below(10_000)
      const res = await unchanged(app, () =>
        app.http
          .post(TYPES)
          .set('Content-Type', 'application/json')
          .set('Content-Encoding', 'gzip')
          .serialize((raw) => raw)
          .send(gz),
      )
      expectError(res, 413, 'Request body is larger than 1mb')
    })

    it('a truncated gzip body answers 400, not 500, and creates nothing', async () => {
      const gz = gzipSync(Buffer.from('{"name":"truncated"}')).subarray(0, 12)
      const res = await unchanged(app, () =>
        app.http
          .post(TYPES)
          .set('Content-Type', 'application/json')
          .set('Content-Encoding', 'gzip')
          .serialize((raw) => raw)
          .send(gz),
      )
      expectError(res, 400, 'Request body cannot be decoded with its Content-Encoding')
    })
  })

  describe('If-Match garbage', () => {
    for (const [what, header] of [
      ['",,,"', ',,,'],
      ['an empty quoted tag', '""'],
      ['a lone weak prefix', 'W/'],
    ]) {
      it(`PUT with If-Match ${what} answers 412 and changes nothing`, async () => {
        const res = await unchanged(app, () => app.http.put(typeUrl()).set('If-Match', header).send({ name: 'changed' }))
        expectError(res, 412, "'If-match' header does not match the current ETag")
      })

      it(`DELETE with If-Match ${what} answers 412 and deletes nothing`, async () => {
        const res = await unchanged(app, () => app.http.delete(`${COMPONENTS}/${component.id}`).set('If-Match', header))
        expectError(res, 412, "'If-match' header does not match the current ETag")
      })
    }
  })

  describe('If-Match and If-None-Match too long: 400 naming the header, never cut', () => {
    for (const [what, header, message] of [
      ['a 10 KB header', `"${'f'.repeat(10_000)}"`, "Invalid 'If-Match' header: is longer than 1152 characters"],
      ['a 10 KB list', 'x,'.repeat(5_000), "Invalid 'If-Match' header: is longer than 1152 characters"],
      ['17 tags', Array.from({ length: 17 }, (_, i) => `"${i}"`).join(', '), "Invalid 'If-Match' header: lists 17 entity tags, more than the maximum of 16"],
    ]) {
      it(`PUT with If-Match ${what} answers 400 invalid_header and changes nothing`, async () => {
        const res = await unchanged(app, () => app.http.put(typeUrl()).set('If-Match', header).send({ name: 'changed' }))
        const body = expectError(res, 400, message, 'invalid_header')
        expect(body.payload.header).to.equal('If-Match')
      })

      it(`DELETE with If-Match ${what} answers 400 invalid_header and deletes nothing`, async () => {
        const res = await unchanged(app, () => app.http.delete(`${COMPONENTS}/${component.id}`).set('If-Match', header))
        expectError(res, 400, message, 'invalid_header')
      })
    }

    it('a GET with If-None-Match of 17 tags answers 400 naming If-None-Match', async () => {
      const header = Array.from({ length: 17 }, (_, i) => `"${i}"`).join(', ')
      const body = expectError(await app.http.get(typeUrl()).set('If-None-Match', header), 400, /^Invalid 'If-None-Match' header: lists 17/, 'invalid_header')
      expect(body.payload).to.deep.equal({ header: 'If-None-Match', max_etags: 16 })
    })

    it('the correct tag as the 16th of 16 still matches: the update is made', async () => {
      const current = (await app.http.get(typeUrl()).expect(200)).body.componenttype
      const header = [...Array.from({ length: 15 }, (_, i) => `"${String(i).padStart(32, '0')}"`), `"${current.etag}"`].join(', ')
      const res = await app.http
        .put(typeUrl())
        .set('If-Match', header)
        .send({ name: `sixteenth-${current.name}` })
      expect(res.status, res.text).to.equal(204)
      const after = (await app.http.get(typeUrl()).expect(200)).body.componenttype
      expect(after.name).to.equal(`sixteenth-${current.name}`)
      expect(after.etag).to.not.equal(current.etag)
    })
  })

  describe('error bodies never show SQL or stack traces', () => {
    const SQL_OR_STACK = /select|insert|update|delete from|at .*\.ts/i

    it('on a 409 duplicate key', async () => {
      const res = await app.http.post(TYPES).send({ name: 'rhel' }).expect(409)
      expect(res.text).to.not.match(SQL_OR_STACK)
    })

    it('on a 409 delete blocked by a foreign key', async () => {
      const res = await app.http.delete(typeUrl()).set('If-Match', type.etag).expect(409)
      expect(res.text).to.not.match(SQL_OR_STACK)
    })

    it('on a 422 broken relation', async () => {
      const res = await app.http.post(COMPONENTS).send({ name: 'c', componenttype: MISSING }).expect(422)
      expect(res.text).to.not.match(SQL_OR_STACK)
    })

    it('on a 400 for a value the database refused (NUL)', async () => {
      const res = await app.http.post(TYPES).send({ name: 'a\u0000b' }).expect(400)
      expect(res.text).to.not.match(SQL_OR_STACK)
    })

    it('on a 400 for a date the database refused', async () => {
      const res = await app.http.get(`${TYPES}?where=created_at:${encodeURIComponent('2024-01-01T00:00:00+20:00')}`).expect(400)
      expect(res.text).to.not.match(SQL_OR_STACK)
    })

    it('on a 400 for a body the parser refused', async () => {
      const res = await app.http.post(TYPES).set('Content-Type', 'application/json').send('{"name":"x",}').expect(400)
      expect(res.text).to.not.match(SQL_OR_STACK)
    })
  })
})
