import type { Knex } from 'knex'
import { parseEtagHeader, type EtagCondition } from '../data/etag'
import type { Db, Repository, Row } from '../data/repository'
import { errors } from '../errors'
import { embeddedAt, embedTarget, type FieldSelection, type ListQueryParser, type RawQuery, selectFields, toRawQuery } from '../query/list-query'
import { canonicalBody, fieldAliases, fieldDefaults, hiddenKeys, requiredAfterHooks } from '../schema/derive'
import { isUuid } from '../schema/vocabulary'
import type { ResourceDefinition } from '../schema/types'
import type { MethodHooks } from './hooks'
import { cancellationOf, extendParams } from './params'
import type { CompanionRow, HookContext, HookNeeds, Identity, Page, Params, ResourceService, ServiceMethod, TransactionLike } from './types'

/** What a service is built from, once per resource at start-up. */
export interface ServiceParts {
  def: ResourceDefinition
  repository: Repository
  query: ListQueryParser
  validateCreate(body: unknown): Record<string, unknown>
  validateUpdate(body: unknown): Record<string, unknown>
  hooks: Record<ServiceMethod, MethodHooks>
}

/** What a service needs from the engine: the database, the other services, and their hidden fields. */
export interface ServiceHost {
  readonly knex: Knex
  service(name: string): ResourceService
  /** Write-only fields of a resource, never answered. */
  hiddenFields(resource: string): readonly string[]
  /** The definition of a resource (its schema, fields, owner, access rules). */
  definition(resource: string): ResourceDefinition
}

const NO_IDENTITY: Identity = Object.freeze({})

/** The knex instance a call runs on: its transaction's, or the engine's. */
export function dbOf(transaction: TransactionLike | undefined, knex: Knex): Db {
  if (!transaction) return knex
  return typeof transaction === 'function' ? transaction : transaction.knex
}

/** True when `db` is a transaction (of `engine.transaction`, a hooked write or an action). */
export function isTransaction(db: Db): db is Knex.Transaction {
  return (db as Knex.Transaction).isTransaction === true
}

/** A call's params as hooks and action handlers see them: `provider` and `identity` always set. */
export function callParams(params: Params): Params & { provider: string; identity: Identity } {
  return extendParams(params, { provider: params.provider ?? 'internal', identity: params.identity ?? NO_IDENTITY }) as Params & {
    provider: string
    identity: Identity
  }
}

/**
 * The params of the calls a hook or an action makes through `ctx.service`: the server's own
 * (`internal`), with the caller's identity, in `db`'s transaction; nothing of the outer call's
 * request, query or preconditions.
 */
export function nestedParams(params: Params, db: Db): Params {
  return extendParams(params, {
    provider: 'internal',
    request: undefined,
    // The request's id stays, for logs and audit rows of the nested writes.
    requestId: params.request?.id ?? params.requestId,
    query: undefined,
    ifMatch: undefined,
    ifNoneMatch: undefined,
    transaction: isTransaction(db) ? db : params.transaction,
  })
}

/** A service whose calls carry `defaults` (a transaction, an identity...) unless they give their own. */
export function withParams(service: ResourceService, defaults: Params): ResourceService {
  const merge = (params: Params | undefined): Params => (params ? extendParams(defaults, params) : defaults)
  return {
    name: service.name,
    find: (params) => service.find(merge(params)),
    get: (id, params) => service.get(id, merge(params)),
    create: (data, params) => service.create(data, merge(params)),
    update: (id, data, params) => service.update(id, data, merge(params)),
    remove: (id, params) => service.remove(id, merge(params)),
  }
}

/** `If-None-Match` of a write (weak comparison, as RFC 9110 says), or undefined. */
function ifNoneMatchOf(params: Params): EtagCondition | undefined {
  const given = params.ifNoneMatch
  return typeof given === 'string' ? parseEtagHeader(given, 'weak') : given
}

