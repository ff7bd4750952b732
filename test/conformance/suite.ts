import { expect } from 'chai'
import type { FieldDefinition, ResourceDefinition } from '../../core'
import { engineTables, resetTables, tableChecksums, type TestApp } from '../support'
import { expectError } from '../helpers/errors'
import { RowFactory, letters, wrongTypeFor, type ApiRow } from './rows'

const MISSING = '00000000-0000-4000-8000-000000000000'
const MALFORMED_IDS = ['not-a-uuid', '1', "1'%20OR%20'1'='1", '00000000-0000-4000-8000-00000000000g', '%E2%98%83']
const HEX32 = /^"[0-9a-f]{32}"$/
const ENGINE_FIELDS = ['id', 'etag', 'created_at', 'updated_at']

/** Options of {@link conformanceSuite}. */
export interface ConformanceOptions {
  /** Makes valid rows; the default builds them from the schema alone (see {@link RowFactory}). */
  rows?: (app: TestApp) => RowFactory
  /**
   * `http` (default): `app.http` is supertest over the engine's HTTP callback. `services`: `app.http`
   * is the service agent (test/helpers/service-agent.ts); the HTTP-only cases (304, Location, Prefer)
   * are not declared.
   */
  transport?: 'http' | 'services'
}

type Kind = 'string' | 'uuid' | 'datetime' | 'integer' | 'number' | 'boolean'

/** Fields `where` and `sort` accept: the engine's own plus every schema field that is not an object or array. */
function filterableFields(def: ResourceDefinition): Array<{ name: string; kind: Kind; field?: FieldDefinition }> {
  return [
    { name: 'id', kind: 'uuid' as Kind },
    { name: 'created_at', kind: 'datetime' as Kind },
    { name: 'updated_at', kind: 'datetime' as Kind },
    ...def.fields.filter((f) => f.kind !== 'json').map((f) => ({ name: f.name, kind: f.kind as Kind, field: f })),
  ]
}

/** True when `field` alone is a unique key, so two rows cannot share its value. */
function uniqueAlone(def: ResourceDefinition, field: string): boolean {
  return field === 'id' || def.unique.some((key) => key.length === 1 && key[0] === field)
}

/** A `where` value of the wrong type for a field, or undefined when every string is valid for it. */
function badWhereValue(kind: Kind, field?: FieldDefinition): string | undefined {
  switch (kind) {
    case 'uuid':
      return 'not-a-uuid'
    case 'datetime':
      return 'yesterday'
    case 'integer':
      return '1.5x'
    case 'number':
      return 'NaNx'
    case 'boolean':
      return 'maybe'
    default: {
      const schema = field?.schema ?? {}
      if (Array.isArray(schema.enum)) return `${letters(7, 12)}-not-in-enum`
      if (typeof schema.maxLength === 'number') return 'x'.repeat(schema.maxLength + 1)
      if (typeof schema.minLength === 'number' && schema.minLength > 0) return ''
      return undefined
    }
  }
}

/** How a value is written in a `where` clause. */
function whereText(value: unknown): string {
  return typeof value === 'string' ? value : String(value)
}

/**
 * The generic HTTP contract of one resource, as mocha tests: list shape, create, read, conditional
 * writes with ETags, 404s, lookup by an `x-lookup` field, where, sort, paging, embed, validation, unique
 * keys, relations, concurrency.
 * It needs only the resource's definition: rows are generated from its schema, so a new schema file
 * gets the whole suite with no code. Tables of every resource are truncated before each test.
 *
 * @param def the resource's definition (as `engine.resource(name).def`, or from `loadSchemas`)
 * @param getApp the app under test, called once the `before` hooks ran
 */
