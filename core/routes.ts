import crypto from 'node:crypto'
import Router from '@koa/router'
import type { Context, Middleware } from 'koa'
import type { Engine } from './engine'
import { errors } from './errors'
import { formatEtag, parseEtagHeader, etagMatches, type EtagCondition } from './etag'
import type { RawQuery } from './list-query'
import type { Resource } from './registry'
import type { HookContext } from './resource'
import type { Row } from './repository'

/** `If-Match` of a PUT or DELETE: required, else 412 with the message of the original API. */
function requireIfMatch(ctx: Context): EtagCondition {
  const condition = parseEtagHeader(ctx.get('If-Match') || undefined)
  if (!condition) throw errors.ifMatchRequired()
  return condition
}

/** A detail answer: `{"<name>": {...}}` with the row's ETag, or 304 when `If-None-Match` matches it. */
function sendRow(ctx: Context, resource: Resource, row: Row, status = 200): void {
  const etag = String(row.etag)
  ctx.set('ETag', formatEtag(etag))
  const cached = ctx.method === 'GET' ? parseEtagHeader(ctx.get('If-None-Match') || undefined) : undefined
  if (cached && etagMatches(cached, etag)) {
    ctx.status = 304
    return
  }
  ctx.status = status
  ctx.body = { [resource.name]: row }
}

// One-shot `crypto.hash` (node 20.12+) makes no Hash object per list: the same digest for about half
// the CPU of `createHash` on a page of 20 rows.
const sha1Hex: (text: string) => string =
  typeof crypto.hash === 'function' ? (text) => crypto.hash('sha1', text, 'hex') : (text) => crypto.createHash('sha1').update(text).digest('hex')

/** A list answer carries an ETag too: a digest of the body, so `If-None-Match` can answer 304. */
export function sendList(ctx: Context, body: object): void {
  const json = JSON.stringify(body)
  const etag = sha1Hex(json).slice(0, 32)
  ctx.set('ETag', formatEtag(etag))
  const cached = parseEtagHeader(ctx.get('If-None-Match') || undefined)
  if (cached && etagMatches(cached, etag)) {
    ctx.status = 304
    return
  }
  ctx.status = 200
  ctx.type = 'application/json'
  ctx.body = json
}

/** Mounts the five generated routes of one resource. */
function mountResource(router: Router, resource: Resource, engine: Engine): void {
  const { plural, repository, query, plugin } = resource
  const hooks = plugin?.hooks ?? {}
  const collection = `/${plural}`
  const item = `/${plural}/:id`
  const hookContext = (ctx: Context): HookContext => ({ engine, http: ctx })

  router.get(collection, async (ctx) => {
    const q = query.parseList(ctx.query as RawQuery)
    const { items, meta } = await repository.list(q)
    sendList(ctx, { [plural]: items, _meta: meta })
  })

  router.post(collection, async (ctx) => {
    const data = resource.validateCreate(ctx.request.body)
    await hooks.beforeCreate?.(data, hookContext(ctx))
    const row = await repository.create(data)
    ctx.set('Location', `${engine.prefix}/${plural}/${row.id}`)
    sendRow(ctx, resource, row, 201)
  })

  router.get(item, async (ctx) => {
    const embed = query.parseDetail(ctx.query as RawQuery)
    const row = await repository.get(ctx.params.id, embed)
    if (!row) throw errors.notFound(resource.name)
    sendRow(ctx, resource, row)
  })

  router.put(item, async (ctx) => {
    const condition = requireIfMatch(ctx)
    const patch = resource.validateUpdate(ctx.request.body)
    await hooks.beforeUpdate?.(ctx.params.id, patch, hookContext(ctx))
    const row = await repository.update(ctx.params.id, patch, condition)
    ctx.set('ETag', formatEtag(row.etag))
    if (/\breturn=representation\b/.test(ctx.get('Prefer'))) {
      ctx.set('Preference-Applied', 'return=representation')
      sendRow(ctx, resource, row)
    } else {
      ctx.status = 204
    }
  })

  router.delete(item, async (ctx) => {
    const condition = requireIfMatch(ctx)
    await hooks.beforeDelete?.(ctx.params.id, hookContext(ctx))
    await repository.remove(ctx.params.id, condition)
    ctx.status = 204
  })
}

/**
 * The router of every registered resource, the routes plugins add, and `GET /openapi.json`.
 * `parseBody` runs only for a request some route matches (path and method), so an unknown route or
 * method answers 404 or 405 whatever body it carries.
 */
export function buildRouter(engine: Engine, parseBody?: Middleware): Router {
  const router = new Router({ prefix: engine.prefix })
  if (parseBody) router.use(parseBody)
  const openapi = JSON.stringify(engine.openapi())
  router.get('/openapi.json', (ctx) => {
    ctx.type = 'application/json'
    ctx.body = openapi
  })
  for (const resource of engine.resources.values()) mountResource(router, resource, engine)
  for (const resource of engine.resources.values()) resource.plugin?.routes?.(router, engine)
  return router
}