function ifMatchOf(params: Params): EtagCondition {
  const given = params.ifMatch
  const condition = typeof given === 'string' ? parseEtagHeader(given) : given
  if (condition) return condition
  // Trusted code that names no ETag writes whatever the row's current one is.
  if (params.trusted) return { any: true }
  throw errors.ifMatchRequired()
}

/** A row with only the keys `fields` selects (all without a selection). */
function selectRow(row: Row, fields: FieldSelection | undefined): Row {
  return fields ? selectFields(row, fields) : row
}

/** A page with only the keys `fields` selects in its rows. */
function selectPage(page: Page, fields: FieldSelection | undefined): Page {
  if (fields) page.items = page.items.map((row) => selectFields(row, fields))
  return page
}

/**
 * The query parameters as the parser takes them: the HTTP transport's are the query string's as they
 * are (a repeated key is an array, which the parser refuses); in-process ones may be structured.
 */
function rawQueryOf(params: Params): RawQuery {
  if (!params.query) return {}
  return params.provider === 'http' ? (params.query as RawQuery) : toRawQuery(params.query)
}

/**
 * The service of one resource. Every call, whoever makes it, runs validate -> before hooks ->
 * repository -> serialize -> after hooks, and error hooks on failure (see {@link HookContext}). A
 * write that has hooks runs in a transaction, and an update or remove first locks the row there so
 * that hooks see it as it is before the write, unless every set of its hooks says it needs neither
 * ({@link HookNeeds}); its ETag check stays inside the write.
 */
export class Service implements ResourceService {
  readonly name: string
  private readonly hidden: readonly string[]
  private readonly fillLater: readonly string[]
  private readonly defaults: ReadonlyArray<[string, unknown]>
  private readonly aliases: ReadonlyArray<[string, string]>

  constructor(
    private readonly parts: ServiceParts,
    private readonly host: ServiceHost,
  ) {
    this.name = parts.def.name
    this.hidden = hiddenKeys(parts.def)
    this.aliases = fieldAliases(parts.def)
    this.fillLater = requiredAfterHooks(parts.def)
    this.defaults = fieldDefaults(parts.def)
  }

  find(params: Params = {}): Promise<Page> {
    const db = dbOf(params.transaction, this.host.knex)
    if (params.trusted) {
      const query = this.parts.query.parseList(rawQueryOf(params))
      return this.repository(params)
        .list(query, db)
        .then((page) => selectPage(page, query.fields))
    }
    // `fields` leaves keys out of the answer, after the hooks, which may need them.
    let fields: FieldSelection | undefined
    const validate = (ctx: HookContext) => {
      ctx.query = this.parts.query.parseList(rawQueryOf(params))
      fields = ctx.query.fields
    }
    return this.call('find', params, db, { validate }, (ctx) => this.repository(params).list(ctx.query!, ctx.db)).then((page) => selectPage(page, fields))
  }

  get(id: string, params: Params = {}): Promise<Row> {
    const db = dbOf(params.transaction, this.host.knex)
    if (params.trusted) {
      if (this.named(id)) return this.resolve(id, db, params).then((found) => this.get(found, params))
      const { embed, fields } = this.parts.query.parseDetail(rawQueryOf(params))
      return this.getRow(id, embed, db, params).then((row) => selectRow(row, fields))
    }
    let fields: FieldSelection | undefined
    const validate = (ctx: HookContext) => {
      const detail = this.parts.query.parseDetail(rawQueryOf(params))
      ctx.embed = detail.embed
      fields = detail.fields
    }
    return this.call('get', params, db, { id, validate }, (ctx) => this.getRow(ctx.id!, ctx.embed!, ctx.db, params)).then((row) => selectRow(row, fields))
  }

