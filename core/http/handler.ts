import type { IncomingMessage, ServerResponse } from 'node:http'
import type Koa from 'koa'
import { errors } from '../errors'
import { setSecurityHeaders } from './frame'

/** A Node request handler: node:http, Express (`app.use(path, handler)`), Fastify, Connect... */
export type NodeHandler = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => void

/** Where the host serves the engine's handler. */
export interface HandlerOptions {
  /**
   * The path the host forwards with the URL unchanged (Fastify's `/dci/*` route): it is taken off the
   * URL before routing and put before every link (`Location`, openapi.json's server); a URL outside it
   * is outside the engine, as one outside the prefix is. Express's
   * `app.use('/dci', handler)` strips its mount path itself and says it in `req.baseUrl`: leave this
   * unset there.
   */
  basePath?: string
}

/**
 * The engine as a Node `(req, res, next?)` handler, over the koa app that serves only the API. Paths
 * outside the engine's prefix go to `next` when the host gives one (Express), else answer the
 * engine's JSON 404.
 */
export function nodeHandler(app: Koa, prefix: string, options: HandlerOptions = {}): NodeHandler {
  const basePath = (options.basePath ?? '').replace(/\/+$/, '')
  const serve = app.callback()
  const below = `${prefix}/`
  return (req, res, next) => {
    let url = req.url ?? '/'
    if (basePath) {
      // Else the API would answer at its bare prefix too, with links that lack the base path.
      if (!(url === basePath || url.startsWith(`${basePath}/`) || url.startsWith(`${basePath}?`))) return next ? next() : notFound(req, res)
      url = url.slice(basePath.length) || '/'
      req.url = url
    }
    const path = url.split('?', 1)[0]
    if (next && path !== prefix && !path.startsWith(below)) return next()
    if (basePath) (req as { baseUrl?: string }).baseUrl = `${(req as { baseUrl?: string }).baseUrl ?? ''}${basePath}`
    void serve(req, res)
  }
}

/** The JSON 404 the engine's app answers outside its prefix, for a URL outside the base path. */
function notFound(req: IncomingMessage, res: ServerResponse): void {
  const body = JSON.stringify(errors.routeNotFound(req.method ?? 'GET', (req.url ?? '/').split('?', 1)[0]).toJSON())
  setSecurityHeaders({ res })
  res.writeHead(404, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) })
  res.end(body)
}
