/**
 * Tables no schema owns (a schema file removed, or its plural changed): the migration steps that drop
 * them with the foreign keys that bind them, or rename one to the table a schema now expects.
 */
import type { LiveTable, TableDefinition } from './catalog'
import type { ExpectedTable } from '../core/schema/derive'
import { literal, raw } from './migration-code'
import { diffTable } from './schema-drift'

/** Steps of a migration: lines of `up` and `down`, and the changes in words. */
export interface Steps {
  up: string[]
  down: string[]
  summary: string[]
}

const ident = (name: string) => `"${name.replace(/"/g, '""')}"`

/**
 * Drops `tables` with the foreign keys of other tables that reference them. `down` recreates each
 * table as the catalog printed it (columns, keys, indexes, triggers) and the foreign keys, but not the rows.
 */
export function dropTables(tables: TableDefinition[]): Steps {
  const dropped = new Set(tables.map((t) => t.name))
  const up: string[] = []
  const down: string[] = []
  const summary: string[] = []
  for (const t of tables) {
    summary.push(`${t.name}: dropped, no schema owns it (${t.rows} row${t.rows === 1 ? '' : 's'} here; down() recreates the table empty)`)
    up.push(`// Drops table ${t.name}, which no schema owns, and its rows: down() recreates the table, its keys, indexes and triggers, not its rows.`)
  }
  for (const t of tables) for (const fk of t.referencedBy) up.push(raw(`ALTER TABLE ${ident(fk.table)} DROP CONSTRAINT ${ident(fk.name)}`))
  for (const t of tables) up.push(`await knex.schema.dropTable(${literal(t.name)})`)

  for (const t of tables) {
    const columns = t.columns.map((c) => `${ident(c.name)} ${c.type}${c.nullable ? '' : ' NOT NULL'}${c.default === null ? '' : ` DEFAULT ${c.default}`}`)
    down.push(`// Recreates table ${t.name} empty: its rows are not restored.`, raw(`CREATE TABLE ${ident(t.name)} (${columns.join(', ')})`))
  }
  for (const t of tables) {
    for (const c of t.constraints.filter((c) => c.kind !== 'f')) down.push(raw(`ALTER TABLE ${ident(t.name)} ADD CONSTRAINT ${ident(c.name)} ${c.definition}`))
    for (const i of t.indexes) down.push(raw(i.definition))
  }
  for (const t of tables) {
    for (const c of t.constraints.filter((c) => c.kind === 'f')) down.push(raw(`ALTER TABLE ${ident(t.name)} ADD CONSTRAINT ${ident(c.name)} ${c.definition}`))
    for (const fk of t.referencedBy.filter((fk) => !dropped.has(fk.table)))
      down.push(raw(`ALTER TABLE ${ident(fk.table)} ADD CONSTRAINT ${ident(fk.name)} ${fk.definition}`))
  }
  for (const t of tables) for (const g of t.triggers) down.push(raw(g.definition))
  return { up, down, summary }
}

/** `widgets_team_foreign` -> `gadgets_team_foreign`: names the engine derives from the table follow it. */
function renamed(name: string, from: string, to: string): string | undefined {
  return name.startsWith(`${from}_`) ? `${to}${name.slice(from.length)}`.slice(0, 63) : undefined
}

/**
 * Renames table `from` to `to`, keeping its rows, and its constraints, indexes and triggers whose names
 * start with the old table's name (`widgets_pkey`, `widgets_team_foreign`...). Foreign keys that
 * reference it follow by themselves.
 */
export function renameTable(table: TableDefinition, to: string): Steps {
  const from = table.name
  const up = [`await knex.schema.renameTable(${literal(from)}, ${literal(to)})`]
  const down: string[] = []
  for (const c of table.constraints) {
    const name = renamed(c.name, from, to)
    if (!name) continue
    up.push(raw(`ALTER TABLE ${ident(to)} RENAME CONSTRAINT ${ident(c.name)} TO ${ident(name)}`))
    down.unshift(raw(`ALTER TABLE ${ident(to)} RENAME CONSTRAINT ${ident(name)} TO ${ident(c.name)}`))
  }
  for (const i of table.indexes) {
    const name = renamed(i.name, from, to)
    if (!name) continue
    up.push(raw(`ALTER INDEX ${ident(i.name)} RENAME TO ${ident(name)}`))
    down.unshift(raw(`ALTER INDEX ${ident(name)} RENAME TO ${ident(i.name)}`))
  }
  for (const g of table.triggers) {
    const name = renamed(g.name, from, to)
    if (!name) continue
    up.push(raw(`ALTER TRIGGER ${ident(g.name)} ON ${ident(to)} RENAME TO ${ident(name)}`))
    down.unshift(raw(`ALTER TRIGGER ${ident(name)} ON ${ident(to)} RENAME TO ${ident(g.name)}`))
  }
  down.push(`await knex.schema.renameTable(${literal(to)}, ${literal(from)})`)
  return { up, down, summary: [`${from}: renamed to ${to}, keeping its ${table.rows} row${table.rows === 1 ? '' : 's'}`] }
}

/** The live table `from` as it reads once renamed to `to` by {@link renameTable}. */
export function renamedView(live: LiveTable, to: string): LiveTable {
  return {
    name: to,
    columns: live.columns,
    constraints: live.constraints.map((c) => ({ ...c, name: renamed(c.name, live.name, to) ?? c.name })),
    triggers: live.triggers.map((name) => renamed(name, live.name, to) ?? name),
  }
}

/** True when the live table has the columns (names and types) the expected table asks for: a rename candidate. */
export function sameColumns(live: LiveTable, expected: ExpectedTable): boolean {
  const columns = new Set(['missing-column', 'extra-column', 'column-type'])
  return !diffTable(expected, renamedView(live, expected.table)).some((d) => columns.has(d.kind))
}
