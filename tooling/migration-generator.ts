import fs from 'node:fs'
import path from 'node:path'
import type { Knex } from 'knex'
import { orphanTables, readCatalog, readDefinitions, type LiveColumn, type LiveConstraint, type LiveTable } from './catalog'
import {
  COLUMN_TYPES,
  constraintName,
  expectedTable,
  ROW_VERSION_TRIGGER,
  dropSearchSql,
  searchColumnSql,
  searchIndexSql,
  type ExpectedColumn,
  type ExpectedForeignKey,
  type ExpectedTable,
  type ExpectedUnique,
} from '../core/schema/derive'
import { listMigrations, migrateLatest } from '../core/data/db'
import { literal, raw } from './migration-code'
import { assessRisks, RiskyMigrationError } from './migration-risks'
import { dropTables, renamedView, renameTable, sameColumns } from './orphans'
import { describeDifference, diffTable, GENERATE_COMMAND, type Difference } from './schema-drift'
import { loadSchemas } from '../core/schema/loader'
import type { ExtraKeywords, ResourceDefinition } from '../core/schema/types'

/** What one run of the generator found: the migration's code, or nothing when the database is in sync. */
export interface MigrationPlan {
  /** Tables the migration creates or changes, in the order `up` touches them. */
  tables: string[]
  /** Every difference in words, `resource (table): difference`. */
  summary: string[]
  /** Statements of `up` and `down`, each a line of TypeScript inside the function. */
  up: string[]
  down: string[]
  /** A short slug for the file name, e.g. `create_teams_remotecis`. */
  slug: string
}

const RULE: Record<string, string> = {
  restrict: 'RESTRICT',
  cascade: 'CASCADE',
  'set null': 'SET NULL',
  'no action': 'NO ACTION',
  'set default': 'SET DEFAULT',
}

const list = (columns: string[]) => `[${columns.map(literal).join(', ')}]`

/** `t.text('name').notNullable()...` for a column a schema asks for. */
function columnCall(c: ExpectedColumn, options: { alter?: boolean; foreign?: ExpectedForeignKey } = {}): string {
  const { method, args } = COLUMN_TYPES[c.kind].knex
  let call = `t.${method}(${literal(c.name)}${args ? `, ${args}` : ''})`
  if (c.primary && !options.alter) call += '.primary()'
  else if (!c.nullable) call += '.notNullable()'
  if (c.default && 'sql' in c.default) call += c.default.sql === 'now()' ? '.defaultTo(knex.fn.now())' : `.defaultTo(knex.raw(${literal(c.default.sql)}))`
  else if (c.default) call += `.defaultTo(${literal(c.default.value)})`
  if (options.foreign) call += `.references('id').inTable(${literal(options.foreign.table)}).onDelete('${RULE[options.foreign.onDelete]}')`
  return options.alter ? `${call}.alter()` : call
}

/** The knex call that recreates a live column as it is, for `down`. */
function liveColumnCall(c: LiveColumn, alter = false): string {
  const kind = (Object.keys(COLUMN_TYPES) as Array<keyof typeof COLUMN_TYPES>).find((k) => COLUMN_TYPES[k].sql === c.type)
  let call = kind
    ? `t.${COLUMN_TYPES[kind].knex.method}(${literal(c.name)}${COLUMN_TYPES[kind].knex.args ? `, ${COLUMN_TYPES[kind].knex.args}` : ''})`
    : `t.specificType(${literal(c.name)}, ${literal(c.type)})`
  if (!c.nullable) call += '.notNullable()'
  if (c.default !== null) call += `.defaultTo(knex.raw(${literal(c.default)}))`
  return alter ? `${call}.alter()` : call
}

function addForeign(table: string, fk: ExpectedForeignKey): string {
  return `t.foreign([${literal(fk.column)}], ${literal(constraintName(table, [fk.column], 'foreign'))}).references('id').inTable(${literal(fk.table)}).onDelete('${RULE[fk.onDelete]}')`
}

const isRaw = (call: string) => call.startsWith('await ')

/** A plain unique key is knex's `t.unique`; one with NULLS NOT DISTINCT or `lower()` is written in SQL. */
function plainUnique(key: ExpectedUnique): boolean {
  return !key.nullsNotDistinct && !key.expression
}

