import { ENGINE_FIELD_NAMES as PROTOCOL_ENGINE_FIELDS, type EngineFieldName } from '../../client/protocol'
import type { FieldDefinition, FieldKind, JsonSchema, OnDelete, ResourceDefinition } from './types'

/**
 * Everything computed from a schema, in one place: the engine's own fields, the bodies a client may
 * send, what an answer shows, the nullable rule, the table and its constraint names. Validation, the
 * repository, the list-query parser, openapi.json, the generated types and the migration tools all
 * read it from here.
 */

/** A field the engine adds to every resource and owns: clients read it, never write it. */
export interface EngineField {
  name: EngineFieldName
  kind: FieldKind
  /** As answers show it (JSON Schema 2020-12, read-only). */
  schema: JsonSchema
  /** Whether `where` and `sort` take it. */
  filterable: boolean
}

/** The engine's fields, in the order answers show them around the schema's own (`id` first). */
export const ENGINE_FIELDS: readonly EngineField[] = [
  { name: 'id', kind: 'uuid', filterable: true, schema: { type: 'string', format: 'uuid', readOnly: true, description: 'Set by the server at creation.' } },
  {
    name: 'created_at',
    kind: 'datetime',
    filterable: true,
    schema: { type: 'string', format: 'date-time', readOnly: true, description: 'When the row was created.' },
  },
  {
    name: 'updated_at',
    kind: 'datetime',
    filterable: true,
    schema: { type: 'string', format: 'date-time', readOnly: true, description: 'When the row last changed.' },
  },
  {
    name: 'etag',
    kind: 'string',
    filterable: false,
    schema: {
      type: 'string',
      pattern: '^[0-9a-f]{32}$',
      readOnly: true,
      description: 'Current entity tag; changes on every write. Send it back in `If-Match`.',
    },
  },
]

/** Their names, in the wire contract's order: a schema may not declare them, a body may not send them. */
export const ENGINE_FIELD_NAMES: readonly string[] = PROTOCOL_ENGINE_FIELDS
if (ENGINE_FIELDS.map((f) => f.name).join() !== PROTOCOL_ENGINE_FIELDS.join())
  throw new Error('ENGINE_FIELDS must follow ENGINE_FIELD_NAMES of client/protocol.ts')

/**
 * The nullable rule: a field that is not required may be omitted or null (stored as NULL, answered as
 * null). Its schema then also takes null, whatever constrains the value (`enum`, `const`).
 */
export function nullable(schema: JsonSchema): JsonSchema {
  const { const: only, ...rest } = schema
  const out: JsonSchema = { ...rest, type: [schema.type, 'null'] }
  if (Array.isArray(schema.enum)) out.enum = [...schema.enum, null]
  if ('const' in schema) out.enum = [only, null]
  return out
}

/**
 * The range of a PostgreSQL `integer` column, where every `integer` field is stored. The loader refuses
 * a schema whose bounds go beyond it; {@link columnBounded} adds it where a schema gives none.
 */
export const INTEGER_COLUMN_RANGE = { minimum: -2_147_483_648, maximum: 2_147_483_647 } as const

/**
 * A field's schema with the bounds its column sets: an `integer` field without a lower (upper) bound
 * gets the column's, so a value the column cannot hold is refused by validation, naming the field,
 * instead of by the database.
 */
export function columnBounded(field: Pick<FieldDefinition, 'kind' | 'schema'>): JsonSchema {
  if (field.kind !== 'integer') return field.schema
  const { schema } = field
  const out: JsonSchema = { ...schema }
  if (schema.minimum === undefined && schema.exclusiveMinimum === undefined) out.minimum = INTEGER_COLUMN_RANGE.minimum
  if (schema.maximum === undefined && schema.exclusiveMaximum === undefined) out.maximum = INTEGER_COLUMN_RANGE.maximum
  return out
}

/** A field's schema as bodies and answers take it: the schema file's within its column's bounds, nullable unless required. */
export function fieldSchema(field: FieldDefinition, transform: (schema: JsonSchema) => JsonSchema = (s) => s): JsonSchema {
  const schema = transform(columnBounded(field))
  return field.required ? schema : nullable(schema)
}

