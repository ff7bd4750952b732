import crypto from 'node:crypto'
import Router from '@koa/router'
import type { Context, Middleware } from 'koa'
import { formatEtag, parseEtagHeader, etagMatches } from '../data/etag'
import type { Row } from '../data/repository'
import { embeddedAt, embedPaths, type RawQuery } from '../query/list-query'
import { errors } from '../errors'
import type { CompiledAction } from '../plugins/actions'
import type { Authenticator, AuthenticatorHost } from '../plugins/plugin'
import type { Resource } from '../plugins/registry'
import { cancellableParams } from '../service/params'
import type { Page, Params } from '../service/types'

/** What the routes serve: the resources, the actions, the OpenAPI document and the index. */
export interface RouteSource {
  prefix: string
  resources: ReadonlyMap<string, Resource>
  actions: readonly CompiledAction[]
  /** The OpenAPI document, as JSON text, for a base path (the path a host mounted the engine under). */
  openapiJson(basePath: string): string
  /** The body of `GET <prefix>`. */
  index(basePath: string): object
  /** Who calls; without one, every caller is anonymous (an empty identity). */
  authenticator?: Authenticator
  /** What the authenticator is given besides the request. */
  authenticatorHost?: AuthenticatorHost
  /** Runs after authentication, before the body is read: the rate limit (per identity, else per address). */
  rateLimit?: Middleware
  /** Runs before authentication: refused credentials count against the client's address (see core/http/rate-limit.ts). */
  failedLogins?: Middleware
  /** Runs after the rate limit, before the body is read: admission control's cap on lists in flight. */
  listGate?: Middleware
}

/**
 * Authenticates each request a route matched, before its body is read: the index and openapi.json
 * are public; otherwise no identity is a 401 with the authenticator's challenges.
 */
function authenticate(authenticator: Authenticator, host: AuthenticatorHost, prefix: string): Middleware {
  const open = new Set([prefix, `${prefix}/`, `${prefix}/openapi.json`])
  return async (ctx, next) => {
    if ((ctx.method === 'GET' || ctx.method === 'HEAD') && open.has(ctx.path)) return next()
    const identity = await authenticator.identify({ method: ctx.method, path: ctx.path, headers: ctx.headers, id: ctx.state.requestId, ip: ctx.ip }, host)
    if (!identity) throw errors.unauthorized(authenticator.challenges)
    ctx.state.identity = identity
    return next()
  }
}

/**
 * The path a host mounted the engine under, which links must start with: Express's `req.baseUrl`
 * (`app.use('/dci', handler)`), koa-mount's `ctx.mountPath`, or the node handler's `basePath`.
 */
function basePathOf(ctx: Context): string {
  const state = ctx.state.basePath as string | undefined
  if (state !== undefined) return state
  const express = (ctx.req as { baseUrl?: string }).baseUrl
  return (ctx as { mountPath?: string }).mountPath ?? express ?? ''
}

/** The params of a service call made for an HTTP request. */
function httpParams(ctx: Context, extra?: Params): Params {
  return cancellableParams(ctx.state.cancellation, {
    provider: 'http',
    identity: ctx.state.identity,
    request: { method: ctx.method, path: ctx.path, headers: ctx.headers, id: ctx.state.requestId, ip: ctx.ip },
    ...extra,
  })
}

/** A detail answer: `{"<name>": {...}}` with the row's ETag, or 304 when `If-None-Match` matches it. */
function sendRow(ctx: Context, name: string, row: Row, status = 200, validator?: string): void {
  const etag = validator ?? String(row.etag)
  ctx.set('ETag', validator ? `W/${formatEtag(etag)}` : formatEtag(etag))
  // HEAD answers as GET does, 304 included.
  const cached = ctx.method === 'GET' || ctx.method === 'HEAD' ? parseEtagHeader(ctx.get('If-None-Match') || undefined, 'weak') : undefined
  if (cached && etagMatches(cached, etag)) {
    ctx.status = 304
    return
  }
  ctx.status = status
  ctx.body = { [name]: row }
}

// One-shot `crypto.hash` (node 20.12+) makes no Hash object per list: the same digest for about half
// the CPU of `createHash` on a page of 20 rows.
const sha1Hex: (text: string) => string =
  typeof crypto.hash === 'function' ? (text) => crypto.hash('sha1', text, 'hex') : (text) => crypto.createHash('sha1').update(text).digest('hex')

