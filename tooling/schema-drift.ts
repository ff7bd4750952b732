import type { Knex } from 'knex'
import { readCatalog, type LiveColumn, type LiveConstraint, type LiveTable } from './catalog'
import {
  COLUMN_TYPES,
  expectedTable,
  type ColumnDefault,
  type ExpectedColumn,
  type ExpectedForeignKey,
  type ExpectedTable,
  type ExpectedUnique,
  type SearchIndex,
  SEARCH_COLUMN,
} from '../core/schema/derive'
import type { ResourceDefinition } from '../core/schema/types'

/** The command that writes the migration bringing the database in line with the schemas. */
export const GENERATE_COMMAND = 'npm run db:generate'

/** One way a live table differs from what its schema asks for. */
export type Difference =
  | { kind: 'missing-table' }
  | { kind: 'missing-column'; column: ExpectedColumn }
  | { kind: 'extra-column'; column: LiveColumn }
  | { kind: 'column-type'; column: ExpectedColumn; live: LiveColumn }
  | { kind: 'column-nullable'; column: ExpectedColumn; live: LiveColumn }
  | { kind: 'column-default'; column: ExpectedColumn; live: LiveColumn }
  | { kind: 'missing-unique'; key: ExpectedUnique }
  | { kind: 'extra-unique'; constraint: LiveConstraint }
  | { kind: 'missing-foreign'; foreign: ExpectedForeignKey }
  | { kind: 'extra-foreign'; constraint: LiveConstraint }
  | { kind: 'missing-index'; columns: string[] }
  | { kind: 'extra-index'; constraint: LiveConstraint }
  | { kind: 'missing-trigger'; trigger: string }
  | { kind: 'missing-search-index'; index: SearchIndex }
  | { kind: 'extra-search-index'; live: LiveSearch }

/** Differences that only cost speed or a default value: the generator fixes them, start-up allows them. */
const TOLERATED = new Set<Difference['kind']>(['column-default', 'missing-index', 'extra-index'])

/**
 * A table's full-text search as the database has it: the generated column and the index named as the
 * generator names it, either of which may be missing.
 */
export interface LiveSearch {
  column?: LiveColumn
  index?: LiveConstraint
}

const same = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i])

/** Strips the quotes and the cast PostgreSQL prints around a literal default: `'a''b'::text` -> `a'b`. */
function literal(expr: string): string {
  const quoted = /^'((?:[^']|'')*)'::[a-z ]+(?:\(\d+\))?$/.exec(expr)
  return quoted ? quoted[1].replace(/''/g, "'") : expr
}

/** True when a live default expression is the schema's default. */
function defaultMatches(kind: ExpectedColumn['kind'], expected: ColumnDefault | undefined, live: string | null): boolean {
  if (!expected || live === null) return !expected && live === null
  if ('sql' in expected) return expected.alternatives.includes(live)
  const value = literal(live)
  switch (kind) {
    case 'integer':
    case 'number':
      return Number(value) === expected.value
    case 'boolean':
      return value === String(expected.value)
    case 'datetime':
      return Date.parse(value) === Date.parse(String(expected.value))
    case 'json':
      try {
        return JSON.stringify(JSON.parse(value)) === JSON.stringify(expected.value)
      } catch {
        return false
      }
    default:
      return value === expected.value
  }
}

/** True when a live foreign key is the expected one (column, referenced table, delete rule). */
function foreignMatches(fk: ExpectedForeignKey, c: LiveConstraint): boolean {
  return c.kind === 'foreign' && same(c.columns, [fk.column]) && c.references?.table === fk.table && c.references.onDelete === fk.onDelete
}

/** True when a live unique key is the expected one: the same columns or expressions, the same treatment of nulls. */
function uniqueMatches(key: ExpectedUnique, c: LiveConstraint): boolean {
  return c.kind === 'unique' && same(c.columns, key.columns) && (c.nullsNotDistinct ?? false) === key.nullsNotDistinct
}

/**
 * What a live full-text index covers, read back from its expression as PostgreSQL prints it
 * (`to_tsvector('simple'::regconfig, (COALESCE(name, ''::text) || ' '::text) || COALESCE(title, ''::text))`),
 * or undefined when the expression is not of the shape {@link searchIndex} writes.
 */
