/**
 * The SQL statements each benchmark request costs, counted at the driver (every `query` a pg client
 * sends: BEGIN and COMMIT included): the unauthenticated engine (`resourcePlugins`), and the engine
 * with identity (`serverPlugins()`, as server.ts builds it) called with Basic and with an API key.
 * In one process, requests one at a time, so each statement belongs to the request being answered.
 *   npm run build && node dist/bench/count-queries.js [--requests N]   (default 20 per scenario)
 * DATABASE_URL defaults to the `dci_bench` database of `npm run bench` (seeded like it when empty; its
 * users, API keys and audits are emptied here first).
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import pg from 'pg'
import { createEngine, type Engine } from '../core'
import { ensureAdmin } from '../core/identity'
import { resourcePlugins, serverPlugins } from '../resources'
import { DEFAULT_URL, openBenchDatabase, resetIdentity, sample, seed, tableSizes } from './database'

const ROOT = path.resolve(__dirname, '..', '..')
const i = process.argv.indexOf('--requests')
const REQUESTS = i > 0 ? Number(process.argv[i + 1]) : 20
/** Requests of each target and scenario before counting: the first one starts listening for identity changes. */
const WARM_UP = 3

/** Every statement the pg driver sends, in order. */
const statements: string[] = []
const query = pg.Client.prototype.query as (...args: unknown[]) => unknown
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  const first = args[0] as string | { text?: string }
  statements.push(typeof first === 'string' ? first : String(first?.text ?? '?'))
  return query.apply(this, args)
} as typeof pg.Client.prototype.query

/** The SQL without its values, short enough for a table. */
const shape = (sql: string) =>
  sql
    .replace(/\s+/g, ' ')
    .replace(/"[^"]*"\s*=\s*\$\d+/g, (m) => m.replace(/\$\d+/, '$'))
    .slice(0, 140)

async function serve(engine: Engine): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(engine.app().callback())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

async function main(): Promise<void> {
  const url = process.env.DATABASE_URL || DEFAULT_URL
  const db = await openBenchDatabase({ url })
  if ((await tableSizes(db)).components === 0) await seed(db, { components: 10_000, types: 100 })
  await resetIdentity(db)
  const rows = await sample(db, 100)
  const schemasDir = path.join(ROOT, 'schemas')
  const anonymous = await createEngine({ db, schemasDir, plugins: resourcePlugins })
  const identity = await createEngine({ db, schemasDir, plugins: serverPlugins() })
  const password = 'bench password'
  await ensureAdmin(identity, { password })
  const [admin] = (await identity.service('user').find({ trusted: true, query: { where: { name: 'admin' } } })).items
  const { apikey } = (await identity.action('create_user_apikey').call({ path: { id: admin.id }, body: { name: 'count' } })) as { apikey: { token: string } }
  const targets: Array<{ name: string; server: { url: string; close(): Promise<void> }; headers: Record<string, string> }> = [
    { name: 'engine', server: await serve(anonymous), headers: {} },
    { name: 'basic', server: await serve(identity), headers: { authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}` } },
    { name: 'bearer', server: await serve(identity), headers: { authorization: `Bearer ${apikey.token}` } },
  ]
  let n = 0
  const pick = <T>(list: T[]) => list[n++ % list.length]
  const json = { 'content-type': 'application/json' }
  const scenarios: Array<[string, () => { method: string; path: string; headers?: Record<string, string>; body?: string }]> = [
    ['detail', () => ({ method: 'GET', path: `/components/${pick(rows.ids)}` })],
    ['list-where', () => ({ method: 'GET', path: `/components?where=name:${pick(rows.names)}` })],
    ['list-sorted', () => ({ method: 'GET', path: `/components?sort=-name&limit=20&offset=${n++ % 1000}` })],
    [
      'create',
      () => ({
        method: 'POST',
        path: '/components',
        headers: json,
        body: JSON.stringify({ name: `count-${process.pid}-${n++}`, componenttype: pick(rows.types) }),
      }),
    ],
    [
      'update',
      () => ({
        method: 'PUT',
        path: `/components/${pick(rows.ids)}`,
        headers: { ...json, 'if-match': '*' },
        body: JSON.stringify({ name: `count-renamed-${n++}` }),
      }),
    ],
  ]
  const lines = ['| scenario | engine | basic | bearer |', '|---|---:|---:|---:|']
  const texts: string[] = []
  for (const [scenario, next] of scenarios) {
    const counts: number[] = []
    for (const target of targets) {
      let total = 0
      let last: string[] = []
      for (let r = -WARM_UP; r < REQUESTS; r++) {
        const req = next()
        const from = statements.length
        const res = await fetch(`${target.server.url}${req.path}`, { method: req.method, headers: { ...target.headers, ...req.headers }, body: req.body })
        await res.arrayBuffer()
        if (res.status >= 300) throw new Error(`${scenario} ${target.name}: ${req.method} ${req.path} answered ${res.status}`)
        last = statements.slice(from)
        if (r >= 0) total += last.length // the first requests of each target warm the caches (credentials, statements)
      }
      counts.push(total / REQUESTS)
      texts.push(`${scenario} / ${target.name}: ${last.length} statements\n${last.map((s) => `    ${shape(s)}`).join('\n')}`)
    }
    lines.push(`| ${scenario} | ${counts.map((c) => c.toFixed(2)).join(' | ')} |`)
  }
  console.log(
    `SQL statements per request (mean over ${REQUESTS} requests after ${WARM_UP} warm-up requests, ${url}):\n\n${lines.join('\n')}\n\n${texts.join('\n')}`,
  )
  for (const t of targets) await t.server.close()
  await resetIdentity(db)
  await db.destroy()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
