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
  columns: string[]
  /** Foreign keys only: the referenced table and the delete rule. */
  references?: { table: string; onDelete: string }
}

/** What the database holds for one table. */
export interface LiveTable {
  name: string
  columns: LiveColumn[]
  constraints: LiveConstraint[]
}

const ON_DELETE: Record<string, string> = { a: 'no action', r: 'restrict', c: 'cascade', n: 'set null', d: 'set default' }

/**
 * Reads the given tables of the current schema from `pg_catalog` in two queries whatever the number of
 * tables: one for columns, one for constraints and indexes. Tables that do not exist are absent.
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
    if (!entry) live.set(table, (entry = { name: table, columns: [], constraints: [] }))
    entry.columns.push(column)
  }
  const constraints = await db.raw<{
    rows: Array<{ table: string; name: string; kind: string; columns: string; ref: string | null; on_delete: string | null }>
  }>(
    `
    select t.relname::text as "table", i.relname::text as name,
           case when x.indisprimary then 'primary' when con.oid is not null then 'unique' else 'index' end as kind,
           (select string_agg(a.attname::text, ',' order by k.ord) from unnest(x.indkey::int2[]) with ordinality k(attnum, ord)
              join pg_attribute a on a.attrelid = t.oid and a.attnum = k.attnum) as columns,
           null as ref, null as on_delete
    from pg_index x
    join pg_class t on t.oid = x.indrelid
    join pg_class i on i.oid = x.indexrelid
    join pg_namespace n on n.oid = t.relnamespace
    left join pg_constraint con on con.conindid = x.indexrelid and con.contype = 'u'
    where n.nspname = current_schema() and t.relname = any(?) and (x.indisprimary or con.oid is not null or not x.indisunique)
    union all
    select t.relname::text, con.conname::text, 'foreign',
           (select string_agg(a.attname::text, ',' order by k.ord) from unnest(con.conkey) with ordinality k(attnum, ord)
              join pg_attribute a on a.attrelid = t.oid and a.attnum = k.attnum),
           r.relname::text, con.confdeltype::text
    from pg_constraint con
    join pg_class t on t.oid = con.conrelid
    join pg_class r on r.oid = con.confrelid
    join pg_namespace n on n.oid = t.relnamespace
    where n.nspname = current_schema() and t.relname = any(?) and con.contype = 'f'
    order by 1, 2`,
    [tables, tables],
  )
  for (const row of constraints.rows) {
    const constraint: LiveConstraint = { name: row.name, kind: row.kind as LiveConstraint['kind'], columns: (row.columns ?? '').split(',').filter(Boolean) }
    if (row.ref) constraint.references = { table: row.ref, onDelete: ON_DELETE[row.on_delete ?? 'a'] ?? row.on_delete! }
    live.get(row.table)?.constraints.push(constraint)
  }
  return live
}
