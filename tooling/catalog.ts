import type { Knex } from 'knex'

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
  /** Unique indexes with no constraint: the statement that recreates the index (`pg_get_indexdef`). */
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
           case when x.indisunique and con.oid is null then pg_get_indexdef(x.indexrelid) end as definition
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
    }
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