export function parseSearchVector(printed: string): { config: string; fields: string[] } | undefined {
  const whole = /^to_tsvector\('([a-z_]+)'::regconfig, (.*)\)$/s.exec(printed)
  if (!whole) return undefined
  const fields: string[] = []
  const rest = whole[2]
    .replace(/COALESCE\((?:"((?:[^"]|"")+)"|([a-z_][a-z0-9_$]*)), ''::text\)/g, (_, quoted: string | undefined, plain: string | undefined) => {
      fields.push(quoted !== undefined ? quoted.replace(/""/g, '"') : plain!)
      return ''
    })
    .replaceAll("' '::text", '')
  // What is left joins the fields: parentheses and `||` only.
  if (fields.length === 0 || !/^[()|\s]*$/.test(rest)) return undefined
  return { config: whole[1], fields }
}

/** The fields a live search column is generated from, or undefined when it is not of the shape the generator writes. */
export function liveSearchFields(live: LiveSearch): { config: string; fields: string[] } | undefined {
  return live.column?.default ? parseSearchVector(live.column.default) : undefined
}

/**
 * True when the live search is the one the schema asks for: the generated column over the same
 * configuration and fields in order, and the GIN index of that name on it.
 */
function searchMatches(index: SearchIndex, live: LiveSearch): boolean {
  const vector = liveSearchFields(live)
  return (
    vector !== undefined &&
    vector.config === index.config &&
    same(vector.fields, index.fields) &&
    live.index?.name === index.name &&
    same(live.index.columns, [SEARCH_COLUMN])
  )
}

/**
 * Compares the table a schema asks for with the live one. Plain indexes are compared only when they
 * are the generator's own (knex's `<table>_<columns>_index` names), so hand-made ones are left alone.
 */
export function diffTable(expected: ExpectedTable, live: LiveTable | undefined): Difference[] {
  if (!live) return [{ kind: 'missing-table' }]
  const diffs: Difference[] = []
  const liveColumns = new Map(live.columns.map((c) => [c.name, c]))
  for (const column of expected.columns) {
    const current = liveColumns.get(column.name)
    if (!current) {
      diffs.push({ kind: 'missing-column', column })
      continue
    }
    if (current.type !== COLUMN_TYPES[column.kind].sql) diffs.push({ kind: 'column-type', column, live: current })
    if (current.nullable !== column.nullable && !column.primary) diffs.push({ kind: 'column-nullable', column, live: current })
    if (!defaultMatches(column.kind, column.default, current.default)) diffs.push({ kind: 'column-default', column, live: current })
  }
  for (const column of live.columns) {
    if (column.name !== SEARCH_COLUMN && !expected.columns.some((c) => c.name === column.name)) diffs.push({ kind: 'extra-column', column })
  }

  const of = (kind: LiveConstraint['kind']) => live.constraints.filter((c) => c.kind === kind)
  for (const key of expected.unique) if (!of('unique').some((c) => uniqueMatches(key, c))) diffs.push({ kind: 'missing-unique', key })
  for (const c of of('unique')) if (!expected.unique.some((key) => uniqueMatches(key, c))) diffs.push({ kind: 'extra-unique', constraint: c })
  for (const fk of expected.foreign) if (!of('foreign').some((c) => foreignMatches(fk, c))) diffs.push({ kind: 'missing-foreign', foreign: fk })
  for (const c of of('foreign')) if (!expected.foreign.some((fk) => foreignMatches(fk, c))) diffs.push({ kind: 'extra-foreign', constraint: c })
  for (const cols of expected.indexes) if (!of('index').some((c) => same(c.columns, cols))) diffs.push({ kind: 'missing-index', columns: cols })
  for (const c of of('index')) {
    const ours = c.name === `${live.name}_${c.columns.join('_')}_index`.slice(0, 63)
    if (ours && !expected.indexes.some((cols) => same(c.columns, cols))) diffs.push({ kind: 'extra-index', constraint: c })
  }
  for (const trigger of expected.triggers) if (!live.triggers.includes(trigger)) diffs.push({ kind: 'missing-trigger', trigger })
  // The full-text search is its generated column and the index named as only the generator names it (`<table>_search`).
  const search = expected.search
  const liveSearch: LiveSearch = { column: liveColumns.get(SEARCH_COLUMN), index: of('index').find((c) => c.name === `${live.name}_search`.slice(0, 63)) }
  const matches = search !== undefined && searchMatches(search, liveSearch)
  if ((liveSearch.column || liveSearch.index) && !matches) diffs.push({ kind: 'extra-search-index', live: liveSearch })
  if (search && !matches) diffs.push({ kind: 'missing-search-index', index: search })
  return diffs
}

