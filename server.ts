/**
 * The Distributed CI control server: the engine, the resource plugins and an HTTP listener.
 * Configuration comes from the environment: PORT, HOST, DATABASE_URL, DATA_DIR.
 */
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { createEngine, migrateLatest, openDatabase } from './core'
import { plugins } from './resources'

// Compiled, this file runs from dist/; the schemas stay at the project root.
const root = fs.existsSync(path.join(__dirname, 'schemas')) ? __dirname : path.resolve(__dirname, '..')

async function main(): Promise<void> {
  const port = Number(process.env.PORT ?? 5000)
  const host = process.env.HOST ?? '127.0.0.1'
  const url = process.env.DATABASE_URL || undefined
  const db = openDatabase({ url, dataDir: url ? undefined : path.resolve(process.env.DATA_DIR ?? 'data') })
  await migrateLatest(db, path.join(__dirname, 'migrations'))
  const engine = await createEngine({ db, schemasDir: path.join(root, 'schemas'), plugins })
  const server = http.createServer(engine.app().callback())
  server.listen(port, host, () => {
    console.log(JSON.stringify({ level: 'info', msg: 'listening', url: `http://${host}:${port}${engine.prefix}`, database: url ? 'postgresql' : 'embedded' }))
  })

  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    console.log(JSON.stringify({ level: 'info', msg: 'shutting down', signal }))
    // Stop accepting, let in-flight requests finish (bounded), then close the pool.
    server.close(() => {
      db.destroy().finally(() => process.exit(0))
    })
    server.closeIdleConnections()
    setTimeout(() => server.closeAllConnections(), 10_000).unref()
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
}

main().catch((err) => {
  console.error(JSON.stringify({ level: 'fatal', msg: 'start-up failed', err: String(err?.message ?? err) }))
  process.exit(1)
})
