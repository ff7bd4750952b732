import path from 'node:path'
import type { Middleware } from 'koa'
import { errors } from '../errors'
import { fileStore, type StaticFile, send } from './static'

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
  const file = fileStore(() => files)
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
    const ready = file(p.slice(below.length))
    if (!ready) throw errors.routeNotFound(ctx.method, p)
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