/**
 * The `Link` header of a list page (RFC 8288), each link the full URL of this request with only
 * `offset` or `after` changed. A request that gave `offset` is linked by offset: `next` when rows
 * follow it, `prev` and `first` when it is not the first. Any other (the first page, a page after a
 * cursor) by cursor: `next` after the page's `_meta.next` (by offset when the page has no cursor, whose
 * sort value was too long to carry), and `first` when it is not the first.
 */
export function pageLinks(ctx: Context, page: Page): string | undefined {
  const byOffset = ctx.query.offset !== undefined
  const after = !byOffset && ctx.query.after !== undefined
  if (page.nextOffset === undefined && page.previousOffset === undefined && !after) return undefined
  // The other parameters as the client wrote them (one pass, no decoding and encoding again).
  const rest = ctx.querystring
    .split('&')
    .filter((pair) => {
      if (pair === '') return false
      const key = keyOf(pair)
      return key !== 'offset' && key !== 'after'
    })
    .join('&')
  const base = `${ctx.protocol}://${ctx.host}${basePathOf(ctx)}${ctx.path}`
  const url = (name: 'offset' | 'after', value: number | string) => {
    if (value !== 0) return `${base}?${rest ? `${rest}&` : ''}${name}=${value}`
    return rest ? `${base}?${rest}` : base
  }
  const links: string[] = []
  if (page.meta.next !== undefined && !byOffset) links.push(`<${url('after', page.meta.next)}>; rel="next"`)
  else if (page.nextOffset !== undefined) links.push(`<${url('offset', page.nextOffset)}>; rel="next"`)
  if (page.previousOffset !== undefined) links.push(`<${url('offset', page.previousOffset)}>; rel="prev"`)
  if (page.previousOffset !== undefined || after) links.push(`<${url('offset', 0)}>; rel="first"`)
  return links.length ? links.join(', ') : undefined
}

/** The decoded key of a `key=value` pair of a query string (as koa reads it). */
function keyOf(pair: string): string {
  const equals = pair.indexOf('=')
  const key = (equals < 0 ? pair : pair.slice(0, equals)).replace(/\+/g, ' ')
  if (!key.includes('%')) return key
  try {
    return decodeURIComponent(key)
  } catch {
    return key
  }
}

/** A list answer carries an ETag too: a digest of the body, so `If-None-Match` can answer 304. */
function sendList(ctx: Context, plural: string, page: Page): void {
  const links = pageLinks(ctx, page)
  if (links) ctx.set('Link', links)
  // The body as JSON.stringify({ [plural]: items, _meta }) writes it, with the rows serialised once.
  const rows = JSON.stringify(page.items)
  const json = `{${JSON.stringify(plural)}:${rows},"_meta":${JSON.stringify(page.meta)}}`
  // An estimated count moves with the planner's statistics (ANALYZE), not with the rows: such a list
  // gets a weak ETag of its rows alone, which If-None-Match still compares (If-Match never does).
  const estimated = 'count_exact' in page.meta
  const etag = sha1Hex(estimated ? `${rows}|estimated` : json).slice(0, 32)
  ctx.set('ETag', estimated ? `W/${formatEtag(etag)}` : formatEtag(etag))
  const cached = parseEtagHeader(ctx.get('If-None-Match') || undefined, 'weak')
  if (cached && etagMatches(cached, etag)) {
    ctx.status = 304
    return
  }
  ctx.status = 200
  ctx.type = 'application/json'
  // A large answer is handed over as the bytes Node sends: the text and the rows are garbage at once,
  // so an answer its client is slow to read pins one copy, not three.
  ctx.body = json.length > LARGE_ANSWER ? Buffer.from(json) : json
}

/** Characters from which a list answer is kept as bytes only (see {@link sendList}). */
const LARGE_ANSWER = 256 * 1024

/** The conditional headers of a write. */
function conditions(ctx: Context): Params {
  const none = ctx.get('If-None-Match')
  return none ? { ifMatch: ctx.get('If-Match'), ifNoneMatch: none } : { ifMatch: ctx.get('If-Match') }
}

