import type { EngineFieldName, ErrorBody, ErrorCode } from './protocol'
import type { Query } from './query'

export { BUILTIN_ERROR_CODES, type BuiltinErrorCode, type ErrorBody, type ErrorCode } from './protocol'
export { q, type Query } from './query'

/**
 * The TypeScript types of one resource: `item` is the stored object as the API answers it (engine
 * fields included, unset optional fields null), `input` the body of a create (an update sends any part).
 * For the Distributed CI resources they are generated from the schemas into `resources/types/`.
 */
export interface ResourceType {
  item: object
  input: object
}

/** The types of a read-only resource (`x-read-only`: the server writes it, clients only read it). */
export interface ReadOnlyResourceType {
  item: object
  readOnly: true
}

/**
 * Resources by route name (the plural: `componenttypes`), each with its {@link ResourceType} (or
 * {@link ReadOnlyResourceType}). An interface fits: `R extends ResourceTypes<R>` asks no index signature of it.
 */
export type ResourceTypes<R = Record<string, ResourceType>> = { [P in keyof R]: ResourceType | ReadOnlyResourceType }

/** Fields of `T` that hold a string, a number or a boolean: the ones `where` and `sort` accept. */
export type ScalarField<T> = Exclude<{ [K in keyof T]-?: NonNullable<T[K]> extends string | number | boolean ? K : never }[keyof T] & string, 'etag'>

/** Fields that may name a related row, so `embed` may name them: string fields the server does not own. */
export type EmbeddableField<T> = Exclude<{ [K in keyof T]-?: NonNullable<T[K]> extends string ? K : never }[keyof T] & string, EngineFieldName>

/**
 * What `embed` takes: a relation field, or a path from one through the related rows' relations
 * (`component.componenttype`, at most 3 relations), which the server checks: the client's types know
 * a resource's fields, not where its relations lead.
 */
export type EmbedPath<T> = EmbeddableField<T> | `${EmbeddableField<T>}.${string}`

/** A related row put in place of its id by `embed` (its own relations embedded too by a dotted path). */
export type EmbeddedRow = { id: string; etag: string; created_at: string; updated_at: string; [field: string]: unknown }

/** The field of `T` an embed path starts with (`component` of `component.componenttype`). */
type EmbeddedField<E extends string> = E extends `${infer F}.${string}` ? F : E

/** `T` with the fields named in `E` (or starting a path of `E`) replaced by the related row (null when the relation is unset). */
export type WithEmbedded<T, E extends string> = [E] extends [never] ? T : Omit<T, EmbeddedField<E>> & { [K in EmbeddedField<E>]: EmbeddedRow | null }

/** The list parameters, typed by the resource's fields. */
export interface ListParams<T, E extends string = never, C extends CountMode = CountMode> {
  /** Equality filters, AND-ed: `{ name: 'rhel' }` is sent as `where=name:rhel`. Values may not contain commas. */
  where?: Partial<Record<ScalarField<T>, string | number | boolean>>
  /** Sort keys in order: `'name'` ascending, `'-created_at'` descending. */
  sort?: Array<ScalarField<T> | `-${ScalarField<T>}`>
  limit?: number
  offset?: number
  /**
   * A page's {@link ListPage.next}: the page after it (give the same `where`, `query`, `sort` and
   * `limit`; not with `offset`). Keyset paging: no row skipped or repeated as rows come and go, and a
   * deep page costs what the first does.
   */
  after?: string
  /** Relation fields to replace by the related object; a dotted path embeds the related rows' relations too. */
  embed?: E[]
  /**
   * A filter expression, ANDed with `where`: built with {@link q} (`q.and(q.eq('name', 'x'), q.gt('created_at', date))`),
   * whose fields and values the compiler checks, or as text.
   */
  query?: Query<T> | string
  /**
   * Full-text search of the resource's searchable (`x-search`) fields: `'rhel 8.4 -beta'`, `'"a phrase"'`,
   * `'a or b'`; without `sort`, the best matches come first. A resource without such fields answers 400.
   */
  q?: string
  /**
   * `exact` counts every matching row; `estimate` (the server's default) estimates large counts;
   * `none` counts nothing (`count` is then undefined, and the page costs the server one statement).
   */
  count?: C
}