/**
 * The schema a body is checked against: the schema's fields (write-only ones included), each with the
 * nullable rule, unknown fields refused; on update nothing is required.
 */
export function bodySchema(def: ResourceDefinition, variant: 'create' | 'update'): JsonSchema {
  return {
    type: 'object',
    properties: Object.fromEntries(def.fields.map((f) => [f.name, fieldSchema(f)])),
    required: variant === 'update' ? [] : createRequired(def),
    additionalProperties: false,
  }
}

/**
 * The fields a create body must have: the required ones, less those with a `default` (the service
 * fills them) and the owner field (the access rules fill in the caller's team; the service still
 * refuses a row without it, see {@link requiredAfterHooks}). What validation, openapi.json and the
 * generated input types say alike.
 */
export function createRequired(def: ResourceDefinition): string[] {
  return def.fields.filter((f) => f.required && f.name !== def.owner && f.schema.default === undefined).map((f) => f.name)
}

/** Required fields a create body may omit for a before hook to fill: the owner field, if required. */
export function requiredAfterHooks(def: ResourceDefinition): string[] {
  return def.fields.filter((f) => f.required && f.name === def.owner).map((f) => f.name)
}

/** The `default` of each field that has one: what a create that omits the field stores. */
export function fieldDefaults(def: ResourceDefinition): Array<[field: string, value: unknown]> {
  return def.fields.filter((f) => f.schema.default !== undefined).map((f) => [f.name, f.schema.default])
}

/** The schema fields an answer shows: all but the write-only ones. */
export function answeredFields(def: ResourceDefinition): FieldDefinition[] {
  return def.fields.filter((f) => !f.hidden)
}

/** The fields `where` and `sort` take, with their kind: engine fields, then scalar answered fields. */
export function filterableFields(def: ResourceDefinition): Array<{ name: string; kind: FieldKind; schema: JsonSchema }> {
  const engine = ENGINE_FIELDS.filter((f) => f.filterable).map((f) => ({
    name: f.name,
    kind: f.kind,
    schema: { type: 'string', format: f.kind === 'uuid' ? 'uuid' : 'date-time' },
  }))
  return [
    ...engine,
    ...answeredFields(def)
      .filter((f) => f.kind !== 'json')
      .map((f) => ({ name: f.name, kind: f.kind, schema: columnBounded(f) })),
  ]
}

/** What a constraint name means, to word 409 and 422 answers. */
export interface ConstraintMeaning {
  fields?: string[]
  referenced?: string
  referencing?: string
}

/**
 * The constraints knex names by default on a resource's table (and the foreign keys of other tables
 * that point at it), mapped to what they mean.
 */
export function constraintMeanings(def: ResourceDefinition, defs: readonly ResourceDefinition[]): (constraint: string) => ConstraintMeaning | undefined {
  const names = new Map<string, ConstraintMeaning>()
  for (const key of def.unique) names.set(constraintName(def.plural, key, 'unique'), { fields: key })
  for (const field of def.fields) {
    if (field.relation) names.set(constraintName(def.plural, [field.name], 'foreign'), { fields: [field.name], referenced: field.relation.resource })
  }
  // A delete blocked by another table's foreign key names that table's constraint; one whose `set null`
  // would make two rows of another table equal on a unique key names that key.
  for (const other of defs) {
    for (const field of other.fields) {
      if (field.relation?.resource === def.name) {
        names.set(constraintName(other.plural, [field.name], 'foreign'), { fields: [field.name], referenced: def.name, referencing: other.plural })
        if (field.relation.onDelete !== 'set null') continue
        for (const key of other.unique.filter((k) => k.includes(field.name)))
          names.set(constraintName(other.plural, key, 'unique'), { fields: key, referenced: def.name, referencing: other.plural })
      }
    }
  }
  return (constraint) => names.get(constraint)
}

