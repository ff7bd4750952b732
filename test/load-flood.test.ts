import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'chai'
import { migrateLatest, openDatabase } from '../core'
import { keepAliveAgent, request, sleep } from './helpers/http-client'
import { PG_URL } from './helpers/pg'
import { ADMIN_AUTH, killAllServers, ownDatabase, startServer, stopServer, type OwnDatabase, type ServerProcess } from './helpers/server-process'
import { MIGRATIONS } from './support'

/** Rows seeded: enough that the costliest legal list (below) costs a scan, a sort and a count of all of them. */
const ROWS = 20_000
const CLIENTS = 200
const FLOOD_MS = Number(process.env.FLOOD_MS || 10_000)
/**
 * The bound on PostgreSQL: the 200 ms (FLOOD_DETAIL_P99_MS moves it). Measured p99 59-121 ms,
 * p50 3-7 ms on this 2-CPU machine with the flood's own client taking one CPU. It was 150-300 ms before
 * a refused connection was paused (REFUSAL_PAUSE_MS), when the flood's refusals took the event loop.
 */
const DETAIL_P99_MS = Number(process.env.FLOOD_DETAIL_P99_MS || 200)
/** The bound on the embedded database (the issue's). */
const EMBEDDED_DETAIL_P99_MS = Number(process.env.FLOOD_EMBEDDED_DETAIL_P99_MS || 1_000)
/**
 * The costliest list a client may ask for: the largest page, sorted on a field no index orders, filtered
 * on a field no index covers (every row matches), and counted exactly.
 */
const AUTOCANNON = path.join(path.dirname(require.resolve('autocannon/package.json')), 'autocannon.js')
const COSTLY_LIST = '/api/v1/components?limit=200&sort=title&where=message:flood&count=exact'

/** Seeds one componenttype and {@link ROWS} components in two statements. */
async function seed(url: string | undefined, dataDir: string | undefined): Promise<void> {
  const db = openDatabase({ url, dataDir })
  try {
    await migrateLatest(db, MIGRATIONS)
    const [{ id }] = (await db.raw("INSERT INTO componenttypes (name, etag) VALUES ('flood', md5('flood')) RETURNING id")).rows
    await db.raw(
      `INSERT INTO components (name, componenttype, etag, title, message, sha, data)
       SELECT 'flood-' || i, ?, md5(i::text), md5((i * 7)::text), 'flood', md5((i * 13)::text), '{"k": "v"}'::jsonb
       FROM generate_series(1, ${ROWS}) AS i`,
      [id],
    )
    await db.raw('ANALYZE components')
  } finally {
    await db.destroy()
  }
}

/** The established TCP connections whose local end is 127.0.0.1:`port` (the server's side), from /proc/net/tcp. */
function establishedTo(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, '0')
  return fs
    .readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .filter((line) => {
      const cols = line.trim().split(/\s+/)
      return cols[1] === `0100007F:${hex}` && cols[3] === '01'
    }).length
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

