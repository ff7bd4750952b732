/**
 * The engine in an Express app, mounted under /dci: Express takes /dci off the URL and says so in
 * `req.baseUrl`, so `Location` and every link start with /dci. A path under /dci outside the engine's
 * prefix goes on to the host's next route (the handler calls `next()`).
 * Run: `npx tsx examples/hosts/express.ts` (PORT, default 5050).
 */
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import express from 'express'
import { createEngine, migrateLatest, openDatabase } from '../../core'
// The resources' own rules, without the server's identity plugin: a host brings its own authentication.
import { resourcePlugins as plugins } from '../../resources'

const root = path.resolve(__dirname, '../..')

export async function buildExpressApp(db = openDatabase({ url: process.env.DATABASE_URL || undefined })) {
  await migrateLatest(db, path.join(root, 'migrations'))
  const engine = await createEngine({ db, schemasDir: path.join(root, 'schemas'), plugins })
  const app = express()
  app.use('/dci', engine.handler())
  app.get('/dci/health', (_req, res) => {
    res.json({ status: 'ok' }) // the host's own route beside the engine, reached through its next()
  })
  return { app, engine, db }
}

if (require.main === module) {
  buildExpressApp().then(({ app, db }) => {
    const server = app.listen(Number(process.env.PORT ?? 5050), '127.0.0.1', () => {
      console.log(`express on http://127.0.0.1:${(server.address() as AddressInfo).port}/dci/api/v1`)
    })
    const stop = () => server.close(() => db.destroy().finally(() => process.exit(0)))
    process.once('SIGTERM', stop)
    process.once('SIGINT', stop) // Ctrl-C
  })
}
