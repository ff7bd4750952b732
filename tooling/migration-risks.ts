/**
 * What a migration would do to the data of the database it is generated on: changes that fail or lose
 * data are found before the file is written, from counts of the live rows. The migration also runs on
 * other databases, with other data: a change that is safe here is still named when it is not safe there.
 */
import type { Knex } from 'knex'
import type { LiveTable, TableDefinition } from './catalog'
import { COLUMN_TYPES, type ExpectedUnique } from '../core/schema/derive'
import { GENERATE_COMMAND, type Difference } from './schema-drift'

/** A consequence of a migration: `fails` when it would fail on this database's data. */
export interface Risk {
  fails: boolean
  message: string
}

/** One table the migration changes. */
export interface TableChange {
  live: LiveTable
  diffs: Difference[]
}

const rows = (n: number) => `${n} row${n === 1 ? '' : 's'}`
const example = (value: string) => (value.length > 40 ? `${value.slice(0, 40)}...` : value)

async function count(db: Knex, table: string, where?: { column: string; isNull: boolean }): Promise<number> {
  const query = db(table).count<Array<{ n: string | number }>>({ n: '*' })
  if (where) where.isNull ? query.whereNull(where.column) : query.whereNotNull(where.column)
  return Number((await query)[0].n)
}

/**
 * Converts every value of a column as the migration would (`value::type`), in a transaction rolled
 * back after: how many values there are, how many would make the migration fail, how many would read
 * differently afterwards, and an example of each.
 */
async function conversion(db: Knex, table: string, column: string, from: string, to: string) {
  const trx = await db.transaction()
  try {
    await trx.raw(
      `create function pg_temp.dci_converted(v ${from}) returns text language plpgsql as $$ begin return (v::${to})::text; exception when others then return null; end $$`,
    )
    const { rows } = await trx.raw<{
      rows: Array<{ values: number; failing: number; changing: number; fail_example: string | null; change_example: string | null }>
    }>(
      `select count(*)::int as values, (count(*) filter (where after is null))::int as failing,
              (count(*) filter (where after <> before))::int as changing,
              min(before) filter (where after is null) as fail_example,
              min(before || ' becomes ' || after) filter (where after <> before) as change_example
       from (select ??::text as before, pg_temp.dci_converted(??) as after from ?? where ?? is not null) s`,
      [column, column, table, column],
    )
    return rows[0]
  } finally {
    await trx.rollback()
  }
}

/** How many values of a new unique key several rows share here (as the key will compare them), and one of them. */
async function duplicates(db: Knex, table: string, key: ExpectedUnique): Promise<{ groups: number; example: string | null }> {
  // The key's columns as the index holds them (a column, or lower(column)): names the loader checked.
  const columns = key.columns.join(', ')
  // Without NULLS NOT DISTINCT, a row with a null member never collides.
  const present = key.nullsNotDistinct ? 'true' : key.fields.map((f) => `"${f}" is not null`).join(' and ')
  const { rows } = await db.raw<{ rows: Array<{ groups: number; example: string | null }> }>(
    `select count(*)::int as groups, min(shared) as example
     from (select concat_ws(', ', ${key.columns.map((c) => `coalesce((${c})::text, 'null')`).join(', ')}) as shared
           from ?? where ${present} group by ${columns} having count(*) > 1) s`,
    [table],
  )
  return rows[0]
}

/** How many rows hold, in `column`, the id of no row of `target`, and one such id. */
async function dangling(db: Knex, table: string, column: string, target: string): Promise<{ rows: number; example: string | null }> {
  // A table this migration creates is empty: every id names no row of it.
  const exists = (await db.raw<{ rows: Array<{ t: string | null }> }>('select to_regclass(?)::text as t', [target])).rows[0].t !== null
  const { rows } = await db.raw<{ rows: Array<{ rows: number; example: string | null }> }>(
    exists
      ? 'select count(*)::int as rows, min(t.??::text) as example from ?? t where t.?? is not null and not exists (select 1 from ?? r where r.id = t.??)'
      : 'select count(*)::int as rows, min(t.??::text) as example from ?? t where t.?? is not null',
    exists ? [column, table, column, target, column] : [column, table, column],
  )
  return rows[0]
}

/**
 * The risks of changing the tables of `changes` and dropping the tables of `dropped`, checked against
 * the rows of `db`: new required columns without a default, columns made NOT NULL, type changes, new
 * unique keys over shared values, new relations over ids of no row, dropped columns and tables.
 */
