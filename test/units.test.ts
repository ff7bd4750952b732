import { expect } from 'chai'
import { parseTimestamptz } from '../core/data/db'
import { etagMatches, formatEtag, parseEtagHeader } from '../core/data/etag'
import { isConnectionError, isTransientStartupError, translateDbError } from '../core/data/pg-errors'
import { jsonTextProblem, keepsNumber } from '../core/http/json-text'
import { bodySchema, constraintName, ENGINE_FIELD_NAMES, filterableFields, nullable } from '../core/schema/derive'
import type { FieldDefinition, ResourceDefinition } from '../core/schema/types'
import { schemaAjv } from '../core/schema/vocabulary'

/** Table-driven tests of the pure parts: ETag headers, database error translation, schema derivation. */
describe('pure parts, table by table', () => {
  describe('ETag headers', () => {
    const cases: Array<[header: string | undefined, parsed: ReturnType<typeof parseEtagHeader>]> = [
      [undefined, undefined],
      ['', undefined],
      ['   ', undefined],
      ['*', { any: true }],
      [' * ', { any: true }],
      ['"abc"', { any: false, etags: ['abc'] }],
      ['abc', { any: false, etags: ['abc'] }],
      // If-Match compares strongly: a weak tag never matches, so it is dropped.
      ['W/"abc"', { any: false, etags: [] }],
      ['w/"abc"', { any: false, etags: [] }],
      ['"a", "b",W/"c"', { any: false, etags: ['a', 'b'] }],
      ['"a",,""', { any: false, etags: ['a'] }],
    ]
    for (const [header, parsed] of cases) {
      it(`${JSON.stringify(header)} parses as ${JSON.stringify(parsed)}`, () => {
        expect(parseEtagHeader(header)).to.deep.equal(parsed)
      })
    }
    const weak: Array<[header: string, parsed: ReturnType<typeof parseEtagHeader>]> = [
      ['W/"abc"', { any: false, etags: ['abc'] }],
      ['"a", W/"b"', { any: false, etags: ['a', 'b'] }],
      ['*', { any: true }],
    ]
    for (const [header, parsed] of weak) {
      it(`If-None-Match (weak comparison): ${JSON.stringify(header)} parses as ${JSON.stringify(parsed)}`, () => {
        expect(parseEtagHeader(header, 'weak')).to.deep.equal(parsed)
      })
    }
    it('matches: * any row, a list by membership; formats quoted', () => {
      expect(etagMatches({ any: true }, 'x')).to.equal(true)
      expect(etagMatches({ any: false, etags: ['a', 'x'] }, 'x')).to.equal(true)
      expect(etagMatches({ any: false, etags: ['a'] }, 'x')).to.equal(false)
      expect(formatEtag('abc')).to.equal('"abc"')
    })
  })

  describe('PostgreSQL error translation', () => {
    const describeConstraint = (name: string) =>
      ({
        teams_name_unique: { fields: ['name'] },
        remotecis_team_foreign: { fields: ['team'], referenced: 'team', referencing: 'remotecis' },
      })[name]
    const cases: Array<[error: object, operation: 'read' | 'write' | 'delete', status: number | undefined, code: string | undefined, message?: RegExp]> = [
      [{ code: '23505', constraint: 'teams_name_unique' }, 'write', 409, 'conflict', /same name already exists/],
      [{ code: '23505' }, 'write', 409, 'conflict', /same a unique key/],
      [{ code: '23503', constraint: 'remotecis_team_foreign' }, 'write', 422, 'related_not_found', /related team does not exist/],
      [{ code: '23503', constraint: 'remotecis_team_foreign' }, 'delete', 409, 'still_referenced', /still used by remotecis/],
      [{ code: '23001' }, 'delete', 409, 'still_referenced', /still used/],
      [{ code: '23502' }, 'write', 400, 'invalid_body'],
      [{ code: '22P02' }, 'read', 400, 'invalid_body'],
      [{ code: '22021' }, 'write', 400, 'invalid_body'],
      [{ code: '57014' }, 'read', 503, 'query_timeout'],
      [{ code: 'ECONNREFUSED' }, 'read', 503, 'unavailable'],
      [{ code: '57P01' }, 'write', 503, 'unavailable'],
      [{ nativeError: { code: '23505', constraint: 'teams_name_unique' } }, 'write', 409, 'conflict'],
      [{ code: '42P01' }, 'read', undefined, undefined],
      [{ message: 'boom' }, 'read', undefined, undefined],
    ]
    for (const [error, operation, status, code, message] of cases) {
      it(`${JSON.stringify(error)} on ${operation} -> ${status ?? 'not translated (a 500)'} ${code ?? ''}`, () => {
        const translated = translateDbError(error, { operation, resource: 'team', describeConstraint })
        expect(translated?.status).to.equal(status)
        expect(translated?.code).to.equal(code)
        if (message) expect(translated?.message).to.match(message)
      })
    }
    const startup: Array<[error: object, transient: boolean]> = [
      [{ code: '3D000' }, false],
      [{ code: '28P01' }, false],
      [{ code: '28000' }, false],
      [{ code: 'ENOTFOUND' }, false],
      [{ nativeError: { code: '3D000' } }, false],
      [{ code: 'EAI_AGAIN' }, true],
      [{ code: 'ECONNREFUSED' }, true],
      [{ code: 'ECONNRESET' }, true],
      [{ code: '57P03' }, true],
      [{ code: '53300' }, true],
      [{ code: '42P07' }, true],
      [{ code: '42710' }, true],
      [{ code: '23505', constraint: 'pg_type_typname_nsp_index' }, true],
      [{ code: '23505', constraint: 'pg_class_relname_nsp_index' }, true],
      [{ code: '23505', constraint: 'teams_name_unique' }, false],
      [{ message: 'Migration table is already locked' }, true],
      [{ code: '42601' }, false],
    ]
    for (const [error, transient] of startup) {
      it(`at start-up, ${JSON.stringify(error)} is ${transient ? 'waited out' : 'fatal'}`, () => {
        expect(isTransientStartupError(error)).to.equal(transient)
      })
    }

    it('finds a connection error through the wrappers of knex and objection', () => {
      expect(isConnectionError({ cause: { errors: [{ code: 'ECONNREFUSED' }] } })).to.equal(true)
      expect(isConnectionError({ name: 'KnexTimeoutError' })).to.equal(true)
      expect(isConnectionError({ code: '23505' })).to.equal(false)
    })
  })

  describe('schema derivation', () => {
    const field = (name: string, schema: Record<string, unknown>, extra: Partial<FieldDefinition> = {}): FieldDefinition => ({
      name,
      kind: 'string',
      required: false,
      schema,
      index: false,
      hidden: false,
      ...extra,
    })
    const def: ResourceDefinition = {
      name: 'widget',
      plural: 'widgets',
      file: 'widget.json',
      schema: {},
      unique: [['name']],
      access: {},
      readOnly: false,
      fields: [
        field('name', { type: 'string', minLength: 1 }, { required: true }),
        field('mode', { type: 'string', const: 'x' }),
        field('color', { type: 'string', enum: ['red', 'blue'] }),
        field('tags', { type: 'array' }, { kind: 'json' }),
        field('secret', { type: 'string', writeOnly: true }, { hidden: true }),
      ],
    }
    const cases: Array<[schema: Record<string, unknown>, nullable: Record<string, unknown>]> = [
      [{ type: 'string' }, { type: ['string', 'null'] }],
      [
        { type: 'string', enum: ['a'] },
        { type: ['string', 'null'], enum: ['a', null] },
      ],
      [
        { type: 'string', const: 'x' },
        { type: ['string', 'null'], enum: ['x', null] },
      ],
      [
        { type: 'object', properties: {} },
        { type: ['object', 'null'], properties: {} },
      ],
    ]
    for (const [schema, expected] of cases) {
      it(`the nullable rule: ${JSON.stringify(schema)} -> ${JSON.stringify(expected)}`, () => {
        expect(nullable(schema)).to.deep.equal(expected)
      })
    }
    it('body schemas take null for every optional field, the const one included, and refuse unknown fields', () => {
      const create = schemaAjv().compile(bodySchema(def, 'create'))
      expect(create({ name: 'a', mode: null, color: null, tags: null, secret: null })).to.equal(true)
      expect(create({ name: 'a', mode: 'x' })).to.equal(true)
      expect(create({ name: 'a', mode: 'y' })).to.equal(false)
      expect(create({ mode: 'x' })).to.equal(false)
      expect(create({ name: 'a', other: 1 })).to.equal(false)
      expect(schemaAjv().compile(bodySchema(def, 'update'))({})).to.equal(true)
    })
    it('where and sort take the engine fields but etag, and the scalar fields a client may read', () => {
      expect(filterableFields(def).map((f) => f.name)).to.deep.equal(['id', 'created_at', 'updated_at', 'name', 'mode', 'color'])
      expect(ENGINE_FIELD_NAMES).to.deep.equal(['id', 'created_at', 'updated_at', 'etag'])
    })
    it('constraint names are knex defaults, cut to the 63 bytes PostgreSQL keeps', () => {
      expect(constraintName('teams', ['name'], 'unique')).to.equal('teams_name_unique')
      expect(constraintName('t'.repeat(60), ['name'], 'foreign')).to.have.length(63)
    })
  })

  describe('what JSON.parse hides in a body text', () => {
    const numbers: Array<[literal: string, kept: boolean]> = [
      ['0', true],
      ['-1', true],
      ['1.0', true],
      ['1.5e1', true],
      ['1E2', true],
      ['0.1', true],
      ['1e300', true],
      ['5e-324', true],
      ['9007199254740991', true],
      ['9007199254740993', false],
      ['12345678901234567890', false],
      ['1152921504606846976', false],
      ['1e-400', false],
      ['-0', false],
      ['-0.0', false],
      ['1.00000000000000000001', false],
    ]
    for (const [literal, kept] of numbers) {
      it(`${literal} ${kept ? 'reads back as written' : 'would not read back as written'}`, () => {
        expect(keepsNumber(literal)).to.equal(kept)
      })
    }
    const texts: Array<[text: string, problem: ReturnType<typeof jsonTextProblem>]> = [
      ['{"a":1,"b":[1,2]}', undefined],
      ['{"a":1,"a":2}', { kind: 'duplicate-key', path: 'a' }],
      ['{"a":{"k":1},"b":{"k":1}}', undefined],
      ['{"a":[{"k":1},{"k":1,"k":2}]}', { kind: 'duplicate-key', path: 'a[1].k' }],
      ['{"s":"\\"a\\":1, 12345678901234567890","a":1}', undefined],
      ['{"a\\u0062":1,"ab":2}', { kind: 'duplicate-key', path: 'ab' }],
      ['{"n":[0, 1, -0]}', { kind: 'inexact-number', path: 'n[2]', literal: '-0' }],
      // Found by the fuzzer: a string after an empty object inside an array is a value, not a key.
      ['{"":[{},""]}', undefined],
      ['{"a":[{}, "x", {}],"a":1}', { kind: 'duplicate-key', path: 'a' }],
    ]
    for (const [text, problem] of texts) {
      it(`${text} -> ${JSON.stringify(problem)}`, () => {
        expect(jsonTextProblem(text)).to.deep.equal(problem)
      })
    }
  })
})