/** The values of {@link ListParams.count}. */
export type CountMode = 'estimate' | 'exact' | 'none'

/** One page of a list, the number of all matching rows, and the ETag of the answer. */
export interface ListPage<T, C extends CountMode = 'estimate'> {
  items: T[]
  /** Rows matching `where`, on every page; undefined with `count: 'none'`. */
  count: C extends 'none' ? undefined : number
  /** False when `count` is the database's estimate (large lists, unless `count: 'exact'`). */
  countExact: boolean
  /**
   * True when the page stopped before `limit` rows to stay within the server's byte budget of one
   * answer: the next page starts at `nextOffset` (not at `offset + limit`).
   */
  truncated: boolean
  /** The `offset` of the next page, when rows follow this one (from `_meta.next_offset` or the `Link` header). */
  nextOffset?: number
  /** When rows follow this page: the cursor of its last row, to send as `after` for the next page (`_meta.next`). */
  next?: string
  etag: string
}

/** `_meta` of a list answer, as sent. */
interface ListMetaBody {
  count?: number
  count_exact?: false
  truncated?: true
  next_offset?: number
  next?: string
}

/** The `offset` of the `rel="next"` link of a `Link` header, if it has one. */
function nextOffsetOf(link: string | null): number | undefined {
  const next = link && /<([^>]*)>\s*;\s*rel="next"/.exec(link)
  if (!next) return undefined
  const offset = new URL(next[1]).searchParams.get('offset')
  return offset === null ? undefined : Number(offset)
}

/** The fields of a {@link ListPage} that `_meta` and the headers give. */
function pageOf(body: Record<string, unknown>, plural: string, response: Response): ListPage<never, CountMode> {
  const meta = body._meta as ListMetaBody
  const page: ListPage<never, CountMode> = {
    items: body[plural] as never[],
    count: meta.count,
    countExact: meta.count_exact !== false,
    truncated: meta.truncated === true,
    etag: unquote(response.headers.get('ETag')),
  }
  const next = meta.next_offset ?? nextOffsetOf(response.headers.get('Link'))
  if (next !== undefined) page.nextOffset = next
  if (meta.next !== undefined) page.next = meta.next
  return page
}

/** The result of an update: the new ETag, and the updated object when it was asked for. */
export interface Updated<T> {
  etag: string
  item?: T
}

/** The reads of one resource: all a read-only one offers. */
export interface ReadResourceClient<T extends { item: object }> {
  /** `GET /<plural>`: one page of rows. */
  list<E extends EmbedPath<T['item']> = never, C extends CountMode = 'estimate'>(
    params?: ListParams<T['item'], E, C>,
  ): Promise<ListPage<WithEmbedded<T['item'], E>, C>>
  /**
   * `GET /<plural>/<id>`: one row; a missing one throws an {@link ApiRequestError} with status 404. On
   * a resource with `x-lookup` (componenttypes and teams: their `name`), `id` may be that field's value
   * instead, here and in `update` and `remove` (a value that parses as a uuid is always an id).
   */
  get<E extends EmbedPath<T['item']> = never>(id: string, options?: { embed?: E[] }): Promise<WithEmbedded<T['item'], E>>
}

/** The operations of one resource. `T` is its {@link ResourceType}. */
export interface ResourceClient<T extends ResourceType> extends ReadResourceClient<T> {
  /** `POST /<plural>`: creates a row and answers it (its `etag` included). */
  create(data: T['input']): Promise<T['item']>
  /**
   * `PUT /<plural>/<id>` with `If-Match: <etag>`: changes the given fields if nobody changed the row
   * since `etag`, else throws {@link PreconditionFailedError}. Returns the new ETag, and the updated
   * object too with `{ representation: true }`.
   */
  update(id: string, patch: Partial<T['input']>, options: { etag: string; representation: true }): Promise<Required<Updated<T['item']>>>
  update(id: string, patch: Partial<T['input']>, options: { etag: string; representation?: false }): Promise<Updated<T['item']>>
  /** `DELETE /<plural>/<id>` with `If-Match: <etag>`; a stale etag throws {@link PreconditionFailedError}. */
  remove(id: string, options: { etag: string }): Promise<void>
}