  create(data: Record<string, unknown>, params: Params = {}): Promise<Row> {
    const db = dbOf(params.transaction, this.host.knex)
    if (params.trusted) return this.trustedData(data).then((canonical) => this.repository(params).create(canonical, db))
    const validate = (ctx: HookContext) => {
      ctx.data = { ...this.parts.validateCreate(data) }
      // An omitted field with a `default` gets it (a copy: hooks may change it).
      for (const [field, value] of this.defaults) if (ctx.data[field] === undefined) ctx.data[field] = structuredClone(value)
    }
    return this.call('create', params, db, { validate }, (ctx, companions) => {
      // Fields the body could omit for a before hook to fill (the owner) must be there by now.
      const missing = this.fillLater.filter((f) => ctx.data![f] === undefined || ctx.data![f] === null)
      if (missing.length) throw errors.validation(Object.fromEntries(missing.map((f) => [f, 'is required'])))
      return this.repository(params).create(ctx.data!, ctx.db, companions)
    })
  }

  update(id: string, data: Record<string, unknown>, params: Params = {}): Promise<Row> {
    const db = dbOf(params.transaction, this.host.knex)
    if (params.trusted) {
      if (this.named(id)) return this.resolve(id, db, params).then((found) => this.update(found, data, params))
      return this.trustedData(data).then((canonical) => this.repository(params).update(id, canonical, ifMatchOf(params), db, ifNoneMatchOf(params)))
    }
    let condition: EtagCondition
    return this.call(
      'update',
      params,
      db,
      {
        id,
        validate: (ctx) => {
          condition = ifMatchOf(params)
          ctx.data = { ...this.parts.validateUpdate(data) }
        },
      },
      (ctx, companions) => this.repository(params).update(ctx.id!, ctx.data!, condition, ctx.db, ifNoneMatchOf(params), companions),
    )
  }

  remove(id: string, params: Params = {}): Promise<Row> {
    const db = dbOf(params.transaction, this.host.knex)
    if (params.trusted) {
      if (this.named(id)) return this.resolve(id, db, params).then((found) => this.remove(found, params))
      return this.repository(params).remove(id, ifMatchOf(params), db, ifNoneMatchOf(params))
    }
    let condition: EtagCondition
    return this.call('remove', params, db, { id, validate: () => void (condition = ifMatchOf(params)) }, (ctx, companions) =>
      this.repository(params).remove(ctx.id!, condition, ctx.db, ifNoneMatchOf(params), companions),
    )
  }