/** The fields of a resource stored as JSON (`object` and `array`). */
export function jsonFields(def: ResourceDefinition): string[] {
  return def.fields.filter((f) => f.kind === 'json').map((f) => f.name)
}

/**
 * The byte limits of one engine: the largest JSON value a write may store in a field that sets no
 * bound of its own (`maxFieldBytes`), and the largest request body (`bodyLimitBytes`).
 */
export interface ByteLimits {
  maxFieldBytes: number
  bodyLimitBytes: number
}

/**
 * The largest JSON text, in UTF-8 bytes, a write may store in the field, or undefined when its schema
 * already bounds it (a scalar, a uuid or date-time, a string with `maxLength` or `enum`): `x-max-bytes`
 * when the schema gives it, else `maxFieldBytes` for an object, an array or a string without a bound.
 */
export function fieldMaxBytes(field: FieldDefinition, maxFieldBytes: number): number | undefined {
  const own = field.schema['x-max-bytes']
  if (typeof own === 'number') return own
  if (field.kind === 'json') return maxFieldBytes
  if (field.kind === 'string' && field.schema.maxLength === undefined && !Array.isArray(field.schema.enum) && field.schema.const === undefined)
    return maxFieldBytes
  return undefined
}

/** The fields a write checks the size of, with their limit (see {@link fieldMaxBytes}). */
export function fieldByteCaps(def: ResourceDefinition, maxFieldBytes: number): Array<[field: string, maxBytes: number]> {
  return def.fields.flatMap((f): Array<[string, number]> => {
    const max = fieldMaxBytes(f, maxFieldBytes)
    return max === undefined ? [] : [[f.name, max]]
  })
}

/** Bytes of a row's JSON beyond its fields' values: braces, and per field its quoted key, colon and comma. */
const KEY_OVERHEAD = 4

/**
 * The most bytes one row of the resource can take as JSON, its write-only fields and alias keys
 * included (they are read too): each field's value at its largest ({@link fieldMaxBytes}, `maxLength`
 * at 4 bytes a character, an enum's longest value), and never more than a request body, since a row
 * is written one body at a time. A bound, not a size: it decides whether a page of `limit` such rows
 * can go over the answer's byte budget.
 */
export function maxRowBytes(def: ResourceDefinition, limits: ByteLimits): number {
  let total = 2
  for (const field of ENGINE_FIELDS) total += field.name.length + KEY_OVERHEAD + (field.kind === 'uuid' ? 38 : field.kind === 'datetime' ? 32 : 34)
  for (const f of def.fields) {
    const value = Math.min(valueMaxBytes(f, limits.maxFieldBytes), limits.bodyLimitBytes)
    total += f.name.length + KEY_OVERHEAD + value
    if (f.alias) total += f.alias.length + KEY_OVERHEAD + value
  }
  return total
}

/** The largest JSON text of one field's value (null included). */
function valueMaxBytes(field: FieldDefinition, maxFieldBytes: number): number {
  const capped = fieldMaxBytes(field, maxFieldBytes)
  const { schema } = field
  const bound = (() => {
    if (Array.isArray(schema.enum)) return Math.max(4, ...schema.enum.map((v) => Buffer.byteLength(JSON.stringify(v))))
    if (schema.const !== undefined) return Math.max(4, Buffer.byteLength(JSON.stringify(schema.const)))
    switch (field.kind) {
      case 'uuid':
        return 38
      case 'datetime':
        return 32
      case 'integer':
        return 11
      case 'number':
        return 24
      case 'boolean':
        return 5
      case 'string':
        // maxLength counts code points: at most 4 UTF-8 bytes each, and a quote or backslash escaped is 2.
        return typeof schema.maxLength === 'number' ? 4 * schema.maxLength + 2 : Number.POSITIVE_INFINITY
      default:
        return Number.POSITIVE_INFINITY
    }
  })()
  return Math.min(bound, capped ?? Number.POSITIVE_INFINITY)
}

/** How one kind of field is stored: its PostgreSQL type and the knex call that creates it. */
export interface ColumnType {
  /** The type as PostgreSQL's `format_type()` prints it, to compare with a live column. */
  sql: string
  /** The knex table-builder method and its extra arguments, to write a migration. */
  knex: { method: string; args?: string }
}