/** The SQL of a unique key knex cannot write: a constraint NULLS NOT DISTINCT, or a unique index on `lower()`. */
function uniqueSql(table: string, key: ExpectedUnique): string {
  const columns = key.fields.map((f, i) => (key.columns[i] === f ? `"${f}"` : `lower("${f}")`)).join(', ')
  const nulls = key.nullsNotDistinct ? ' NULLS NOT DISTINCT' : ''
  if (key.expression) return `CREATE UNIQUE INDEX "${key.name}" ON "${table}" (${columns})${nulls}`
  return `ALTER TABLE "${table}" ADD CONSTRAINT "${key.name}" UNIQUE${nulls} (${columns})`
}

function addUnique(table: string, key: ExpectedUnique): string {
  return plainUnique(key) ? `t.unique(${list(key.fields)})` : raw(uniqueSql(table, key))
}

function dropUnique(table: string, key: ExpectedUnique): string {
  if (plainUnique(key)) return `t.dropUnique(${list(key.fields)})`
  return raw(key.expression ? `DROP INDEX IF EXISTS "${key.name}"` : `ALTER TABLE "${table}" DROP CONSTRAINT IF EXISTS "${key.name}"`)
}

function dropConstraint(c: LiveConstraint): string {
  if (c.kind === 'unique' && c.indexOnly) return raw(`DROP INDEX IF EXISTS "${c.name}"`)
  const method = c.kind === 'foreign' ? 'dropForeign' : c.kind === 'unique' ? 'dropUnique' : 'dropIndex'
  return `t.${method}(${list(c.columns)}, ${literal(c.name)})`
}

function addLiveConstraint(table: string, c: LiveConstraint): string {
  if (c.kind === 'foreign')
    return `t.foreign(${list(c.columns)}, ${literal(c.name)}).references('id').inTable(${literal(c.references!.table)}).onDelete('${RULE[c.references!.onDelete]}')`
  if (c.kind === 'unique' && c.indexOnly && c.definition) return raw(c.definition)
  if (c.kind === 'unique' && c.nullsNotDistinct)
    return raw(`ALTER TABLE "${table}" ADD CONSTRAINT "${c.name}" UNIQUE NULLS NOT DISTINCT (${c.columns.map((col) => `"${col}"`).join(', ')})`)
  if (c.kind === 'unique') return `t.unique(${list(c.columns)}, { indexName: ${literal(c.name)} })`
  return `t.index(${list(c.columns)}, ${literal(c.name)})`
}

/** The lines that create (or replace) the row-version trigger function, as a migration writes them. */
function rowVersionFunction(): string[] {
  return ['await knex.raw(`', ...ROW_VERSION_TRIGGER.functionSql.split('\n'), '`)']
}

/** A table block of knex calls; raw statements among `calls` go before it (`rawFirst`, for drops) or after it. */
function block(verb: 'createTable' | 'alterTable', table: string, calls: string[], rawFirst = false): string[] {
  const inside = calls.filter((c) => !isRaw(c))
  const outside = calls.filter(isRaw)
  const lines = inside.length === 0 ? [] : [`await knex.schema.${verb}(${literal(table)}, (t) => {`, ...inside.map((c) => `  ${c}`), '})']
  return rawFirst ? [...outside, ...lines] : [...lines, ...outside]
}

/** New tables in an order where each comes after the tables it references (cycles keep file order). */
function creationOrder(tables: ExpectedTable[]): ExpectedTable[] {
  const ordered: ExpectedTable[] = []
  const visiting = new Set<string>()
  const visit = (t: ExpectedTable) => {
    if (ordered.includes(t) || visiting.has(t.table)) return
    visiting.add(t.table)
    for (const fk of t.foreign) {
      const target = tables.find((o) => o.table === fk.table)
      if (target) visit(target)
    }
    ordered.push(t)
  }
  tables.forEach(visit)
  return ordered
}

