import type { Knex } from 'knex'
import { LRUCache } from 'lru-cache'
import { errors } from '../errors'
import { encodeCursor, keysetShape, keysetSql } from '../query/cursor'
import { embedTarget, keysetOrder, type ListQuery } from '../query/list-query'
import { filterShape, filterSql } from './filter-sql'
import { searchSql } from './search-sql'
import { addAliasKeys, ENGINE_FIELD_NAMES, fieldAliases, jsonFields, searchIndex, type ConstraintMeaning } from '../schema/derive'
import type { ResourceDefinition } from '../schema/types'
import { isUuid } from '../schema/vocabulary'
import type { Cancellation } from './cancellation'
import { newEtag, type EtagCondition } from './etag'
import { translateDbError, type DbErrorContext } from './pg-errors'

/** A stored object as the API shows it: engine fields plus schema fields. */
export type Row = Record<string, unknown> & { id: string; etag: string; created_at: Date | string; updated_at: Date | string }

/** What the repository needs from the registry: the repository of a related resource, for `embed`. */
export type RelationLookup = (resource: string) => Repository

/** A knex instance or a transaction of it: every statement runs on the one it is given. */
export type Db = Knex | Knex.Transaction

/**
 * Up to this many matching rows, `_meta.count` is exact whatever the `count` parameter; above it, it is
 * the planner's estimate unless the client asked `count=exact`. Counting is bounded by it: a count of a
 * million rows costs a scan of them, a capped count reads at most this many (see bench/RESULTS.md).
 */
export const EXACT_COUNT_UP_TO = 10_000

/**
 * Most statement shapes one repository keeps compiled (each is a short SQL string): the least recently
 * used shape goes first, so shapes a client invents by the thousand cannot grow the cache or evict
 * for good the shapes that other requests use.
 */
export const MAX_CACHED_STATEMENTS = 1_000

/**
 * `_meta` of a list answer: `count` unless the request said `count=none`; `count_exact: false` only
 * when the count is an estimate; `truncated: true` and `next_offset` only when the page stopped before
 * `limit` rows to stay within the answer's byte budget (more rows follow from `next_offset`).
 */
export type ListMeta = { count?: number; count_exact?: false; truncated?: true; next_offset?: number; next?: string }

/**
 * One page of {@link Repository.list}: its rows, its `_meta` (with `next`, the cursor of its last row,
 * when rows follow it and the list is keyset-paged), and where its neighbours start: `nextOffset` when
 * rows follow it (the count says so, or a row read past the page), and `previousOffset` when it does
 * not start at the first row. A page after a cursor knows its offset only as the cursor's position.
 */
export interface ListPage {
  items: Row[]
  meta: ListMeta
  nextOffset?: number
  previousOffset?: number
}

/** Columns that never hold null: the engine's (a keyset condition on them needs no `IS NULL` case). */
const NOT_NULL = new Set(ENGINE_FIELD_NAMES)
const nullable = (column: string) => !NOT_NULL.has(column)

/**
 * What bounds the bytes of a list answer: the budget of one answer, and the most bytes one row of a
 * resource can take (see `maxRowBytes` in core/schema/derive.ts), by resource name.
 */
export interface ResponseBudget {
  maxResponseBytes: number
  maxRowBytes(resource: string): number
}

const COLUMNS = new WeakMap<ResourceDefinition, Set<string>>()

/** The columns of a resource's table: the engine's and its schema's fields. */
function columnsOf(def: ResourceDefinition): Set<string> {
  let columns = COLUMNS.get(def)
  if (!columns) COLUMNS.set(def, (columns = new Set(['id', 'created_at', 'updated_at', 'etag', ...def.fields.map((f) => f.name)])))
  return columns
}

/** A row inserted by a write's own statement (a hook's `ctx.insertWith`): it exists if and only if the write does. */
export interface CompanionRow {
  /** The resource (singular name) whose table gets the row. */
  resource: string
  data: Record<string, unknown>
  /** Column of the companion row -> column of the written row. */
  fromWritten: Record<string, string>
}

