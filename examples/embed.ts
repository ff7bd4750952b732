/**
 * Embedding the engine in an existing koa app: the host keeps its own routes and middleware, and the
 * engine serves the Distributed CI API under /api/v1. Run: `npx tsx examples/embed.ts` (PORT, default 5050).
 */
import path from 'node:path'
import Koa from 'koa'
import Router from '@koa/router'
import { createEngine, migrateLatest, openDatabase } from '../core'
// The resources' own rules as a library, without the server's identity plugin (`serverPlugins()`:
// users, credentials, roles): a host that wants them adds them, or brings its own authenticator.
import { resourcePlugins as plugins } from '../resources'

export async function buildHostApp(db = openDatabase({ url: process.env.DATABASE_URL || undefined })) {
  const root = path.resolve(__dirname, '..')
  await migrateLatest(db, path.join(root, 'migrations'))
  const engine = await createEngine({ db, schemasDir: path.join(root, 'schemas'), plugins })

  const host = new Koa()
  const own = new Router()
  own.get('/health', (ctx) => {
    ctx.body = { status: 'ok', resources: [...engine.resources.values()].map((r) => r.plural) }
  })
  host.use(own.routes())
  host.use(engine.middleware()) // the one line that embeds the engine
  return { host, engine, db }
}

if (require.main === module) {
  buildHostApp().then(({ host, db }) => {
    const port = Number(process.env.PORT ?? 5050)
    const server = host.listen(port, '127.0.0.1', () => console.log(`host app on http://127.0.0.1:${port} (/health, /api/v1/...)`))
    const stop = () => server.close(() => db.destroy().finally(() => process.exit(0)))
    process.once('SIGTERM', stop)
    process.once('SIGINT', stop) // Ctrl-C
  })
}
