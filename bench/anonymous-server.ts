/**
 * The benchmark's unauthenticated engine: what `server.ts` runs, but built with `resourcePlugins` only
 * (no identity plugin: no authenticator, no access or audit hooks; the engine a library user embeds
 * without identity, as `test/support.ts` builds it). Everything else is server.ts's: the same
 * `createEngine` options (logger, request logs, index message), the same `node:http` server options
 * and per-request bookkeeping (requests in flight, `Connection: close` while stopping). `npm run bench`
 * measures it beside `dist/server.js` with identity on, so that the cost of authentication is read
 * from one run. Configuration: DATABASE_URL (or DATA_DIR), PORT, HOST, LOG_LEVEL, as server.ts.
 */
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import pino from 'pino'
import { clientErrorHandler, createEngine, expectContinue, LOOPBACK_HOSTS, migrateLatest, openDatabase } from '../core'
import { resourcePlugins } from '../resources'

// Compiled, this file runs from dist/bench/; the schemas and package.json stay at the project root.
const dist = path.resolve(__dirname, '..')
const root = fs.existsSync(path.join(dist, 'schemas')) ? dist : path.resolve(dist, '..')

async function main(): Promise<void> {
  const logger = pino({ level: process.env.LOG_LEVEL || 'info', base: { pid: process.pid } })
  const { version, description } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string; description: string }
  const url = process.env.DATABASE_URL || undefined
  const db = openDatabase({ url, dataDir: url ? undefined : path.resolve(process.env.DATA_DIR ?? 'data'), logger })
  await migrateLatest(db, path.join(dist, 'migrations'))
  const engine = await createEngine({
    db,
    schemasDir: path.join(root, 'schemas'),
    plugins: resourcePlugins,
    logger,
    logRequests: true,
    openapiInfo: { title: 'Distributed CI control server', version, description },
    indexMessage: 'Distributed CI.',
    // server.ts's HTTP edge on loopback: the loopback Host names, metrics counted.
    allowedHosts: [...LOOPBACK_HOSTS],
    metrics: {},
  })
  let stopping = false
  const inFlight = new Set<http.ServerResponse>()
  const handle = engine.app().callback()
  const onRequest: http.RequestListener = (req, res) => {
    if (stopping) res.setHeader('Connection', 'close')
    inFlight.add(res)
    res.once('close', () => inFlight.delete(res))
    handle(req, res)
  }
  const server = http.createServer({ requestTimeout: 30_000, headersTimeout: 10_000, connectionsCheckingInterval: 1_000, requireHostHeader: false }, onRequest)
  server.on('clientError', clientErrorHandler(logger))
  server.on('checkContinue', expectContinue(onRequest))
  const stop = () => {
    if (stopping) return
    stopping = true
    server.close(() => db.destroy().finally(() => process.exit(0)))
    server.closeIdleConnections()
    setTimeout(() => server.closeAllConnections(), 1_000).unref()
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  const port = Number(process.env.PORT ?? 5000)
  const host = process.env.HOST ?? '127.0.0.1'
  server.listen(port, host, () => logger.info({ url: `http://${host}:${port}${engine.prefix}`, plugins: 'resourcePlugins' }, 'listening'))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