/**
 * The data layer of one resource: input is already parsed and validated, no hook runs. Services call
 * it; trusted code reaches it only through a service call with `trusted: true`.
 */
export class Repository {
  /** Fields stored as JSON text: written stringified, read back parsed (as objection's jsonAttributes). */
  private readonly jsonFields: string[]
  /** Field -> alias pairs: every row read carries the alias keys too. */
  private readonly aliases: Array<[string, string]>
  /** Compiled SQL by statement shape (see {@link Repository.statement}), least recently used out first. */
  readonly statements = new LRUCache<string, string>({ max: MAX_CACHED_STATEMENTS })
  /** Set on the views {@link withCancellation} makes: the call's cancellation. */
  private readonly cancellation?: Cancellation
  /** PostgreSQL through `pg` can cancel a running statement (pg_cancel_backend); PGlite cannot. */
  private readonly cancellable: boolean
  /**
   * What a statement reads and returns of a row: `*`, or, when the table has a full-text search column
   * (never answered), its columns by name: the engine's and the schema's fields.
   */
  private readonly selected: string | string[]

  constructor(
    readonly def: ResourceDefinition,
    readonly knex: Knex,
    private readonly related: RelationLookup,
    private readonly describeConstraint: (constraint: string) => ConstraintMeaning | undefined,
    private readonly budget?: ResponseBudget,
  ) {
    this.jsonFields = jsonFields(def)
    this.aliases = fieldAliases(def)
    this.cancellable = (knex.client as { config?: { client?: unknown } }).config?.client === 'pg'
    this.selected = searchIndex(def) ? ['id', ...def.fields.map((f) => f.name), 'created_at', 'updated_at', 'etag'] : '*'
  }

  /**
   * This repository for one call whose answer may stop being wanted: once `cancellation` aborts, no
   * further statement starts (its reason is thrown instead), and on PostgreSQL the running one is
   * cancelled. A view sharing everything with this repository (one small object per call).
   */
  withCancellation(cancellation: Cancellation | undefined): Repository {
    if (!cancellation) return this
    // Object.create and an assignment: the views of one repository share one hidden class.
    const view = Object.create(this) as { cancellation?: Cancellation }
    view.cancellation = cancellation
    return view as unknown as Repository
  }

  /** Runs one SQL text: through the call's signal when it has one. */
  private async execute<T>(db: Db, sql: string, bindings: readonly unknown[]): Promise<T[]> {
    const cancellation = this.cancellation
    if (cancellation === undefined) return ((await db.raw(sql, bindings as Knex.RawBinding[])) as unknown as { rows: T[] }).rows
    if (cancellation.aborted) throw cancellation.reason
    if (!this.cancellable) return ((await db.raw(sql, bindings as Knex.RawBinding[])) as unknown as { rows: T[] }).rows
    // The connection is taken here rather than by knex, to know which backend to cancel. In a
    // transaction this is the transaction's connection (and releasing it is a no-op).
    const client = db.client as {
      acquireConnection(): Promise<unknown>
      releaseConnection(connection: unknown): Promise<unknown>
      cancelQuery(connection: unknown): Promise<unknown>
    }
    const connection = await client.acquireConnection()
    let cancelling: Promise<unknown> | undefined
    const cancel = () => {
      cancelling = client.cancelQuery(connection).catch(() => undefined)
    }
    try {
      if (cancellation.aborted) throw cancellation.reason
      cancellation.add(cancel)
      return ((await db.raw(sql, bindings as Knex.RawBinding[]).connection(connection)) as unknown as { rows: T[] }).rows
    } finally {
      cancellation.remove(cancel)
      // As knex does for its own timeouts: the cancel lands before the connection serves anyone else.
      if (cancelling) await cancelling
      await client.releaseConnection(connection)
    }
  }

