import type { Knex } from 'knex'
import type { CompanionRow, Db, ListPage, Row } from '../data/repository'
import type { EtagCondition } from '../data/etag'
import type { FindQuery, ListQuery, RawQuery } from '../query/list-query'
import type { ResourceDefinition } from '../schema/types'

/** The five operations every resource's service has. */
export const SERVICE_METHODS = ['find', 'get', 'create', 'update', 'remove'] as const
export type ServiceMethod = (typeof SERVICE_METHODS)[number]

/** Who calls: filled by the identity layer; empty until one is installed. */
export type Identity = Record<string, unknown>

/** A transaction of {@link Engine.transaction}, or a knex transaction. */
export type TransactionLike = Knex.Transaction | { readonly knex: Knex.Transaction }

/** What a transport tells the service about the request it serves (no framework objects). */
export interface TransportRequest {
  method: string
  /** The path below the engine's prefix, as the client sent it. */
  path: string
  headers: Record<string, string | string[] | undefined>
  /** The request's id (`X-Request-Id`). */
  id?: string
  /** The client's address (the socket's peer). */
  ip?: string
}

/**
 * What every service call carries besides its data. In-process callers give what they need; the HTTP
 * transport sets `provider: 'http'`, the request, and the `If-Match`/query parameters.
 */
export interface Params {
  /** Who made the call: `http` for the HTTP transport, `internal` (the default) for server code. */
  provider?: string
  /** The caller's identity (empty until an identity plugin fills it). */
  identity?: Identity
  /** Run the call in this transaction (see `engine.transaction`). */
  transaction?: TransactionLike
  /** List parameters (find) or `{ embed }` (get), as the query string gives them or structured. */
  query?: FindQuery | RawQuery
  /** update and remove: the ETag(s) the change is based on, as `If-Match` takes them (`*` for any). */
  ifMatch?: string | EtagCondition
  /**
   * update and remove: refuse (412) when the row's ETag is one of these; `*` refuses whenever the
   * row exists (a PUT never creates, so `If-None-Match: *` on an existing row is a 412).
   */
  ifNoneMatch?: string | EtagCondition
  /**
   * The one door around the rules: no validation, no hooks, answers as stored (write-only fields
   * included). For trusted server code only; never set it from anything a client sent.
   */
  trusted?: boolean
  /** The transport's request, when a transport made the call. */
  request?: TransportRequest
  /**
   * Aborted when the call's answer is no longer wanted (the HTTP client hung up, or the request ran
   * past its deadline): no further statement of the call starts, and on PostgreSQL the running one is
   * cancelled. The HTTP transport sets it; nested calls (`ctx.service`) keep it. Code of a plugin that
   * runs its own statements or fetches may listen to it too. On the params of an HTTP call it is an
   * accessor that makes the signal when first read (core/service/params.ts): read it from `ctx.params`;
   * an object spread of the params does not copy it, though calls made with the copy are still
   * cancelled with the request.
   */
  signal?: AbortSignal
  /** Plugins may carry their own values (kept across nested calls made with `ctx.service`). */
  [key: string]: unknown
}

/**
 * What a hook is given, and may change. `T` types `data`: the resource's generated input type in a
 * per-resource plugin (`defineResource<ComponenttypeInput>`), any object otherwise.
 */