/** How to call one action (the generated `ACTIONS` of `resources/types/actions.ts`). */
export interface ActionRoute {
  method: string
  /** Below the API root, with `:param` segments. */
  path: string
  /** The list key of an action that answers a page. */
  list?: string
}

/** The types of one action: path parameters, query, body and answer (the generated `Actions`). */
export interface ActionType {
  path: object
  query: object
  body: unknown
  output: unknown
}

/** What an action call sends. */
export type ActionArgs<A extends ActionType> = { path: A['path']; query?: A['query'] } & (A['body'] extends undefined
  ? { body?: undefined }
  : { body: A['body'] })

/**
 * A client: one {@link ResourceClient} per resource, by plural (`client.componenttypes.list()`), a
 * {@link ReadResourceClient} for a read-only one, and `action`.
 */
export type Client<R extends ResourceTypes<R>, A extends { [K in keyof A]: ActionType } = Record<string, never>> = {
  readonly [P in keyof R & string]: R[P] extends ResourceType ? ResourceClient<R[P]> : ReadResourceClient<R[P]>
} & {
  /** Calls an action by name: `client.action('list_componenttype_components', { path: { id } })`. */
  action<K extends keyof A & string>(name: K, args: ActionArgs<A[K]>): Promise<A[K]['output']>
}

/**
 * Who the client is, sent in `Authorization` with every request:
 * - `{ basic: { username, password } }`: HTTP Basic with a user's name (or email) and password;
 * - `{ bearer: token }`: an API key's token (`POST /users/<id>/apikeys`), or a JWT of the server's issuer;
 * - a function answering the whole header value (`'Bearer ...'`), called before each request (a
 *   token that is refreshed, read from a vault...); `undefined` sends no header.
 */
export type Credentials = { basic: { username: string; password: string } } | { bearer: string } | (() => string | undefined | Promise<string | undefined>)

/** Where the API is and how to reach it. */
export interface ClientOptions {
  /** The API root, prefix included: `http://127.0.0.1:5000/api/v1`. */
  baseUrl: string
  /** A fetch implementation (default: the global `fetch` of Node 20 and browsers). */
  fetch?: typeof fetch
  /** Sent with every request; a wrong or missing one answers 401 (`code: 'unauthorized'`). */
  credentials?: Credentials
  /** Headers sent with every request (`X-Request-Id`...); `Authorization` comes from `credentials`. */
  headers?: Record<string, string>
  /** The server's actions (the generated `ACTIONS`), for `client.action(...)`. */
  actions?: Record<string, ActionRoute>
}

/** An answer with an error status; `body` is the API's error body (`message`, `payload`, `status_code`, `code`). */
export class ApiRequestError extends Error {
  readonly status: number
  /** The error's stable code (`not_found`, `precondition_failed`...): switch on it, not on the message. */
  readonly code: ErrorCode
  readonly body: ErrorBody
  /** `METHOD path` of the request that failed. */
  readonly request: string

  constructor(status: number, body: ErrorBody, request: string) {
    super(`${request} answered ${status}: ${body.message}`)
    this.name = 'ApiRequestError'
    this.status = status
    this.code = body.code
    this.body = body
    this.request = request
  }
}

/** A 412: `If-Match` did not match, someone changed the row since it was read. Read it again and retry. */
export class PreconditionFailedError extends ApiRequestError {
  constructor(body: ErrorBody, request: string) {
    super(412, body, request)
    this.name = 'PreconditionFailedError'
  }
}

/** The body of an error answer, or one made from the status when the answer is not the API's JSON. */
async function errorBody(response: Response): Promise<ErrorBody> {
  const text = await response.text()
  try {
    const body = JSON.parse(text) as Partial<ErrorBody>
    if (body && typeof body.message === 'string') {
      return {
        message: body.message,
        payload: body.payload ?? {},
        status_code: body.status_code ?? response.status,
        code: body.code ?? `http_${response.status}`,
      }
    }
  } catch {
    // Not JSON (a proxy's page, say): keep the start of the text as the message.
  }
  return { message: text.slice(0, 200) || response.statusText, payload: {}, status_code: response.status, code: `http_${response.status}` }
}

/** Characters of a Bearer token (RFC 6750's b64token): API keys and JWTs are made of them. */
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/