  /**
   * The most bytes one row of a list page can take with the relations `embed` names, at every depth
   * (each embedded row at its resource's largest), or 0 when no budget applies.
   */
  private rowBound(embed: readonly string[]): number {
    if (!this.budget) return 0
    let bound = this.budget.maxRowBytes(this.def.name)
    for (const path of embed) bound += this.budget.maxRowBytes(embedTarget(this.def, path, (name) => this.related(name).def).name)
    return bound
  }

  /**
   * The statements go through knex, not the objection model: building an objection query and a model
   * instance per row cost more than the rest of the request (see bench/RESULTS.md). The JSON columns
   * are converted here the way objection's `jsonAttributes` would.
   */
  private query(db: Db = this.knex) {
    return db(this.def.plural)
  }

  private toDb(data: Record<string, unknown>): Record<string, unknown> {
    if (this.jsonFields.length === 0) return data
    const out = { ...data }
    for (const f of this.jsonFields) if (out[f] != null) out[f] = JSON.stringify(out[f])
    return out
  }

  /** Parses JSON columns and adds the alias keys (with the stored value, before any embed), in place. */
  private fromDb<T extends Record<string, unknown>>(rows: T[]): T[] {
    if (this.aliases.length) for (const row of rows) addAliasKeys(this.aliases, row)
    if (this.jsonFields.length === 0) return rows
    for (const row of rows) {
      for (const f of this.jsonFields) {
        if (typeof row[f] !== 'string') continue
        try {
          ;(row as Record<string, unknown>)[f] = JSON.parse(row[f] as string)
        } catch {
          // not JSON text: left as stored
        }
      }
    }
    return rows
  }

  /**
   * Runs a statement by its cached SQL text: knex builds and compiles it the first time its shape is
   * seen (`key` names everything but the values); after that only the values change. Building and
   * compiling a knex query cost a third of the CPU of a detail GET (bench/RESULTS.md). A shape is
   * cached only when knex bound exactly `bindings`, in that order; otherwise its SQL runs uncached.
   */
  private async statement<T = Row>(
    db: Db,
    key: string,
    bindings: unknown[],
    build: () => { toSQL(): { sql: string; bindings: readonly unknown[] } },
  ): Promise<T[]> {
    let sql = this.statements.get(key)
    if (sql === undefined) {
      const compiled = build().toSQL()
      if (compiled.bindings.length !== bindings.length || compiled.bindings.some((b, i) => b !== bindings[i])) {
        return this.execute<T>(db, compiled.sql, compiled.bindings)
      }
      sql = compiled.sql
      this.statements.set(key, sql)
    }
    return this.execute<T>(db, sql, bindings)
  }

  /**
   * A write statement, with the companion rows asked for inserted by the same statement:
   * `WITH "written" AS (<the write> RETURNING *), "companion_0" AS (INSERT ... SELECT ... FROM "written")
   * SELECT * FROM "written"`. A companion row exists if and only if the write touched a row.
   */
  private writeStatement(db: Db, key: string, bindings: unknown[], build: () => Knex.QueryBuilder, companions: readonly CompanionRow[] = []) {
    if (companions.length === 0) return this.statement(db, key, bindings, build)
    const parts = companions.map((c) => this.related(c.resource).companionInsert(c, this.def))
    const extra = parts.flatMap((p) => p.bindings)
    return this.statement(db, `${key}|${parts.map((p) => p.key).join('|')}`, [...bindings, ...extra], () => {
      const main = build().toSQL()
      const ctes = parts.map((p, i) => `"companion_${i}" AS (${p.sql()})`).join(', ')
      return this.knex.raw(`WITH "written" AS (${main.sql}), ${ctes} SELECT * FROM "written"`, [...(main.bindings as unknown[]), ...extra] as Knex.RawBinding[])
    })
  }