export interface HookContext<T extends object = Record<string, unknown>> {
  /** The resource (singular name). */
  readonly resource: string
  readonly method: ServiceMethod
  /** Which list of hooks runs now. */
  type: 'before' | 'after' | 'error'
  /** The call's params (`provider` and `identity` always set). */
  readonly params: Params & { provider: string; identity: Identity }
  /** get, update, remove: the row id. */
  readonly id?: string
  /** create and update: the validated body; before hooks may change it. */
  data?: Partial<T> & Record<string, unknown>
  /** find: the parsed, checked list query (before hooks may add `where` clauses); get: `{ embed }`. */
  query?: ListQuery
  /**
   * get: the relations to embed, as `query.embed` of a find: each path once, after the paths it implies
   * (`embed=a.b` gives `['a', 'a.b']`).
   */
  embed?: string[]
  /** update and remove: the row as stored before the write (locked until the call ends). */
  before?: Row
  /**
   * The answer: set by the repository (after hooks may change it), or by a before hook (the
   * repository is then skipped), or by an error hook (the error is then recovered from).
   */
  result?: Row | Page
  /** error hooks: what was thrown; an error hook may replace it. */
  error?: unknown
  /** The database (or transaction) this call runs in. */
  readonly db: Db
  /** The service of any resource, in this call's transaction and with this call's identity. */
  service(name: string): ResourceService
  /** The definition of a resource (default: this one): its fields, owner and access rules. */
  definition(name?: string): ResourceDefinition
  /**
   * create, update and remove, before hooks: a row to insert into another resource's table by the
   * same statement as the write, so that it exists if and only if the write does (an audit row...):
   * `data`, plus for each entry of `fromWritten` a column of the written row (`{ row_id: 'id' }`).
   * It gets an id and an ETag as any row; no validation and no hooks run for it (as a trusted create).
   * Not inserted when a before hook answers in place of the repository (sets `result`).
   */
  insertWith(resource: string, data: Record<string, unknown>, fromWritten?: Record<string, string>): void
}

/**
 * What a set of hooks needs of the creates, updates and removes it hooks (the default, `{}`, is all
 * of it). A write none of whose hooks needs more runs as one statement: no transaction, no read of
 * the row before it.
 */
export interface HookNeeds<T extends object = Record<string, unknown>> {
  /** The write and the hooks' own writes (through `ctx.db` or `ctx.service`) in one transaction (default true). */
  transaction?: boolean
  /**
   * update and remove: `ctx.before`, the row as stored, read and locked before the hooks run (default
   * true; it implies a transaction). A function decides per call (before validation: from `params`,
   * `resource`, `method`).
   */
  before?: boolean | ((ctx: HookContext<T>) => boolean)
}

export type { CompanionRow }

export type Hook<T extends object = Record<string, unknown>> = (ctx: HookContext<T>) => void | Promise<void>

/** Hooks by method; `all` runs for every method, before the method's own. */
export type HookMap<T extends object = Record<string, unknown>> = Partial<Record<ServiceMethod | 'all', Hook<T> | Hook<T>[]>>

/** Hooks by when they run, and what they need of a write. */
export interface HookSet<T extends object = Record<string, unknown>> {
  before?: HookMap<T>
  after?: HookMap<T>
  error?: HookMap<T>
  needs?: HookNeeds<T>
}

/**
 * One page of a list: the rows, `_meta` (the count of all matching rows, unless `count=none`), and the
 * offsets of the next page (when rows follow) and of the previous one (when this one is not the first).
 */
export type Page = ListPage

/**
 * The service of one resource: what every transport and every in-process caller uses. Each call runs
 * validate -> before hooks -> repository -> serialize -> after hooks, and error hooks on failure.
 */
export interface ResourceService {
  /** The resource (singular name). */
  readonly name: string
  /** One page of rows (`params.query`: where, sort, limit, offset, embed, count). */
  find(params?: Params): Promise<Page>
  /** One row; 404 (`not_found`) when there is none. `params.query.embed` embeds relations. */
  get(id: string, params?: Params): Promise<Row>
  /** Creates a row from a body that matches the schema. */
  create(data: Record<string, unknown>, params?: Params): Promise<Row>
  /** Changes the given fields if `params.ifMatch` matches the row's ETag (412 otherwise). */
  update(id: string, data: Record<string, unknown>, params?: Params): Promise<Row>
  /** Deletes the row if `params.ifMatch` matches its ETag; answers the deleted row. */
  remove(id: string, params?: Params): Promise<Row>
}