/** `Basic <base64 of "username:password" in UTF-8>`, as RFC 7617 sends it (no Buffer: browsers too). */
function basicHeader(username: string, password: string): string {
  if (typeof username !== 'string' || username === '' || username.includes(':')) {
    throw new TypeError('createClient: credentials.basic.username must be a non-empty string without ":"')
  }
  if (typeof password !== 'string') throw new TypeError('createClient: credentials.basic.password must be a string')
  let binary = ''
  for (const byte of new TextEncoder().encode(`${username}:${password}`)) binary += String.fromCharCode(byte)
  return `Basic ${btoa(binary)}`
}

/** The `Authorization` value of each request, from the credentials (checked once, here). */
function authorizationOf(credentials: Credentials | undefined): () => string | undefined | Promise<string | undefined> {
  if (credentials === undefined) return () => undefined
  if (typeof credentials === 'function') return credentials
  if (credentials && 'basic' in credentials && credentials.basic) {
    const header = basicHeader(credentials.basic.username, credentials.basic.password)
    return () => header
  }
  if (credentials && 'bearer' in credentials) {
    const token = credentials.bearer
    if (typeof token !== 'string' || !TOKEN68.test(token)) {
      throw new TypeError('createClient: credentials.bearer must be the token alone (letters, digits, -._~+/ and trailing =; no spaces or line breaks)')
    }
    const header = `Bearer ${token}`
    return () => header
  }
  throw new TypeError('createClient: credentials must be { basic: { username, password } }, { bearer: token } or a function')
}