/**
 * The single table from JSON Schema to PostgreSQL, used by the migration generator, the start-up drift
 * check and the docs (README, "Adding a resource"). Strings with an `enum` are plain `text`: the schema
 * checks the values, so adding one needs no migration.
 *
 * | JSON Schema                               | PostgreSQL         |
 * |-------------------------------------------|--------------------|
 * | `string`                                  | `text`             |
 * | `string`, `format: uuid` (x-relation too) | `uuid`             |
 * | `string`, `format: date-time`             | `timestamptz(3)`   |
 * | `integer`                                 | `integer`          |
 * | `number`                                  | `double precision` |
 * | `boolean`                                 | `boolean`          |
 * | `object`, `array`                         | `jsonb`            |
 */
export const COLUMN_TYPES: Record<FieldKind, ColumnType> = {
  string: { sql: 'text', knex: { method: 'text' } },
  uuid: { sql: 'uuid', knex: { method: 'uuid' } },
  datetime: { sql: 'timestamp(3) with time zone', knex: { method: 'timestamp', args: '{ useTz: true, precision: 3 }' } },
  integer: { sql: 'integer', knex: { method: 'integer' } },
  number: { sql: 'double precision', knex: { method: 'double' } },
  boolean: { sql: 'boolean', knex: { method: 'boolean' } },
  json: { sql: 'jsonb', knex: { method: 'jsonb' } },
}

/** A column default: a JSON value from the schema's `default`, or an SQL expression the engine sets. */
export type ColumnDefault = { value: unknown } | { sql: string; alternatives: string[] }

/** One column a resource's table must have. */
export interface ExpectedColumn {
  name: string
  kind: FieldKind
  nullable: boolean
  default?: ColumnDefault
  primary?: boolean
}

/** A foreign key, named as knex names it: `<table>_<column>_foreign`. */
export interface ExpectedForeignKey {
  column: string
  table: string
  onDelete: OnDelete
}

/**
 * A unique key as the table enforces it. A plain key is a unique constraint; a key with a
 * case-insensitive field (`x-case-insensitive`) is a unique index on `lower(<column>)`; a composite
 * key with an optional member is `NULLS NOT DISTINCT`, so a null member is a value like any other (two
 * rows with the same name and no team are duplicates), as an index or a constraint.
 */
export interface ExpectedUnique {
  /** The schema's fields, in key order (what a 409 names). */
  fields: string[]
  /** Per field, what the index holds as PostgreSQL prints it: the column, or `lower(<column>)`. */
  columns: string[]
  nullsNotDistinct: boolean
  /** True when a field is compared case-insensitively: the key is then a unique index, not a constraint. */
  expression: boolean
  /** knex's default name, `<table>_<fields>_unique`, whichever form the key takes. */
  name: string
}

/** The table a resource definition asks for: columns in order, unique keys, foreign keys, indexes, triggers. */
export interface ExpectedTable {
  resource: string
  table: string
  columns: ExpectedColumn[]
  unique: ExpectedUnique[]
  foreign: ExpectedForeignKey[]
  /** Plain (non-unique) indexes, each a list of columns. */
  indexes: string[][]
  /** Row triggers the engine relies on, by name (see {@link ROW_VERSION_TRIGGER}). */
  triggers: string[]
  /** The full-text index of the `x-search` fields, when the resource has some. */
  search?: SearchIndex
}

/**
 * The text-search configuration of `q` and of the index: `simple` lowercases each word and keeps it
 * as written (no stemming, no stop words), so it finds names and versions as typed (`rhel`, `8.4.0`)
 * in any language, and behaves the same on PostgreSQL and the embedded database.
 */
export const SEARCH_CONFIG = 'simple'

/**
 * The column that holds a resource's searchable text as a `tsvector`: generated by PostgreSQL from the
 * `x-search` fields (`GENERATED ALWAYS AS (...) STORED`), so matching and ranking read a stored vector
 * and never parse text per row. No field can be named so (field names start with a letter), and the
 * engine never answers it (its statements name their columns when a table has it).
 */
