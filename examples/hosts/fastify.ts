/**
 * The engine in a Fastify app under /dci, without @fastify/middie or @fastify/express: a catch-all
 * route hands the raw request and response to the engine's Node handler (`reply.hijack()`), and in
 * that plugin alone a content-type parser leaves the body unread, for the engine to parse and check
 * (413, 415 and 400 answer as in koa). `basePath` takes /dci off the URL, which Fastify leaves whole.
 * Run: `npx tsx examples/hosts/fastify.ts` (PORT, default 5050).
 */
import path from 'node:path'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { createEngine, migrateLatest, openDatabase } from '../../core'
// The resources' own rules, without the server's identity plugin: a host brings its own authentication.
import { resourcePlugins as plugins } from '../../resources'

const root = path.resolve(__dirname, '../..')

export async function buildFastifyApp(db = openDatabase({ url: process.env.DATABASE_URL || undefined })) {
  await migrateLatest(db, path.join(root, 'migrations'))
  const engine = await createEngine({ db, schemasDir: path.join(root, 'schemas'), plugins })
  const app = Fastify()
  app.get('/health', async () => ({ status: 'ok' }))
  await app.register(async (dci) => {
    dci.removeAllContentTypeParsers()
    dci.addContentTypeParser('*', (_request, _body, done) => done(null)) // the engine reads the body
    const handle = engine.handler({ basePath: '/dci' })
    const serve = (request: FastifyRequest, reply: FastifyReply) => {
      reply.hijack()
      handle(request.raw, reply.raw)
    }
    dci.all('/dci', serve)
    dci.all('/dci/*', serve)
  })
  return { app, engine, db }
}

if (require.main === module) {
  buildFastifyApp().then(async ({ app, db }) => {
    const address = await app.listen({ port: Number(process.env.PORT ?? 5050), host: '127.0.0.1' })
    console.log(`fastify on ${address}/dci/api/v1`)
    const stop = () =>
      app
        .close()
        .then(() => db.destroy())
        .finally(() => process.exit(0))
    process.once('SIGTERM', stop)
    process.once('SIGINT', stop) // Ctrl-C
  })
}
