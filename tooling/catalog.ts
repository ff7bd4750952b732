import type { Knex } from 'knex'
import { ENGINE_FIELD_NAMES } from '../core/schema/derive'

/** A column as the database has it. */
export interface LiveColumn {
  name: string
  /** `format_type()` of the column, e.g. `text` or `timestamp(3) with time zone`. */
  type: string
  nullable: boolean
  /** The default as PostgreSQL prints it (`pg_get_expr`), or null. */
  default: string | null
}

/** A unique constraint, primary key, foreign key or plain index of a live table. */
export interface LiveConstraint {
  name: string
  kind: 'primary' | 'unique' | 'foreign' | 'index'
  /** Per key column, what the index holds as PostgreSQL prints it: a column name, or an expression such as `lower(name)`. */
  columns: string[]
  /** Foreign keys only: the referenced table and the delete rule. */
  references?: { table: string; onDelete: string }
  /** Unique keys only: `NULLS NOT DISTINCT`. */
  nullsNotDistinct?: boolean
  /** Unique keys only: a unique index with no constraint over it (dropped with DROP INDEX). */
  indexOnly?: boolean
  /** Unique indexes with no constraint, and plain indexes: the statement that recreates the index (`pg_get_indexdef`). */
  definition?: string
}

/** What the database holds for one table. */
export interface LiveTable {
  name: string
  columns: LiveColumn[]
  constraints: LiveConstraint[]
  /** Names of the table's own triggers (not those PostgreSQL makes for foreign keys). */
  triggers: string[]
}

const ON_DELETE: Record<string, string> = { a: 'no action', r: 'restrict', c: 'cascade', n: 'set null', d: 'set default' }

/**
 * Reads the given tables of the current schema from `pg_catalog` in three queries whatever the number
 * of tables: one for columns, one for constraints and indexes, one for triggers. Tables that do not
 * exist are absent. A unique index that is no constraint counts as a unique key only when it is named
 * as the generator names keys (`<table>_..._unique`): other hand-made unique indexes are left alone.
 */
