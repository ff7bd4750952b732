import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import zlib from 'node:zlib'
import type { Context, Middleware } from 'koa'
import { errors } from '../errors'

/**
 * A fixed set of files served from memory: read and compressed once, at their first request, each
 * with a strong ETag (SHA-256 of its bytes), answered 304 to a matching `If-None-Match`, and gzip to a
 * client that accepts it. `immutable` files (names that carry their content's hash) are cached a year;
 * the others are revalidated each time (`no-cache`), so a new version of the package is seen at once.
 */
export interface StaticFile {
  /** Where the bytes are read from, or the text itself. */
  source: { file: string } | { text: string }
  type: string
  immutable?: boolean
}

interface Loaded {
  body: Buffer
  gzip?: Buffer
  etag: string
  type: string
  cacheControl: string
}

/** Smaller files are not worth compressing. */
const GZIP_FROM_BYTES = 1_024

function load(file: StaticFile): Loaded {
  const body = 'file' in file.source ? fs.readFileSync(file.source.file) : Buffer.from(file.source.text)
  const gzip = body.length >= GZIP_FROM_BYTES ? zlib.gzipSync(body, { level: 9 }) : undefined
  return {
    body,
    gzip,
    etag: `"${crypto.createHash('sha256').update(body).digest('base64url')}"`,
    type: file.type,
    cacheControl: file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
  }
}

/** Answers `ctx` with `file` (GET or HEAD), conditionally and compressed where it can. */
function send(ctx: Context, file: Loaded): void {
  ctx.set('ETag', file.etag)
  ctx.set('Cache-Control', file.cacheControl)
  ctx.set('Vary', 'Accept-Encoding')
  ctx.type = file.type
  // koa's `fresh` holds only for a 2xx status, and a response's is 404 until a body is set.
  ctx.status = 200
  if (ctx.fresh) {
    ctx.status = 304
    return
  }
  if (file.gzip && ctx.acceptsEncodings('gzip', 'identity') === 'gzip') {
    ctx.set('Content-Encoding', 'gzip')
    ctx.body = file.gzip
  } else {
    ctx.body = file.body
  }
}

/**
 * The API reference: Swagger UI (the `swagger-ui-dist` package, served from the installed package,
 * no network) rendering the engine's own `openapi.json`, at `<prefix>/docs/`. Every URL in the page is
 * relative, so it works wherever the engine is mounted; "Try it out" sends its requests to the engine
 * (the document's `servers`), with the credentials given in "Authorize" (Basic or Bearer).
 */
export function apiDocs(prefix: string, title: string): Middleware {
  const dist = path.dirname(require.resolve('swagger-ui-dist/package.json'))
  const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} API reference</title>
<link rel="stylesheet" href="swagger-ui.css">
<link rel="stylesheet" href="docs.css">
<link rel="icon" type="image/png" href="favicon-32x32.png">
</head>
<body>
<main id="swagger-ui"></main>
<script src="swagger-ui-bundle.js"></script>
<script src="init.js"></script>
</body>
</html>
`
  // The page's script is a file of its own: the Content-Security-Policy below allows no inline script.
  // Deep links are off: Swagger UI puts each one inside its operation's button, which a screen reader
  // cannot reach (axe-core: nested-interactive). Its selects get the names it leaves out.
  const init = `window.ui = SwaggerUIBundle({
  url: '../openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: false,
  layout: 'BaseLayout',
  presets: [SwaggerUIBundle.presets.apis],
  validatorUrl: null,
  withCredentials: false,
  syntaxHighlight: { activated: false },
})
function nameSelects() {
  for (const select of document.querySelectorAll('#swagger-ui select:not([aria-label])')) {
    const row = select.closest('tr[data-param-name]')
    const label = row ? row.getAttribute('data-param-name') : select.id === 'servers' ? 'Server' : select.closest('.content-type-wrapper, .body-param-content-type, .response-control-media-type') ? 'Media type' : select.name || 'Choice'
    select.setAttribute('aria-label', label)
  }
}
new MutationObserver(nameSelects).observe(document.getElementById('swagger-ui'), { childList: true, subtree: true })
`
  const files: Record<string, StaticFile> = {
    '': { source: { text: page }, type: 'text/html; charset=utf-8' },
    'init.js': { source: { text: init }, type: 'text/javascript; charset=utf-8' },
    'docs.css': { source: { text: DOCS_CSS }, type: 'text/css; charset=utf-8' },
    'swagger-ui.css': { source: { file: path.join(dist, 'swagger-ui.css') }, type: 'text/css; charset=utf-8' },
    'swagger-ui-bundle.js': { source: { file: path.join(dist, 'swagger-ui-bundle.js') }, type: 'text/javascript; charset=utf-8' },
    'favicon-32x32.png': { source: { file: path.join(dist, 'favicon-32x32.png') }, type: 'image/png' },
  }
  const loaded = new Map<string, Loaded>()
  const root = `${prefix}/docs`
  const below = `${root}/`
  // Swagger UI sets styles from its script and shows images as data: URLs; everything else is this origin's.
  const policy =
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
  return (ctx, next) => {
    const p = ctx.path
    if (p !== root && !p.startsWith(below)) return next()
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw errors.methodNotAllowed(ctx.method, 'GET, HEAD')
    if (p === root) {
      // The page's relative URLs need the trailing slash. A relative Location: right under any mount.
      ctx.status = 301
      ctx.set('Location', `docs/${ctx.querystring ? `?${ctx.querystring}` : ''}`)
      ctx.body = { message: 'The API reference is at docs/' }
      return undefined
    }
    const name = p.slice(below.length)
    const file = files[name]
    if (!file || !Object.hasOwn(files, name)) throw errors.routeNotFound(ctx.method, p)
    let ready = loaded.get(name)
    if (!ready) {
      ready = load(file)
      loaded.set(name, ready)
    }
    ctx.set('Content-Security-Policy', policy)
    send(ctx, ready)
    return undefined
  }
}

/**
 * Colours of Swagger UI's default theme that fail WCAG AA contrast (4.5:1, axe-core's color-contrast),
 * made darker: the method badges, the version badges, links, the Authorize button, muted labels.
 */
const DOCS_CSS = `.swagger-ui .info .title small { background: #5b5b5b; }
.swagger-ui .info .title small.version-stamp { background: #2b6e47; }
.swagger-ui .info a, .swagger-ui .info .url { color: #1a5fb4; }
.swagger-ui .btn.authorize { color: #1f6b45; border-color: #1f6b45; }
.swagger-ui .btn.authorize svg { fill: #1f6b45; }
.swagger-ui .opblock.opblock-get .opblock-summary-method, .swagger-ui .opblock.opblock-head .opblock-summary-method { background: #1a5fb4; }
.swagger-ui .opblock.opblock-post .opblock-summary-method { background: #1f6b45; }
.swagger-ui .opblock.opblock-put .opblock-summary-method, .swagger-ui .opblock.opblock-patch .opblock-summary-method { background: #8a4b00; }
.swagger-ui .opblock.opblock-delete .opblock-summary-method { background: #b42318; }
.swagger-ui .parameter__in, .swagger-ui .parameter__deprecated, .swagger-ui .prop-format { color: #595959; }
.swagger-ui .btn.cancel { color: #b42318; border-color: #b42318; }
.swagger-ui .btn.execute { background-color: #1a5fb4; border-color: #1a5fb4; }
.swagger-ui .download-contents { background: #4a4a4a; }
.swagger-ui .json-schema-2020-12-expand-deep-button, .swagger-ui .json-schema-2020-12__attribute--primary { color: #595959; }
`

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}
