import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'chai'
import { MAX_CACHED_STATEMENTS, Repository } from '../core/data/repository'
import { compileListQuery, MAX_PARAMETER_LENGTH, MAX_WHERE_CLAUSES, MAX_WHERE_VALUE_LENGTH } from '../core/query/list-query'
import { loadSchemas } from '../core/schema/loader'
import type { ResourceDefinition } from '../core/schema/types'
import { expectError } from './helpers/errors'
import { scratchFolders } from './helpers/scratch'
import { createType, generatedApp, resetTables, ROOT, tableChecksums, testApp, type GeneratedApp, type TestApp } from './support'

const LIMITS = { defaultLimit: 20, maxLimit: 200, maxOffset: 1_000_000 }

/** Runs `work` and answers the error it threw and the CPU time it took (user + system, ms). */
function timedThrow(work: () => unknown): { error: any; cpuMs: number } {
  const before = process.cpuUsage()
  let error: unknown
  try {
    work()
  } catch (err) {
    error = err
  }
  const used = process.cpuUsage(before)
  return { error, cpuMs: (used.user + used.system) / 1000 }
}

describe('input caps: where, sort, embed, conditional headers and the statement cache', () => {
  const folders = scratchFolders()
  let widget: ResourceDefinition
  let parser: ReturnType<typeof compileListQuery>

  before(() => {
    const widgetSchema = JSON.parse(fs.readFileSync(path.join(ROOT, 'test/fixtures/schemas/widget.json'), 'utf8'))
    widget = loadSchemas(folders.schemasDir({ 'widget.json': widgetSchema })).find((d) => d.name === 'widget')!
    parser = compileListQuery(widget, LIMITS)
  })
  after(() => folders.remove())

  describe('the number pattern is linear', () => {
    it('a 100,000-character hostile number value is refused in well under 50 ms of CPU', () => {
      // 16,000 digits and an `x` took 0.5 s with the old pattern; 100,000 would take about 20 s.
      const { error, cpuMs } = timedThrow(() => parser.parseList({ where: `weight:${'1'.repeat(100_000)}x` }))
      expectError(error.toJSON(), 400, /^Invalid 'where' parameter/, 'invalid_parameter')
      expect(cpuMs).to.be.below(50)
    })

    it('a hostile number value within the length cap is refused fast too (the pattern itself is linear)', () => {
      const values = [`${'1'.repeat(999)}x`, `${'1'.repeat(500)}.${'1'.repeat(498)}x`, `.${'9'.repeat(998)}e`]
      const { cpuMs } = timedThrow(() => {
        for (let i = 0; i < 20; i++) for (const v of values) expect(() => parser.parseList({ where: `weight:${v}` })).to.throw(/not a valid value/)
      })
      expect(cpuMs).to.be.below(50)
    })

    it('still takes every decimal form it took before', () => {
      for (const [sent, value] of [
        ['1', 1],
        ['-1.5', -1.5],
        ['1.', 1],
        ['.5', 0.5],
        ['2.5e3', 2500],
        ['1E-2', 0.01],
      ] as const) {
        expect(parser.parseList({ where: `weight:${sent}` }).where).to.deep.equal([['weight', value]])
      }
      for (const bad of ['1e', '.', '-', '1.2.3', 'e5', '0x10', '1e400'])
        expect(() => parser.parseList({ where: `weight:${bad}` }), bad).to.throw(/not a valid value/)
    })
  })

  describe('length and count caps', () => {
    it(`a where value over ${MAX_WHERE_VALUE_LENGTH} characters is refused, naming the field and the cap`, () => {
      const { error } = timedThrow(() => parser.parseList({ where: `name:${'x'.repeat(MAX_WHERE_VALUE_LENGTH + 1)}` }))
      const body = expectError(error.toJSON(), 400, `Invalid 'where' parameter: the value of 'name' is longer than ${MAX_WHERE_VALUE_LENGTH} characters`)
      expect(body.payload).to.deep.equal({ field: 'name', max_length: MAX_WHERE_VALUE_LENGTH })
      expect(parser.parseList({ where: `name:${'x'.repeat(MAX_WHERE_VALUE_LENGTH)}` }).where[0][1]).to.have.length(MAX_WHERE_VALUE_LENGTH)
    })

    for (const name of ['where', 'sort', 'embed', 'q']) {
      it(`a ${name} parameter over ${MAX_PARAMETER_LENGTH} characters is refused before it is parsed`, () => {
        const { error, cpuMs } = timedThrow(() => parser.parseList({ [name]: 'a,'.repeat(500_000) }))
        const body = expectError(error.toJSON(), 400, `Invalid '${name}' parameter: longer than ${MAX_PARAMETER_LENGTH} characters`)
        expect(body.payload).to.deep.equal({ max_length: MAX_PARAMETER_LENGTH })
        expect(cpuMs).to.be.below(50)
      })
    }

    it(`more than ${MAX_WHERE_CLAUSES} where clauses are refused`, () => {
      const { error } = timedThrow(() => parser.parseList({ where: Array.from({ length: 33 }, () => 'name:a').join(',') }))
      const body = expectError(error.toJSON(), 400, `Invalid 'where' parameter: 33 clauses are more than the maximum of ${MAX_WHERE_CLAUSES}`)
      expect(body.payload).to.deep.equal({ max_clauses: MAX_WHERE_CLAUSES })
    })

    for (const where of ['name:a,name:a', 'name:a,name:b', 'name:a,color:red,name:a']) {
      it(`the same field twice is refused, naming it (${where})`, () => {
        const { error } = timedThrow(() => parser.parseList({ where }))
        const body = expectError(error.toJSON(), 400, "Invalid 'where' parameter: field 'name' is given twice")
        expect(body.payload).to.deep.equal({ field: 'name' })
      })
    }

    it('a field and its alias are one field: given both, the second is refused', () => {
      const remoteci = loadSchemas(path.join(ROOT, 'schemas')).find((d) => d.name === 'remoteci')!
      const remotecis = compileListQuery(remoteci, LIMITS)
      const team = '00000000-0000-4000-8000-000000000000'
      expect(() => remotecis.parseList({ where: `team:${team},team_id:${team}` })).to.throw("field 'team_id' is given twice")
    })

    it('clauses are kept in one order whatever order they are sent in (one cached statement shape)', () => {
      const a = parser.parseList({ where: 'size:1,name:a,color:red' }).where
      const b = parser.parseList({ where: 'color:red,size:1,name:a' }).where
      expect(a).to.deep.equal(b)
      expect(a.map(([f]) => f)).to.deep.equal(['color', 'name', 'size'])
    })
  })

  describe('over HTTP', () => {
    let app: TestApp
    before(async function () {
      this.timeout(120_000)
      app = await testApp()
    })
    beforeEach(() => resetTables(app.db))

    it('a duplicate where clause answers 400 and the list is not run', async () => {
      await createType(app, 'rhel')
      const res = await app.http.get('/api/v1/componenttypes?where=name:rhel,name:rhel')
      const body = expectError(res, 400, "Invalid 'where' parameter: field 'name' is given twice", 'invalid_parameter')
      expect(body.payload).to.deep.equal({ field: 'name' })
    })

    it('a where of 2,300 copies of one clause answers 400', async () => {
      const res = await app.http.get(`/api/v1/componenttypes?where=${Array.from({ length: 2_300 }, () => 'name:a').join(',')}`)
      expectError(res, 400, /^Invalid 'where' parameter: longer than/, 'invalid_parameter')
      const fewer = await app.http.get(`/api/v1/componenttypes?where=${Array.from({ length: 33 }, (_, i) => `name:${i}`).join(',')}`)
      expectError(fewer, 400, `Invalid 'where' parameter: 33 clauses are more than the maximum of ${MAX_WHERE_CLAUSES}`, 'invalid_parameter')
    })

    it(`the statement cache keeps at most ${MAX_CACHED_STATEMENTS} shapes and keeps the newest ones`, async function () {
      this.timeout(120_000)
      const def = app.engine.resource('component').def
      const repository = new Repository(
        def,
        app.db,
        () => {
          throw new Error('no embed here')
        },
        () => undefined,
      )
      const aliases = new Set(def.fields.map((f) => f.alias))
      const fields = app.engine.resource('component').query.fields.filter((f) => !aliases.has(f))
      const parse = app.engine.resource('component').query.parseList
      // Distinct sort orders of three fields: each is a statement shape of its own.
      const shapes: string[] = []
      for (const a of fields) for (const b of fields) for (const c of fields) if (a !== b && b !== c && a !== c) shapes.push(`${a},-${b},${c}`)
      expect(shapes.length).to.be.above(MAX_CACHED_STATEMENTS + 100)
      const used = shapes.slice(0, MAX_CACHED_STATEMENTS + 100)
      for (const sort of used) await repository.list(parse({ sort, limit: '1' }))
      expect(repository.statements.size).to.equal(MAX_CACHED_STATEMENTS)
      // The newest shape is cached (a cache that stops adding when full would not hold it); the oldest is gone.
      const keyOf = (sort: string) =>
        `page::${sort
          .split(',')
          .map((s) => (s.startsWith('-') ? `${s.slice(1)} desc` : `${s} asc`))
          .join(',')}:false`
      expect(repository.statements.has(keyOf(used[used.length - 1]))).to.equal(true)
      expect(repository.statements.has(keyOf(used[0]))).to.equal(false)
      // A shape used again is kept while new ones come.
      const kept = used[used.length - 50]
      for (const sort of shapes.slice(MAX_CACHED_STATEMENTS + 100, MAX_CACHED_STATEMENTS + 140)) {
        await repository.list(parse({ sort: kept, limit: '1' }))
        await repository.list(parse({ sort, limit: '1' }))
      }
      expect(repository.statements.has(keyOf(kept))).to.equal(true)
      expect(repository.statements.size).to.equal(MAX_CACHED_STATEMENTS)
    })
  })

  describe('byte limits of JSON fields (x-max-bytes, maxFieldBytes)', () => {
    let app: GeneratedApp
    const file = path.join(folders.tmpDir('dci-blob-'), 'blob.json')

    before(async function () {
      this.timeout(180_000)
      fs.writeFileSync(
        file,
        JSON.stringify({
          type: 'object',
          properties: {
            name: { type: 'string', maxLength: 255 },
            payload: { type: 'object', 'x-max-bytes': 1_000 },
            list: { type: 'array', items: { type: 'integer' } },
            note: { type: 'string', 'x-max-bytes': 12 },
            text: { type: 'string' },
          },
          required: ['name'],
          additionalProperties: false,
        }),
      )
      app = await generatedApp([file])
    })
    after(async () => app?.close())

    const BLOBS = '/api/v1/blobs'

    it('a value within x-max-bytes is stored; one byte over answers 400 naming the field and the limit, and nothing is written', async () => {
      // {"a":"xxx..."}: 8 bytes of JSON around the string.
      const fits = { a: 'x'.repeat(1_000 - 8) }
      expect(Buffer.byteLength(JSON.stringify(fits))).to.equal(1_000)
      const created = await app.http.post(BLOBS).send({ name: 'fits', payload: fits })
      expect(created.status, created.text).to.equal(201)
      const before = await tableChecksums(app.db, ['blobs'])
      const res = await app.http.post(BLOBS).send({ name: 'over', payload: { a: 'x'.repeat(1_000 - 7) } })
      const body = expectError(res, 400, 'Request body does not match the schema', 'validation_failed')
      expect(body.payload).to.deep.equal({ errors: { payload: 'must take at most 1000 bytes as JSON (UTF-8)' } })
      const update = await app.http
        .put(`${BLOBS}/${created.body.blob.id}`)
        .set('If-Match', created.body.blob.etag)
        .send({ payload: { a: 'é'.repeat(500) } })
      expectError(update, 400, 'Request body does not match the schema', 'validation_failed')
      expect(await tableChecksums(app.db, ['blobs'])).to.deep.equal(before)
    })

    it('bytes are counted in UTF-8, not characters: on a string field too', async () => {
      expect((await app.http.post(BLOBS).send({ name: 'a', note: 'abcdefghij' })).status).to.equal(201) // 12 bytes with its quotes
      expect((await app.http.post(BLOBS).send({ name: 'b', note: 'ééééé' })).status).to.equal(201) // 5 characters, 10 bytes and quotes
      const res = await app.http.post(BLOBS).send({ name: 'c', note: 'éééééé' }) // 6 characters, 12 bytes and quotes
      expect(expectError(res, 400).payload).to.deep.equal({ errors: { note: 'must take at most 12 bytes as JSON (UTF-8)' } })
    })

    it('an array, or a string without maxLength, without x-max-bytes gets the engine default (65,536 bytes)', async () => {
      const list = Array.from({ length: 40_000 }, () => 1) // 80,001 bytes
      expect(expectError(await app.http.post(BLOBS).send({ name: 'c', list }), 400).payload).to.deep.equal({
        errors: { list: 'must take at most 65536 bytes as JSON (UTF-8)' },
      })
      expect(expectError(await app.http.post(BLOBS).send({ name: 'd', text: 'x'.repeat(70_000) }), 400).payload).to.deep.equal({
        errors: { text: 'must take at most 65536 bytes as JSON (UTF-8)' },
      })
      expect((await app.http.post(BLOBS).send({ name: 'e', list: list.slice(0, 30_000), text: 'x'.repeat(60_000) })).status).to.equal(201)
    })

    it('openapi.json states each limit in the body schemas', () => {
      const schemas = app.engine.openapi().components.schemas as Record<string, any>
      expect(schemas['blob.create'].properties.payload.description).to.match(/At most 1000 bytes as JSON \(UTF-8\)\.$/)
      expect(schemas['blob.update'].properties.list.description).to.match(/At most 65536 bytes as JSON/)
      expect(schemas['blob.create'].properties.name.description ?? '').to.not.match(/bytes as JSON/)
    })

    it('a schema whose x-max-bytes is not a positive integer, or is on a scalar field, is refused at load', () => {
      for (const [prop, problem] of [
        [{ type: 'object', 'x-max-bytes': 'big' }, /x-max-bytes must be an integer/],
        [{ type: 'object', 'x-max-bytes': 0 }, /x-max-bytes must be an integer/],
        [{ type: 'integer', 'x-max-bytes': 10 }, /on an object, array or string field/],
        [{ type: 'object', properties: { a: { type: 'object', 'x-max-bytes': 10 } } }, /x-max-bytes is only allowed on a field itself/],
      ] as const) {
        const dir = folders.schemasDir({ 'thing.json': { type: 'object', properties: { p: prop }, additionalProperties: false } })
        expect(() => loadSchemas(dir), JSON.stringify(prop)).to.throw(problem)
      }
    })
  })

  describe('the project schemas get the default', () => {
    let app: TestApp
    before(async function () {
      this.timeout(120_000)
      app = await testApp({ maxFieldBytes: 2_000 })
    })

    it('remoteci.data over maxFieldBytes answers 400 naming data and the limit', async () => {
      await resetTables(app.db)
      const team = (await app.http.post('/api/v1/teams').send({ name: 't' }).expect(201)).body.team
      const res = await app.http.post('/api/v1/remotecis').send({ name: 'r', team: team.id, data: { blob: 'x'.repeat(2_000) } })
      expect(expectError(res, 400, undefined, 'validation_failed').payload).to.deep.equal({ errors: { data: 'must take at most 2000 bytes as JSON (UTF-8)' } })
      expect((await app.http.post('/api/v1/remotecis').send({ name: 'r', team: team.id, data: { blob: 'x'.repeat(1_900) } })).status).to.equal(201)
    })

    it('the engine refuses a maxFieldBytes that is not a positive integer', async () => {
      let error: unknown
      try {
        await testApp({ maxFieldBytes: 0 })
      } catch (err) {
        error = err
      }
      expect(String(error)).to.match(/maxFieldBytes must be a positive integer/)
    })
  })
})