  /**
   * The `INSERT` of a companion row into this resource's table, its columns taken from `row.data`
   * (with a fresh ETag) and from the written row of `writer` (`row.fromWritten`), for {@link writeStatement}.
   */
  companionInsert(row: CompanionRow, writer: ResourceDefinition): { key: string; sql(): string; bindings: unknown[] } {
    const mine = columnsOf(this.def)
    const theirs = columnsOf(writer)
    const data = this.toDb({ ...row.data, etag: newEtag() })
    const columns = Object.keys(data).sort()
    const copied = Object.keys(row.fromWritten).sort()
    for (const c of columns) if (!mine.has(c)) throw new Error(`insertWith: ${this.def.name} has no field '${c}'`)
    for (const c of copied) {
      if (!mine.has(c)) throw new Error(`insertWith: ${this.def.name} has no field '${c}'`)
      if (!theirs.has(row.fromWritten[c])) throw new Error(`insertWith: ${writer.name} has no field '${row.fromWritten[c]}'`)
    }
    const quote = (name: string) => `"${name}"`
    return {
      key: `${this.def.plural}:${columns.join(',')}:${copied.map((c) => `${c}=${row.fromWritten[c]}`).join(',')}`,
      // Only when the statement's shape is new: its SQL is cached by the key.
      sql: () =>
        `INSERT INTO ${quote(this.def.plural)} (${[...columns, ...copied].map(quote).join(', ')}) ` +
        `SELECT ${[...columns.map(() => '?'), ...copied.map((c) => `"written".${quote(row.fromWritten[c])}`)].join(', ')} FROM "written"`,
      bindings: columns.map((c) => data[c]),
    }
  }

  /** Runs a statement and translates database errors by PostgreSQL code. */
  private async run<T>(operation: DbErrorContext['operation'], statement: () => PromiseLike<T>): Promise<T> {
    try {
      return await statement()
    } catch (err) {
      throw translateDbError(err, { operation, resource: this.def.name, db: this.knex, describeConstraint: this.describeConstraint }) ?? err
    }
  }

