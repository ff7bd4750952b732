import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import supertest from 'supertest'
import { createEngine, loadSchemas, migrateLatest } from '../core'
import { resourcePlugins as plugins } from '../resources'
import { generateMigration } from '../tooling/migration-generator'
import { roundTripSuite } from './conformance/round-trip'
import { expectError } from './helpers/errors'
import { serviceAgent } from './helpers/service-agent'
import { freshDatabase, resetTables, ROOT, SCHEMAS, tableChecksums, type TestApp } from './support'

// A resource with a field of every kind (test/fixtures/schemas/sample.json), on a database of its own
// made by npm run db:generate's code, as a team adding such a schema would.
const SAMPLE = path.join(ROOT, 'test', 'fixtures', 'schemas', 'sample.json')
const TABLES = ['samples', 'components', 'componenttypes', 'remotecis', 'teams']
const SAMPLE_DEF = loadSchemas(SCHEMAS, [], [SAMPLE]).find((d) => d.name === 'sample')!
const MAX = 2_147_483_647
const MIN = -2_147_483_648

describe('stored as sent, or refused naming the field: integers, NUL, object fields, field order', () => {
  let fresh: Awaited<ReturnType<typeof freshDatabase>>
  let http: TestApp
  let services: TestApp
  const dirs: string[] = []
  before(async function () {
    this.timeout(180_000)
    fresh = await freshDatabase()
    const schemas = fs.mkdtempSync(path.join(os.tmpdir(), 'dci-schemas-'))
    const migrations = fs.mkdtempSync(path.join(os.tmpdir(), 'dci-migrations-'))
    dirs.push(schemas, migrations)
    for (const f of fs.readdirSync(SCHEMAS)) fs.copyFileSync(path.join(SCHEMAS, f), path.join(schemas, f))
    fs.copyFileSync(SAMPLE, path.join(schemas, 'sample.json'))
    await generateMigration({ db: fresh.db, schemasDir: schemas, migrationsDir: migrations })
    await migrateLatest(fresh.db, migrations)
    const engine = await createEngine({ db: fresh.db, schemasDir: schemas, plugins })
    http = { engine, db: fresh.db, http: supertest(engine.app().callback()) }
    services = { ...http, http: serviceAgent(engine) as unknown as TestApp['http'] }
  })
  after(async () => {
    await fresh?.drop()
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true })
  })

  for (const transport of ['http', 'services'] as const) {
    describe(`through ${transport === 'http' ? 'HTTP' : 'the services'}`, () => {
      let app: TestApp
      beforeEach(async () => {
        app = transport === 'http' ? http : services
        await resetTables(app.db, TABLES)
      })

      /** Runs `request`, expects it to change no table, and answers its response. */
      const unchanged = async <T>(request: () => PromiseLike<T>): Promise<T> => {
        const before = await tableChecksums(app.db, TABLES)
        const res = await request()
        expect(await tableChecksums(app.db, TABLES)).to.deep.equal(before)
        return res
      }
      const create = async (body: Record<string, unknown>) => (await app.http.post('/api/v1/samples').send(body).expect(201)).body.sample

      it('an integer beyond the integer column (3000000000, -2147483649) answers 400 naming the field, on POST and PUT, and stores nothing', async () => {
        let res = await unchanged(() => app.http.post('/api/v1/samples').send({ label: 'a', priority: 3_000_000_000 }))
        expect(expectError(res, 400, 'Request body does not match the schema', 'validation_failed').payload.errors).to.deep.equal({
          priority: `must be <= ${MAX}`,
        })
        const row = await create({ label: 'a', priority: 1 })
        res = await unchanged(() =>
          app.http
            .put(`/api/v1/samples/${row.id}`)
            .set('If-Match', row.etag)
            .send({ priority: MIN - 1 }),
        )
        expect(expectError(res, 400, undefined, 'validation_failed').payload.errors).to.deep.equal({ priority: `must be >= ${MIN}` })
      })

      it('integers at the bounds of the integer column are stored and read back as sent', async () => {
        for (const priority of [MAX, MIN]) {
          const row = await create({ label: 'a', priority })
          expect((await app.http.get(`/api/v1/samples/${row.id}`).expect(200)).body.sample.priority).to.equal(priority)
        }
      })

      it('date-times of every year read back as sent: years 1 and 99 (once read as 2001 and 1999 on PGlite), leap days, 9999', async () => {
        for (const due_at of [
          '0001-01-01T00:00:00.000Z',
          '0099-12-31T23:59:59.999Z',
          '0004-02-29T12:00:00.010Z',
          '2024-02-29T00:00:00.291Z',
          '9999-12-31T23:59:59.999Z',
        ]) {
          const row = await create({ label: 'a', due_at })
          expect(row.due_at).to.equal(due_at)
          expect((await app.http.get(`/api/v1/samples/${row.id}`).expect(200)).body.sample.due_at).to.equal(due_at)
          const listed = (
            await app.http
              .get('/api/v1/samples')
              .query({ where: `due_at:${due_at}` })
              .expect(200)
          ).body.samples
          expect(listed.map((r: { id: string }) => r.id)).to.deep.equal([row.id])
        }
      })

      it('a date-time the column would not keep as sent (sub-millisecond digits, a leap second, year 0000) answers 400 naming the field, and stores nothing', async () => {
        for (const due_at of ['2024-01-01T00:00:00.1234Z', '2016-12-31T23:59:60Z', '0000-01-01T00:00:00Z']) {
          const res = await unchanged(() => app.http.post('/api/v1/samples').send({ label: 'a', due_at }))
          expect(expectError(res, 400, undefined, 'validation_failed').payload.errors, due_at).to.deep.equal({ due_at: 'must match format "date-time"' })
        }
      })

      it('date-times and uuids are answered in their canonical form, the same instant and id: UTC with milliseconds, lowercase', async () => {
        const team = (await app.http.post('/api/v1/teams').send({ name: 'ci' }).expect(201)).body.team
        const row = await create({ label: 'a', due_at: '2024-01-01T01:30:00.120000+02:00', team: team.id.toUpperCase() })
        expect(row.due_at).to.equal('2023-12-31T23:30:00.120Z')
        expect(row.team).to.equal(team.id)
        expect((await app.http.get(`/api/v1/samples/${row.id}`).expect(200)).body.sample).to.include({ due_at: '2023-12-31T23:30:00.120Z', team: team.id })
      })

      it('where on an integer beyond the integer column answers 400 naming the field', async () => {
        const res = await app.http.get('/api/v1/samples').query({ where: 'priority:3000000000' })
        const body = expectError(res, 400, "Invalid 'where' parameter: '3000000000' is not a valid value for 'priority'", 'invalid_parameter')
        expect(body.payload).to.deep.equal({ field: 'priority', error: `must be <= ${MAX}` })
      })

      it('a NUL in a multi-line text field answers 400 naming the field and stores nothing', async () => {
        const res = await unchanged(() => app.http.post('/api/v1/samples').send({ label: 'a', notes: 'line\nwith a \u0000' }))
        expect(expectError(res, 400, undefined, 'validation_failed').payload.errors).to.deep.equal({ notes: 'must not contain control characters' })
      })

      for (const [what, body, field] of [
        ['a value of an object field', { settings: { key: 'a\u0000b' } }, 'settings'],
        ['a key of an object field', { settings: { 'a\u0000b': 1 } }, 'settings'],
        ['a nested value of an object field', { settings: { list: [1, { deep: ['\u0000'] }] } }, 'settings'],
        ['an item of an array field', { tags: ['ok', 'a\u0000'] }, 'tags'],
      ] as const) {
        it(`a NUL in ${what} answers 400 naming the field, on POST and PUT, and stores nothing`, async () => {
          let res = await unchanged(() => app.http.post('/api/v1/samples').send({ label: 'a', ...body }))
          const message = 'must not contain a NUL character (U+0000), which cannot be stored'
          expect(expectError(res, 400, undefined, 'validation_failed').payload.errors).to.deep.equal({ [field]: message })
          const row = await create({ label: 'a' })
          res = await unchanged(() => app.http.put(`/api/v1/samples/${row.id}`).set('If-Match', row.etag).send(body))
          expect(expectError(res, 400, undefined, 'validation_failed').payload.errors).to.deep.equal({ [field]: message })
        })
      }

      it('an object field holding other control characters and unicode is stored as sent', async () => {
        const settings = { 'tab\there': 'bell\u0007, e\u0301, 😀', list: [1.5, -2, null, true, { a: '\u001b' }] }
        const row = await create({ label: 'a', settings })
        expect((await app.http.get(`/api/v1/samples/${row.id}`).expect(200)).body.sample.settings).to.deep.equal(settings)
      })

      for (const parameter of ['where', 'sort'] as const) {
        for (const field of ['settings', 'tags']) {
          it(`${parameter} on the ${field === 'settings' ? 'object' : 'array'} field '${field}' answers 400 saying it cannot be ${parameter === 'where' ? 'filtered' : 'sorted'} on`, async () => {
            const res = await app.http.get('/api/v1/samples').query({ [parameter]: parameter === 'where' ? `${field}:x` : `-${field}` })
            const body = expectError(
              res,
              400,
              `Invalid '${parameter}' parameter: field '${field}' is an object or array, which cannot be ${parameter === 'where' ? 'filtered' : 'sorted'} on`,
              'invalid_parameter',
            )
            expect(body.payload.field).to.equal(field)
          })
        }
      }

      it('where and sort on a field that does not exist still answer "unknown field"', async () => {
        expectError(await app.http.get('/api/v1/samples').query({ where: 'nope:1' }), 400, "Invalid 'where' parameter: unknown field 'nope'")
        expectError(await app.http.get('/api/v1/samples').query({ sort: 'nope' }), 400, "Invalid 'sort' parameter: unknown field 'nope'")
      })

      it('sort puts null values last ascending and first descending, for every sortable kind, as the README says', async () => {
        for (const [field, low, high] of [
          ['priority', 1, 2],
          ['ratio', -1.5, 2.5],
          ['notes', 'a', 'b'],
          ['level', 'high', 'low'],
          ['due_at', '2024-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z'],
          ['enabled', false, true],
        ] as const) {
          await resetTables(app.db, TABLES)
          for (const value of [high, null, low]) await create({ label: 'a', [field]: value })
          const order = async (sort: string) =>
            (await app.http.get('/api/v1/samples').query({ sort }).expect(200)).body.samples.map((r: Record<string, unknown>) => r[field])
          expect(await order(field), field).to.deep.equal([low, high, null])
          expect(await order(`-${field}`), field).to.deep.equal([null, high, low])
        }
      })

      it('a POST answers the row with its fields in the order a GET answers them: the same text, byte for byte', async () => {
        const team = (await app.http.post('/api/v1/teams').send({ name: 'ci' }).expect(201)).body.team
        // Sent in another order than the table's, with a field left to its default (null).
        const body = { team: team.id, tags: ['x'], settings: { b: 1, a: 2 }, enabled: true, priority: 3, label: 'a', due_at: '2024-01-02T03:04:05.678Z' }
        const post = await app.http.post('/api/v1/samples').send(body).expect(201)
        const get = await app.http.get(`/api/v1/samples/${post.body.sample.id}`).expect(200)
        expect(Object.keys(post.body.sample)).to.deep.equal(Object.keys(get.body.sample))
        // The table's order: id, the schema's fields, then the other engine fields.
        expect(Object.keys(post.body.sample)).to.deep.equal(['id', ...SAMPLE_DEF.fields.map((f) => f.name), 'created_at', 'updated_at', 'etag'])
        expect(post.text).to.equal(get.text)
      })
    })
  }

  // The property test over every kind of field: integers at their bounds, doubles, booleans, date-times...
  roundTripSuite(SAMPLE_DEF, () => http)
  roundTripSuite(SAMPLE_DEF, () => services, { transport: 'services' })
})