export const SEARCH_COLUMN = '_search'

/**
 * The full-text index of a resource with `x-search` fields: the generated {@link SEARCH_COLUMN}, one
 * `tsvector` expression over those fields in schema order ({@link SearchIndex.vector}), and a GIN index
 * on it. The list query filters and ranks with the column.
 */
export interface SearchIndex {
  /** `<table>_search`: knex never names an index so (its names end in `_index`, `_unique`, `_foreign`). */
  name: string
  table: string
  /** The `x-search` fields, in schema order. */
  fields: string[]
  config: string
  /** `to_tsvector('simple', coalesce("name", '') || ' ' || coalesce("title", ''))`: what the column holds. */
  vector: string
}

/** The full-text index of a resource, or undefined when none of its fields has `x-search`. */
export function searchIndex(def: ResourceDefinition): SearchIndex | undefined {
  const fields = def.fields.filter((f) => f.search).map((f) => f.name)
  if (fields.length === 0) return undefined
  return {
    name: `${def.plural}_search`.slice(0, 63),
    table: def.plural,
    fields,
    config: SEARCH_CONFIG,
    vector: `to_tsvector('${SEARCH_CONFIG}', ${fields.map((f) => `coalesce("${f}", '')`).join(" || ' ' || ")})`,
  }
}

/** The statement that adds the {@link SEARCH_COLUMN} of `table`, generated from `vector` (PostgreSQL fills it for every row). */
export function searchColumnSql(table: string, vector: string): string {
  return `ALTER TABLE "${table}" ADD COLUMN "${SEARCH_COLUMN}" tsvector GENERATED ALWAYS AS (${vector}) STORED`
}

/** The statements that make a {@link SearchIndex}: its generated column, then its GIN index. */
export function searchIndexSql(index: SearchIndex): string[] {
  return [searchColumnSql(index.table, index.vector), `CREATE INDEX "${index.name}" ON "${index.table}" USING gin ("${SEARCH_COLUMN}")`]
}

/** The statements that remove a table's full-text index and its column (either may be missing). */
export function dropSearchSql(table: string, index: string): string[] {
  return [`DROP INDEX IF EXISTS "${index}"`, `ALTER TABLE "${table}" DROP COLUMN IF EXISTS "${SEARCH_COLUMN}"`]
}

/**
 * The trigger every resource table has: BEFORE UPDATE, for each row, it gives the row a new `etag`
 * and `updated_at` when the statement did not set a new etag itself. So a change the database makes
 * on its own (`ON DELETE SET NULL`, SQL by hand, a plugin's raw UPDATE) changes the ETag like one
 * made by the API, and the engine's own UPDATE, which sets the etag it answers, is left alone (one new
 * ETag per write). The etag is 32 hex digits as `newEtag()` makes them (md5 of a random UUID).
 * Migrations copy `functionSql` as it is when written (the generator adds it to every migration that
 * creates a resource table: `CREATE OR REPLACE` is harmless when it exists).
 */
export const ROW_VERSION_TRIGGER = {
  name: 'row_version',
  functionSql: [
    'CREATE OR REPLACE FUNCTION row_version() RETURNS trigger LANGUAGE plpgsql AS $$',
    'BEGIN',
    '  IF NEW.etag IS NOT DISTINCT FROM OLD.etag THEN',
    '    NEW.etag := md5(gen_random_uuid()::text);',
    '    NEW.updated_at := now();',
    '  END IF;',
    '  RETURN NEW;',
    'END',
    '$$',
  ].join('\n'),
  /** The statement that installs the trigger on one table. */
  createSql: (table: string) => `CREATE TRIGGER row_version BEFORE UPDATE ON "${table}" FOR EACH ROW EXECUTE FUNCTION row_version()`,
  dropSql: (table: string) => `DROP TRIGGER IF EXISTS row_version ON "${table}"`,
} as const