/** `"abc"` or `W/"abc"` -> `abc`: the form the `etag` field of a row has. */
function unquote(etag: string | null): string {
  return (etag ?? '').replace(/^W\//, '').replace(/^"(.*)"$/, '$1')
}

/** An ETag as `If-Match` takes it: quoted, unless the caller already quoted it or sent `*` (any). */
function quote(etag: string): string {
  return etag === '*' || /^(W\/)?".*"$/.test(etag) ? etag : `"${etag}"`
}

function listQuery(params: ListParams<Record<string, unknown>, string>): URLSearchParams {
  const query = new URLSearchParams()
  const where = Object.entries(params.where ?? {}).filter(([, value]) => value !== undefined)
  if (where.length) {
    query.set(
      'where',
      where
        .map(([field, value]) => {
          // The grammar splits clauses on commas: such a value would silently become another filter.
          if (String(value).includes(',')) throw new RangeError(`where.${field}: a value cannot contain a comma`)
          return `${field}:${String(value)}`
        })
        .join(','),
    )
  }
  if (params.query !== undefined) query.set('query', typeof params.query === 'string' ? params.query : params.query.text)
  if (params.q !== undefined) query.set('q', params.q)
  if (params.sort?.length) query.set('sort', params.sort.join(','))
  if (params.limit !== undefined) query.set('limit', String(params.limit))
  if (params.offset !== undefined) query.set('offset', String(params.offset))
  if (params.after !== undefined) query.set('after', params.after)
  if (params.embed?.length) query.set('embed', params.embed.join(','))
  if (params.count !== undefined) query.set('count', params.count)
  return query
}

/**
 * A typed client of the API, generic over the resources' types:
 * ```ts
 * const client = createClient<Resources>({ baseUrl: 'http://127.0.0.1:5000/api/v1', credentials: { basic: { username: 'admin', password } } })
 * const type = await client.componenttypes.create({ name: 'rhel' })
 * const { etag } = await client.componenttypes.update(type.id, { name: 'RHEL' }, { etag: type.etag })
 * ```
 * (`Resources`: from resources/types.) Errors are thrown as {@link ApiRequestError} (a 412 as
 * {@link PreconditionFailedError}; wrong credentials as code `unauthorized`, a denied operation as `forbidden`).
 */
export function createClient<R extends ResourceTypes<R> = Record<string, ResourceType>, A extends { [K in keyof A]: ActionType } = Record<string, never>>(
  options: ClientOptions,
): Client<R, A> {
  const baseUrl = options.baseUrl.replace(/\/+$/, '')
  const fetchImpl = options.fetch ?? globalThis.fetch
  if (typeof fetchImpl !== 'function') throw new TypeError('createClient: no fetch available; pass options.fetch')
  if (options.credentials !== undefined && Object.keys(options.headers ?? {}).some((name) => name.toLowerCase() === 'authorization')) {
    throw new TypeError('createClient: give credentials or an Authorization header, not both')
  }
  const authorization = authorizationOf(options.credentials)

  async function call(method: string, path: string, init: { query?: URLSearchParams; body?: unknown; headers?: Record<string, string> } = {}) {
    const search = init.query?.toString()
    const url = `${baseUrl}${path}${search ? `?${search}` : ''}`
    const headers: Record<string, string> = { Accept: 'application/json', ...options.headers, ...init.headers }
    const credential = await authorization()
    if (credential !== undefined) {
      if (typeof credential !== 'string') throw new TypeError('createClient: the credentials function must answer a string or undefined')
      headers.Authorization = credential
    }
    if (init.body !== undefined) headers['Content-Type'] = 'application/json'
    const response = await fetchImpl(url, { method, headers, body: init.body === undefined ? undefined : JSON.stringify(init.body) })
    if (response.status >= 400) {
      const body = await errorBody(response)
      const request = `${method} ${path}`
      throw response.status === 412 ? new PreconditionFailedError(body, request) : new ApiRequestError(response.status, body, request)
    }
    return response
  }

  function resource(plural: string): ResourceClient<ResourceType> {
    const collection = `/${encodeURIComponent(plural)}`
    const item = (id: string) => `${collection}/${encodeURIComponent(id)}`
    // Detail answers are `{"<singular>": {...}}`: the only key, so the client needs no singular name.
    const unwrap = (body: unknown) => Object.values(body as Record<string, unknown>)[0] as never
    return {
      async list(params = {}) {
        const response = await call('GET', collection, { query: listQuery(params as ListParams<Record<string, unknown>, string>) })
        return pageOf((await response.json()) as Record<string, unknown>, plural, response) as never
      },
      async get(id, getOptions = {}) {
        const query = new URLSearchParams()
        if (getOptions.embed?.length) query.set('embed', getOptions.embed.join(','))
        return unwrap(await (await call('GET', item(id), { query })).json())
      },
      async create(data) {
        return unwrap(await (await call('POST', collection, { body: data })).json())
      },
      async update(id: string, patch: object, updateOptions: { etag: string; representation?: boolean }) {
        const headers: Record<string, string> = { 'If-Match': quote(updateOptions.etag) }
        if (updateOptions.representation) headers.Prefer = 'return=representation'
        const response = await call('PUT', item(id), { body: patch, headers })
        const etag = unquote(response.headers.get('ETag'))
        return response.status === 200 ? { etag, item: unwrap(await response.json()) } : { etag }
      },
      async remove(id, removeOptions) {
        await call('DELETE', item(id), { headers: { 'If-Match': quote(removeOptions.etag) } })
      },
    } as ResourceClient<ResourceType>
  }

  async function action(name: string, args: { path?: Record<string, string>; query?: Record<string, unknown>; body?: unknown }) {
    const route = options.actions?.[name]
    if (!route) throw new TypeError(`createClient: no action named '${name}' (pass the generated ACTIONS as options.actions)`)
    const path = route.path.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, (_m, key: string) => {
      const value = args.path?.[key]
      if (value === undefined) throw new TypeError(`action ${name}: path parameter '${key}' is missing`)
      return encodeURIComponent(value)
    })
    const query = route.list
      ? listQuery((args.query ?? {}) as ListParams<Record<string, unknown>, string>)
      : new URLSearchParams(args.query as Record<string, string>)
    const response = await call(route.method, path, { query, body: args.body })
    if (response.status === 204) return undefined
    const body = (await response.json()) as Record<string, unknown>
    if (!route.list) return body
    return pageOf(body, route.list, response)
  }

  const resources = new Map<string, ResourceClient<ResourceType>>()
  return new Proxy({} as Client<R, A>, {
    get(_target, name) {
      // Not a resource: symbols, and `then` so that a client is never mistaken for a promise.
      if (typeof name !== 'string' || name === 'then') return undefined
      if (name === 'action') return action
      let client = resources.get(name)
      if (!client) resources.set(name, (client = resource(name)))
      return client
    },
  })
}
