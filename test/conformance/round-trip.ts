import { expect } from 'chai'
import fc from 'fast-check'
import type { FieldDefinition, ResourceDefinition } from '../../core'
import { columnBounded } from '../../core/schema/derive'
import type { JsonSchema } from '../../core/schema/types'
import { engineTables, resetTables, type TestApp } from '../support'
import { letters, RowFactory, valueFromSchema } from './rows'

/**
 * Runs per resource and transport: small, so that the suite stays fast; `ROUND_TRIP_RUNS=2000 npm test`
 * (or `npx mocha test/conformance.test.ts`) searches harder, `ROUND_TRIP_SEED` replays a failure.
 */
const RUNS = Number(process.env.ROUND_TRIP_RUNS) || 25
const SEED = process.env.ROUND_TRIP_SEED ? Number(process.env.ROUND_TRIP_SEED) : undefined

// What the text rules refuse in a text field (control and invisible format characters, but the zero
// width joiner; line breaks and tabs where x-multiline): such values are refused, not stored.
const REFUSED_IN_TEXT = /(?![\t\n\r\u200d])[\p{Cc}\p{Cf}]/u
const REFUSED_IN_ONE_LINE = /[\p{Cc}]|(?!\u200d)\p{Cf}/u

/** Any text of valid code points with no NUL (nothing stores it): astral, combining, control, decomposed... */
const anyText = (maxLength: number) => fc.string({ unit: 'binary', maxLength }).filter((s) => !s.includes('\u0000'))

/** A double that reads back as written: finite, and not -0 (refused over HTTP, answered 0). */
const exactDouble = fc.double({ noNaN: true, noDefaultInfinity: true }).filter((n) => !Object.is(n, -0))

/** A key of a JSON object: any text but `__proto__`, which HTTP bodies refuse (documented, errors.protoKey). */
const jsonKey = anyText(8).filter((k) => k !== '__proto__')

/** Any JSON value of a few levels: what a free-form object or array field may hold. */
const jsonValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.maxSafeInteger(),
    exactDouble,
    anyText(20),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(jsonKey, tie('value'), { maxKeys: 4 }),
  ),
})).value

/**
 * Values a field's schema takes, as the engine stores them: text in NFC without the characters the text
 * rules refuse, integers up to their column's bounds, any finite double, date-times in the form the API
 * answers them (UTC, milliseconds), JSON of any depth. Schemas it cannot read (a pattern, a format other
 * than uuid and date-time...) get the valid values the row generator makes.
 */
function arbitraryFor(schema: JsonSchema, field?: FieldDefinition): fc.Arbitrary<unknown> {
  if (schema.const !== undefined) return fc.constant(schema.const)
  if (Array.isArray(schema.enum)) return fc.constantFrom(...(schema.enum as unknown[]).filter((v) => v !== null))
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type
  const fallback = fc.nat().map((seed) => valueFromSchema(schema, seed))
  switch (type) {
    case 'string': {
      if (schema.format === 'uuid') return fc.uuid()
      if (schema.format === 'date-time') {
        // Every year RFC 3339 and PostgreSQL share (PGlite's own parser read 1 to 99 as 1901 to 1999).
        return fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59.999Z'), noInvalidDate: true }).map((d) => d.toISOString())
      }
      if (schema.format !== undefined || schema.pattern !== undefined) return fallback
      const min = (schema.minLength as number | undefined) ?? 0
      const max = Math.min((schema.maxLength as number | undefined) ?? 64, 64)
      if (!field) return anyText(max).filter((s) => [...s].length >= min)
      const refused = field.schema['x-multiline'] === true ? REFUSED_IN_TEXT : REFUSED_IN_ONE_LINE
      return fc
        .oneof(fc.string({ unit: 'grapheme', maxLength: max }), fc.string({ unit: 'grapheme-composite', maxLength: max }), anyText(max))
        .map((s) => s.normalize('NFC'))
        .filter((s) => !refused.test(s) && !s.startsWith('\ufeff') && [...s].length >= min && [...s].length <= max && !(min >= 1 && s.trim() === ''))
    }
    case 'integer': {
      const bounded = field ? columnBounded(field) : schema
      if (bounded.exclusiveMinimum !== undefined || bounded.exclusiveMaximum !== undefined || bounded.multipleOf !== undefined) return fallback
      const min = (bounded.minimum as number | undefined) ?? Number.MIN_SAFE_INTEGER
      const max = (bounded.maximum as number | undefined) ?? Number.MAX_SAFE_INTEGER
      return fc.oneof(fc.constantFrom(min, max), fc.integer({ min, max }))
    }
    case 'number': {
      if (Object.keys(schema).some((k) => /imum|multipleOf/.test(k))) return fallback
      return exactDouble
    }
    case 'boolean':
      return fc.boolean()
    case 'array': {
      const items = schema.items as JsonSchema | undefined
      if (schema.minItems !== undefined || schema.uniqueItems || Array.isArray(items)) return fallback
      return fc.array(items ? arbitraryFor(items) : jsonValue, { maxLength: Math.min((schema.maxItems as number | undefined) ?? 5, 5) })
    }
    case 'object': {
      const properties = schema.properties as Record<string, JsonSchema> | undefined
      if (!properties) return schema.additionalProperties === false ? fc.constant({}) : fc.dictionary(jsonKey, jsonValue, { maxKeys: 5 })
      const required = (schema.required as string[] | undefined) ?? []
      return fc.record(Object.fromEntries(Object.entries(properties).map(([k, s]) => [k, arbitraryFor(s)])), {
        requiredKeys: required.filter((k) => k in properties),
      })
    }
    default:
      return fallback
  }
}

