import path from 'node:path'
import { expect } from 'chai'
import { Model } from 'objection'
import supertest from 'supertest'
import { createEngine, isConnectionError, openDatabase, unavailableError } from '../core'
import { plugins } from '../resources'
import { createScratchDatabase, PG_URL, withPort, type ScratchDatabase } from './helpers/pg'
import { authedRequest, keepAliveAgent, sleep, type JsonResponse } from './helpers/http-client'
import { claimPort, releasePort } from './helpers/ports'
import {
  ADMIN_AUTH,
  adminFetch,
  killAllServers,
  spawnServer,
  startServer,
  stopServer,
  waitForLog,
  waitUntilServing,
  type ServerProcess,
} from './helpers/server-process'
import { TcpProxy } from './helpers/tcp-proxy'

const POOL_MAX = 10 // openDatabase's default pool size
// knex's warnings about the broken connections this file breaks on purpose
const quiet = { warn() {} }
const request = authedRequest(ADMIN_AUTH)

const title = PG_URL
  ? 'database faults: a server process behind a TCP proxy to PostgreSQL that the tests cut and restore'
  : 'database faults: SKIPPED on the embedded database, PGlite is single-process and in the server process, there is no connection to cut (set DATABASE_URL)'

function expect503(res: JsonResponse): void {
  expect(res.body, JSON.stringify(res.body)).to.have.all.keys('message', 'payload', 'status_code', 'code')
  expect(res.body.code).to.be.oneOf(['unavailable', 'query_timeout'])
  expect(res.body.status_code).to.equal(503)
  expect(res.body.message)
    .to.be.a('string')
    .and.not.match(/ECONN|terminated|select|insert/i)
  expect(Number(res.headers['retry-after'])).to.be.at.least(1)
  expect(res.headers['content-type']).to.match(/^application\/json/)
}

