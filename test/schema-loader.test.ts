import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { createEngine, loadSchemas, SchemaError } from '../core'
import { expectedTable } from '../core/schema/derive'
import { SCHEMAS, testDatabase } from './support'

/** A schemas folder with the project's files plus `files` (name -> text or JSON value). */
function schemasWith(files: Record<string, unknown>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dci-schemas-'))
  for (const f of fs.readdirSync(SCHEMAS)) fs.copyFileSync(path.join(SCHEMAS, f), path.join(dir, f))
  for (const [name, content] of Object.entries(files)) {
    fs.writeFileSync(path.join(dir, name), typeof content === 'string' ? content : JSON.stringify(content))
  }
  return dir
}

/** A valid schema with one field `name`, changed by `extra` (merged at the top level). */
function schema(extra: Record<string, unknown> = {}, properties: Record<string, unknown> = {}) {
  return {
    type: 'object',
    properties: { name: { type: 'string' }, ...properties },
    required: ['name'],
    additionalProperties: false,
    ...extra,
  }
}

/** Asserts that loading the folder throws a SchemaError naming `file` and matching `problem`. */
function expectRefused(files: Record<string, unknown>, file: string, problem: RegExp): void {
  const dir = schemasWith(files)
  try {
    expect(() => loadSchemas(dir)).to.throw(SchemaError, new RegExp(`^${file.replace('.', '\\.')}: `))
    expect(() => loadSchemas(dir)).to.throw(problem)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

describe('schema files that stop start-up', () => {
  it('the project schemas and a valid probe.json load, so each refusal below is down to its one change', () => {
    const dir = schemasWith({ 'probe.json': schema() })
    try {
      expect(loadSchemas(dir).map((d) => d.name)).to.have.members(['component', 'componenttype', 'probe', 'remoteci', 'team'])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('invalid JSON is refused, naming the file and the parse error', () => {
    expectRefused({ 'probe.json': '{"type": "object", "properties": {' }, 'probe.json', /invalid JSON/)
  })

  it('a schema that is not an object (a list, a number, null) is refused', () => {
    for (const text of ['[]', '42', 'null', '"schema"']) expectRefused({ 'probe.json': text }, 'probe.json', /must be a JSON object/)
  })

  it('a field of an unknown type is refused, naming the field and the type', () => {
    expectRefused({ 'probe.json': schema({}, { size: { type: 'bigint' } }) }, 'probe.json', /field 'size' has unsupported type "bigint"/)
  })

  it('a field without a type is refused', () => {
    expectRefused({ 'probe.json': schema({}, { size: { minimum: 1 } }) }, 'probe.json', /field 'size' has unsupported type undefined/)
  })

  it('a relation to a resource that has no schema file is refused', () => {
    const field = { type: 'string', format: 'uuid', 'x-relation': 'ghost' }
    expectRefused({ 'probe.json': schema({}, { owner: field }) }, 'probe.json', /field 'owner' relates to unknown resource 'ghost'/)
  })

  for (const reserved of ['id', 'etag', 'created_at', 'updated_at']) {
    it(`a field named '${reserved}' is refused: the engine owns it`, () => {
      expectRefused({ 'probe.json': schema({}, { [reserved]: { type: 'string' } }) }, 'probe.json', new RegExp(`field '${reserved}' is reserved`))
    })
  }

  it('two schemas with the same plural are refused, naming both files', () => {
    expectRefused({ 'probe.json': schema({ 'x-plural': 'teams' }) }, 'team.json', /name or plural 'teams' is already used by probe\.json/)
  })

  it("a plural equal to another resource's name is refused", () => {
    expectRefused({ 'probe.json': schema({ 'x-plural': 'team' }) }, 'team.json', /name or plural 'team' is already used by probe\.json/)
  })

  it('a file name that is not a safe SQL identifier is refused', () => {
    expectRefused({ 'Robert-Tables.json': schema() }, 'Robert-Tables.json', /resource name 'Robert-Tables' is not a safe SQL identifier/)
  })

  it('a field name that is not a safe SQL identifier is refused', () => {
    expectRefused(
      { 'probe.json': schema({}, { 'name"; drop table teams; --': { type: 'string' } }) },
      'probe.json',
      /field name 'name"; drop table teams; --' is not a safe SQL identifier/,
    )
  })

  it('an x-plural that is not a safe SQL identifier is refused', () => {
    expectRefused(
      { 'probe.json': schema({ 'x-plural': 'probes; drop table teams' }) },
      'probe.json',
      /x-plural 'probes; drop table teams' is not a safe SQL identifier/,
    )
  })

  it('a table name knex uses for its migration history is refused', () => {
    expectRefused({ 'probe.json': schema({ 'x-plural': 'knex_migrations' }) }, 'probe.json', /table name 'knex_migrations' is reserved/)
  })

  it("a schema that ajv rejects (a keyword with a wrong value) is refused with ajv's reason", () => {
    expectRefused({ 'probe.json': schema({}, { size: { type: 'integer', minimum: 'one' } }) }, 'probe.json', /not a valid JSON Schema: .*minimum/)
  })

  it('a schema with an invalid regular expression is refused', () => {
    expectRefused({ 'probe.json': schema({}, { code: { type: 'string', pattern: '([a-z' } }) }, 'probe.json', /not a valid JSON Schema/)
  })

  it('createEngine refuses to start on a bad schema file and names it', async () => {
    const db = await testDatabase()
    const dir = schemasWith({ 'probe.json': schema({}, { size: { type: 'bigint' } }) })
    try {
      const err = await createEngine({ db, schemasDir: dir }).then(
        () => undefined,
        (e: Error) => e,
      )
      expect(err).to.be.instanceOf(SchemaError)
      expect(err!.message).to.equal(
        'probe.json: field \'size\' has unsupported type "bigint" (use string, integer, number, boolean, object or array; optional fields are the ones not in "required")',
      )
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('x-case-insensitive', () => {
  it('on a text field of a unique key it loads and marks the field; the key is a unique index on lower() (derive.ts)', () => {
    const dir = schemasWith({ 'probe.json': schema({ 'x-unique': [['name']] }, { name: { type: 'string', 'x-index': true, 'x-case-insensitive': true } }) })
    try {
      const defs = loadSchemas(dir)
      const probe = defs.find((d) => d.name === 'probe')!
      expect(probe.fields.find((f) => f.name === 'name')!.caseInsensitive).to.equal(true)
      const table = expectedTable(probe, defs)
      expect(table.unique).to.deep.equal([
        { fields: ['name'], columns: ['lower(name)'], nullsNotDistinct: false, expression: true, name: 'probes_name_unique' },
      ])
      // The index on lower(name) does not serve where=name:..., so an x-index field keeps its own.
      expect(table.indexes).to.deep.include(['name'])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a value other than true, or on a field that is not text, is refused', () => {
    expectRefused(
      { 'probe.json': schema({ 'x-unique': [['name']] }, { name: { type: 'string', 'x-case-insensitive': 'yes' } }) },
      'probe.json',
      /x-case-insensitive must be true, on a string field/,
    )
    expectRefused(
      { 'probe.json': schema({ 'x-unique': [['size']] }, { size: { type: 'integer', 'x-case-insensitive': true } }) },
      'probe.json',
      /field 'size': x-case-insensitive must be true, on a string field/,
    )
  })

  it('on a field in no x-unique key it is refused: it would change nothing', () => {
    expectRefused(
      { 'probe.json': schema({}, { name: { type: 'string', 'x-case-insensitive': true } }) },
      'probe.json',
      /field 'name': x-case-insensitive applies to unique keys, and the field is in no x-unique key/,
    )
  })
})