/** The changes of one existing table, grouped in the order they must run. */
function alterations(expected: ExpectedTable, live: LiveTable, diffs: Difference[]) {
  const dropColumns = diffs.flatMap((d) => (d.kind === 'extra-column' ? [d.column] : []))
  const addColumns = diffs.flatMap((d) => (d.kind === 'missing-column' ? [d.column] : []))
  const altered = [
    ...new Set(diffs.flatMap((d) => (d.kind === 'column-type' || d.kind === 'column-nullable' || d.kind === 'column-default' ? [d.column.name] : []))),
  ]
  const dropConstraints = diffs.flatMap((d) => (d.kind === 'extra-unique' || d.kind === 'extra-foreign' || d.kind === 'extra-index' ? [d.constraint] : []))
  // A full-text search whose fields changed is dropped first (its column before the columns it is
  // generated from) and made anew with the others; down() puts it back as it was.
  const dropSearch = diffs.flatMap((d) => (d.kind === 'extra-search-index' ? [d.live] : []))
  const gone = (c: LiveConstraint) => c.columns.some((col) => dropColumns.some((d) => d.name === col))
  const add: string[] = []
  const undoAdd: string[] = []
  for (const d of diffs) {
    if (d.kind === 'missing-unique') {
      add.push(addUnique(expected.table, d.key))
      undoAdd.push(dropUnique(expected.table, d.key))
    } else if (d.kind === 'missing-trigger') {
      add.push(raw(ROW_VERSION_TRIGGER.createSql(expected.table)))
      undoAdd.push(raw(ROW_VERSION_TRIGGER.dropSql(expected.table)))
    } else if (d.kind === 'missing-foreign') {
      add.push(addForeign(expected.table, d.foreign))
      undoAdd.push(`t.dropForeign([${literal(d.foreign.column)}])`)
    } else if (d.kind === 'missing-index') {
      add.push(`t.index(${list(d.columns)})`)
      undoAdd.push(`t.dropIndex(${list(d.columns)})`)
    } else if (d.kind === 'missing-search-index') {
      add.push(...searchIndexSql(d.index).map(raw))
      undoAdd.push(...dropSearchSql(expected.table, d.index.name).map(raw))
    }
  }
  // A column made NOT NULL that has a default: rows without a value get it first, or SET NOT NULL fails.
  const fills = diffs.flatMap((d) => {
    if (d.kind !== 'column-nullable' || d.column.nullable || !d.column.default) return []
    const value = 'sql' in d.column.default ? undefined : d.column.default.value
    const to = 'sql' in d.column.default ? d.column.default.sql : '?'
    const bindings = [live.name, d.column.name, ...(value === undefined ? [] : [d.column.kind === 'json' ? JSON.stringify(value) : value]), d.column.name]
    return [
      `// Gives ${live.name}.${d.column.name} the schema's default where it is null, so that NOT NULL holds.`,
      `await knex.raw('UPDATE ?? SET ?? = ${to} WHERE ?? IS NULL', [${bindings.map(literal).join(', ')}])`,
    ]
  })
  const column = (name: string) => expected.columns.find((c) => c.name === name)!
  const liveColumn = (name: string) => live.columns.find((c) => c.name === name)!
  return {
    drops: [
      ...dropSearch.flatMap((s) => dropSearchSql(live.name, s.index?.name ?? `${live.name}_search`.slice(0, 63)).map(raw)),
      ...dropConstraints.filter((c) => !gone(c)).map(dropConstraint),
      ...dropColumns.map((c) => `t.dropColumn(${literal(c.name)})`),
    ],
    undoDrops: [
      ...dropColumns.map((c) => liveColumnCall(c)),
      ...dropConstraints.map((c) => addLiveConstraint(live.name, c)),
      ...dropSearch.flatMap((s) => [
        ...(s.column?.default ? [raw(searchColumnSql(live.name, s.column.default))] : []),
        ...(s.index?.definition ? [raw(s.index.definition)] : []),
      ]),
    ],
    /** The trigger function must exist before a trigger is created on the table. */
    needsFunction: diffs.some((d) => d.kind === 'missing-trigger'),
    columns: [...addColumns.map((c) => columnCall(c)), ...altered.map((name) => columnCall(column(name), { alter: true }))],
    undoColumns: [...addColumns.map((c) => `t.dropColumn(${literal(c.name)})`), ...altered.map((name) => liveColumnCall(liveColumn(name), true))],
    fills,
    constraints: add,
    undoConstraints: undoAdd,
    warnings: [
      ...dropColumns.map((c) => `// Drops column ${live.name}.${c.name} and its data; down() brings back the column, not the data.`),
      ...addColumns
        .filter((c) => !c.nullable && !c.default)
        .map((c) => `// ${live.name}.${c.name} is required and has no default: this fails if the table has rows (add a default or backfill).`),
    ],
  }
}

/**
 * Compares the schemas of `defs` (all of them, or the resources named in `only`) with the live tables
 * and returns the migration that brings the database in line, or undefined when it already is.
 */