  /**
   * One page of rows matching `where`, and the number of all matching rows (`count`), exact up to
   * {@link EXACT_COUNT_UP_TO} or when `q.count` is `exact`, else the planner's estimate (`meta` says so);
   * none with `q.count` `none`; and where the next and previous pages start.
   */
  async list(q: ListQuery, db: Db = this.knex): Promise<ListPage> {
    const filter = q.filter && filterSql(q.filter)
    const search = q.search && searchSql(q.search.index)
    const filtered = () => {
      const qb = this.query(db)
      for (const [field, value] of q.where) qb.where(field, value)
      if (filter) qb.whereRaw(filter.sql, filter.bindings as Knex.RawBinding[])
      if (search) qb.whereRaw(search.matches, [q.search!.text])
      return qb
    }
    const shape = q.where.map(([field]) => field).join(',') + (q.filter ? `|${filterShape(q.filter)}` : '') + (search ? '|q' : '')
    const values: unknown[] = filter ? [...q.where.map(([, value]) => value), ...filter.bindings] : q.where.map(([, value]) => value)
    if (search) values.push(q.search!.text)
    // `q` without `sort`: the best matches first (rank computed by the database), ties by id. Such a
    // list is paged by offset only (the parser gives it no keyset).
    const ranked = search !== undefined && q.sort.length === 0
    const order = keysetOrder(q.sort)
    const after = q.keyset?.after
    const keyset = after && keysetSql(order, after.values, nullable)
    // `rankColumn`: the rank is answered too, as `__rank`, for the byte-budgeted page to number the rows by.
    const page = (limit: number, rankColumn = false): Knex.QueryBuilder => {
      const qb = filtered().select(this.selected)
      if (rankColumn) qb.select(this.knex.raw(`${search!.rank} AS "__rank"`, [q.search!.text]))
      if (keyset) qb.whereRaw(keyset.sql, keyset.bindings as Knex.RawBinding[])
      if (ranked) qb.orderByRaw(`${search.rank} DESC`, [q.search!.text])
      for (const [field, direction] of order) qb.orderBy(field, direction)
      return qb.limit(limit).offset(q.offset)
    }
    const pageKey = `page:${shape}:${ranked ? 'rank' : q.sort.map(([f, d]) => `${f} ${d}`).join(',')}:${q.offset > 0}${after ? `:after ${keysetShape(after.values)}` : ''}`
    // Whether rows follow the page: the count tells, when there is one and it is exact or proves more
    // rows than the page reaches; else the page is read with one row more than `limit`, whose presence
    // tells (a row more is about 5 % of a sorted page's CPU: see bench/RESULTS.md). A page after a
    // cursor does not know how many rows come before it, so the count cannot tell.
    const lookAhead = q.count === 'none' || after !== undefined || (q.count !== 'exact' && q.offset + q.limit > EXACT_COUNT_UP_TO)
    const fetched = lookAhead ? q.limit + 1 : q.limit
    const pageValues = [...values, ...(keyset ? keyset.bindings : []), ...(ranked ? [q.search!.text] : []), fetched, ...(q.offset > 0 ? [q.offset] : [])]
    const perRow = this.rowBound(q.embed)
    // Only a page whose largest possible rows could go over the budget is measured as it is fetched.
    const budgeted = this.budget !== undefined && perRow * q.limit > this.budget.maxResponseBytes
    let items: Row[]
    // Rows read (the page's rows without a budget, and the one past it when looking ahead).
    let read: number
    if (q.limit === 0) items = []
    else if (!budgeted) items = await this.run('read', () => this.statement(db, pageKey, pageValues, () => page(fetched)))
    else items = await this.run('read', () => this.budgetedPage(db, `budget-${pageKey}`, q, pageValues, perRow, () => page(fetched, ranked), ranked))
    if (budgeted && items.length > 0) {
      read = Number(items[0].__page)
      for (const row of items) {
        delete row.__n
        delete row.__page
        if (ranked) delete row.__rank
      }
    } else read = items.length
    const pageRows = Math.min(read, q.limit)
    if (items.length > q.limit) items.length = q.limit
    const truncated = items.length < pageRows
    const result: ListPage = { items: [], meta: {} }
    let more = lookAhead && read > q.limit
    if (q.count !== 'none') {
      // A page that is not full, and not past the end, is the last: it tells the count itself (not
      // after a cursor, whose page does not know its offset).
      const last = after ? false : !lookAhead ? pageRows > 0 && pageRows < q.limit : pageRows > 0 && !more
      const { count, exact } = last ? { count: q.offset + pageRows, exact: true } : await this.count(db, filtered, shape, values, q.count === 'exact')
      result.meta = exact ? { count } : { count, count_exact: false }
      // An estimate is above EXACT_COUNT_UP_TO, which a page that does not look ahead does not reach.
      if (!lookAhead) more = q.limit > 0 && (exact ? q.offset + pageRows < count : true)
    }
    // Where the page starts, in rows: its offset, or the position the cursor it follows carries.
    const start = after ? after.position : q.offset
    if (more || truncated) {
      result.nextOffset = start + items.length
      // The cursor of the last row answered, from its values as stored (before embed replaces ids).
      const last = items[items.length - 1]
      const next =
        q.keyset &&
        last &&
        encodeCursor(
          q.keyset.list,
          start + items.length,
          order.map(([field]) => last[field]),
        )
      if (next) result.meta.next = next
    }
    if (q.offset > 0) result.previousOffset = Math.max(0, q.offset - q.limit)
    const rows = this.fromDb(items)
    await this.embed(rows, q.embed, db)
    if (truncated) {
      result.meta.truncated = true
      if (!after) result.meta.next_offset = q.offset + items.length
    }
    result.items = rows
    return result
  }

