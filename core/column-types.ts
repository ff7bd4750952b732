import type { FieldKind, OnDelete, ResourceDefinition } from './schema-loader'

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

/** Columns the engine adds to every table, around the schema's own fields. */
export const ENGINE_COLUMNS = {
  first: [{ name: 'id', kind: 'uuid', nullable: false, primary: true, default: { sql: 'gen_random_uuid()', alternatives: ['gen_random_uuid()'] } }],
  last: [
    { name: 'created_at', kind: 'datetime', nullable: false, default: NOW },
    { name: 'updated_at', kind: 'datetime', nullable: false, default: NOW },
    { name: 'etag', kind: 'string', nullable: false },
  ],
} satisfies Record<string, ExpectedColumn[]>

/**
 * The table of a resource. Required fields are NOT NULL; `default` becomes the column default; each
 * x-unique key is a unique constraint; each x-relation a foreign key to the other resource's table.
 * Every foreign key, x-index field and `created_at` gets an index, unless a unique key already starts
 * with that column (its index serves the same lookups).
 */
export function expectedTable(def: ResourceDefinition, defs: ResourceDefinition[]): ExpectedTable {
  const columns: ExpectedColumn[] = [
    ...ENGINE_COLUMNS.first,
    ...def.fields.map((f): ExpectedColumn => ({
      name: f.name,
      kind: f.kind,
      nullable: !f.required,
      ...(f.schema.default !== undefined ? { default: { value: f.schema.default } } : {}),
    })),
    ...ENGINE_COLUMNS.last,
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
 * The name knex gives a constraint or index by default, which core/registry.ts relies on, as PostgreSQL
 * stores it (identifiers longer than 63 bytes are cut).
 */
export function constraintName(table: string, columns: string[], kind: 'unique' | 'foreign' | 'index'): string {
  return `${table}_${columns.join('_')}_${kind}`.slice(0, 63)
}