export function planMigration(defs: ResourceDefinition[], live: Map<string, LiveTable>, only?: string[]): MigrationPlan | undefined {
  const chosen = only?.length ? defs.filter((d) => only.includes(d.name)) : defs
  const summary: string[] = []
  const created: ExpectedTable[] = []
  const changed: Array<{ expected: ExpectedTable; diffs: Difference[]; live: LiveTable }> = []
  for (const def of chosen) {
    const expected = expectedTable(def, defs)
    const current = live.get(def.plural)
    const diffs = diffTable(expected, current)
    if (diffs.length === 0) continue
    summary.push(...diffs.map((d) => `${def.name} (${def.plural}): ${describeDifference(d)}`))
    if (!current) created.push(expected)
    else changed.push({ expected, diffs, live: current })
  }
  if (summary.length === 0) return undefined
  for (const t of [...created, ...changed.map((c) => c.expected)]) {
    const missing = t.foreign.find((fk) => !live.has(fk.table) && !created.some((c) => c.table === fk.table))
    if (missing) throw new Error(`${t.resource} relates to table ${missing.table}, which does not exist and is not being generated: name its resource too`)
  }

  const ordered = creationOrder(created)
  const existing = new Set(live.keys())
  const deferred: Array<{ table: string; fk: ExpectedForeignKey }> = []
  const up: string[] = []
  const down: string[] = []
  const steps = changed.map((c) => ({ table: c.expected.table, ...alterations(c.expected, c.live, c.diffs) }))

  for (const s of steps) up.push(...s.warnings, ...block('alterTable', s.table, s.drops, true))
  if (ordered.some((t) => t.triggers.length) || steps.some((s) => s.needsFunction)) up.push(...rowVersionFunction())
  for (const t of ordered) {
    const ready = (fk: ExpectedForeignKey) => fk.table === t.table || existing.has(fk.table)
    for (const fk of t.foreign.filter((f) => !ready(f))) deferred.push({ table: t.table, fk })
    const calls = t.columns.map((c) => columnCall(c, { foreign: t.foreign.find((f) => f.column === c.name && ready(f)) }))
    calls.push(...t.unique.map((key) => addUnique(t.table, key)), ...t.indexes.map((cols) => `t.index(${list(cols)})`))
    calls.push(...t.triggers.map(() => raw(ROW_VERSION_TRIGGER.createSql(t.table))))
    if (t.search) calls.push(...searchIndexSql(t.search).map(raw))
    up.push(...block('createTable', t.table, calls))
    existing.add(t.table)
  }
  for (const { table, fk } of deferred) up.push(...block('alterTable', table, [addForeign(table, fk)]))
  for (const s of steps) up.push(...s.fills, ...block('alterTable', s.table, s.columns))
  for (const s of steps) up.push(...block('alterTable', s.table, s.constraints))

  for (const s of [...steps].reverse()) down.push(...block('alterTable', s.table, s.undoConstraints, true))
  for (const s of [...steps].reverse()) down.push(...block('alterTable', s.table, s.undoColumns))
  for (const { table, fk } of [...deferred].reverse()) down.push(...block('alterTable', table, [`t.dropForeign([${literal(fk.column)}])`]))
  for (const t of [...ordered].reverse()) down.push(`await knex.schema.dropTable(${literal(t.table)})`)
  for (const s of [...steps].reverse()) down.push(...block('alterTable', s.table, s.undoDrops))

  const tables = [...ordered.map((t) => t.table), ...steps.map((s) => s.table)]
  const slug = `${changed.length === 0 ? 'create' : created.length === 0 ? 'alter' : 'update'}_${tables.join('_')}`.slice(0, 80)
  return { tables, summary, up, down, slug }
}

/** The migration file's text: a frozen snapshot of knex calls that never reads the schema files. */
function renderMigration(plan: MigrationPlan, sources: string[]): string {
  const indent = (lines: string[]) => lines.map((l) => `  ${l}`).join('\n')
  return [
    `// Written by \`${GENERATE_COMMAND}\` from ${sources.length ? sources.join(', ') : 'the live tables no schema owns'}; review it before committing.`,
    ...plan.summary.map((s) => `//   ${s}`),
    "import type { Knex } from 'knex'",
    '',
    'export async function up(knex: Knex): Promise<void> {',
    indent(plan.up),
    '}',
    '',
    'export async function down(knex: Knex): Promise<void> {',
    indent(plan.down),
    '}',
    '',
  ].join('\n')
}

