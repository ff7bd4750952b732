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

  it('a $schema of another draft (2020-12) is refused, saying which draft schema files are written in', () => {
    expectRefused(
      { 'probe.json': schema({ $schema: 'https://json-schema.org/draft/2020-12/schema' }) },
      'probe.json',
      /\$schema "https:\/\/json-schema\.org\/draft\/2020-12\/schema" is not supported: schema files are JSON Schema draft-07 \("\$schema": "http:\/\/json-schema\.org\/draft-07\/schema#", or no \$schema\)/,
    )
  })

  it('a draft-07 $schema, with or without its #, loads', () => {
    for (const draft of ['http://json-schema.org/draft-07/schema#', 'http://json-schema.org/draft-07/schema']) {
      const dir = schemasWith({ 'probe.json': schema({ $schema: draft }) })
      try {
        expect(loadSchemas(dir).map((d) => d.name)).to.include('probe')
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    }
  })

  it('a title other than the file name is refused, naming the expected one', () => {
    expectRefused({ 'probe.json': schema({ title: 'widget' }) }, 'probe.json', /title "widget" must be the file's name, 'probe' \(or be left out\)/)
  })

  it('x-relation inside array items is refused: a list of relations is not supported', () => {
    const tags = { type: 'array', items: { type: 'string', format: 'uuid', 'x-relation': 'team' } }
    expectRefused(
      { 'probe.json': schema({}, { teams: tags }) },
      'probe.json',
      /field 'teams' \(at items\): x-relation is only allowed on a field itself, not inside items/,
    )
  })

  it('nullable is refused, saying that an optional field already takes null', () => {
    expectRefused(
      { 'probe.json': schema({}, { note: { type: 'string', nullable: true } }) },
      'probe.json',
      /field 'note': nullable is not JSON Schema \(draft-07\), and nothing would apply it: a field that is not in "required" already takes null/,
    )
  })

  it('a misspelt keyword is refused naming the field and the keyword, on the field or nested in it', () => {
    expectRefused({ 'probe.json': schema({}, { note: { type: 'string', minLenght: 1 } }) }, 'probe.json', /field 'note': unknown keyword 'minLenght'/)
    const nested = { type: 'object', properties: { inner: { type: 'array', items: { type: 'integer', maximun: 3 } } } }
    expectRefused({ 'probe.json': schema({}, { data: nested }) }, 'probe.json', /field 'data' \(at properties\.inner\.items\): unknown keyword 'maximun'/)
    const anyOf = { type: 'object', anyOf: [{ required: ['a'] }, { requird: ['b'] }] }
    expectRefused({ 'probe.json': schema({}, { data: anyOf }) }, 'probe.json', /field 'data' \(at anyOf\[1\]\): unknown keyword 'requird'/)
  })

  it('keywords nothing would apply are refused: readOnly, a top-level keyword on a field, x-index or default deeper than the field', () => {
    expectRefused({ 'probe.json': schema({}, { note: { type: 'string', readOnly: true } }) }, 'probe.json', /field 'note': readOnly is not supported/)
    expectRefused(
      { 'probe.json': schema({}, { note: { type: 'string', 'x-plural': 'notes' } }) },
      'probe.json',
      /field 'note': x-plural belongs at the top level/,
    )
    const deep = { type: 'object', properties: { a: { type: 'string', 'x-index': true } } }
    expectRefused({ 'probe.json': schema({}, { data: deep }) }, 'probe.json', /field 'data' \(at properties\.a\): x-index is only allowed on a field itself/)
    const defaulted = { type: 'array', items: { type: 'string', default: 'x' } }
    expectRefused({ 'probe.json': schema({}, { tags: defaulted }) }, 'probe.json', /field 'tags' \(at items\): default is only allowed on a field itself/)
    expectRefused({ 'probe.json': schema({ 'x-index': true }) }, 'probe.json', /unsupported top-level keyword 'x-index'/)
  })

  it("a plugin's property keyword loads on a field and is refused deeper; the engine's x- keywords load on fields", () => {
    const keywords = [{ name: 'x-secret', on: 'property' as const }]
    const good = schemasWith({
      'probe.json': schema({}, { note: { type: 'string', 'x-secret': true, 'x-index': true, 'x-multiline': true, default: 'a', writeOnly: true } }),
    })
    const bad = schemasWith({ 'probe.json': schema({}, { data: { type: 'object', properties: { a: { type: 'string', 'x-secret': true } } } }) })
    try {
      expect(
        loadSchemas(good, keywords)
          .find((d) => d.name === 'probe')!
          .fields.map((f) => f.name),
      ).to.deep.equal(['name', 'note'])
      expect(() => loadSchemas(bad, keywords)).to.throw(
        SchemaError,
        /^probe\.json: field 'data' \(at properties\.a\): x-secret is only allowed on a field itself/,
      )
    } finally {
      fs.rmSync(good, { recursive: true, force: true })
      fs.rmSync(bad, { recursive: true, force: true })
    }
  })

  it('an x-alias that is not a safe identifier, not a string, an engine field, or the name or alias of another field is refused, naming the field', () => {
    const ref = { type: 'string', format: 'uuid', 'x-relation': 'componenttype' }
    expectRefused({ 'probe.json': schema({}, { kind: { ...ref, 'x-alias': 'Kind-Id' } }) }, 'probe.json', /field 'kind': x-alias must be a field name/)
    expectRefused({ 'probe.json': schema({}, { kind: { ...ref, 'x-alias': 7 } }) }, 'probe.json', /field 'kind': x-alias must be a field name/)
    expectRefused({ 'probe.json': schema({}, { kind: { ...ref, 'x-alias': 'etag' } }) }, 'probe.json', /field 'kind': x-alias 'etag' is reserved/)
    expectRefused(
      { 'probe.json': schema({}, { kind: { ...ref, 'x-alias': 'name' } }) },
      'probe.json',
      /x-alias 'name' is already the name or alias of another field/,
    )
    expectRefused({ 'probe.json': schema({}, { kind: { ...ref, 'x-alias': 'kind' } }) }, 'probe.json', /x-alias 'kind' is already the name or alias/)
    expectRefused(
      { 'probe.json': schema({}, { kind: { ...ref, 'x-alias': 'kind_id' }, sort: { type: 'string', 'x-alias': 'kind_id' } }) },
      'probe.json',
      /x-alias 'kind_id' is already the name or alias of another field/,
    )
    expectRefused(
      { 'probe.json': schema({}, { data: { type: 'object', properties: { a: { type: 'string', 'x-alias': 'b' } } } }) },
      'probe.json',
      /field 'data' \(at properties\.a\): x-alias is only allowed on a field itself/,
    )
  })

  it('an x-alias loads on a field of any kind: the definition carries it', () => {
    const dir = schemasWith({ 'probe.json': schema({}, { label: { type: 'string', 'x-alias': 'title' } }) })
    try {
      const probe = loadSchemas(dir).find((d) => d.name === 'probe')!
      expect(probe.fields.find((f) => f.name === 'label')!.alias).to.equal('title')
      expect(probe.fields.find((f) => f.name === 'name')!.alias).to.equal(undefined)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('integer bounds beyond the 32-bit integer column are refused, naming the field and the bound', () => {
    for (const [key, value] of [
      ['maximum', 3_000_000_000],
      ['minimum', -2_147_483_649],
      ['exclusiveMaximum', 2 ** 40],
    ] as const) {
      expectRefused(
        { 'probe.json': schema({}, { priority: { type: 'integer', [key]: value } }) },
        'probe.json',
        new RegExp(`field 'priority': ${key} ${value} is beyond the range of an integer column \\(-2147483648\\.\\.2147483647\\)`),
      )
    }
    expectRefused({ 'probe.json': schema({}, { priority: { type: 'integer', enum: [1, 3_000_000_000] } }) }, 'probe.json', /enum value 3000000000 is beyond/)
    expectRefused({ 'probe.json': schema({}, { priority: { type: 'integer', default: 3_000_000_000 } }) }, 'probe.json', /default 3000000000 does not match/)
  })

  it('integer bounds at the edges of the integer column load, and so do numbers beyond it', () => {
    const dir = schemasWith({
      'probe.json': schema({}, { priority: { type: 'integer', minimum: -2_147_483_648, maximum: 2_147_483_647 }, big: { type: 'number', maximum: 1e15 } }),
    })
    try {
      expect(
        loadSchemas(dir)
          .find((d) => d.name === 'probe')!
          .fields.map((f) => f.name),
      ).to.deep.equal(['name', 'priority', 'big'])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('every schema of the project, the identity plugin and the test fixtures loads', () => {
    const root = path.resolve(__dirname, '..')
    const jsonFiles = (dir: string) =>
      fs
        .readdirSync(path.join(root, dir))
        .filter((f) => f.endsWith('.json'))
        .map((f) => path.join(root, dir, f))
    // Each folder with the project's and the identity plugin's schemas, so that its relations resolve.
    const identity = jsonFiles('core/identity/schemas')
    for (const dir of ['', 'test/fixtures/schemas', 'test/fixtures/identity-schemas', 'test/fixtures/plugin-schemas']) {
      const files = dir ? jsonFiles(dir) : identity
      expect(files, dir).to.not.be.empty
      const keywords = dir === 'test/fixtures/plugin-schemas' ? [{ name: 'x-keeper', on: 'resource' as const }] : []
      const names = loadSchemas(SCHEMAS, keywords, dir ? [...identity, ...files] : identity).map((d) => d.name)
      expect(names).to.include.members(['component', 'componenttype', 'remoteci', 'team'])
      for (const f of files) expect(names, f).to.include(path.basename(f, '.json'))
    }
  })

  it("the README's example schema is schemas/remoteci.json without its descriptions", () => {
    const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8')
    const section = readme.slice(readme.indexOf('## Adding a resource'))
    const example = JSON.parse(/```json\n([\s\S]*?)```/.exec(section)![1])
    const withoutDescriptions = (value: unknown): unknown =>
      Array.isArray(value)
        ? value.map(withoutDescriptions)
        : value && typeof value === 'object'
          ? Object.fromEntries(Object.entries(value).flatMap(([k, v]) => (k === 'description' ? [] : [[k, withoutDescriptions(v)]])))
          : value
    expect(example).to.deep.equal(withoutDescriptions(JSON.parse(fs.readFileSync(path.join(SCHEMAS, 'remoteci.json'), 'utf8'))))
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

describe('x-search', () => {
  it('on text fields it loads and marks them; the table gets one full-text index over them in schema order (derive.ts)', () => {
    const dir = schemasWith({
      'probe.json': schema({}, { title: { type: 'string', 'x-search': true }, size: { type: 'integer' }, body: { type: 'string', 'x-search': true } }),
    })
    try {
      const defs = loadSchemas(dir)
      const probe = defs.find((d) => d.name === 'probe')!
      expect(probe.fields.filter((f) => f.search).map((f) => f.name)).to.deep.equal(['title', 'body'])
      expect(expectedTable(probe, defs).search).to.deep.equal({
        name: 'probes_search',
        table: 'probes',
        fields: ['title', 'body'],
        config: 'simple',
        vector: `to_tsvector('simple', coalesce("title", '') || ' ' || coalesce("body", ''))`,
      })
      // The project searches the names of its four resources, and a component's title and project name.
      expect(
        Object.fromEntries(defs.filter((d) => d.name !== 'probe').map((d) => [d.name, d.fields.filter((f) => f.search).map((f) => f.name)])),
      ).to.deep.equal({
        component: ['name', 'canonical_project_name', 'title'],
        componenttype: ['name'],
        remoteci: ['name'],
        team: ['name'],
      })
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('false loads as no search: the table has no full-text index', () => {
    const dir = schemasWith({ 'probe.json': schema({}, { name: { type: 'string', 'x-search': false } }) })
    try {
      const defs = loadSchemas(dir)
      expect(expectedTable(defs.find((d) => d.name === 'probe')!, defs).search).to.equal(undefined)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a value other than a boolean is refused', () => {
    expectRefused({ 'probe.json': schema({}, { name: { type: 'string', 'x-search': 'yes' } }) }, 'probe.json', /field 'name': x-search must be true or false/)
  })

  it('on a field that is not text (a number, a uuid, a date-time, an object) it is refused, naming its kind', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ type: 'integer' }, 'integer'],
      [{ type: 'string', format: 'uuid' }, 'uuid'],
      [{ type: 'string', format: 'date-time' }, 'datetime'],
      [{ type: 'object' }, 'json'],
      [{ type: 'array', items: { type: 'string' } }, 'json'],
    ]
    for (const [field, kind] of cases) {
      expectRefused(
        { 'probe.json': schema({}, { field: { ...field, 'x-search': true } }) },
        'probe.json',
        new RegExp(`field 'field': x-search applies to text fields \\(a string that is not a uuid or a date-time\\); this one is ${kind}$`),
      )
    }
  })

  it('on a writeOnly field (a password) it is refused: q would tell which rows hold a word of it', () => {
    expectRefused(
      { 'probe.json': schema({}, { secret: { type: 'string', writeOnly: true, 'x-search': true } }) },
      'probe.json',
      /field 'secret': x-search cannot go on a writeOnly field: q would tell which rows hold a word of it/,
    )
  })

  it('inside items or a nested schema it is refused: only a field itself is searched', () => {
    expectRefused(
      { 'probe.json': schema({}, { tags: { type: 'array', items: { type: 'string', 'x-search': true } } }) },
      'probe.json',
      /field 'tags' \(at items\): x-search is only allowed on a field itself, where the engine applies it/,
    )
  })
})

describe('x-lookup', () => {
  it('a text field that is a unique key on its own loads as the lookup field; the project marks componenttypes and teams', () => {
    const dir = schemasWith({ 'probe.json': schema({ 'x-unique': [['name']], 'x-lookup': 'name' }) })
    try {
      const defs = loadSchemas(dir)
      expect(defs.find((d) => d.name === 'probe')!.lookup).to.equal('name')
      expect(Object.fromEntries(defs.map((d) => [d.name, d.lookup]))).to.deep.include({
        componenttype: 'name',
        team: 'name',
        component: undefined,
        remoteci: undefined,
      })
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a field that is not a unique key on its own is refused: unique in no key, or only with another field (a remoteci name in its team)', () => {
    expectRefused(
      { 'probe.json': schema({ 'x-lookup': 'name' }) },
      'probe.json',
      /x-lookup 'name' must be a unique key on its own \(x-unique: \[\["name"\]\]\)/,
    )
    expectRefused(
      { 'probe.json': schema({ 'x-unique': [['name', 'size']], 'x-lookup': 'name' }, { size: { type: 'integer' } }) },
      'probe.json',
      /x-lookup 'name' must be a unique key on its own/,
    )
  })

  it('an unknown field, a list of fields or a field that is not text is refused', () => {
    expectRefused(
      { 'probe.json': schema({ 'x-unique': [['name']], 'x-lookup': 'nmae' }) },
      'probe.json',
      /x-lookup must name one field of the schema \(got "nmae"\)/,
    )
    expectRefused({ 'probe.json': schema({ 'x-unique': [['name']], 'x-lookup': ['name'] }) }, 'probe.json', /x-lookup must name one field of the schema/)
    expectRefused(
      { 'probe.json': schema({ 'x-unique': [['size']], 'x-lookup': 'size' }, { size: { type: 'integer' } }) },
      'probe.json',
      /x-lookup 'size' must be a text field/,
    )
    expectRefused(
      { 'probe.json': schema({ 'x-unique': [['ref']], 'x-lookup': 'ref' }, { ref: { type: 'string', format: 'uuid' } }) },
      'probe.json',
      /x-lookup 'ref' must be a text field \(a uuid-shaped value is always an id\)/,
    )
  })

  it('on a property it is refused as a top-level keyword', () => {
    expectRefused(
      { 'probe.json': schema({ 'x-unique': [['name']] }, { name: { type: 'string', 'x-lookup': 'name' } }) },
      'probe.json',
      /x-lookup belongs at the top level/,
    )
  })
})