export async function readCatalog(db: Knex, tables: string[]): Promise<Map<string, LiveTable>> {
  const live = new Map<string, LiveTable>()
  if (tables.length === 0) return live
  const columns = await db.raw<{ rows: Array<{ table: string; name: string; type: string; nullable: boolean; default: string | null }> }>(
    `
    select c.relname::text as "table", a.attname::text as name, format_type(a.atttypid, a.atttypmod) as type,
           not a.attnotnull as nullable, pg_get_expr(d.adbin, d.adrelid) as "default"
    from pg_attribute a
    join pg_class c on c.oid = a.attrelid
    join pg_namespace n on n.oid = c.relnamespace
    left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
    where n.nspname = current_schema() and c.relkind in ('r', 'p') and c.relname = any(?)
      and a.attnum > 0 and not a.attisdropped
    order by c.relname, a.attnum`,
    [tables],
  )
  for (const { table, ...column } of columns.rows) {
    let entry = live.get(table)
    if (!entry) live.set(table, (entry = { name: table, columns: [], constraints: [], triggers: [] }))
    entry.columns.push(column)
  }
  const constraints = await db.raw<{
    rows: Array<{
      table: string
      name: string
      kind: string
      columns: string
      ref: string | null
      on_delete: string | null
      nulls_not_distinct: boolean | null
      index_only: boolean | null
      definition: string | null
    }>
  }>(
    `
    select t.relname::text as "table", i.relname::text as name,
           case when x.indisprimary then 'primary' when x.indisunique then 'unique' else 'index' end as kind,
           (select string_agg(pg_get_indexdef(x.indexrelid, k.ord::int, true), '\x1f' order by k.ord)
              from generate_series(1, x.indnkeyatts) k(ord)) as columns,
           null as ref, null as on_delete, x.indnullsnotdistinct as nulls_not_distinct,
           (x.indisunique and not x.indisprimary and con.oid is null) as index_only,
           case when con.oid is null and not x.indisprimary then pg_get_indexdef(x.indexrelid) end as definition
    from pg_index x
    join pg_class t on t.oid = x.indrelid
    join pg_class i on i.oid = x.indexrelid
    join pg_namespace n on n.oid = t.relnamespace
    left join pg_constraint con on con.conindid = x.indexrelid and con.contype = 'u'
    where n.nspname = current_schema() and t.relname = any(?)
      and (x.indisprimary or con.oid is not null or not x.indisunique or i.relname::text like t.relname::text || '\\_%\\_unique')
    union all
    select t.relname::text, con.conname::text, 'foreign',
           (select string_agg(a.attname::text, '\x1f' order by k.ord) from unnest(con.conkey) with ordinality k(attnum, ord)
              join pg_attribute a on a.attrelid = t.oid and a.attnum = k.attnum),
           r.relname::text, con.confdeltype::text, null, null, null
    from pg_constraint con
    join pg_class t on t.oid = con.conrelid
    join pg_class r on r.oid = con.confrelid
    join pg_namespace n on n.oid = t.relnamespace
    where n.nspname = current_schema() and t.relname = any(?) and con.contype = 'f'
    order by 1, 2`,
    [tables, tables],
  )
  for (const row of constraints.rows) {
    const constraint: LiveConstraint = { name: row.name, kind: row.kind as LiveConstraint['kind'], columns: (row.columns ?? '').split('\x1f').filter(Boolean) }
    if (row.ref) constraint.references = { table: row.ref, onDelete: ON_DELETE[row.on_delete ?? 'a'] ?? row.on_delete! }
    if (constraint.kind === 'unique') {
      constraint.nullsNotDistinct = row.nulls_not_distinct === true
      if (row.index_only) Object.assign(constraint, { indexOnly: true, definition: row.definition })
    } else if (constraint.kind === 'index' && row.definition) constraint.definition = row.definition
    live.get(row.table)?.constraints.push(constraint)
  }
  const triggers = await db.raw<{ rows: Array<{ table: string; name: string }> }>(
    `
    select t.relname::text as "table", g.tgname::text as name
    from pg_trigger g
    join pg_class t on t.oid = g.tgrelid
    join pg_namespace n on n.oid = t.relnamespace
    where n.nspname = current_schema() and t.relname = any(?) and not g.tgisinternal
    order by 1, 2`,
    [tables],
  )
  for (const row of triggers.rows) live.get(row.table)?.triggers.push(row.name)
  return live
}

/**
 * The resource tables of the current schema: those with every engine column (`id`, `etag`,
 * `created_at`, `updated_at`), whoever made them. knex's own tables and tables a migration made for
 * other purposes (the identity plugin's `apikeys`) lack them and are never listed.
 */
export async function resourceTables(db: Knex): Promise<string[]> {
  const { rows } = await db.raw<{ rows: Array<{ name: string }> }>(
    `
    select c.relname::text as name
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = current_schema() and c.relkind in ('r', 'p')
      and (select count(*) from pg_attribute a where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.attname = any(?)) = ?
    order by 1`,
    [[...ENGINE_FIELD_NAMES], ENGINE_FIELD_NAMES.length],
  )
  return rows.map((r) => r.name)
}

/** Resource tables (see {@link resourceTables}) that are the table of none of `plurals`. */
export async function orphanTables(db: Knex, plurals: readonly string[]): Promise<string[]> {
  return (await resourceTables(db)).filter((t) => !plurals.includes(t))
}