/** Fields whose value must differ between rows: members of a unique key. */
function uniqueFields(def: ResourceDefinition): Set<string> {
  return new Set(def.unique.flat())
}

/**
 * The property "every value read back equals the value sent", over the types of a resource's schema:
 * random bodies (every field, optional ones sometimes null) are POSTed then read with GET, and random
 * new values PUT then read again; each answered field must equal what was sent. Relations point at
 * parent rows made for each run. Members of a unique key get a distinct suffix, so runs do not collide.
 */
export interface RoundTripOptions {
  transport?: 'http' | 'services'
  /** What a resource's plugin documents it stores for a body (the componenttype trims its name); default: the body. */
  stored?: (body: Record<string, unknown>) => Record<string, unknown>
}

export function roundTripSuite(def: ResourceDefinition, getApp: () => TestApp, options: RoundTripOptions = {}): void {
  const stored = options.stored ?? ((body) => body)
  const { name, plural } = def
  const unique = uniqueFields(def)
  const answered = def.fields.filter((f) => !f.hidden)

  describe(`round trip: ${name}${options.transport === 'services' ? ' (through the services)' : ''}`, () => {
    let app: TestApp
    let base: string
    before(async () => {
      app = getApp()
      base = `${app.engine.prefix}/${plural}`
      await resetTables(app.db, engineTables(app.engine))
    })

    /** Random values for the fields of a body (relations excluded), optional fields sometimes null. */
    const values = fc.record(
      Object.fromEntries(
        def.fields
          .filter((f) => !f.relation)
          .map((f) => {
            const value = arbitraryFor(f.schema, f)
            return [f.name, f.required ? value : fc.option(value, { freq: 4 })]
          }),
      ),
    )

    /** The body of one run: the generated values, relations to fresh parents, unique text made distinct. */
    async function bodyOf(rows: RowFactory, generated: Record<string, unknown>): Promise<Record<string, unknown>> {
      const seed = rows.nextSeed()
      const body: Record<string, unknown> = { ...generated }
      for (const field of def.fields) {
        if (field.relation) {
          const id = await rows.value(name, field.name, seed)
          if (id !== null || field.required) body[field.name] = id
        } else if (unique.has(field.name) && typeof body[field.name] === 'string') {
          const max = (field.schema.maxLength as number | undefined) ?? 255
          const suffix = ` ${letters(seed, 6)}`
          body[field.name] =
            [...(body[field.name] as string)]
              .slice(0, max - suffix.length)
              .join('')
              .normalize('NFC') + suffix
        }
      }
      return body
    }

    function expectStored(row: Record<string, unknown>, body: Record<string, unknown>, what: string): void {
      const sent = stored(body)
      for (const field of answered) {
        if (field.name in sent) expect(row[field.name], `${what}: ${field.name}`).to.deep.equal(sent[field.name])
      }
    }

    it('every value POSTed, then PUT, reads back equal to the value sent (property test)', async function () {
      this.timeout(RUNS * 2_000 + 10_000)
      const rows = new RowFactory(app)
      await fc.assert(
        fc.asyncProperty(values, values, async (created, changed) => {
          const body = await bodyOf(rows, created)
          const post = await app.http.post(base).send(body)
          expect(post.status, post.text).to.equal(201)
          expectStored(post.body[name], body, 'POST answer')
          const id = post.body[name].id
          expectStored((await app.http.get(`${base}/${id}`).expect(200)).body[name], body, 'GET after POST')

          const patch = await bodyOf(rows, changed)
          const put = await app.http.put(`${base}/${id}`).set('If-Match', post.body[name].etag).send(patch)
          expect(put.status, put.text).to.equal(204)
          expectStored((await app.http.get(`${base}/${id}`).expect(200)).body[name], patch, 'GET after PUT')
        }),
        { numRuns: RUNS, seed: SEED },
      )
    })
  })
}