describe('parseTimestamptz: a timestamptz as PostgreSQL prints it, to the instant it names', () => {
  for (const [text, iso] of [
    ['2024-06-01 10:00:00.123+00', '2024-06-01T10:00:00.123Z'],
    ['0099-12-31 23:59:59.999+00', '0099-12-31T23:59:59.999Z'],
    ['0001-01-01 00:00:00+00', '0001-01-01T00:00:00.000Z'],
    ['2024-02-29 00:00:00.29+00', '2024-02-29T00:00:00.290Z'],
    ['2024-06-01 15:30:00+05:30', '2024-06-01T10:00:00.000Z'],
    ['2024-06-01 07:00:00-03', '2024-06-01T10:00:00.000Z'],
    ['1900-01-01 00:09:21+00:09:21', '1900-01-01T00:00:00.000Z'],
    ['0001-01-01 00:00:00+00 BC', '0000-01-01T00:00:00.000Z'],
  ] as const) {
    it(`${text} is ${iso}`, () => {
      expect((parseTimestamptz(text) as Date).toISOString()).to.equal(iso)
    })
  }
  it('infinity and -infinity are the infinities, as node-postgres answers them', () => {
    expect(parseTimestamptz('infinity')).to.equal(Number.POSITIVE_INFINITY)
    expect(parseTimestamptz('-infinity')).to.equal(Number.NEGATIVE_INFINITY)
  })
})