/** What it takes to recreate a table as it was: its own definitions, as PostgreSQL prints them. */
export interface TableDefinition {
  name: string
  columns: LiveColumn[]
  rows: number
  /**
   * Its constraints, `ALTER TABLE ... ADD CONSTRAINT name <definition>`, primary and unique keys first;
   * not the NOT NULL ones PostgreSQL 18 lists (the columns carry them, and older servers have no such syntax).
   */
  constraints: Array<{ name: string; kind: 'p' | 'u' | 'f' | 'c' | 'x'; definition: string }>
  /** Indexes that back no constraint: `CREATE INDEX ...` statements. */
  indexes: Array<{ name: string; definition: string }>
  /** Triggers: `CREATE TRIGGER ...` statements. */
  triggers: Array<{ name: string; definition: string }>
  /** Foreign keys of other tables that reference this one. */
  referencedBy: Array<{ table: string; name: string; columns: string[]; definition: string }>
}

/** Reads {@link TableDefinition}s of existing tables of the current schema (five catalog queries). */
export async function readDefinitions(db: Knex, tables: string[]): Promise<Map<string, TableDefinition>> {
  const result = new Map<string, TableDefinition>()
  if (tables.length === 0) return result
  const live = await readCatalog(db, tables)
  for (const t of tables) {
    const entry = live.get(t)
    if (!entry) continue
    const counted = await db.raw<{ rows: Array<{ n: number }> }>('select count(*)::int as n from ??', [t])
    result.set(t, { name: t, columns: entry.columns, rows: counted.rows[0].n, constraints: [], indexes: [], triggers: [], referencedBy: [] })
  }
  const scope = `join pg_class t on t.oid = x.rel join pg_namespace n on n.oid = t.relnamespace where n.nspname = current_schema() and t.relname = any(?)`
  const constraints = await db.raw<{ rows: Array<{ table: string; name: string; kind: string; definition: string }> }>(
    `select t.relname::text as "table", x.conname::text as name, x.contype::text as kind, pg_get_constraintdef(x.oid) as definition
     from (select *, conrelid as rel from pg_constraint where contype <> 'n') x ${scope}
     order by t.relname, position(x.contype::text in 'pucxf'), x.conname`,
    [tables],
  )
  for (const c of constraints.rows) result.get(c.table)?.constraints.push({ name: c.name, kind: c.kind as 'p', definition: c.definition })
  const indexes = await db.raw<{ rows: Array<{ table: string; name: string; definition: string }> }>(
    `select t.relname::text as "table", i.relname::text as name, pg_get_indexdef(x.indexrelid) as definition
     from (select *, indrelid as rel from pg_index) x join pg_class i on i.oid = x.indexrelid ${scope}
       and not exists (select 1 from pg_constraint c where c.conindid = x.indexrelid and c.conrelid = x.indrelid)
     order by t.relname, i.relname`,
    [tables],
  )
  for (const i of indexes.rows) result.get(i.table)?.indexes.push({ name: i.name, definition: i.definition })
  const triggers = await db.raw<{ rows: Array<{ table: string; name: string; definition: string }> }>(
    `select t.relname::text as "table", x.tgname::text as name, pg_get_triggerdef(x.oid) as definition
     from (select *, tgrelid as rel from pg_trigger where not tgisinternal) x ${scope}
     order by t.relname, x.tgname`,
    [tables],
  )
  for (const g of triggers.rows) result.get(g.table)?.triggers.push({ name: g.name, definition: g.definition })
  const incoming = await db.raw<{ rows: Array<{ table: string; source: string; name: string; columns: string; definition: string }> }>(
    `select t.relname::text as "table", s.relname::text as source, x.conname::text as name, pg_get_constraintdef(x.oid) as definition,
            (select string_agg(a.attname::text, ',' order by k.ord) from unnest(x.conkey) with ordinality k(attnum, ord)
               join pg_attribute a on a.attrelid = x.conrelid and a.attnum = k.attnum) as columns
     from (select *, confrelid as rel from pg_constraint where contype = 'f' and conrelid <> confrelid) x
     join pg_class s on s.oid = x.conrelid ${scope}
     order by t.relname, s.relname, x.conname`,
    [tables],
  )
  for (const f of incoming.rows) {
    result.get(f.table)?.referencedBy.push({ table: f.source, name: f.name, columns: f.columns.split(','), definition: f.definition })
  }
  return result
}