describe(`load: ${CLIENTS} clients flooding the costliest legal list while a detail GET is timed (${PG_URL ? 'PostgreSQL' : 'embedded database'})`, function () {
  this.timeout(240_000)
  let own: OwnDatabase
  let server: ServerProcess
  let detailPath: string

  before(async function () {
    this.timeout(200_000)
    own = await ownDatabase('flood', Boolean(PG_URL))
    await seed(own.env.DATABASE_URL || undefined, own.env.DATA_DIR)
    // Request lines of 200s off (LOG_LEVEL=warn); each 5xx still logs its one line, with its code.
    server = await startServer({ ...own.env, LOG_LEVEL: 'warn', ...JSON.parse(process.env.FLOOD_SERVER_ENV || '{}') })
    const agent = keepAliveAgent()
    const one = await request(agent, 'GET', `${server.origin}/api/v1/components?limit=1&where=name:flood-777`, { headers: { authorization: ADMIN_AUTH } })
    agent.destroy()
    expect(one.status).to.equal(200)
    detailPath = `/api/v1/components/${one.body.components[0].id}`
  })

  after(async () => {
    if (server) await stopServer(server)
    await killAllServers()
    await own?.dispose()
  })

  it(`the detail GET stays fast (PostgreSQL: p99 under ${DETAIL_P99_MS} ms, embedded: under ${EMBEDDED_DETAIL_P99_MS} ms), the flood gets only 200 or 503 overloaded, and every pool slot and connection is back after`, async () => {
    // The prober runs in a process of its own (test/helpers/latency-prober.ts), as the flood does: the
    // latency it measures is the server's, not this process's, whose event loop reads the server's log
    // lines. Its connection is open before the flood, as a client's pooled keep-alive connection is.
    const prober = spawn(
      process.execPath,
      [
        '--require',
        'tsx/cjs',
        path.join(__dirname, 'helpers', 'latency-prober.ts'),
        `${server.origin}${detailPath}`,
        ADMIN_AUTH,
        String(FLOOD_MS - 1_500),
        '5',
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    )
    let proberOut = ''
    let proberErr = ''
    prober.stderr!.setEncoding('utf8').on('data', (chunk: string) => (proberErr += chunk))
    const proberDone = new Promise<number | null>((resolve) => prober.once('exit', resolve))
    await new Promise<void>((resolve, reject) => {
      prober.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        proberOut += chunk
        if (proberOut.startsWith('ready\n')) resolve()
      })
      proberDone.then((code) => reject(new Error(`the prober exited with ${code} before it was ready: ${proberErr}`)))
    })
    const logsBefore = server.logs.length
    // The flood comes from another process (autocannon): in this one it would slow the prober's own
    // event loop. Each of its connections loops the list as fast as it is answered, refusals included.
    const flood = spawn(
      process.execPath,
      [
        AUTOCANNON,
        '-c',
        String(CLIENTS),
        '-d',
        String(FLOOD_MS / 1000),
        '-t',
        '30',
        '-j',
        '-n',
        '-H',
        `authorization=${ADMIN_AUTH}`,
        `${server.origin}${COSTLY_LIST}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let floodOut = ''
    flood.stdout!.setEncoding('utf8').on('data', (chunk: string) => (floodOut += chunk))
    const floodDone = new Promise<number | null>((resolve) => flood.once('exit', resolve))
    await sleep(1_000) // the flood is on
    prober.stdin!.end('go\n')
    expect(await proberDone, `prober exit code (${proberErr})`).to.equal(0)
    const { latencies, statuses: detailStatuses } = JSON.parse(proberOut.slice('ready\n'.length)) as { latencies: number[]; statuses: number[] }
    expect(await floodDone, 'autocannon exit code').to.equal(0)
    const result = JSON.parse(floodOut) as { errors: number; timeouts: number; resets?: number; statusCodeStats: Record<string, { count: number }> }
    const statuses = Object.fromEntries(Object.entries(result.statusCodeStats).map(([status, s]) => [status, s.count]))
    // What the server said about each 5xx: one line each, with its code. Its log reaches this process
    // through a pipe, behind the flood's thousands of lines: read until they stop coming.
    const logged = () => server.logs.slice(logsBefore).filter((line) => line.status >= 500).length
    for (let seen = -1, waited = 0; logged() !== seen && waited < 10_000; waited += 300) {
      seen = logged()
      await sleep(300)
    }
    const refusals = new Map<string, number>()
    for (const line of server.logs.slice(logsBefore)) {
      if (line.status >= 500) refusals.set(`${line.status} ${line.code}`, (refusals.get(`${line.status} ${line.code}`) ?? 0) + 1)
    }
    const served = statuses['200'] ?? 0
    const sorted = [...latencies].sort((a, b) => a - b)
    const report = {
      database: PG_URL ? 'postgresql' : 'embedded',
      flood_answers: statuses,
      flood_5xx_codes: Object.fromEntries(refusals),
      flood_lists_per_s: Math.round(served / (FLOOD_MS / 1000)),
      client_errors: result.errors,
      details: latencies.length,
      detail_ms: { p50: Math.round(percentile(sorted, 50)), p99: Math.round(percentile(sorted, 99)), max: Math.round(sorted[sorted.length - 1]) },
    }
    console.log(`      ${JSON.stringify(report)}`)

    expect(result.errors, 'no connection error or timeout').to.equal(0)
    expect(served, 'lists were served during the flood').to.be.greaterThan(0)
    for (const status of Object.keys(statuses)) expect(['200', '503'], `flood answer ${status}`).to.include(status)
    for (const key of refusals.keys()) expect(key, 'the only 5xx is 503 overloaded').to.equal('503 overloaded')
    expect(
      [...refusals.values()].reduce((a, b) => a + b, 0),
      'one log line per refused request (autocannon leaves out answers in flight at its end)',
    ).to.be.at.least(statuses['503'] ?? 0)
    expect(new Set(detailStatuses), 'every detail GET answered 200, none refused').to.deep.equal(new Set([200]))
    expect(latencies.length, 'detail GETs timed').to.be.at.least(5)
    if (PG_URL) {
      expect(report.detail_ms.p99, 'detail p99 on PostgreSQL').to.be.below(DETAIL_P99_MS)
    } else {
      // PGlite runs in its own thread, one statement at a time; the detail's statement overtakes the
      // queued lists' (core/data/embedded.ts), so it waits for at most the one running.
      expect(report.detail_ms.p99, 'detail p99 on the embedded database').to.be.below(EMBEDDED_DETAIL_P99_MS)
    }

    // After the flood: no HTTP connection left open on the server, no statement running.
    const closed = Date.now()
    while (establishedTo(server.port) > 0 && Date.now() - closed < 3_000) await sleep(50)
    expect(establishedTo(server.port), 'server-side connections after the clients closed').to.equal(0)
    if (own.scratch) {
      const busy = async () =>
        (
          await own.scratch!.db.raw(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = ? AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')",
            [own.scratch!.name],
          )
        ).rows[0].n as number
      const started = Date.now()
      while ((await busy()) > 0 && Date.now() - started < 3_000) await sleep(50)
      expect(await busy(), 'database connections still busy after the flood').to.equal(0)
    }
    // And the server serves at once.
    const agent = keepAliveAgent()
    const started = Date.now()
    const after = await request(agent, 'GET', `${server.origin}${detailPath}`, { headers: { authorization: ADMIN_AUTH } })
    agent.destroy()
    expect(after.status).to.equal(200)
    // The embedded database first finishes the statements of requests it read before their clients left.
    expect(Date.now() - started).to.be.below(PG_URL ? 1_000 : 30_000)
  })
})
