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
  // A delete blocked by another table's foreign key names that table's constraint.
  for (const other of defs) {
    for (const field of other.fields) {
      if (field.relation?.resource === def.name) {
        names.set(constraintName(other.plural, [field.name], 'foreign'), { fields: [field.name], referenced: def.name, referencing: other.plural })
      }
    }
  }
  return (constraint) => names.get(constraint)
}

/** The fields of a resource stored as JSON (`object` and `array`). */
export function jsonFields(def: ResourceDefinition): string[] {
  return def.fields.filter((f) => f.kind === 'json').map((f) => f.name)
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

/** The table a resource definition asks for: columns in order, unique keys, foreign keys, indexes. */
export interface ExpectedTable {
  resource: string
  table: string
  columns: ExpectedColumn[]
  unique: string[][]
  foreign: ExpectedForeignKey[]
  /** Plain (non-unique) indexes, each a list of columns. */
  indexes: string[][]
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
 * x-unique key is a unique constraint; each x-relation a foreign key to the other resource's table.
 * Every foreign key, x-index field and `created_at` gets an index, unless a unique key already starts
 * with that column (its index serves the same lookups).
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
  const indexes = [...new Set(indexed)].filter((c) => !def.unique.some((key) => key[0] === c)).map((c) => [c])
  return { resource: def.name, table: def.plural, columns, unique: def.unique, foreign, indexes }
}

/**
 * The name knex gives a constraint or index by default, which the error messages rely on (see {@link constraintMeanings}), as PostgreSQL
 * stores it (identifiers longer than 63 bytes are cut).
 */
export function constraintName(table: string, columns: string[], kind: 'unique' | 'foreign' | 'index'): string {
  return `${table}_${columns.join('_')}_${kind}`.slice(0, 63)
}