/**
 * The unique keys of a resource's table: one per `x-unique` entry, each field's column or
 * `lower(<column>)` for a text field with `x-case-insensitive`, NULLS NOT DISTINCT when the key has
 * several fields and one of them is optional (a single optional field stays distinct when null: many
 * users may have no e-mail).
 */
export function uniqueKeys(def: ResourceDefinition): ExpectedUnique[] {
  return def.unique.map((fields) => {
    const members = fields.map((name) => def.fields.find((f) => f.name === name))
    const columns = fields.map((name, i) => (members[i]?.caseInsensitive ? `lower(${name})` : name))
    return {
      fields,
      columns,
      nullsNotDistinct: fields.length > 1 && members.some((f) => f && !f.required),
      expression: members.some((f) => f?.caseInsensitive),
      name: constraintName(def.plural, fields, 'unique'),
    }
  })
}

const NOW: ColumnDefault = { sql: 'now()', alternatives: ['now()', 'CURRENT_TIMESTAMP'] }

/** How the engine's fields are stored: every column is NOT NULL; `id` is the primary key. */
const ENGINE_COLUMN: Record<EngineField['name'], Omit<ExpectedColumn, 'name' | 'kind'>> = {
  id: { nullable: false, primary: true, default: { sql: 'gen_random_uuid()', alternatives: ['gen_random_uuid()'] } },
  created_at: { nullable: false, default: NOW },
  updated_at: { nullable: false, default: NOW },
  etag: { nullable: false },
}

function engineColumn(field: EngineField): ExpectedColumn {
  return { name: field.name, kind: field.kind, ...ENGINE_COLUMN[field.name] }
}

/**
 * The table of a resource. Required fields are NOT NULL; `default` becomes the column default; each
 * x-unique key is a unique constraint or index ({@link uniqueKeys}); each x-relation a foreign key to the
 * other resource's table; every table has the {@link ROW_VERSION_TRIGGER}.
 * Every foreign key, x-index field and `created_at` gets an index, unless a unique key already starts
 * with that column itself, not `lower()` of it (its index serves the same lookups). The `x-search`
 * fields get one full-text index ({@link searchIndex}).
 */
export function expectedTable(def: ResourceDefinition, defs: readonly ResourceDefinition[]): ExpectedTable {
  const columns: ExpectedColumn[] = [
    engineColumn(ENGINE_FIELDS[0]),
    ...def.fields.map(
      (f): ExpectedColumn => ({
        name: f.name,
        kind: f.kind,
        nullable: !f.required,
        ...(f.schema.default !== undefined ? { default: { value: f.schema.default } } : {}),
      }),
    ),
    ...ENGINE_FIELDS.slice(1).map(engineColumn),
  ]
  const foreign = def.fields
    .filter((f) => f.relation)
    .map((f) => {
      const target = defs.find((d) => d.name === f.relation!.resource)
      if (!target) throw new Error(`${def.name}.${f.name} relates to unknown resource '${f.relation!.resource}'`)
      return { column: f.name, table: target.plural, onDelete: f.relation!.onDelete }
    })
  const indexed = [...def.fields.filter((f) => f.index || f.relation).map((f) => f.name), 'created_at']
  const unique = uniqueKeys(def)
  // A key on lower(<column>) does not serve lookups of the column itself.
  const indexes = [...new Set(indexed)].filter((c) => !unique.some((key) => key.columns[0] === c)).map((c) => [c])
  const search = searchIndex(def)
  return { resource: def.name, table: def.plural, columns, unique, foreign, indexes, triggers: [ROW_VERSION_TRIGGER.name], ...(search ? { search } : {}) }
}

/**
 * The name knex gives a constraint or index by default, which the error messages rely on (see {@link constraintMeanings}), as PostgreSQL
 * stores it (identifiers longer than 63 bytes are cut).
 */
export function constraintName(table: string, columns: string[], kind: 'unique' | 'foreign' | 'index'): string {
  return `${table}_${columns.join('_')}_${kind}`.slice(0, 63)
}