  /**
   * The page of {@link list} bounded in bytes as PostgreSQL reads it: the LIMITed page is numbered
   * (`__n`, and `__page` its number of rows), then walked in order by a recursive query that adds up
   * each row's size as JSON (`row_to_json`, plus the largest size of the rows `embed` adds to it) and
   * stops after the row that goes over the budget. Only the rows it walks are read in full (the others
   * stay in TOAST); the rows within the budget are answered, and always the first one.
   */
  private budgetedPage(
    db: Db,
    key: string,
    q: ListQuery,
    pageValues: unknown[],
    perRow: number,
    page: () => Knex.QueryBuilder,
    ranked: boolean,
  ): Promise<Row[]> {
    const embedBytes = perRow - this.rowBound([])
    const budget = this.budget!.maxResponseBytes
    // A page by relevance answers its rank (`__rank`, bound first: it is in the page's select list),
    // by which it numbers its rows.
    const rankValues = ranked ? [q.search!.text] : []
    return this.statement(db, key, [...rankValues, ...pageValues, embedBytes, embedBytes, budget, budget], () => {
      const inner = page().toSQL()
      const order = [...(ranked ? ['"__rank" DESC'] : []), ...keysetOrder(q.sort).map(([field, direction]) => `"${field}" ${direction}`)].join(', ')
      const size = `octet_length(row_to_json("p")::text)::bigint + ?::bigint`
      const sql =
        `WITH RECURSIVE "p" AS (SELECT "x".*, row_number() OVER (ORDER BY ${order}) AS "__n", count(*) OVER () AS "__page" FROM (${inner.sql}) AS "x"),` +
        ` "r" AS (SELECT "p"."__n" AS "n", ${size} AS "bytes" FROM "p" WHERE "p"."__n" = 1` +
        ` UNION ALL SELECT "p"."__n", "r"."bytes" + ${size} FROM "r" JOIN "p" ON "p"."__n" = "r"."n" + 1 WHERE "r"."bytes" <= ?::bigint)` +
        ` SELECT "p".* FROM "p" JOIN "r" ON "r"."n" = "p"."__n" WHERE "r"."n" = 1 OR "r"."bytes" <= ?::bigint ORDER BY "p"."__n"`
      return this.knex.raw(sql, [...(inner.bindings as unknown[]), embedBytes, embedBytes, budget, budget] as Knex.RawBinding[])
    })
  }

  /** Counts the rows of `filtered`: exactly, or up to the threshold and then by the planner's estimate. */
  private async count(db: Db, filtered: () => Knex.QueryBuilder, shape: string, values: unknown[], exact: boolean): Promise<{ count: number; exact: boolean }> {
    type Count = { count: string | number }
    if (exact) {
      const [row] = await this.run('read', () => this.statement<Count>(db, `count:${shape}`, [...values, 1], () => filtered().count({ count: '*' }).limit(1)))
      return { count: Number(row?.count ?? 0), exact: true }
    }
    const [capped] = await this.run('read', () =>
      this.statement<Count>(db, `capped:${shape}`, [...values, EXACT_COUNT_UP_TO + 1, 1], () =>
        this.knex
          .from(
            filtered()
              .select(this.knex.raw('1'))
              .limit(EXACT_COUNT_UP_TO + 1)
              .as('capped'),
          )
          .count({ count: '*' })
          .limit(1),
      ),
    )
    const count = Number(capped?.count ?? 0)
    if (count <= EXACT_COUNT_UP_TO) return { count, exact: true }
    const rows = await this.run('read', () =>
      this.statement<Record<string, unknown>>(db, `explain:${shape}`, values, () =>
        this.knex.raw('EXPLAIN (FORMAT JSON) ?', [filtered().select(this.knex.raw('1'))]),
      ),
    )
    const plan = rows[0]?.['QUERY PLAN']
    const estimate = Number((typeof plan === 'string' ? JSON.parse(plan) : plan)?.[0]?.Plan?.['Plan Rows'])
    // The capped count proved there are more rows than the threshold, whatever the planner thinks.
    return { count: Math.max(Number.isFinite(estimate) ? Math.round(estimate) : 0, EXACT_COUNT_UP_TO + 1), exact: false }
  }

