/**
 * The engine in a koa app, as middleware: paths under /api/v1 belong to the engine, every other one
 * passes through to the host's own routes. Run: `npx tsx examples/hosts/koa.ts` (PORT, default 5050).
 */
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import Koa from 'koa'
import Router from '@koa/router'
import { createEngine, migrateLatest, openDatabase } from '../../core'
// The resources' own rules, without the server's identity plugin: a host brings its own authentication.
import { resourcePlugins as plugins } from '../../resources'

const root = path.resolve(__dirname, '../..')

export async function buildKoaApp(db = openDatabase({ url: process.env.DATABASE_URL || undefined })) {
  await migrateLatest(db, path.join(root, 'migrations'))
  const engine = await createEngine({ db, schemasDir: path.join(root, 'schemas'), plugins })
  const app = new Koa()
  const own = new Router()
  own.get('/health', (ctx) => {
    ctx.body = { status: 'ok' }
  })
  app.use(own.routes())
  app.use(engine.middleware())
  return { app, engine, db }
}

if (require.main === module) {
  buildKoaApp().then(({ app, db }) => {
    const server = app.listen(Number(process.env.PORT ?? 5050), '127.0.0.1', () => {
      console.log(`koa on http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`)
    })
    const stop = () => server.close(() => db.destroy().finally(() => process.exit(0)))
    process.once('SIGTERM', stop)
    process.once('SIGINT', stop) // Ctrl-C
  })
}
