import fs from 'node:fs'
import path from 'node:path'
import type { Context, Middleware } from 'koa'
import { ApiError, errors } from '../errors'
import { fileStore, type StaticFile, send } from './static'

/** Where the built console is: `console/dist` of the package this file belongs to, when built. */
export function builtConsoleDir(): string | undefined {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) {
      const built = path.join(dir, 'console', 'dist')
      return fs.existsSync(path.join(built, 'index.html')) ? built : undefined
    }
    if (path.dirname(dir) === dir) return undefined
  }
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json; charset=utf-8',
  '.woff2': 'font/woff2',
}

/** The files of a built console, by path below its root: only what the build wrote, nothing else. */
function listFiles(dir: string, apiPrefix: string): Record<string, StaticFile> {
  const files: Record<string, StaticFile> = {}
  const walk = (below: string) => {
    for (const entry of fs.readdirSync(path.join(dir, below), { withFileTypes: true })) {
      const relative = below ? `${below}/${entry.name}` : entry.name
      if (entry.isDirectory()) walk(relative)
      else if (TYPES[path.extname(entry.name)]) {
        // Vite names what it bundles `assets/<name>-<hash>.<ext>`: such a name never changes content.
        files[relative] = { source: { file: path.join(dir, relative) }, type: TYPES[path.extname(entry.name)], immutable: relative.startsWith('assets/') }
      }
    }
  }
  walk('')
  files[''] = files['index.html']
  // What the console needs to know of the server it is served by.
  files['config.json'] = { source: { text: JSON.stringify({ api: apiPrefix }) }, type: TYPES['.json'] }
  return files
}

/**
 * The web console (`console/`, built by Vite into `console/dist` on install): its files at `/console/`,
 * from memory, with strong ETags; the hashed assets cached a year (`immutable`), the page and
 * `config.json` (the API prefix) revalidated each time. A console that is not built answers 404 JSON
 * saying how to build it.
 */
export function webConsole(dir: string | undefined, apiPrefix: string): Middleware {
  const root = '/console'
  const below = `${root}/`
  // 'unsafe-eval': the forms check each body in the browser with Ajv (rjsf's validator), which compiles
  // a schema into a function; the schemas come from openapi.json at run time, so they cannot be compiled
  // at build time. Inline scripts and other origins stay refused.
  const policy =
    "default-src 'none'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
  const file = fileStore(() => listFiles(dir!, apiPrefix))
  // Served by `app()` outside the engine's error handling: an error is answered here, as JSON.
  const refuse = (ctx: Context, err: ApiError) => {
    ctx.status = err.status
    for (const [name, value] of Object.entries(err.headers)) ctx.set(name, value)
    ctx.body = err.toJSON()
  }
  return (ctx, next) => {
    const p = ctx.path
    if (p !== root && !p.startsWith(below)) return next()
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return refuse(ctx, errors.methodNotAllowed(ctx.method, 'GET, HEAD'))
    if (p === root) {
      ctx.status = 301
      ctx.set('Location', `console/${ctx.querystring ? `?${ctx.querystring}` : ''}`)
      ctx.body = { message: 'The console is at console/' }
      return undefined
    }
    if (!dir) return refuse(ctx, new ApiError(404, 'The console is not built: run `npm run console:build` (npm install runs it)', {}, {}, 'route_not_found'))
    const ready = file(p.slice(below.length))
    if (!ready) return refuse(ctx, errors.routeNotFound(ctx.method, p))
    ctx.set('Content-Security-Policy', policy)
    send(ctx, ready)
    return undefined
  }
}
