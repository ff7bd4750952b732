/**
 * The engine in a bare node:http server, under /dci: `basePath` takes /dci off the URL before routing
 * and puts it before every link (`Location`, the index, openapi.json's server). Any other path gets the
 * engine's JSON 404. Run: `npx tsx examples/hosts/node-http.ts` (PORT, default 5050).
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { createEngine, migrateLatest, openDatabase } from '../../core'
// The resources' own rules, without the server's identity plugin: a host brings its own authentication.
import { resourcePlugins as plugins } from '../../resources'

const root = path.resolve(__dirname, '../..')

export async function buildNodeHttpServer(db = openDatabase({ url: process.env.DATABASE_URL || undefined })) {
  await migrateLatest(db, path.join(root, 'migrations'))
  const engine = await createEngine({ db, schemasDir: path.join(root, 'schemas'), plugins })
  const server = http.createServer(engine.handler({ basePath: '/dci' }))
  return { server, engine, db }
}

if (require.main === module) {
  buildNodeHttpServer().then(({ server, db }) => {
    server.listen(Number(process.env.PORT ?? 5050), '127.0.0.1', () => {
      console.log(`node:http on http://127.0.0.1:${(server.address() as AddressInfo).port}/dci/api/v1`)
    })
    const stop = () => server.close(() => db.destroy().finally(() => process.exit(0)))
    process.once('SIGTERM', stop)
    process.once('SIGINT', stop) // Ctrl-C
  })
}