export async function assessRisks(db: Knex, changes: TableChange[], dropped: TableDefinition[]): Promise<Risk[]> {
  const risks: Risk[] = []
  const warn = (message: string) => risks.push({ fails: false, message })
  const fail = (message: string) => risks.push({ fails: true, message })
  for (const { live, diffs } of changes) {
    const t = live.name
    const total = await count(db, t)
    for (const d of diffs) {
      if (d.kind === 'extra-column') {
        const held = await count(db, t, { column: d.column.name, isNull: false })
        warn(
          `${t}.${d.column.name} is dropped with its values (${rows(held)} here ${held === 1 ? 'holds' : 'hold'} one); down() brings back the column, not the values`,
        )
      } else if (d.kind === 'missing-column' && !d.column.nullable && !d.column.default) {
        const what = `${t}.${d.column.name} is added as required (NOT NULL) without a default`
        if (total > 0)
          fail(
            `${what}, and ${t} has ${rows(total)} here: the migration would fail. Give the field a default in the schema (existing rows get it), or add it optional, fill it in, then make it required`,
          )
        else warn(`${what}: the migration fails on a database where ${t} has rows`)
      } else if (d.kind === 'column-nullable' && d.live.nullable && !d.column.nullable) {
        const empty = await count(db, t, { column: d.column.name, isNull: true })
        const what = `${t}.${d.column.name} becomes required (NOT NULL)`
        if (d.column.default) warn(`${what}: the migration first gives the schema's default to the rows where it is null (${rows(empty)} here)`)
        else if (empty > 0)
          fail(
            `${what} but ${rows(empty)} here ${empty === 1 ? 'has' : 'have'} no value: the migration would fail. Fill them in (PUT each row), or give the field a default in the schema (the migration then fills them with it), then run \`${GENERATE_COMMAND}\` again`,
          )
        else warn(`${what}: no row here lacks it; the migration fails on a database where a row has no value`)
      } else if (d.kind === 'missing-unique') {
        const what = `${t} gets the unique key (${d.key.fields.join(', ')})`
        if (!d.key.fields.every((f) => live.columns.some((c) => c.name === f))) {
          warn(`${what} over a column this migration adds: the migration fails where two rows of ${t} would get the same value`)
          continue
        }
        const found = await duplicates(db, t, d.key)
        if (found.groups > 0)
          fail(
            `${what} but ${found.groups} value${found.groups === 1 ? '' : 's'} here ${found.groups === 1 ? 'is' : 'are'} shared by several rows (e.g. ${example(found.example ?? '')}): the migration would fail. Make those rows differ (PUT or DELETE them), then run \`${GENERATE_COMMAND}\` again`,
          )
        else warn(`${what}: no two rows here share a value; the migration fails on a database where two do`)
      } else if (d.kind === 'missing-foreign') {
        const what = `${t}.${d.foreign.column} becomes a relation to ${d.foreign.table}`
        if (!live.columns.some((c) => c.name === d.foreign.column)) continue // a new column: every value is null
        const found = await dangling(db, t, d.foreign.column, d.foreign.table)
        if (found.rows > 0)
          fail(
            `${what} but ${rows(found.rows)} here ${found.rows === 1 ? 'holds an id' : 'hold ids'} of no ${d.foreign.table} row (e.g. ${found.example}): the migration would fail. Clear or correct those values first`,
          )
        else warn(`${what}: every value here names a row; the migration fails on a database where one does not`)
      } else if (d.kind === 'column-type') {
        const to = COLUMN_TYPES[d.column.kind].sql
        const what = `${t}.${d.column.name} changes from ${d.live.type} to ${to}`
        const found = await conversion(db, t, d.column.name, d.live.type, to)
        if (found.values === 0) warn(`${what}: no row holds a value here; on a database where one does not convert, the migration fails`)
        else if (found.failing > 0)
          fail(
            `${what} but ${found.failing} of ${found.values} values here do not convert (e.g. ${example(found.fail_example ?? '')}): the migration would fail. Change or clear those values first, or keep the type and add a field of the new type instead`,
          )
        else if (found.changing > 0)
          warn(`${what}: ${found.changing} of ${found.values} values here read differently afterwards (e.g. ${example(found.change_example ?? '')})`)
        else warn(`${what}: all ${found.values} values here convert unchanged; on a database where one does not convert, the migration fails`)
      }
    }
  }
  for (const t of dropped) warn(`${t.name} is dropped with its ${rows(t.rows)}; down() recreates the table, not the rows`)
  return risks
}

/** The migration would fail on this database's data: nothing was written. */
export class RiskyMigrationError extends Error {
  constructor(readonly risks: Risk[]) {
    super(
      `no migration written: it would fail on this database's data:\n${risks
        .filter((r) => r.fails)
        .map((r) => `- ${r.message}`)
        .join('\n')}\nTo write it anyway, to finish it by hand (an UPDATE that fills or converts the values first), pass --force.`,
    )
    this.name = 'RiskyMigrationError'
  }
}