  /** The row with this id, or undefined. `lock` takes a row lock (`FOR UPDATE`): only inside a transaction. */
  async get(id: string, embed: string[] = [], db: Db = this.knex, lock = false): Promise<Row | undefined> {
    if (!isUuid(id)) return undefined
    const [row] = await this.run('read', () =>
      this.statement(db, lock ? 'get-for-update' : 'get', [id, 1], () => {
        const qb = this.query(db).select(this.selected).where('id', id).limit(1)
        return lock ? qb.forUpdate() : qb
      }),
    )
    if (!row) return undefined
    this.fromDb([row])
    await this.embed([row], embed, db)
    return row
  }

  /**
   * The id of the row whose `x-lookup` field holds `value` (compared as its unique key compares it:
   * NFC, and lowercased when the field is case-insensitive), or undefined.
   */
  async idByLookup(value: string, db: Db = this.knex): Promise<string | undefined> {
    const field = this.def.fields.find((f) => f.name === this.def.lookup)
    if (!field) return undefined
    // No text column holds a NUL, so no row has that name (the database would refuse the value).
    if (value.includes('\u0000')) return undefined
    const name = value.normalize('NFC')
    const [row] = await this.run('read', () =>
      this.statement<{ id: string }>(db, 'lookup', [name, 1], () => {
        const qb = db(this.def.plural).select('id')
        return (field.caseInsensitive ? qb.whereRaw('lower(??) = lower(?)', [field.name, name]) : qb.where(field.name, name)).limit(1)
      }),
    )
    return row?.id
  }

  /** Rows by id, for embedding. */
  async getMany(ids: string[], db: Db = this.knex): Promise<Row[]> {
    if (ids.length === 0) return []
    return this.fromDb(
      await this.run('read', () => this.statement(db, `many:${ids.length}`, ids, () => this.query(db).select(this.selected).whereIn('id', ids))),
    )
  }

  /** Inserts a row with a fresh id and ETag. */
  async create(data: Record<string, unknown>, db: Db = this.knex, companions?: readonly CompanionRow[]): Promise<Row> {
    const given = { ...data, etag: newEtag() }
    const stored = this.toDb(given)
    // knex lists the inserted columns sorted by name.
    const columns = Object.keys(stored).sort()
    const rows = await this.run('write', () =>
      this.writeStatement(
        db,
        `insert:${columns.join(',')}`,
        columns.map((c) => stored[c]),
        () => this.query(db).insert(stored).returning(this.selected),
        companions,
      ),
    )
    // The row as the database answers it, in its columns' order: the very object a GET answers.
    return this.fromDb(rows)[0]
  }

  /**
   * Applies `patch` if the row's ETag satisfies `condition`, in one statement
   * (`UPDATE ... WHERE id = ? AND etag IN (?) RETURNING *`). Throws 404 when the row is gone and 412
   * when it changed since the client read it.
   */
  async update(
    id: string,
    patch: Record<string, unknown>,
    condition: EtagCondition,
    db: Db = this.knex,
    none?: EtagCondition,
    companions?: readonly CompanionRow[],
  ): Promise<Row> {
    if (!isUuid(id)) throw errors.notFound(this.def.name)
    // `If-None-Match: *` never lets a write through an existing row.
    if (none?.any) throw await this.missOrStale(id, db)
    const etags = condition.any ? [] : condition.etags
    const excluded = none?.any === false ? none.etags : []
    const shape = `${condition.any ? '*' : etags.length}:${excluded.length}`
    if (Object.keys(patch).length === 0) {
      // Nothing to change: the row keeps its ETag and updated_at, if the conditions hold.
      const [row] = await this.run('read', () =>
        this.writeStatement(
          db,
          `unchanged:${shape}`,
          [id, ...etags, ...excluded, 1],
          () => this.conditional(this.query(db).select(this.selected), id, condition, excluded).limit(1),
          companions,
        ),
      )
      if (!row) throw await this.missOrStale(id, db)
      return this.fromDb([row])[0]
    }
    const changes: Record<string, unknown> = { ...this.toDb(patch), etag: newEtag() }
    const set = Object.keys(changes)
    const rows = await this.run('write', () =>
      this.writeStatement(
        db,
        `update:${set.join(',')}:${shape}`,
        [...set.map((c) => changes[c]), id, ...etags, ...excluded],
        () => this.conditional(this.query(db).update({ ...changes, updated_at: this.knex.fn.now() }), id, condition, excluded).returning(this.selected),
        companions,
      ),
    )
    const updated = this.fromDb(rows)[0]
    if (!updated) throw await this.missOrStale(id, db)
    return updated
  }