/**
 * The aliases of a resource's fields (`x-alias`), as pairs of the field's name and its alias. A body
 * may use either name ({@link canonicalBody}), `where` and `sort` take either, and answers carry both
 * keys with the same value ({@link addAliasKeys}): with `embed`, the embedded row replaces the value
 * under the field's own name and the alias keeps the id.
 */
export function fieldAliases(def: ResourceDefinition): Array<[field: string, alias: string]> {
  return def.fields.filter((f) => f.alias !== undefined).map((f) => [f.name, f.alias!])
}

/** The keys answers leave out: write-only fields and their aliases. */
export function hiddenKeys(def: ResourceDefinition): string[] {
  return def.fields.filter((f) => f.hidden).flatMap((f) => (f.alias ? [f.name, f.alias] : [f.name]))
}

/** Adds, in place, each alias key beside its field with the field's value (before any embed). */
export function addAliasKeys(aliases: ReadonlyArray<readonly [string, string]>, row: Record<string, unknown>): void {
  for (const [field, alias] of aliases) if (field in row) row[alias] = row[field]
}

/** Deep equality of two JSON values: a body may send a field and its alias with the same value. */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return false
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  const [ra, rb] = [a as Record<string, unknown>, b as Record<string, unknown>]
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(rb, k) && sameJson(ra[k], rb[k]))
}

/** A body with its aliases renamed to the fields' names, and which fields the body named by their alias. */
export interface CanonicalBody {
  body: Record<string, unknown>
  /** Field name -> the alias the body used for it: errors name a field as the client sent it. */
  sentAs: Map<string, string>
}

/**
 * Renames the aliases a body uses to their fields' names, so validation, hooks and the repository see
 * one name per field. A body that gives a field under both names with different values gets `conflicts`
 * (alias -> message) instead; the same value twice is fine. A body without aliases is answered as it is.
 */
export function canonicalBody(
  aliases: ReadonlyArray<readonly [string, string]>,
  body: Record<string, unknown>,
): CanonicalBody | { conflicts: Record<string, string> } {
  const sentAs = new Map<string, string>()
  let out = body
  let conflicts: Record<string, string> | undefined
  for (const [field, alias] of aliases) {
    if (!Object.hasOwn(body, alias)) continue
    if (Object.hasOwn(body, field) && !sameJson(body[field], body[alias])) {
      ;(conflicts ??= {})[alias] = `is an alias of '${field}', and the body gives them different values`
      continue
    }
    if (out === body) out = { ...body }
    if (!Object.hasOwn(body, field)) sentAs.set(field, alias)
    out[field] = body[alias]
    delete out[alias]
  }
  return conflicts ? { conflicts } : { body: out, sentAs }
}

/**
 * The schema of an alias key, from its field's schema as bodies and answers take it: the same values,
 * described as an alias. A relation's alias always holds the id, with `embed` too.
 */
export function aliasSchema(field: FieldDefinition, schema: JsonSchema): JsonSchema {
  const { description, ...rest } = schema
  const what = field.relation ? `the id of a ${field.relation.resource}, also with \`embed=${field.name}\`` : 'the same value'
  return { ...rest, description: `Alias of \`${field.name}\`: ${what}.${description ? ` ${String(description)}` : ''}` }
}

/**
 * The required fields of a create body as documents state them: a required field with an alias is
 * required under either name, so it leaves `required` for an `anyOf` of the two.
 */
export function documentedCreateRequired(def: ResourceDefinition): { required: string[]; anyOf?: JsonSchema[]; allOf?: JsonSchema[] } {
  const required = createRequired(def)
  const either = def.fields.filter((f) => f.alias && required.includes(f.name))
  if (either.length === 0) return { required }
  // `properties` of each branch only names the key: strict validators (ajv's strictRequired) ask it.
  const branch = (name: string) => ({ required: [name], properties: { [name]: true } })
  const alternatives = either.map((f) => ({ anyOf: [branch(f.name), branch(f.alias!)] }))
  const names = new Set(either.map((f) => f.name))
  return { required: required.filter((r) => !names.has(r)), ...(alternatives.length === 1 ? alternatives[0] : { allOf: alternatives }) }
}