export function conformanceSuite(def: ResourceDefinition, getApp: () => TestApp, options: ConformanceOptions = {}): void {
  const { name, plural } = def
  const filterable = filterableFields(def)
  const relations = def.fields.filter((f) => f.relation)
  const aliased = def.fields.filter((f) => f.alias !== undefined && !f.hidden)

  // Cases about what only HTTP has (conditional GET, Location, Prefer) are declared for HTTP alone.
  const httpOnly: (title: string, test: () => Promise<void>) => void = options.transport === 'services' ? () => {} : (title, test) => it(title, test)

  describe(`conformance: ${name}${options.transport === 'services' ? ' (through the services)' : ''}`, () => {
    let app: TestApp
    let rows: RowFactory
    let base: string
    let tables: string[]

    const list = async (query: Record<string, string | number> = {}) => {
      const res = await app.http.get(base).query(query)
      if (res.status !== 200) throw new Error(`GET ${base}?${new URLSearchParams(query as Record<string, string>)} answered ${res.status}: ${res.text}`)
      return res.body as Record<string, any>
    }
    const detail = async (id: string) => (await app.http.get(`${base}/${id}`).expect(200)).body[name] as ApiRow
    const allRows = async () => (await list({ limit: 200, sort: 'id' }))[plural] as ApiRow[]

    before(() => {
      app = getApp()
      const resource = app.engine.resource(name)
      expect(resource.plural).to.equal(plural)
      base = `${app.engine.prefix}/${plural}`
      tables = engineTables(app.engine)
    })
    beforeEach(async () => {
      await resetTables(app.db, tables)
      rows = options.rows ? options.rows(app) : new RowFactory(app)
    })

    describe('list and create', () => {
      it('an empty list answers {plural: [], _meta: {count: 0}}', async () => {
        const body = await list()
        expect(body).to.deep.equal({ [plural]: [], _meta: { count: 0 } })
      })

      httpOnly('POST answers 201 with the row under the singular key, a quoted ETag and a Location that serves it', async () => {
        const body = await rows.body(name)
        const res = await app.http.post(base).send(body).expect(201)
        const row = res.body[name]
        expect(Object.keys(res.body)).to.deep.equal([name])
        expect(row).to.deep.include(body)
        expect(row.id).to.match(/^[0-9a-f-]{36}$/)
        expect(row.etag).to.match(/^[0-9a-f]{32}$/)
        expect(row.updated_at).to.equal(row.created_at)
        expect(res.headers.etag).to.equal(`"${row.etag}"`)
        expect(res.headers.location).to.equal(`${base}/${row.id}`)
        const again = await app.http.get(res.headers.location).expect(200)
        expect(again.body).to.deep.equal({ [name]: row })
      })

      it('a list answers {plural: [...], _meta: {count}} whose rows carry the engine fields and only known fields', async () => {
        const made = [await rows.create(name), await rows.create(name), await rows.create(name)]
        const body = await list()
        expect(body).to.have.all.keys(plural, '_meta')
        expect(body._meta).to.deep.equal({ count: 3 })
        expect(body[plural].map((r: ApiRow) => r.id)).to.have.members(made.map((r) => r.id))
        const known = [...ENGINE_FIELDS, ...def.fields.flatMap((f) => (f.alias ? [f.name, f.alias] : [f.name]))]
        for (const row of body[plural]) {
          expect(row).to.include.all.keys(...ENGINE_FIELDS, ...def.fields.filter((f) => f.required).map((f) => f.name))
          expect(Object.keys(row).filter((k) => !known.includes(k))).to.deep.equal([])
          for (const f of aliased) expect(row[f.alias!], `${f.alias} beside ${f.name}`).to.deep.equal(row[f.name])
        }
      })

      httpOnly('every list answer carries an ETag and If-None-Match of it answers 304 until the list changes', async () => {
        await rows.create(name)
        const first = await app.http.get(base).expect(200)
        expect(first.headers.etag).to.match(HEX32)
        await app.http.get(base).set('If-None-Match', first.headers.etag).expect(304)
        await rows.create(name)
        await app.http.get(base).set('If-None-Match', first.headers.etag).expect(200)
      })
    })

    describe('read one', () => {
      it('GET of one row answers the stored row and its ETag', async () => {
        const row = await rows.create(name)
        const res = await app.http.get(`${base}/${row.id}`).expect(200)
        expect(res.body).to.deep.equal({ [name]: row })
        expect(res.headers.etag).to.equal(`"${row.etag}"`)
      })

      httpOnly('GET with If-None-Match of the current ETag answers 304 with no body, another ETag 200', async () => {
        const row = await rows.create(name)
        const cached = await app.http.get(`${base}/${row.id}`).set('If-None-Match', `"${row.etag}"`).expect(304)
        expect(cached.text).to.equal('')
        await app.http.get(`${base}/${row.id}`).set('If-None-Match', '"0123456789abcdef0123456789abcdef"').expect(200)
      })

      it('GET, PUT and DELETE of an unknown id answer 404 with the error body', async () => {
        await rows.create(name)
        expectError((await app.http.get(`${base}/${MISSING}`).expect(404)).body, 404)
        expectError((await app.http.put(`${base}/${MISSING}`).set('If-Match', '*').send({}).expect(404)).body, 404)
        expectError((await app.http.delete(`${base}/${MISSING}`).set('If-Match', '*').expect(404)).body, 404)
      })

      it('GET, PUT and DELETE of malformed ids answer 404 and change nothing', async () => {
        await rows.create(name)
        const before = await tableChecksums(app.db, tables)
        for (const id of MALFORMED_IDS) {
          expectError((await app.http.get(`${base}/${id}`).expect(404)).body, 404)
          expectError((await app.http.put(`${base}/${id}`).set('If-Match', '*').send({}).expect(404)).body, 404)
          expectError((await app.http.delete(`${base}/${id}`).set('If-Match', '*').expect(404)).body, 404)
        }
        expect(await tableChecksums(app.db, tables)).to.deep.equal(before)
      })
    })

    describe('update with ETags', () => {
      it('PUT with the current ETag answers 204 with no body and a new ETag, and the change is stored', async () => {
        const row = await rows.create(name)
        const patch = rows.updateBody(name)
        const res = await app.http.put(`${base}/${row.id}`).set('If-Match', `"${row.etag}"`).send(patch).expect(204)
        expect(res.text).to.equal('')
        expect(res.headers.etag).to.match(HEX32)
        expect(res.headers.etag).to.not.equal(`"${row.etag}"`)
        const after = await app.http.get(`${base}/${row.id}`).expect(200)
        expect(after.headers.etag).to.equal(res.headers.etag)
        expect(after.body[name]).to.deep.include(patch)
        expect(after.body[name].created_at).to.equal(row.created_at)
        expect(new Date(after.body[name].updated_at).getTime()).to.be.at.least(new Date(row.updated_at).getTime())
      })

      httpOnly('PUT with Prefer: return=representation answers 200 with the stored row and its ETag', async () => {
        const row = await rows.create(name)
        const patch = rows.updateBody(name)
        const res = await app.http.put(`${base}/${row.id}`).set('If-Match', row.etag).set('Prefer', 'return=representation').send(patch).expect(200)
        expect(res.body[name]).to.deep.include({ ...patch, id: row.id })
        expect(res.headers.etag).to.equal(`"${res.body[name].etag}"`)
        expect(res.headers['preference-applied']).to.equal('return=representation')
        expect(await detail(row.id)).to.deep.equal(res.body[name])
      })

      it('PUT without If-Match answers 412 "\'If-match\' header must be provided" and changes nothing', async () => {
        const row = await rows.create(name)
        const res = await app.http.put(`${base}/${row.id}`).send(rows.updateBody(name)).expect(412)
        expect(res.body).to.deep.equal({ message: "'If-match' header must be provided", payload: {}, status_code: 412, code: 'precondition_required' })
        expect(await detail(row.id)).to.deep.equal(row)
      })

      it('PUT with a stale ETag answers 412 and changes nothing', async () => {
        const row = await rows.create(name)
        await app.http.put(`${base}/${row.id}`).set('If-Match', row.etag).send(rows.updateBody(name)).expect(204)
        const current = await detail(row.id)
        const res = await app.http.put(`${base}/${row.id}`).set('If-Match', row.etag).send(rows.updateBody(name)).expect(412)
        expectError(res.body, 412)
        expect(await detail(row.id)).to.deep.equal(current)
      })

      it('PUT with If-Match: * applies whatever the current ETag', async () => {
        const row = await rows.create(name)
        const patch = rows.updateBody(name)
        await app.http.put(`${base}/${row.id}`).set('If-Match', '*').send(patch).expect(204)
        expect(await detail(row.id)).to.deep.include(patch)
      })

      it("10 concurrent PUTs with the same ETag: exactly one 204, nine 412, and the winner's ETag is current", async () => {
        const row = await rows.create(name)
        const results = await Promise.all(
          Array.from({ length: 10 }, () => app.http.put(`${base}/${row.id}`).set('If-Match', row.etag).send(rows.updateBody(name))),
        )
        const statuses = results.map((r) => r.status)
        expect(statuses.filter((s) => s === 204)).to.have.length(1)
        expect(statuses.filter((s) => s === 412)).to.have.length(9)
        const winner = results.find((r) => r.status === 204)!
        const after = await app.http.get(`${base}/${row.id}`).expect(200)
        expect(after.headers.etag).to.equal(winner.headers.etag)
      })
    })

    describe("every write path changes the ETag, the database's own included", () => {
      it('an UPDATE made in SQL by hand gives the row a new ETag and updated_at: a stale If-Match then answers 412', async () => {
        const row = await rows.create(name)
        const field = def.fields[0].name
        await app.db.raw(`UPDATE "${plural}" SET "${field}" = "${field}" WHERE id = ?`, [row.id])
        const after = await detail(row.id)
        expect(after.etag).to.match(/^[0-9a-f]{32}$/)
        expect(after.etag).to.not.equal(row.etag)
        expect(new Date(after.updated_at).getTime()).to.be.at.least(new Date(row.updated_at).getTime())
        expectError((await app.http.put(`${base}/${row.id}`).set('If-Match', row.etag).send(rows.updateBody(name))).body, 412)
        expect(await detail(row.id)).to.deep.equal(after)
      })

      httpOnly('after an UPDATE made in SQL by hand, If-None-Match with the old ETag answers 200 with the new one', async () => {
        const row = await rows.create(name)
        const field = def.fields[0].name
        await app.db.raw(`UPDATE "${plural}" SET "${field}" = "${field}" WHERE id = ?`, [row.id])
        const res = await app.http.get(`${base}/${row.id}`).set('If-None-Match', `"${row.etag}"`).expect(200)
        expect(res.headers.etag).to.not.equal(`"${row.etag}"`)
        expect(res.headers.etag).to.equal(`"${res.body[name].etag}"`)
      })

      it('POST, PUT and the PUT that changes nothing: a new ETag for each write, the same for the no-op, and GET answers the one the write answered', async () => {
        const row = await rows.create(name)
        expect((await detail(row.id)).etag).to.equal(row.etag)
        const put = await app.http.put(`${base}/${row.id}`).set('If-Match', row.etag).send(rows.updateBody(name)).expect(204)
        const etag = put.headers.etag as string
        expect(etag).to.not.equal(`"${row.etag}"`)
        expect(`"${(await detail(row.id)).etag}"`).to.equal(etag)
        await app.http.put(`${base}/${row.id}`).set('If-Match', etag).send({}).expect(204)
        expect(`"${(await detail(row.id)).etag}"`).to.equal(etag)
      })

      for (const relation of relations.filter((r) => r.relation!.onDelete === 'set null')) {
        const target = relation.relation!.resource
        it(`DELETE of the ${target} a ${name} uses through ${relation.name} (set null) gives the ${name} a new ETag and updated_at: a stale If-Match answers 412`, async () => {
          const child = await rows.create(name)
          const parentBase = `${app.engine.prefix}/${app.engine.resource(target).plural}`
          await app.http.delete(`${parentBase}/${child[relation.name]}`).set('If-Match', '*').expect(204)
          const after = await detail(child.id)
          expect(after[relation.name]).to.equal(null)
          expect(after.etag).to.not.equal(child.etag)
          expect(new Date(after.updated_at).getTime()).to.be.at.least(new Date(child.updated_at).getTime())
          expectError(
            (
              await app.http
                .put(`${base}/${child.id}`)
                .set('If-Match', child.etag)
                .send({ [relation.name]: null })
            ).body,
            412,
          )
          expect(await detail(child.id)).to.deep.equal(after)
        })

        httpOnly(`after a DELETE of the ${target} (set null), If-None-Match with the ${name}'s old ETag answers 200`, async () => {
          const child = await rows.create(name)
          const parentBase = `${app.engine.prefix}/${app.engine.resource(target).plural}`
          await app.http.delete(`${parentBase}/${child[relation.name]}`).set('If-Match', '*').expect(204)
          const res = await app.http.get(`${base}/${child.id}`).set('If-None-Match', `"${child.etag}"`).expect(200)
          expect(res.body[name][relation.name]).to.equal(null)
        })
      }
    })

    const lookup = def.fields.find((f) => f.name === def.lookup)
    if (lookup) {
      const field = lookup.name
      // A value of the field that the schema accepts and that needs URL encoding, when the field allows it.
      const free = !lookup.schema.pattern && !lookup.schema.enum && !lookup.schema.format && ((lookup.schema.maxLength as number | undefined) ?? 255) >= 40
      const at = (value: string) => `${base}/${encodeURIComponent(value)}`

      describe(`lookup by ${field} (x-lookup)`, () => {
        it(`GET by ${field} answers the same row and ETag as GET by id`, async () => {
          const row = await rows.create(name)
          const res = await app.http.get(at(row[field] as string)).expect(200)
          expect(res.body).to.deep.equal({ [name]: row })
          expect(res.headers.etag).to.equal(`"${row.etag}"`)
        })

        httpOnly(`HEAD by ${field} answers as GET, and If-None-Match by ${field} answers 304 until the row changes`, async () => {
          const row = await rows.create(name)
          const head = await app.http.head(at(row[field] as string)).expect(200)
          expect(head.headers.etag).to.equal(`"${row.etag}"`)
          await app.http
            .get(at(row[field] as string))
            .set('If-None-Match', `"${row.etag}"`)
            .expect(304)
          await app.http
            .head(at(row[field] as string))
            .set('If-None-Match', `"${row.etag}"`)
            .expect(304)
          await app.http.put(`${base}/${row.id}`).set('If-Match', row.etag).send(rows.updateBody(name)).expect(204)
          const after = await detail(row.id)
          await app.http
            .get(at(after[field] as string))
            .set('If-None-Match', `"${row.etag}"`)
            .expect(200)
        })

        it(`PUT by ${field} with the current ETag changes the row; a stale ETag or none answers 412 and changes nothing`, async () => {
          const row = await rows.create(name)
          const patch = rows.updateBody(name)
          expectError((await app.http.put(at(row[field] as string)).send(patch)).body, 412)
          expect(await detail(row.id)).to.deep.equal(row)
          const put = await app.http
            .put(at(row[field] as string))
            .set('If-Match', `"${row.etag}"`)
            .send(patch)
            .expect(204)
          const after = await detail(row.id)
          expect(after).to.deep.include(patch)
          expect(after.etag).to.not.equal(row.etag)
          expect(put.headers.etag).to.equal(`"${after.etag}"`)
          expectError(
            (
              await app.http
                .put(at(after[field] as string))
                .set('If-Match', `"${row.etag}"`)
                .send(rows.updateBody(name))
            ).body,
            412,
          )
          expect(await detail(row.id)).to.deep.equal(after)
        })

        it(`DELETE by ${field} with a stale ETag answers 412 and keeps the row; with the current one deletes it`, async () => {
          const row = await rows.create(name)
          await app.http.put(`${base}/${row.id}`).set('If-Match', row.etag).send(rows.updateBody(name)).expect(204)
          const latest = await detail(row.id)
          expectError((await app.http.delete(at(latest[field] as string)).set('If-Match', `"${row.etag}"`)).body, 412)
          expect(await detail(row.id)).to.deep.equal(latest)
          await app.http
            .delete(at(latest[field] as string))
            .set('If-Match', `"${latest.etag}"`)
            .expect(204)
          await app.http.get(`${base}/${row.id}`).expect(404)
        })

        it(`GET, PUT and DELETE of an unknown ${field} answer 404 and change nothing`, async () => {
          const row = await rows.create(name)
          const before = await tableChecksums(app.db, tables)
          const unknown = `${row[field]}-unknown`.slice(-((lookup.schema.maxLength as number | undefined) ?? 255))
          expectError((await app.http.get(at(unknown))).body, 404)
          expectError((await app.http.put(at(unknown)).set('If-Match', '*').send(rows.updateBody(name))).body, 404)
          expectError((await app.http.delete(at(unknown)).set('If-Match', '*')).body, 404)
          // The input is checked first, as for an unknown id: without If-Match, the same 412.
          const byId = await app.http.put(`${base}/${MISSING}`).send(rows.updateBody(name))
          const byName = await app.http.put(at(unknown)).send(rows.updateBody(name))
          expect([byName.status, byName.body]).to.deep.equal([byId.status, byId.body])
          expect(byName.status).to.equal(412)
          expect(await tableChecksums(app.db, tables)).to.deep.equal(before)
        })

        if (free) {
          it(`a ${field} that parses as a uuid is always taken as an id: the row named so is not found by it, another row whose id it is is`, async () => {
            const other = await rows.create(name)
            const named = await rows.create(name, { [field]: other.id })
            expect(named[field]).to.equal(other.id)
            expect((await app.http.get(at(other.id)).expect(200)).body[name].id).to.equal(other.id)
            const ghost = '00000000-0000-4000-8000-00000000beef'
            await app.http
              .put(`${base}/${named.id}`)
              .set('If-Match', '*')
              .send({ [field]: ghost })
              .expect(204)
            expectError((await app.http.get(at(ghost))).body, 404)
            expectError((await app.http.delete(at(ghost)).set('If-Match', '*')).body, 404)
            expect((await detail(named.id))[field]).to.equal(ghost)
          })

          it(`a ${field} with characters that need URL encoding (space, slash, percent, ?, #, non-ASCII) is found URL-encoded`, async () => {
            const value = `a b/c%20d?e#f é ${letters(4, 8)}`
            const row = await rows.create(name, { [field]: value })
            expect((await app.http.get(at(value)).expect(200)).body[name]).to.deep.equal(row)
            await app.http.delete(at(value)).set('If-Match', `"${row.etag}"`).expect(204)
            await app.http.get(`${base}/${row.id}`).expect(404)
          })
        }

        if (lookup.caseInsensitive) {
          it(`${field} is case-insensitive in its unique key, so the lookup is too`, async () => {
            const row = await rows.create(name, { [field]: `Mixed${letters(4, 8)}` })
            expect((await app.http.get(at((row[field] as string).toUpperCase())).expect(200)).body[name].id).to.equal(row.id)
          })
        }
      })
    }

    describe('delete', () => {
      it('DELETE with the current ETag answers 204 and the row is gone', async () => {
        const row = await rows.create(name)
        await app.http.delete(`${base}/${row.id}`).set('If-Match', `"${row.etag}"`).expect(204)
        await app.http.get(`${base}/${row.id}`).expect(404)
      })

      it('DELETE without If-Match answers 412 "\'If-match\' header must be provided" and keeps the row', async () => {
        const row = await rows.create(name)
        const res = await app.http.delete(`${base}/${row.id}`).expect(412)
        expect(res.body).to.deep.equal({ message: "'If-match' header must be provided", payload: {}, status_code: 412, code: 'precondition_required' })
        expect(await detail(row.id)).to.deep.equal(row)
      })

      it('DELETE with a stale ETag answers 412 and keeps the row', async () => {
        const row = await rows.create(name)
        const res = await app.http.delete(`${base}/${row.id}`).set('If-Match', '"0123456789abcdef0123456789abcdef"').expect(412)
        expectError(res.body, 412)
        expect(await detail(row.id)).to.deep.equal(row)
      })

      it('DELETE with If-Match: * deletes the row', async () => {
        const row = await rows.create(name)
        await app.http.delete(`${base}/${row.id}`).set('If-Match', '*').expect(204)
        await app.http.get(`${base}/${row.id}`).expect(404)
      })
    })

    describe('where', () => {
      for (const { name: field, kind } of filterable) {
        it(`where=${field}:<value> answers exactly the rows whose ${field} equals the value, and their count`, async () => {
          const seeds = uniqueAlone(def, field) ? [1, 2, 3] : [1, 2, 1]
          const isSchemaField = def.fields.some((f) => f.name === field)
          const created: ApiRow[] = []
          for (const seed of seeds) {
            created.push(await rows.create(name, isSchemaField ? { [field]: await rows.value(name, field, seed) } : {}))
          }
          const all = await allRows()
          const value = created[0][field]
          const same = (v: unknown) => (kind === 'datetime' ? new Date(v as string).getTime() === new Date(value).getTime() : v === value)
          const expected = all.filter((r) => same(r[field])).map((r) => r.id)
          const body = await list({ where: `${field}:${whereText(value)}`, limit: 200 })
          expect(body[plural].map((r: ApiRow) => r.id)).to.have.members(expected)
          expect(body._meta.count).to.equal(expected.length)
          if (!uniqueAlone(def, field) && kind !== 'datetime') expect(expected.length).to.be.at.least(2)
        })

        const bad = badWhereValue(
          kind,
          def.fields.find((f) => f.name === field),
        )
        if (bad !== undefined) {
          it(`where=${field}:<a value of the wrong type> answers 400 naming the field`, async () => {
            const res = await app.http
              .get(base)
              .query({ where: `${field}:${bad}` })
              .expect(400)
            expectError(res.body, 400, /'where'/)
            expect(res.body.payload.field).to.equal(field)
          })
        }
      }

      it('where on two fields ANDs the clauses', async () => {
        const a = await rows.create(name)
        await rows.create(name)
        const body = await list({ where: `id:${a.id},created_at:${a.created_at}` })
        expect(body[plural].map((r: ApiRow) => r.id)).to.deep.equal([a.id])
        const none = await list({ where: `id:${MISSING},created_at:${a.created_at}` })
        expect(none).to.deep.equal({ [plural]: [], _meta: { count: 0 } })
      })

      it('where on one field twice answers 400 naming the field (a field compares with one value)', async () => {
        const a = await rows.create(name)
        for (const where of [`id:${a.id},id:${MISSING}`, `id:${a.id},id:${a.id}`]) {
          const body = expectError((await app.http.get(base).query({ where }).expect(400)).body, 400, "Invalid 'where' parameter: field 'id' is given twice")
          expect(body.payload).to.deep.equal({ field: 'id' })
        }
      })

      it('where on an unknown field, or without a colon, answers 400', async () => {
        expectError((await app.http.get(base).query({ where: 'no_such_field:1' }).expect(400)).body, 400, /unknown field/)
        expectError((await app.http.get(base).query({ where: 'id' }).expect(400)).body, 400, /field:value/)
      })
    })

    describe('sort', () => {
      for (const { name: field, kind } of filterable) {
        for (const descending of [false, true]) {
          const param = `${descending ? '-' : ''}${field}`
          it(`sort=${param} orders by ${field} ${descending ? 'descending' : 'ascending'}, ties by id ascending`, async () => {
            const isSchemaField = def.fields.some((f) => f.name === field)
            const seeds = uniqueAlone(def, field) ? [3, 1, 4, 5, 2] : [3, 1, 4, 1, 2, 3]
            for (const seed of seeds) {
              await rows.create(name, isSchemaField ? { [field]: await rows.value(name, field, seed) } : {})
            }
            const all = await allRows()
            const rank = await ranker(
              app,
              kind,
              all.map((r) => r[field]),
            )
            const expected = [...all]
              .sort((a, b) => (descending ? -1 : 1) * (rank(a[field]) - rank(b[field])) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
              .map((r) => r.id)
            const body = await list({ sort: param, limit: 200 })
            expect(body[plural].map((r: ApiRow) => r.id)).to.deep.equal(expected)
          })
        }
      }

      it('sort on an unknown field, or the same field twice, answers 400', async () => {
        expectError((await app.http.get(base).query({ sort: 'no_such_field' }).expect(400)).body, 400, /unknown field/)
        expectError((await app.http.get(base).query({ sort: 'id,-id' }).expect(400)).body, 400, /twice/)
      })
    })

    describe('limit and offset', () => {
      it('limit and offset page through the rows while _meta.count counts them all', async () => {
        for (let i = 0; i < 5; i++) await rows.create(name)
        const everything = (await allRows()).map((r) => r.id)
        const seen: string[] = []
        for (let offset = 0; offset < 6; offset += 2) {
          const body = await list({ sort: 'id', limit: 2, offset })
          // A cursor of the last row exactly when rows follow the page.
          expect(body._meta).to.deep.equal(offset + 2 < 5 ? { count: 5, next: body._meta.next } : { count: 5 })
          if (offset + 2 < 5) expect(body._meta.next).to.be.a('string')
          expect(body[plural]).to.have.length(Math.min(2, 5 - offset))
          seen.push(...body[plural].map((r: ApiRow) => r.id))
        }
        expect(seen).to.deep.equal(everything)
        expect(await list({ offset: 5 })).to.deep.equal({ [plural]: [], _meta: { count: 5 } })
        expect(await list({ limit: 0 })).to.deep.equal({ [plural]: [], _meta: { count: 5 } })
      })

      it('after=_meta.next pages through the same rows, in any sort, and a cursor of another sort answers 400', async () => {
        for (let i = 0; i < 5; i++) await rows.create(name)
        for (const sort of ['id', '-created_at', '-updated_at,id']) {
          const everything = (await list({ sort, limit: 200 }))[plural].map((r: ApiRow) => r.id)
          const seen: string[] = []
          let after: string | undefined
          do {
            const body = await list({ sort, limit: 2, ...(after ? { after } : {}) })
            expect(body._meta.count).to.equal(5)
            seen.push(...body[plural].map((r: ApiRow) => r.id))
            after = body._meta.next
          } while (after)
          expect(seen, sort).to.deep.equal(everything)
        }
        const first = await list({ sort: 'id', limit: 2 })
        expectError((await app.http.get(base).query({ sort: '-id', limit: 2, after: first._meta.next }).expect(400)).body, 400, /another list/)
      })

      it('a negative, fractional, non-numeric or too large limit or offset answers 400', async () => {
        for (const query of [
          { limit: '-1' },
          { limit: '1.5' },
          { limit: 'ten' },
          { limit: '100000' },
          { offset: '-1' },
          { offset: 'x' },
          { offset: '99999999999' },
        ]) {
          expectError((await app.http.get(base).query(query).expect(400)).body, 400)
        }
      })

      it('a repeated or unknown query parameter answers 400', async () => {
        expectError((await app.http.get(`${base}?limit=1&limit=2`).expect(400)).body, 400, /more than once/)
        expectError((await app.http.get(`${base}?page=2`).expect(400)).body, 400, /Unknown query parameter 'page'/)
        expectError((await app.http.get(`${base}/${MISSING}?limit=1`).expect(400)).body, 400, /Unknown query parameter 'limit'/)
      })
    })

    describe('embed', () => {
      for (const relation of relations) {
        it(`embed=${relation.name} replaces the id by the ${relation.relation!.resource} row, on list and on detail`, async () => {
          const a = await rows.create(name)
          const b = await rows.create(name)
          const target = app.engine.resource(relation.relation!.resource)
          const parentOf = async (row: ApiRow) =>
            (await app.http.get(`${app.engine.prefix}/${target.plural}/${row[relation.name]}`).expect(200)).body[target.name]
          const body = await list({ embed: relation.name, sort: 'id' })
          const byId = new Map(body[plural].map((r: ApiRow) => [r.id, r]))
          for (const row of [a, b]) {
            expect((byId.get(row.id) as ApiRow)[relation.name]).to.deep.equal(await parentOf(row))
          }
          const one = await app.http.get(`${base}/${a.id}`).query({ embed: relation.name }).expect(200)
          expect(one.body[name][relation.name]).to.deep.equal(await parentOf(a))
          const plain = await list({ sort: 'id' })
          expect(plain[plural].map((r: ApiRow) => r[relation.name])).to.have.members([a[relation.name], b[relation.name]])
        })

        httpOnly(`a detail with embed=${relation.name} has a weak ETag that changes when the embedded ${relation.relation!.resource} changes`, async () => {
          const a = await rows.create(name)
          const target = app.engine.resource(relation.relation!.resource)
          const url = `${base}/${a.id}?embed=${relation.name}`
          const first = await app.http.get(url).expect(200)
          expect(first.headers.etag).to.match(/^W\/"[0-9a-f]{32}"$/)
          expect(first.headers.etag).to.not.equal(`W/"${a.etag}"`)
          await app.http.get(url).set('If-None-Match', first.headers.etag).expect(304)
          // Without embed, the row's own strong ETag.
          expect((await app.http.get(`${base}/${a.id}`).expect(200)).headers.etag).to.equal(`"${a.etag}"`)
          await app.http.put(`${app.engine.prefix}/${target.plural}/${a[relation.name]}`).set('If-Match', '*').send(rows.updateBody(target.name)).expect(204)
          const after = await app.http.get(url).set('If-None-Match', first.headers.etag).expect(200)
          expect(after.headers.etag).to.not.equal(first.headers.etag)
          // A weak ETag never passes If-Match: writes need the row's own.
          await app.http.put(`${base}/${a.id}`).set('If-Match', after.headers.etag).send(rows.updateBody(name)).expect(412)
        })
      }

      it('embed of a field that is not a relation answers 400 on list and on detail', async () => {
        const row = await rows.create(name)
        expectError((await app.http.get(base).query({ embed: 'id' }).expect(400)).body, 400, /'embed'/)
        expectError((await app.http.get(`${base}/${row.id}`).query({ embed: 'no_such_relation' }).expect(400)).body, 400, /'embed'/)
      })
    })

    describe('aliases (x-alias)', () => {
      for (const field of aliased) {
        const alias = field.alias!
        const byAlias = async (body: Record<string, unknown>) => {
          const { [field.name]: value, ...rest } = body
          return { ...rest, [alias]: value }
        }

        it(`POST naming ${field.name} by its alias ${alias} stores it; answers carry both keys with the same value (POST, detail, list)`, async () => {
          const body = await rows.body(name)
          const res = await app.http
            .post(base)
            .send(await byAlias(body))
            .expect(201)
          const row = res.body[name]
          expect(row[field.name]).to.deep.equal(body[field.name])
          expect(row[alias]).to.deep.equal(body[field.name])
          expect(await detail(row.id)).to.deep.equal(row)
          const [listed] = (await list())[plural]
          expect(listed).to.deep.equal(row)
        })

        it(`POST giving ${field.name} and ${alias} the same value is fine; different values answer 400 naming ${alias}, and add nothing`, async () => {
          const body = await rows.body(name)
          await app.http
            .post(base)
            .send({ ...body, [alias]: body[field.name] })
            .expect(201)
          const other = await rows.value(name, field.name, 99)
          expect(other).to.not.deep.equal(body[field.name])
          const conflicting = { ...(await rows.body(name)), [alias]: other }
          const before = await tableChecksums(app.db, tables)
          const res = await app.http.post(base).send(conflicting).expect(400)
          expectError(res.body, 400)
          expect(res.body.code).to.equal('validation_failed')
          expect(res.body.payload.errors[alias]).to.match(new RegExp(`alias of '${field.name}'`))
          expect(await tableChecksums(app.db, tables)).to.deep.equal(before)
        })

        it(`PUT naming ${field.name} by ${alias} changes it; PUT giving both with different values answers 400 and changes nothing`, async () => {
          const row = await rows.create(name)
          const value = await rows.value(name, field.name, 98)
          await app.http
            .put(`${base}/${row.id}`)
            .set('If-Match', row.etag)
            .send({ [alias]: value })
            .expect(204)
          const changed = await detail(row.id)
          expect(changed[field.name]).to.deep.equal(value)
          expect(changed[alias]).to.deep.equal(value)
          const res = await app.http
            .put(`${base}/${row.id}`)
            .set('If-Match', '*')
            .send({ [field.name]: row[field.name], [alias]: value })
            .expect(400)
          expect(res.body.payload.errors).to.have.property(alias)
          expect(await detail(row.id)).to.deep.equal(changed)
        })

        httpOnly(`PUT with Prefer: return=representation answers both ${field.name} and ${alias}`, async () => {
          const row = await rows.create(name)
          const value = await rows.value(name, field.name, 97)
          const res = await app.http
            .put(`${base}/${row.id}`)
            .set('If-Match', row.etag)
            .set('Prefer', 'return=representation')
            .send({ [alias]: value })
            .expect(200)
          expect(res.body[name][field.name]).to.deep.equal(value)
          expect(res.body[name][alias]).to.deep.equal(value)
          expect(res.headers.etag).to.equal(`"${res.body[name].etag}"`)
        })

        it(`POST and PUT with ${alias} of the wrong JSON type answer 400 naming ${alias}, as sent`, async () => {
          const row = await rows.create(name)
          const post = await app.http
            .post(base)
            .send(await byAlias({ ...(await rows.body(name)), [field.name]: wrongTypeFor(field) }))
            .expect(400)
          expect(Object.keys(post.body.payload.errors)).to.deep.equal([alias])
          const put = await app.http
            .put(`${base}/${row.id}`)
            .set('If-Match', '*')
            .send({ [alias]: wrongTypeFor(field) })
            .expect(400)
          expect(Object.keys(put.body.payload.errors)).to.deep.equal([alias])
        })

        if (filterable.some((f) => f.name === field.name)) {
          it(`where and sort take ${alias} for ${field.name}`, async () => {
            const seeds = uniqueAlone(def, field.name) ? [3, 1, 2] : [3, 1, 3, 2]
            for (const seed of seeds) await rows.create(name, { [field.name]: await rows.value(name, field.name, seed) })
            const all = await allRows()
            const value = all[0][field.name]
            const byField = await list({ where: `${field.name}:${whereText(value)}`, limit: 200 })
            const byItsAlias = await list({ where: `${alias}:${whereText(value)}`, limit: 200 })
            expect(byItsAlias).to.deep.equal(byField)
            expect(byField[plural].length).to.be.at.least(1)
            for (const sort of [field.name, `-${field.name}`]) {
              const viaAlias = sort.replace(field.name, alias)
              expect(
                (await list({ sort: viaAlias, limit: 200 }))[plural].map((r: ApiRow) => r.id),
                viaAlias,
              ).to.deep.equal((await list({ sort, limit: 200 }))[plural].map((r: ApiRow) => r.id))
            }
            expectError(
              (
                await app.http
                  .get(base)
                  .query({ sort: `${field.name},-${alias}` })
                  .expect(400)
              ).body,
              400,
              /twice/,
            )
          })
        }

        if (field.relation) {
          it(`embed=${field.name} replaces the id under ${field.name} by the row; ${alias} keeps the id`, async () => {
            const row = await rows.create(name)
            const target = app.engine.resource(field.relation!.resource)
            const parent = (await app.http.get(`${app.engine.prefix}/${target.plural}/${row[field.name]}`).expect(200)).body[target.name]
            const one = (await app.http.get(`${base}/${row.id}`).query({ embed: field.name }).expect(200)).body[name]
            expect(one[field.name]).to.deep.equal(parent)
            expect(one[alias]).to.equal(row[field.name])
            const [listed] = (await list({ embed: field.name }))[plural]
            expect(listed[field.name]).to.deep.equal(parent)
            expect(listed[alias]).to.equal(row[field.name])
          })
        }
      }
    })

    describe('validation', () => {
      it('POST and PUT with an unknown field answer 400 naming it, and change nothing', async () => {
        const row = await rows.create(name)
        const body = { ...(await rows.body(name)), no_such_field: 1 }
        const before = await tableChecksums(app.db, tables)
        const post = await app.http.post(base).send(body).expect(400)
        expectError(post.body, 400)
        expect(post.body.payload.errors).to.have.property('no_such_field')
        const put = await app.http.put(`${base}/${row.id}`).set('If-Match', '*').send({ no_such_field: 1 }).expect(400)
        expect(put.body.payload.errors).to.have.property('no_such_field')
        expect(await tableChecksums(app.db, tables)).to.deep.equal(before)
      })

      it('POST and PUT of a field the engine owns (id, etag, created_at, updated_at) answer 400', async () => {
        const row = await rows.create(name)
        for (const field of ENGINE_FIELDS) {
          const res = await app.http
            .put(`${base}/${row.id}`)
            .set('If-Match', '*')
            .send({ [field]: row[field] })
            .expect(400)
          expect(res.body.payload.errors[field]).to.match(/read-only/)
        }
        const res = await app.http
          .post(base)
          .send({ ...(await rows.body(name)), id: MISSING })
          .expect(400)
        expect(res.body.payload.errors.id).to.match(/read-only/)
        expect(await detail(row.id)).to.deep.equal(row)
      })

      for (const field of def.fields.filter((f) => f.required)) {
        it(`POST without the required field ${field.name} answers 400 naming it`, async () => {
          const body = await rows.body(name)
          delete body[field.name]
          const res = await app.http.post(base).send(body).expect(400)
          expectError(res.body, 400)
          expect(res.body.payload.errors).to.have.property(field.name)
          expect((await list())._meta.count).to.equal(0)
        })
      }

      for (const field of def.fields) {
        it(`POST and PUT with ${field.name} of the wrong JSON type answer 400 naming it`, async () => {
          const row = await rows.create(name)
          const body = { ...(await rows.body(name)), [field.name]: wrongTypeFor(field) }
          const post = await app.http.post(base).send(body).expect(400)
          expect(post.body.payload.errors).to.have.property(field.name)
          const put = await app.http
            .put(`${base}/${row.id}`)
            .set('If-Match', '*')
            .send({ [field.name]: wrongTypeFor(field) })
            .expect(400)
          expect(put.body.payload.errors).to.have.property(field.name)
          expect(await detail(row.id)).to.deep.equal(row)
        })
      }
    })

    describe('unique keys', () => {
      for (const key of def.unique) {
        it(`POST of a row with the same ${key.join(', ')} as another answers 409 and adds nothing`, async () => {
          const a = await rows.create(name)
          const body = await rows.body(name)
          for (const f of key) body[f] = a[f]
          const before = (await list())._meta.count
          const res = await app.http.post(base).send(body).expect(409)
          expectError(res.body, 409, /already exists/)
          expect(res.body.payload.fields).to.deep.equal(key)
          expect((await list())._meta.count).to.equal(before)
        })

        it(`PUT giving a row the ${key.join(', ')} of another answers 409 and changes nothing`, async () => {
          const a = await rows.create(name)
          const b = await rows.create(name)
          const patch = Object.fromEntries(key.map((f) => [f, a[f]]))
          const res = await app.http.put(`${base}/${b.id}`).set('If-Match', b.etag).send(patch).expect(409)
          expectError(res.body, 409, /already exists/)
          expect(await detail(b.id)).to.deep.equal(b)
        })
      }
    })

    describe('relations', () => {
      for (const relation of relations) {
        const target = relation.relation!.resource
        it(`POST and PUT with ${relation.name} naming a missing ${target} answer 422 and change nothing`, async () => {
          const row = await rows.create(name)
          const body = await rows.body(name, { [relation.name]: MISSING })
          const before = await tableChecksums(app.db, tables)
          const post = await app.http.post(base).send(body).expect(422)
          expectError(post.body, 422, new RegExp(`related ${target} does not exist`))
          const put = await app.http
            .put(`${base}/${row.id}`)
            .set('If-Match', row.etag)
            .send({ [relation.name]: MISSING })
            .expect(422)
          expectError(put.body, 422)
          expect(await tableChecksums(app.db, tables)).to.deep.equal(before)
        })

        const onDelete = relation.relation!.onDelete
        it(`DELETE of a ${target} that a ${name} uses through ${relation.name} follows onDelete "${onDelete}"`, async () => {
          const child = await rows.create(name)
          const parentId = child[relation.name] as string
          const parentBase = `${app.engine.prefix}/${app.engine.resource(target).plural}`
          const res = await app.http.delete(`${parentBase}/${parentId}`).set('If-Match', '*')
          if (onDelete === 'restrict') {
            expect(res.status).to.equal(409)
            expectError(res.body, 409, new RegExp(`still used by ${plural}`))
            await app.http.get(`${parentBase}/${parentId}`).expect(200)
            expect(await detail(child.id)).to.deep.equal(child)
          } else if (onDelete === 'cascade') {
            expect(res.status).to.equal(204)
            await app.http.get(`${base}/${child.id}`).expect(404)
          } else {
            expect(res.status).to.equal(204)
            expect((await detail(child.id))[relation.name]).to.equal(null)
          }
        })
      }
    })
  })
}

/**
 * Ranks values of one field as the database orders them. Strings are ranked by PostgreSQL itself
 * (collations differ from JavaScript's order); other kinds have one obvious order.
 */
async function ranker(app: TestApp, kind: Kind, values: unknown[]): Promise<(v: unknown) => number> {
  switch (kind) {
    case 'string': {
      const { rows } = await app.db.raw('SELECT v FROM unnest(?::text[]) AS v GROUP BY v ORDER BY v', [values as string[]])
      const order = new Map<string, number>(rows.map((r: { v: string }, i: number) => [r.v, i]))
      return (v) => order.get(v as string)!
    }
    case 'datetime':
      return (v) => new Date(v as string).getTime()
    case 'boolean':
      return (v) => (v ? 1 : 0)
    case 'integer':
    case 'number':
      return (v) => Number(v)
    case 'uuid': {
      // PostgreSQL orders uuids by their bytes, which is the order of their lowercase hex text.
      const sorted = [...new Set(values as string[])].map((v) => v.toLowerCase()).sort()
      return (v) => sorted.indexOf((v as string).toLowerCase())
    }
  }
}