  /** `WHERE id = ? AND etag IN (If-Match) AND etag NOT IN (If-None-Match)`: the conditions of a write. */
  private conditional(qb: Knex.QueryBuilder, id: string, condition: EtagCondition, excluded: string[]): Knex.QueryBuilder {
    qb.where('id', id)
    if (!condition.any) qb.whereIn('etag', condition.etags)
    if (excluded.length) qb.whereNotIn('etag', excluded)
    return qb
  }

  /** Deletes the row if its ETag satisfies `condition`, in one statement; 404 or 412 as for update. Returns the deleted row. */
  async remove(id: string, condition: EtagCondition, db: Db = this.knex, none?: EtagCondition, companions?: readonly CompanionRow[]): Promise<Row> {
    if (!isUuid(id)) throw errors.notFound(this.def.name)
    if (none?.any) throw await this.missOrStale(id, db)
    const etags = condition.any ? [] : condition.etags
    const excluded = none?.any === false ? none.etags : []
    const deleted = await this.run('delete', () =>
      this.writeStatement(
        db,
        `delete:${condition.any ? '*' : etags.length}:${excluded.length}`,
        [id, ...etags, ...excluded],
        () => this.conditional(this.query(db).delete(), id, condition, excluded).returning(this.selected),
        companions,
      ),
    )
    const row = this.fromDb(deleted)[0]
    if (!row) throw await this.missOrStale(id, db)
    return row
  }

  /** After a conditional write changed nothing: 404 if the row is gone, 412 if its ETag moved on. */
  private async missOrStale(id: string, db: Db) {
    if (this.cancellation?.aborted) throw this.cancellation.reason
    const current = await this.run('read', () => this.query(db).first('id').where('id', id))
    return current ? errors.preconditionFailed() : errors.notFound(this.def.name)
  }

  /**
   * Replaces, in place, each relation id named in `embed` by the related row (null if none), one
   * statement per path over the distinct ids. A dotted path (`a.b`, after `a` in `embed`: see
   * `embedPaths`) is embedded by the repository `a` leads to, in the distinct rows embedded under `a`.
   */
  private async embed(rows: Row[], embed: readonly string[], db: Db): Promise<void> {
    if (rows.length === 0 || embed.length === 0) return
    // Without a dotted path, nothing below costs more than the one-level embed always did.
    const nested = embed.some((path) => path.includes('.'))
    for (const field of embed) {
      if (nested && field.includes('.')) continue
      const target = this.def.fields.find((f) => f.name === field)?.relation
      if (!target) continue
      const ids = [...new Set(rows.map((r) => r[field]).filter((v): v is string => typeof v === 'string'))]
      const repository = this.related(target.resource).withCancellation(this.cancellation)
      const related = new Map((await repository.getMany(ids, db)).map((r) => [r.id, r]))
      for (const row of rows) row[field] = typeof row[field] === 'string' ? (related.get(row[field] as string) ?? null) : null
      if (!nested || related.size === 0) continue
      const prefix = `${field}.`
      const deeper = embed.filter((path) => path.startsWith(prefix)).map((path) => path.slice(prefix.length))
      // Each related row once, however many rows embed it: its relations are replaced once.
      if (deeper.length) await repository.embed([...related.values()], deeper, db)
    }
  }
}