/** `YYYYMMDDHHMMSS`, later than every migration already in `dir` so the new one runs last. */
function timestamp(dir: string, now: Date): string {
  const stamp = (d: Date) => d.toISOString().replace(/\D/g, '').slice(0, 14)
  const last = fs.existsSync(dir)
    ? fs
        .readdirSync(dir)
        .map((f) => /^(\d{14})_/.exec(f)?.[1])
        .filter(Boolean)
        .sort()
        .pop()
    : undefined
  let when = now
  if (last && stamp(when) <= last) {
    const [y, mo, d, h, mi, s] = [0, 4, 6, 8, 10, 12].map((i, n) => Number(last.slice(i, n === 0 ? 4 : i + 2)))
    when = new Date(Date.UTC(y, mo - 1, d, h, mi, s + 1))
  }
  return stamp(when)
}

/** Options of {@link generateMigration}. */
export interface GenerateOptions {
  db: Knex
  schemasDir: string
  migrationsDir: string
  /** Only these resources (singular names); default all. */
  resources?: string[]
  /** Clock of the file name (tests). */
  now?: Date
  /** Schema keywords plugins add (see `PluginApi.keyword`). */
  keywords?: ExtraKeywords
  /** Schema files plugins bring (see `PluginApi.resource`). */
  schemaFiles?: readonly string[]
  /** Tables no schema owns to drop with the foreign keys that bind them (`--drop`), or `'orphans'` for all of them (`--drop-orphans`). */
  drop?: string[] | 'orphans'
  /** Tables no schema owns to rename to the missing table of a schema, keeping their rows (`--rename old=new`). */
  rename?: Record<string, string>
  /** Tables no schema owns to leave as they are, not proposed for a rename (`--keep`). */
  keep?: string[]
  /** Write the migration even when it would fail on this database's data, to finish it by hand (`--force`). */
  force?: boolean
}

/** What {@link generateMigration} did: the file it wrote (none when in sync) and the differences. */
export interface GenerateResult {
  file?: string
  summary: string[]
  /** Names of the migrations it applied first. */
  applied: string[]
  /** Resource tables no schema owns that this migration leaves in place. */
  orphans: string[]
  /** What the migration would do to the data, checked against this database's rows. */
  warnings: string[]
}

/** A table no schema owns has the columns of a table a schema asks for: the plural may have changed. */
export class RenameProposalError extends Error {
  constructor(readonly proposals: Array<{ from: string; to: string }>) {
    super(
      `no migration written: ${proposals
        .map(({ from, to }) => `table ${from}, which no schema owns, has the columns of the new table ${to}`)
        .join('; ')}. If the plural changed, pass ${proposals.map(({ from, to }) => `--rename ${from}=${to}`).join(' ')} to rename it and keep its rows; ` +
        `to create ${proposals.map((p) => p.to).join(', ')} empty, pass --drop <old> to drop the old table or --keep <old> to leave it.`,
    )
    this.name = 'RenameProposalError'
  }
}

/** Checks the orphan flags against the tables no schema owns, and the tables the schemas ask for. */
function checkFlags(options: GenerateOptions, orphans: string[], defs: ResourceDefinition[], live: Map<string, LiveTable>): void {
  const owned = (t: string) => defs.find((d) => d.plural === t)
  const why = (t: string) => {
    const def = owned(t)
    return def ? `table ${t} belongs to resource ${def.name}` : `there is no table ${t} with the engine's columns`
  }
  const problems = [
    ...(Array.isArray(options.drop) ? options.drop : []).filter((t) => !orphans.includes(t)).map((t) => `--drop ${t}: ${why(t)}`),
    ...(options.keep ?? []).filter((t) => !orphans.includes(t)).map((t) => `--keep ${t}: ${why(t)}`),
  ]
  for (const [from, to] of Object.entries(options.rename ?? {})) {
    if (!orphans.includes(from)) problems.push(`--rename ${from}=${to}: ${why(from)}`)
    else if (!owned(to)) problems.push(`--rename ${from}=${to}: no schema has the plural ${to} (known: ${defs.map((d) => d.plural).join(', ')})`)
    else if (live.has(to)) problems.push(`--rename ${from}=${to}: table ${to} exists already`)
  }
  if (problems.length) throw new Error(problems.join('; '))
}

/**
 * Applies the pending migrations of `migrationsDir` (a new migration must build on all of them), reads
 * the live tables in three catalog queries, and writes a timestamped knex migration with `up` and `down`
 * into `migrationsDir`. Writes nothing when the database matches the schemas.
 *
 * Resource tables no schema owns are reported (`orphans`), dropped with `drop`, renamed with `rename`.
 * Throws {@link RenameProposalError} when one of them looks like a table the schemas want under a new
 * name, and a `RiskyMigrationError` when the migration would fail on this database's data (unless `force`).
 */