/** A difference in words, e.g. `column 'size' is integer in the database, the schema wants text`. */
export function describeDifference(d: Difference): string {
  switch (d.kind) {
    case 'missing-table':
      return 'the table does not exist'
    case 'missing-column':
      return `column '${d.column.name}' is missing`
    case 'extra-column':
      return `column '${d.column.name}' is in the database but not in the schema`
    case 'column-type':
      return `column '${d.column.name}' is ${d.live.type} in the database, the schema wants ${COLUMN_TYPES[d.column.kind].sql}`
    case 'column-nullable':
      return `column '${d.column.name}' is ${d.live.nullable ? 'nullable' : 'NOT NULL'} in the database, the schema wants ${d.column.nullable ? 'nullable (not required)' : 'NOT NULL (required)'}`
    case 'column-default':
      return `column '${d.column.name}' has default ${d.live.default ?? 'none'} in the database, the schema wants ${d.column.default ? ('sql' in d.column.default ? d.column.default.sql : JSON.stringify(d.column.default.value)) : 'none'}`
    case 'missing-unique':
      return `unique key (${d.key.columns.join(', ')})${d.key.nullsNotDistinct ? ' NULLS NOT DISTINCT' : ''} is missing`
    case 'extra-unique':
      return `unique key ${d.constraint.name} (${d.constraint.columns.join(', ')})${d.constraint.nullsNotDistinct ? ' NULLS NOT DISTINCT' : ''} is not in the schema's x-unique`
    case 'missing-foreign':
      return `foreign key ${d.foreign.column} -> ${d.foreign.table}.id (on delete ${d.foreign.onDelete}) is missing`
    case 'extra-foreign':
      return `foreign key ${d.constraint.name} (${d.constraint.columns.join(', ')} -> ${d.constraint.references?.table}, on delete ${d.constraint.references?.onDelete}) is not in the schema`
    case 'missing-index':
      return `index on (${d.columns.join(', ')}) is missing`
    case 'extra-index':
      return `index ${d.constraint.name} is not asked for by the schema`
    case 'missing-search-index':
      return `full-text index ${d.index.name} on (${d.index.fields.join(', ')}), for q, is missing`
    case 'extra-search-index': {
      const fields = liveSearchFields(d.live)?.fields
      return `full-text index ${d.live.index?.name ?? `column ${SEARCH_COLUMN}`}${fields ? ` on (${fields.join(', ')})` : ''} is not the one the schema's x-search fields ask for`
    }
    case 'missing-trigger':
      return `trigger ${d.trigger} (a new ETag and updated_at on every UPDATE, the database's own included) is missing`
  }
}

/** The warning about resource tables no schema owns, and what to do about them. */
export function orphanMessage(tables: string[]): string {
  return (
    `no schema owns table${tables.length > 1 ? 's' : ''} ${tables.join(', ')}: ${tables.length > 1 ? 'they keep their' : 'it keeps its'} rows, and ${tables.length > 1 ? 'their' : 'its'} foreign keys still bind the rows ${tables.length > 1 ? 'they reference' : 'it references'}. ` +
    `\`${GENERATE_COMMAND} -- --drop <table>\` writes a migration that drops one, \`-- --rename <old>=<new>\` one that renames it when a plural changed`
  )
}

/** The database does not match the schemas; the message lists every difference and the fix. */
export class SchemaDriftError extends Error {
  constructor(readonly drift: Array<{ resource: string; table: string; differences: Difference[] }>) {
    const lines = drift.flatMap(({ resource, table, differences }) => differences.map((d) => `- ${resource} (table ${table}): ${describeDifference(d)}`))
    super(
      `the database does not match the schemas:\n${lines.join('\n')}\n` +
        `Run \`${GENERATE_COMMAND}\` to write the migration, review it, then apply it (the server migrates at start-up).`,
    )
    this.name = 'SchemaDriftError'
  }
}

/**
 * Compares every resource's table with its schema in three catalog queries and throws
 * {@link SchemaDriftError} on a missing table, a missing or extra column, a wrong type or nullability,
 * a missing or extra unique or foreign key, or a missing row-version trigger (ETags would then miss
 * the database's own changes). Defaults and indexes are left to the generator.
 */
export async function checkSchemaDrift(db: Knex, defs: ResourceDefinition[]): Promise<void> {
  const live = await readCatalog(
    db,
    defs.map((d) => d.plural),
  )
  const drift = defs
    .map((def) => {
      const expected = expectedTable(def, defs)
      return { resource: def.name, table: def.plural, differences: diffTable(expected, live.get(def.plural)).filter((d) => !TOLERATED.has(d.kind)) }
    })
    .filter((r) => r.differences.length > 0)
  if (drift.length > 0) throw new SchemaDriftError(drift)
}