/** Mounts the five generated routes of one resource: each is a thin call of its service. */
function mountResource(router: Router, resource: Resource, prefix: string): void {
  const { name, plural, service } = resource
  const collection = `/${plural}`
  const item = `/${plural}/:id`

  router.get(collection, async (ctx) => {
    sendList(ctx, plural, await service.find(httpParams(ctx, { query: ctx.query as RawQuery })))
  })

  // A read-only resource answers its writes 405 (allowedMethods), as any path without that method.
  if (resource.def.readOnly) {
    router.get(item, async (ctx) => sendRow(ctx, name, await service.get(ctx.params.id, httpParams(ctx, { query: ctx.query as RawQuery }))))
    return
  }

  router.post(collection, async (ctx) => {
    const row = await service.create(ctx.request.body as Record<string, unknown>, httpParams(ctx))
    ctx.set('Location', `${basePathOf(ctx)}${prefix}/${plural}/${row.id}`)
    sendRow(ctx, name, row, 201)
  })

  router.get(item, async (ctx) => {
    const row = await service.get(ctx.params.id, httpParams(ctx, { query: ctx.query as RawQuery }))
    // With embed, the answer changes when an embedded row does: its ETag is a weak one that digests
    // the row's ETag and each embedded row's at every depth, in the order of the paths (a parent
    // before its children), `-` for none (If-Match, which compares strongly, needs the row's own).
    const embed = typeof ctx.query.embed === 'string' && ctx.query.embed !== '' ? embedPaths(ctx.query.embed) : undefined
    const validator = embed && sha1Hex([row.etag, ...embed.map((path) => embeddedAt(row, path)?.etag ?? '-')].join(':')).slice(0, 32)
    sendRow(ctx, name, row, 200, validator || undefined)
  })

  router.put(item, async (ctx) => {
    const row = await service.update(ctx.params.id, ctx.request.body as Record<string, unknown>, httpParams(ctx, conditions(ctx)))
    ctx.set('ETag', formatEtag(row.etag))
    if (/\breturn=representation\b/.test(ctx.get('Prefer'))) {
      ctx.set('Preference-Applied', 'return=representation')
      sendRow(ctx, name, row)
    } else {
      ctx.status = 204
    }
  })

  router.delete(item, async (ctx) => {
    await service.remove(ctx.params.id, httpParams(ctx, conditions(ctx)))
    ctx.status = 204
  })
}

/** Mounts one action: its route checks nothing itself, the compiled action does. */
function mountAction(router: Router, action: CompiledAction): void {
  const { definition, listKey } = action
  const method = definition.method.toLowerCase() as 'get' | 'post' | 'put' | 'patch' | 'delete'
  router[method](definition.path, async (ctx) => {
    const result = await action.call({ path: ctx.params, query: ctx.query as RawQuery, body: ctx.request.body }, httpParams(ctx))
    if (listKey) return sendList(ctx, listKey, result as Page)
    ctx.status = definition.status ?? 200
    if (ctx.status !== 204) ctx.body = result ?? {}
  })
}

/**
 * The router of every registered resource and action, `GET /openapi.json` and the index. `parseBody`
 * runs only for a request some route matches (path and method), so an unknown route or method
 * answers 404 or 405 whatever body it carries.
 */
export function buildRouter(source: RouteSource, parseBody?: Middleware): Router {
  const router = new Router({ prefix: source.prefix })
  if (source.authenticator) {
    if (source.failedLogins) router.use(source.failedLogins)
    router.use(authenticate(source.authenticator, source.authenticatorHost!, source.prefix))
  }
  if (source.rateLimit) router.use(source.rateLimit)
  if (source.listGate) router.use(source.listGate)
  if (parseBody) router.use(parseBody)
  router.get('/openapi.json', (ctx) => {
    ctx.type = 'application/json'
    ctx.body = source.openapiJson(basePathOf(ctx))
  })
  // Under the router's prefix, '/' matches both `<prefix>` and `<prefix>/`.
  router.get('/', (ctx) => {
    ctx.body = source.index(basePathOf(ctx))
  })
  for (const resource of source.resources.values()) mountResource(router, resource, source.prefix)
  for (const action of source.actions) mountAction(router, action)
  return router
}