export async function generateMigration(options: GenerateOptions): Promise<GenerateResult> {
  const defs = loadSchemas(options.schemasDir, options.keywords, options.schemaFiles)
  const unknown = (options.resources ?? []).filter((r) => !defs.some((d) => d.name === r))
  if (unknown.length) throw new Error(`no schema for ${unknown.join(', ')} in ${options.schemasDir} (known: ${defs.map((d) => d.name).join(', ')})`)
  fs.mkdirSync(options.migrationsDir, { recursive: true })
  const { pending } = await listMigrations(options.db, options.migrationsDir)
  await migrateLatest(options.db, options.migrationsDir)

  const plurals = defs.map((d) => d.plural)
  const orphans = await orphanTables(options.db, plurals)
  const live = await readCatalog(options.db, [...plurals, ...orphans])
  checkFlags(options, orphans, defs, live)
  const rename = Object.entries(options.rename ?? {})
  const toDrop = options.drop === 'orphans' ? orphans.filter((t) => !rename.some(([from]) => from === t) && !options.keep?.includes(t)) : (options.drop ?? [])
  const definitions = await readDefinitions(options.db, [...toDrop, ...rename.map(([from]) => from)])
  for (const [from, to] of rename) live.set(to, renamedView(live.get(from)!, to))
  const settled = new Set([...toDrop, ...rename.map(([from]) => from), ...(options.keep ?? [])])
  const proposals = orphans
    .filter((t) => !settled.has(t))
    .flatMap((from) =>
      defs
        .filter((d) => !live.has(d.plural) && (!options.resources?.length || options.resources.includes(d.name)))
        .filter((d) => sameColumns(live.get(from)!, expectedTable(d, defs)))
        .map((d) => ({ from, to: d.plural })),
    )
  if (proposals.length) throw new RenameProposalError(proposals)
  for (const t of orphans) live.delete(t)

  const plan = planMigration(defs, live, options.resources)
  const applied = pending
  const left = orphans.filter((t) => !settled.has(t) || options.keep?.includes(t))
  const renames = rename.map(([from, to]) => renameTable(definitions.get(from)!, to))
  const drops = dropTables(toDrop.map((t) => definitions.get(t)!))
  if (!plan && rename.length === 0 && toDrop.length === 0) return { summary: [], applied, orphans: left, warnings: [] }

  const changes = (plan?.tables ?? []).flatMap((table) => {
    const current = live.get(table)
    const def = defs.find((d) => d.plural === table)!
    // A table renamed by this migration holds its rows under its old name until the migration runs.
    const now = rename.find(([, to]) => to === table)?.[0] ?? table
    return current ? [{ live: { ...current, name: now }, diffs: diffTable(expectedTable(def, defs), current) }] : []
  })
  const risks = await assessRisks(
    options.db,
    changes,
    [...definitions.values()].filter((d) => toDrop.includes(d.name)),
  )
  if (!options.force && risks.some((r) => r.fails)) throw new RiskyMigrationError(risks)

  const steps = [...renames, drops]
  const combined: MigrationPlan = {
    tables: [...rename.map(([, to]) => to), ...toDrop, ...(plan?.tables ?? [])].filter((t, i, all) => all.indexOf(t) === i),
    summary: [...steps.flatMap((s) => s.summary), ...(plan?.summary ?? [])],
    up: [...steps.flatMap((s) => s.up), ...(plan?.up ?? [])],
    down: [...(plan?.down ?? []), ...[...steps].reverse().flatMap((s) => s.down)],
    slug: [
      ...(rename.length ? [`rename_${rename.map(([from, to]) => `${from}_${to}`).join('_')}`] : []),
      ...(toDrop.length ? [`drop_${toDrop.join('_')}`] : []),
      ...(plan ? [plan.slug] : []),
    ]
      .join('_')
      .slice(0, 80),
  }
  const sources = defs.filter((d) => combined.tables.includes(d.plural)).map((d) => `schemas/${path.basename(d.file)}`)
  const file = path.join(options.migrationsDir, `${timestamp(options.migrationsDir, options.now ?? new Date())}_${combined.slug}.ts`)
  fs.writeFileSync(file, renderMigration(combined, sources))
  return { file, summary: combined.summary, applied, orphans: left, warnings: risks.map((r) => r.message) }
}