  /** Trusted data skips validation, not the aliases: a field named by its alias is stored under its name. */
  private async trustedData(data: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.aliases.length === 0) return data
    const canonical = canonicalBody(this.aliases, data)
    if ('conflicts' in canonical) throw errors.validation(canonical.conflicts)
    return canonical.body
  }

  /** True when a detail call names its row by its `x-lookup` field: the resource has one and `id` is no uuid (a uuid is always an id). */
  private named(id: string): boolean {
    return this.parts.def.lookup !== undefined && !isUuid(id)
  }

  /** The id of the row whose `x-lookup` field holds `name`; an unknown name is a 404, as an unknown id. */
  private async resolve(name: string, db: Db, params: Params): Promise<string> {
    const found = await this.repository(params).idByLookup(name, db)
    if (found === undefined) throw errors.notFound(this.name)
    return found
  }

  /** The repository for one call: statements of a call whose `signal` aborted never start (see `Params.signal`). */
  private repository(params: Params): Repository {
    return this.parts.repository.withCancellation(cancellationOf(params))
  }

  private async getRow(id: string, embed: string[], db: Db, params: Params): Promise<Row> {
    const row = await this.repository(params).get(id, embed, db)
    if (!row) throw errors.notFound(this.name)
    return row
  }

  /** The pipeline of one call. `validate` checks the input (its errors reach the error hooks too). */
  private async call<R extends Row | Page>(
    method: ServiceMethod,
    params: Params,
    db: Db,
    input: { id?: string; validate(ctx: HookContext): unknown },
    execute: (ctx: HookContext, companions: readonly CompanionRow[]) => Promise<R>,
  ): Promise<R> {
    if (this.parts.def.readOnly && method !== 'find' && method !== 'get') throw errors.readOnly(this.parts.def.plural)
    const hooks = this.parts.hooks[method]
    const hooked = hooks.before.length + hooks.after.length + hooks.error.length > 0
    const write = method !== 'find' && method !== 'get'
    const companions: CompanionRow[] = []
    const ctx = this.context(method, params, db, input.id, companions)
    // Hooks of an update or remove may need the row before it: read and locked, in a transaction.
    const before = hooked && (method === 'update' || method === 'remove') && hooks.needsBefore(ctx)
    // A hooked write runs in one transaction with its hooks' own writes, unless its hooks need none
    // (rows they ask for with insertWith are written by the write's own statement).
    if (hooked && write && (hooks.transaction || before) && !isTransaction(db)) {
      return this.host.knex.transaction((trx) => this.call(method, extendParams(params, { transaction: trx }), trx, input, execute))
    }
    try {
      input.validate(ctx)
      // Hooks and the write see the row's id, whichever way the caller named it (checked after the
      // input, as an unknown id is: a bad body or a missing If-Match answers the same by name and by id).
      if (input.id !== undefined && this.named(input.id)) (ctx as { id?: string }).id = await this.resolve(input.id, db, params)
      if (before) {
        ctx.before = await this.repository(params).get(ctx.id!, [], db, true)
        if (!ctx.before) throw errors.notFound(this.name)
      }
      for (const hook of hooks.before) await hook(ctx)
      if (ctx.result === undefined) ctx.result = await execute(ctx, companions)
      ctx.result = this.serialize(ctx.result, ctx)
      if (hooks.after.length) {
        ctx.type = 'after'
        for (const hook of hooks.after) await hook(ctx)
      }
      return ctx.result as R
    } catch (err) {
      if (hooks.error.length === 0) throw err
      ctx.type = 'error'
      ctx.error = err
      ctx.result = undefined
      for (const hook of hooks.error) await hook(ctx)
      if (ctx.result !== undefined) return ctx.result as R
      throw ctx.error
    }
  }

  private context(method: ServiceMethod, params: Params, db: Db, id: string | undefined, companions: CompanionRow[]): HookContext {
    const full = callParams(params)
    const host = this.host
    const ctx: HookContext = {
      resource: this.name,
      method,
      type: 'before',
      params: full,
      id,
      db,
      service: (name) => withParams(host.service(name), nestedParams(full, db)),
      definition: (name = this.name) => host.definition(name),
      insertWith(resource, data, fromWritten = {}) {
        if (method === 'find' || method === 'get' || ctx.type !== 'before')
          throw new Error(`insertWith: only before hooks of a write may call it (${method}, ${ctx.type})`)
        host.definition(resource) // an unknown resource throws here, naming it
        companions.push({ resource, data: { ...data }, fromWritten: { ...fromWritten } })
      },
    }
    return ctx
  }

  /** Leaves out write-only fields, of this resource's rows and of the rows embedded in them at every depth. */
  private serialize<R extends Row | Page>(result: R, ctx: HookContext): R {
    const embedded = ctx.query?.embed ?? ctx.embed ?? []
    const targets = embedded
      .map((path) => [path, this.host.hiddenFields(embedTarget(this.parts.def, path, (name) => this.host.definition(name)).name)] as const)
      .filter(([, hidden]) => hidden.length > 0)
    if (this.hidden.length === 0 && targets.length === 0) return result
    const strip = (row: Row) => {
      for (const field of this.hidden) delete row[field]
      for (const [path, hidden] of targets) {
        const related = embeddedAt(row, path)
        if (related) for (const h of hidden) delete related[h]
      }
    }
    if (ctx.method === 'find') (result as Page).items.forEach(strip)
    else strip(result as Row)
    return result
  }
}