describe(title, function () {
  this.timeout(120_000)
  let scratch: ScratchDatabase
  let proxy: TcpProxy
  let server: ServerProcess
  const agent = keepAliveAgent()
  const pg = PG_URL ? new URL(PG_URL) : undefined

  before(async function () {
    if (!PG_URL) return this.skip()
    scratch = await createScratchDatabase('faults')
    proxy = await TcpProxy.start({ host: pg!.hostname, port: Number(pg!.port || 5432) })
    server = await startServer({ DATABASE_URL: withPort(scratch.url, proxy.port) })
  })

  after(async () => {
    agent.destroy()
    await killAllServers()
    await proxy?.close()
    await scratch?.drop()
  })

  it('a cut under load answers 503 JSON with Retry-After, recovers without a restart, keeps every acknowledged write, leaks no connection', async () => {
    type Sent = { phase: 'before' | 'outage' | 'after'; res?: JsonResponse; error?: string; at: number }
    const sent: Sent[] = []
    const acknowledged: Array<{ id: string; name: string }> = []
    let phase: Sent['phase'] = 'before'
    let stop = false
    const client = async (c: number) => {
      for (let i = 0; !stop && i < 5_000; i++) {
        const entry: Sent = { phase, at: performance.now() }
        sent.push(entry)
        const name = `load-${c}-${i}`
        try {
          entry.res =
            i % 2
              ? await request(agent, 'GET', `${server.origin}/api/v1/componenttypes?limit=5`)
              : await request(agent, 'POST', `${server.origin}/api/v1/componenttypes`, { body: { name } })
          if (entry.res.status === 201) acknowledged.push({ id: entry.res.body.componenttype.id, name })
        } catch (err) {
          entry.error = String((err as Error).message)
        }
        if (entry.res?.status === 503) await sleep(50)
      }
    }
    const load = Promise.all(Array.from({ length: 8 }, (_, c) => client(c)))
    await sleep(1_000)
    phase = 'outage'
    await proxy.cut()
    await sleep(2_500)
    const restoredAt = performance.now()
    phase = 'after'
    await proxy.restore()
    // Recovery: some request sent after the restore succeeds within 20 s; then let the load run 1 s more.
    const deadline = Date.now() + 20_000
    while (!sent.some((s) => s.phase === 'after' && s.res && s.res.status < 300) && Date.now() < deadline) await sleep(100)
    await sleep(1_000)
    stop = true
    await load

    expect(
      sent.filter((s) => s.error).map((s) => s.error),
      'network errors',
    ).to.deep.equal([])
    const statuses = sent.map((s) => s.res!.status)
    expect(
      statuses.filter((s) => ![200, 201, 503].includes(s)),
      'statuses other than 200, 201, 503',
    ).to.deep.equal([])
    const unavailable = sent.filter((s) => s.res!.status === 503)
    expect(unavailable.filter((s) => s.phase === 'outage').length, 'no 503 during the outage').to.be.greaterThan(0)
    for (const s of unavailable) expect503(s.res!)
    const recovered = sent.find((s) => s.phase === 'after' && s.res!.status < 300)
    expect(recovered, 'no request succeeded after the proxy was restored').to.not.equal(undefined)
    // Once one request got through, broken pooled connections have been discarded: no 503 after it.
    expect(sent.filter((s) => s.at > recovered!.at && s.res!.status === 503).length, 'a 503 after the recovery').to.equal(0)
    expect(sent.filter((s) => s.phase === 'before' && s.res!.status < 300).length).to.be.greaterThan(0)
    expect(recovered!.at - restoredAt).to.be.below(20_000)
    expect(server.alive(), 'the server process died').to.equal(true)

    // No leak: the server holds at most its pool's worth of connections.
    expect(await scratch.backends()).to.be.at.most(POOL_MAX)
    // Every create acknowledged with 201 is in PostgreSQL, as acknowledged.
    expect(acknowledged.length).to.be.greaterThan(0)
    const stored = new Map(
      (
        await scratch.db('componenttypes').whereIn(
          'id',
          acknowledged.map((a) => a.id),
        )
      ).map((r) => [r.id, r.name]),
    )
    expect(
      acknowledged.filter((a) => stored.get(a.id) !== a.name),
      'acknowledged creates missing from the database',
    ).to.deep.equal([])

    // The 503s are logged with their request id: the request line and the cause line.
    const requestId = unavailable[0].res!.headers['x-request-id']
    expect(requestId).to.be.a('string')
    await waitForLog(server, (l) => l.msg === 'request' && l.request_id === requestId && l.status === 503, 5_000)
    const fiveHundreds = server.logs.filter((l) => (l.status ?? 0) >= 500)
    expect(fiveHundreds.length).to.be.greaterThan(0)
    expect(
      fiveHundreds.filter((l) => typeof l.request_id !== 'string'),
      '5xx log lines without a request id',
    ).to.deep.equal([])
  })

  it('connections PostgreSQL terminates while idle do not crash the process; the next requests succeed', async () => {
    await request(agent, 'GET', `${server.origin}/api/v1/componenttypes`)
    const { rows } = await scratch.db.raw('SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = ? AND pid <> pg_backend_pid()', [
      scratch.name,
    ])
    expect(rows.length, 'the server held no connection to terminate').to.be.greaterThan(0)
    await sleep(500)
    const results = await Promise.all(Array.from({ length: 20 }, () => request(agent, 'GET', `${server.origin}/api/v1/componenttypes?limit=1`)))
    expect(results.map((r) => r.status)).to.deep.equal(Array(20).fill(200))
    expect(server.alive()).to.equal(true)
  })

  it('every connection error shape of pg, knex and objection maps to 503; the engine answers 503 over a cut connection', async () => {
    const viaProxy = withPort(scratch.url, proxy.port)
    const shapes: Record<string, unknown> = {}
    const capture = async (name: string, run: () => PromiseLike<unknown>) => {
      try {
        await run()
        shapes[name] = 'no error'
      } catch (err) {
        shapes[name] = err
      }
    }
    const db = openDatabase({ url: viaProxy, poolSize: 2, acquireTimeout: 1_000, logger: quiet })
    const engine = await createEngine({ db, schemasDir: path.resolve(__dirname, '..', 'schemas'), plugins, logger: { error() {} } })
    const http = supertest(engine.app().callback())
    class Probe extends Model {
      static override tableName = 'componenttypes'
    }
    try {
      // A statement whose socket is cut while PostgreSQL runs it: "Connection terminated unexpectedly".
      const slow = capture('terminated mid-query (knex)', () => db.raw('SELECT pg_sleep(5)'))
      await sleep(300)
      await proxy.cut()
      await slow
      // Nothing listens: ECONNREFUSED, from knex and from objection.
      await capture('refused (knex)', () => db.raw('SELECT 1'))
      await capture('refused (objection)', () => Probe.query(db).limit(1))
      // With credentials: the server's authenticator reads the caller's row, through the cut connection too.
      const list = await http.get('/api/v1/componenttypes').set('Authorization', ADMIN_AUTH)
      const create = await http.post('/api/v1/componenttypes').set('Authorization', ADMIN_AUTH).send({ name: 'during-outage' })
      await proxy.restore()
      // PostgreSQL ends the session (57P01), seen through objection's DBError wrapper.
      const direct = openDatabase({ url: scratch.url, poolSize: 1, logger: quiet })
      try {
        const sleeping = capture('terminated by the administrator (objection)', () => Probe.query(direct).select(direct.raw('pg_sleep(5)')).limit(1))
        await sleep(300)
        await scratch.db.raw(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ? AND query LIKE '%pg_sleep(5)%' AND pid <> pg_backend_pid()",
          [scratch.name],
        )
        await sleeping
        // Every pooled connection busy past acquireTimeout: knex's KnexTimeoutError.
        const small = openDatabase({ url: scratch.url, poolSize: 1, acquireTimeout: 300, logger: quiet })
        try {
          await small.transaction(async (trx) => {
            await trx.raw('SELECT 1')
            await capture('pool exhausted (knex)', () => small.raw('SELECT 1'))
          })
        } finally {
          await small.destroy()
        }
      } finally {
        await direct.destroy()
      }
      for (const [name, err] of Object.entries(shapes)) {
        expect(err, name).to.be.instanceOf(Error)
        expect(isConnectionError(err), `${name}: ${(err as Error).message}`).to.equal(true)
        expect(unavailableError(err)?.status, name).to.equal(503)
      }
      expect((shapes['terminated by the administrator (objection)'] as { nativeError?: { code?: string } }).nativeError?.code).to.equal('57P01')
      expect((shapes['pool exhausted (knex)'] as Error).name).to.equal('KnexTimeoutError')
      expect(list.status).to.equal(503)
      expect(create.status).to.equal(503)
      for (const res of [list, create]) expect503({ status: res.status, headers: res.headers, body: res.body })
    } finally {
      await proxy.restore()
      await db.destroy()
    }
  })

  it('start-up with the database down retries with backoff, logs why, and serves once the database is up', async () => {
    // A port nothing listens on yet: connects are refused, as when PostgreSQL is down.
    const downProxy = new TcpProxy(await claimPort(), { host: pg!.hostname, port: Number(pg!.port || 5432) })
    const starting = spawnServer(await claimPort(), { DATABASE_URL: withPort(scratch.url, downProxy.port) })
    try {
      const retry = (n: number) => (l: { msg: string; attempt?: number }) => l.msg === 'database not ready, retrying' && l.attempt === n
      const first = await waitForLog(starting, retry(1), 90_000)
      const third = await waitForLog(starting, retry(3), 20_000)
      expect(first.code).to.equal('ECONNREFUSED')
      expect(first.err).to.match(/ECONNREFUSED/)
      expect(third.retry_in_ms, 'the delay grows').to.be.greaterThan(first.retry_in_ms)
      expect(starting.alive()).to.equal(true)
      const early = await adminFetch(`${starting.origin}/api/v1/componenttypes`).then(
        (r) => r.status,
        (err) => String(err.cause?.code ?? err),
      )
      expect(early, 'it must not listen before the database is ready').to.equal('ECONNREFUSED')
      await downProxy.listen()
      await waitUntilServing(starting, 30_000)
      const res = await request(agent, 'POST', `${starting.origin}/api/v1/componenttypes`, { body: { name: 'after-start-up' } })
      expect(res.status).to.equal(201)
    } finally {
      await stopServer(starting, 'SIGKILL')
      await downProxy.close()
    }
  })

  it('SIGTERM while start-up waits for the database exits 0 within a second or two', async () => {
    const nowhere = await claimPort() // nothing listens there
    const waiting = spawnServer(await claimPort(), { DATABASE_URL: withPort(scratch.url, nowhere) })
    try {
      await waitForLog(waiting, (l) => l.msg === 'database not ready, retrying', 90_000)
      const started = Date.now()
      expect(await stopServer(waiting, 'SIGTERM', 10_000)).to.equal(0)
      expect(Date.now() - started).to.be.below(3_000)
    } finally {
      await stopServer(waiting, 'SIGKILL')
      releasePort(nowhere)
    }
  })
})
