import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { expect } from 'chai'
import type { Knex } from 'knex'
import Koa from 'koa'
import supertest from 'supertest'
import { createEngine, definePlugin, openDatabase, type AdmissionOptions, type Engine, type EngineOptions } from '../core'
import { admissionSettings, ClientClosedError } from '../core/http/admission'
import { resourcePlugins } from '../resources'
import { keepAliveAgent, request, sleep } from './helpers/http-client'
import { capturedLogger } from './helpers/logs'
import { PG_URL } from './helpers/pg'
import { resetTables, SCHEMAS, testDatabase } from './support'

/**
 * Test-only actions whose handlers wait until the test releases them, then read componenttypes through
 * the service (so a request abandoned meanwhile shows whether its statement still starts): one plain
 * (`/probe/hold`), one a list action (`/probe/hold-list`, the costly class).
 */
function holdProbe() {
  let release!: () => void
  let gate = new Promise<void>((resolve) => (release = resolve))
  const seen: Array<{ signal?: AbortSignal; outcome?: string }> = []
  const plugin = definePlugin({
    name: 'hold-probe',
    setup(api) {
      const handler = async (ctx: any) => {
        const entry: { signal?: AbortSignal; outcome?: string } = { signal: ctx.params.signal }
        seen.push(entry)
        await gate
        try {
          const page = await ctx.service('componenttype').find({ query: { limit: 1 } })
          entry.outcome = 'read'
          return page
        } catch (err) {
          entry.outcome = err instanceof ClientClosedError ? 'not started: client closed' : `failed: ${(err as Error).message}`
          throw err
        }
      }
      api.action({ name: 'probe_hold', method: 'GET', path: '/probe/hold', summary: 'Waits for the test', transaction: false, handler })
      api.action({
        name: 'probe_hold_list',
        method: 'GET',
        path: '/probe/hold-list',
        summary: 'A list that waits',
        list: 'componenttype',
        transaction: false,
        handler,
      })
    },
  })
  return {
    plugin,
    seen,
    release() {
      release()
      gate = new Promise<void>((resolve) => (release = resolve))
    },
  }
}

/** An engine with the hold probe on `db`, served by a node:http server on a free loopback port. */
async function probeServer(db: Knex, admission: AdmissionOptions | false, extra: Partial<EngineOptions> = {}) {
  const probe = holdProbe()
  const engine = await createEngine({
    db,
    schemasDir: SCHEMAS,
    plugins: [...resourcePlugins, probe.plugin],
    admission,
    checkSchema: false,
    logger: capturedLogger().logger,
    ...extra,
  })
  const server = http.createServer(engine.app().callback())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    engine,
    probe,
    origin,
    http: supertest(origin),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** Sends a GET and hangs up after `ms` without reading an answer. */
function hangUpAfter(url: string, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const req = http.get(url)
    req.on('error', () => resolve())
    setTimeout(() => {
      req.destroy()
      resolve()
    }, ms)
  })
}

/** Polls `check` until it is true or `ms` passed; answers how long it took (Infinity if never). */
async function within(ms: number, check: () => Promise<boolean> | boolean): Promise<number> {
  const started = Date.now()
  while (Date.now() - started < ms) {
    if (await check()) return Date.now() - started
    await sleep(20)
  }
  return Number.POSITIVE_INFINITY
}

function expectOverloaded(res: supertest.Response) {
  expect(res.status, JSON.stringify(res.body)).to.equal(503)
  expect(res.body.code).to.equal('overloaded')
  expect(res.body.status_code).to.equal(503)
  expect(res.body.payload.retry_after).to.be.a('number').and.at.least(1)
  expect(res.headers['retry-after']).to.equal(String(res.body.payload.retry_after))
  expect(res.headers['content-type']).to.match(/^application\/json/)
  expect(res.body.message).to.not.match(/database unavailable/i)
}

describe('admission control', function () {
  this.timeout(60_000)
  let db: Knex

  before(async () => {
    db = await testDatabase()
    await resetTables(db)
  })

  it('past MAX_IN_FLIGHT and a full queue: an immediate 503 overloaded with Retry-After; a queued request times out with 503 overloaded; then the slot serves again', async () => {
    const app = await probeServer(db, { maxInFlight: 1, queueSize: 1, queueTimeoutMs: 400 })
    try {
      const holding = app.http.get('/api/v1/probe/hold').then((r) => r)
      await within(2_000, () => app.probe.seen.length === 1)
      const queuedStarted = Date.now()
      const queued = app.http.get('/api/v1/probe/hold').then((r) => r)
      await sleep(50)
      const refusedStarted = Date.now()
      const refused = await app.http.get('/api/v1/componenttypes')
      expect(Date.now() - refusedStarted, 'refused fast').to.be.below(200)
      expectOverloaded(refused)
      expect(refused.body.message).to.match(/queue is full/)
      const timedOut = await queued
      expectOverloaded(timedOut)
      expect(timedOut.body.message).to.match(/waited too long/)
      expect(Date.now() - queuedStarted).to.be.within(350, 2_000)
      expect(app.probe.seen, 'the queued request never ran').to.have.length(1)
      app.probe.release()
      expect((await holding).status).to.equal(200)
      await app.http.get('/api/v1/componenttypes').expect(200)
    } finally {
      await app.close()
    }
  })

  it('the queue is FIFO: a waiting request runs as soon as a slot frees, in arrival order', async () => {
    const app = await probeServer(db, { maxInFlight: 1, queueSize: 4, queueTimeoutMs: 5_000 })
    try {
      const order: number[] = []
      const first = app.http.get('/api/v1/probe/hold').then((r) => r)
      await within(2_000, () => app.probe.seen.length === 1)
      const rest = [1, 2, 3].map(async (i) => {
        await sleep(i * 30)
        const res = await app.http.get(`/api/v1/componenttypes?limit=${i}`)
        order.push(i)
        return res
      })
      await sleep(200)
      expect(order, 'all wait behind the first').to.deep.equal([])
      app.probe.release()
      expect((await first).status).to.equal(200)
      for (const res of await Promise.all(rest)) expect(res.status).to.equal(200)
      expect(order).to.deep.equal([1, 2, 3])
    } finally {
      await app.close()
    }
  })

  it('lists have their own cap: with the list slots taken, another list is refused while a detail and a write are served at once', async () => {
    const app = await probeServer(db, { maxInFlight: 8, maxListsInFlight: 1, queueSize: 0 })
    try {
      const created = await app.http.post('/api/v1/componenttypes').send({ name: 'admission-detail' }).expect(201)
      const holding = app.http.get('/api/v1/probe/hold-list').then((r) => r)
      await within(2_000, () => app.probe.seen.length === 1)
      expectOverloaded(await app.http.get('/api/v1/componenttypes'))
      expectOverloaded(await app.http.get('/api/v1/componenttypes/'))
      await app.http.get(`/api/v1/componenttypes/${created.body.componenttype.id}`).expect(200)
      await app.http.post('/api/v1/componenttypes').send({ name: 'admission-write' }).expect(201)
      app.probe.release()
      expect((await holding).status).to.equal(200)
      await app.http.get('/api/v1/componenttypes').expect(200)
    } finally {
      await app.close()
    }
  })

  it('a list that would find the list queue full is refused before authentication (a cheap refusal under a flood); other requests are still authenticated', async () => {
    const identified: string[] = []
    const authenticator = {
      challenges: ['Basic realm="t"'],
      identify(request: { path: string }) {
        identified.push(request.path)
        return { name: 'probe', role: 'admin' }
      },
    }
    const app = await probeServer(db, { maxInFlight: 8, maxListsInFlight: 1, queueSize: 0 }, { authenticator: authenticator as EngineOptions['authenticator'] })
    try {
      const holding = app.http.get('/api/v1/probe/hold-list').then((r) => r)
      await within(2_000, () => app.probe.seen.length === 1)
      identified.length = 0
      expectOverloaded(await app.http.get('/api/v1/componenttypes'))
      expectOverloaded(await app.http.get('/api/v1/componenttypes?limit=5'))
      expect(identified, 'the refused lists never reached the authenticator').to.deep.equal([])
      await app.http.post('/api/v1/componenttypes').send({ name: 'admission-early' }).expect(201)
      expect(identified, 'a write is authenticated as before').to.deep.equal(['/api/v1/componenttypes'])
      app.probe.release()
      expect((await holding).status).to.equal(200)
      await app.http.get('/api/v1/componenttypes').expect(200)
      expect(identified.length, 'a list with a free place is authenticated').to.equal(2)
    } finally {
      await app.close()
    }
  })

  it('after a 503 overloaded, its keep-alive connection is not read for refusalPauseMs: the refusal comes at once, the next request on that connection waits, another connection does not', async () => {
    const app = await probeServer(db, { maxInFlight: 8, maxListsInFlight: 1, queueSize: 0, refusalPauseMs: 600 })
    const refused = keepAliveAgent({ maxSockets: 1 })
    const other = keepAliveAgent({ maxSockets: 1 })
    try {
      const created = await app.http.post('/api/v1/componenttypes').send({ name: 'admission-pause' }).expect(201)
      const detail = `${app.origin}/api/v1/componenttypes/${created.body.componenttype.id}`
      // Both connections open and served before the refusal.
      expect((await request(refused, 'GET', detail)).status).to.equal(200)
      expect((await request(other, 'GET', detail)).status).to.equal(200)
      const holding = app.http.get('/api/v1/probe/hold-list').then((r) => r)
      await within(2_000, () => app.probe.seen.length === 1)
      let started = Date.now()
      const refusal = await request(refused, 'GET', `${app.origin}/api/v1/componenttypes`)
      expect(refusal.status).to.equal(503)
      expect(refusal.body.code).to.equal('overloaded')
      expect(Date.now() - started, 'the refusal itself is sent at once').to.be.below(300)
      started = Date.now()
      const next = request(refused, 'GET', detail).then((res) => ({ res, ms: Date.now() - started }))
      const otherStarted = Date.now()
      expect((await request(other, 'GET', detail)).status).to.equal(200)
      expect(Date.now() - otherStarted, 'another connection is served at once').to.be.below(300)
      const { res, ms } = await next
      expect(res.status).to.equal(200)
      expect(ms, 'the next request on the refused connection waited for the pause').to.be.at.least(550)
      app.probe.release()
      expect((await holding).status).to.equal(200)
    } finally {
      refused.destroy()
      other.destroy()
      await app.close()
    }
  })

  it('with refusalPauseMs 0, the next request on a refused connection is read at once', async () => {
    const app = await probeServer(db, { maxInFlight: 8, maxListsInFlight: 1, queueSize: 0, refusalPauseMs: 0 })
    const agent = keepAliveAgent({ maxSockets: 1 })
    try {
      const holding = app.http.get('/api/v1/probe/hold-list').then((r) => r)
      await within(2_000, () => app.probe.seen.length === 1)
      expect((await request(agent, 'GET', `${app.origin}/api/v1/componenttypes`)).status).to.equal(503)
      const started = Date.now()
      expect((await request(agent, 'GET', `${app.origin}/api/v1`)).status).to.equal(200)
      expect(Date.now() - started).to.be.below(300)
      app.probe.release()
      expect((await holding).status).to.equal(200)
    } finally {
      agent.destroy()
      await app.close()
    }
  })

  it('lists waiting for a list place hold no request place: with more lists queued than MAX_IN_FLIGHT, a detail is served at once', async () => {
    const app = await probeServer(db, { maxInFlight: 3, maxListsInFlight: 1, queueSize: 8, queueTimeoutMs: 10_000 })
    try {
      const created = await app.http.post('/api/v1/componenttypes').send({ name: 'admission-queued-lists' }).expect(201)
      const holding = app.http.get('/api/v1/probe/hold-list').then((r) => r)
      await within(2_000, () => app.probe.seen.length === 1)
      // Five lists wait for the one list place: more than the three request places.
      const waiting = Array.from({ length: 5 }, () => app.http.get('/api/v1/componenttypes').then((r) => r))
      await sleep(300) // they are all read and queued
      const started = Date.now()
      await app.http.get(`/api/v1/componenttypes/${created.body.componenttype.id}`).expect(200)
      expect(Date.now() - started, 'the detail did not wait for the queued lists').to.be.below(1_000)
      app.probe.release()
      expect((await holding).status).to.equal(200)
      for (const res of await Promise.all(waiting)) expect(res.status).to.equal(200)
      // Every place is back: as many requests as the cap are served at once again.
      await Promise.all(Array.from({ length: 3 }, () => app.http.get(`/api/v1/componenttypes/${created.body.componenttype.id}`).expect(200)))
    } finally {
      await app.close()
    }
  })

  it('paths outside the engine (a host app health route) are never queued nor refused', async () => {
    const probe = holdProbe()
    const engine = await createEngine({
      db,
      schemasDir: SCHEMAS,
      plugins: [...resourcePlugins, probe.plugin],
      admission: { maxInFlight: 1, queueSize: 0 },
      checkSchema: false,
      logger: capturedLogger().logger,
    })
    const host = new Koa()
    host.use(engine.middleware())
    host.use((ctx) => {
      if (ctx.path === '/healthz') ctx.body = { ok: true }
    })
    const agent = supertest(host.callback())
    const holding = agent.get('/api/v1/probe/hold').then((r) => r)
    await within(2_000, () => probe.seen.length === 1)
    expectOverloaded(await agent.get('/api/v1/componenttypes'))
    for (let i = 0; i < 5; i++) await agent.get('/healthz').expect(200)
    probe.release()
    expect((await holding).status).to.equal(200)
  })

  it('REQUEST_DEADLINE_MS: a request past its deadline answers 503 deadline_exceeded at the deadline, its signal aborts, and it starts no further statement', async () => {
    const { logger, lines } = capturedLogger()
    const app = await probeServer(db, { deadlineMs: 300 }, { logger, logRequests: true })
    try {
      const started = Date.now()
      const res = await app.http.get('/api/v1/probe/hold').set('X-Request-Id', 'trace-deadline')
      const took = Date.now() - started
      expect(res.status).to.equal(503)
      expect(res.body).to.deep.equal({
        message: 'The request took longer than 300 ms and was cancelled',
        payload: { retry_after: 1, deadline_ms: 300 },
        status_code: 503,
        code: 'deadline_exceeded',
      })
      expect(res.headers['retry-after']).to.equal('1')
      expect(took).to.be.within(280, 1_500)
      expect(app.probe.seen[0].signal?.aborted).to.equal(true)
      app.probe.release()
      await within(2_000, () => app.probe.seen[0].outcome !== undefined)
      expect(app.probe.seen[0].outcome).to.match(/^failed: The request took longer than 300 ms/)
      const logged = lines.filter((l) => l.request_id === 'trace-deadline')
      expect(logged).to.have.length(1)
      expect(logged[0]).to.include({ msg: 'request', status: 503, code: 'deadline_exceeded' })
    } finally {
      await app.close()
    }
  })

  it('a request whose client hangs up starts no further statement (its signal aborts), and is logged as one line', async () => {
    const { logger, lines } = capturedLogger()
    const app = await probeServer(db, {}, { logger })
    try {
      await hangUpAfter(`${app.origin}/api/v1/probe/hold`, 150)
      expect(await within(2_000, () => app.probe.seen[0]?.signal?.aborted === true)).to.be.below(2_000)
      const statements: string[] = []
      const record = (q: { sql: string }) => statements.push(q.sql)
      db.on('query', record)
      try {
        app.probe.release()
        await within(2_000, () => app.probe.seen[0].outcome !== undefined)
      } finally {
        db.removeListener('query', record)
      }
      expect(app.probe.seen[0].outcome).to.equal('not started: client closed')
      expect(statements.filter((sql) => /componenttypes/.test(sql))).to.deep.equal([])
      await within(1_000, () => lines.some((l) => l.msg === 'client closed the connection, request abandoned'))
      expect(lines.filter((l) => l.msg === 'client closed the connection, request abandoned')).to.have.length(1)
      expect(lines.filter((l) => l.level >= 50)).to.deep.equal([])
    } finally {
      await app.close()
    }
  })

  it('lists in flight default to half the pool, at least 1; a setting overrides it', () => {
    expect(admissionSettings({}, 10).maxListsInFlight).to.equal(5)
    expect(admissionSettings({}, 1).maxListsInFlight).to.equal(1)
    expect(admissionSettings({ maxListsInFlight: 7 }, 10).maxListsInFlight).to.equal(7)
  })

  it('bad admission settings stop createEngine, naming the setting', async () => {
    for (const admission of [{ maxInFlight: 0 }, { queueSize: -1 }, { queueTimeoutMs: 1.5 }, { maxListsInFlight: Number.NaN }, { refusalPauseMs: -1 }]) {
      let failure: unknown
      try {
        await createEngine({ db, schemasDir: SCHEMAS, plugins: resourcePlugins, admission, checkSchema: false })
      } catch (err) {
        failure = err
      }
      expect(String(failure), JSON.stringify(admission)).to.match(new RegExp(`admission\\.${Object.keys(admission)[0]} must be an integer`))
    }
  })

  describe(
    PG_URL
      ? 'cancelling statements (PostgreSQL)'
      : 'cancelling statements: SKIPPED on the embedded database, PGlite cannot cancel a running statement (set DATABASE_URL)',
    () => {
      let pg: Knex
      let engine: Engine
      let server: http.Server
      let origin: string

      before(async function () {
        if (!PG_URL) return this.skip()
        // Its own pool (the shared test database, migrated): pool use and backends are this engine's alone.
        pg = openDatabase({ url: PG_URL, poolSize: 4 })
        engine = await createEngine({
          db: pg,
          schemasDir: SCHEMAS,
          plugins: resourcePlugins,
          admission: { deadlineMs: 600, maxListsInFlight: 4 },
          checkSchema: false,
          logger: capturedLogger().logger,
        })
        server = http.createServer(engine.app().callback())
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
        origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      })

      after(async () => {
        if (!PG_URL) return
        server.closeAllConnections()
        await new Promise((resolve) => server.close(resolve))
        await pg.destroy()
      })

      const pool = () => (pg.client as { pool: { numUsed(): number; numPendingAcquires(): number } }).pool
      /** Statements of this test's pool still running or waiting (on the lock): none once cancelled. */
      async function activeOnComponenttypes(checker: Knex): Promise<number> {
        const { rows } = await checker.raw(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query LIKE '%from \"componenttypes\"%' AND pid <> pg_backend_pid()",
        )
        return rows[0].n
      }

      it('a client that hangs up while its list waits on a locked table frees its connection within a second: the statement is cancelled (pg_cancel_backend)', async () => {
        const checker = openDatabase({ url: PG_URL!, poolSize: 1 })
        const trx = await db.transaction()
        try {
          await trx.raw('LOCK TABLE componenttypes IN ACCESS EXCLUSIVE MODE')
          // Deadline 600 ms is longer than the hang-up: the cancel below is the hang-up's.
          const clients = [0, 1, 2].map(() => hangUpAfter(`${origin}/api/v1/componenttypes`, 250))
          await sleep(150)
          expect(pool().numUsed(), 'the lists hold connections, waiting on the lock').to.equal(3)
          expect(await activeOnComponenttypes(checker)).to.equal(3)
          await Promise.all(clients)
          const freed = await within(1_000, () => pool().numUsed() === 0 && pool().numPendingAcquires() === 0)
          expect(freed, 'pool slots back within 1 s, the lock still held').to.be.below(1_000)
          expect(await activeOnComponenttypes(checker)).to.equal(0)
        } finally {
          await trx.rollback()
          await checker.destroy()
        }
        await supertest(origin).get('/api/v1/componenttypes').expect(200)
      })

      it('past the deadline the running statement is cancelled and the request answers 503 deadline_exceeded', async () => {
        const checker = openDatabase({ url: PG_URL!, poolSize: 1 })
        const trx = await db.transaction()
        try {
          await trx.raw('LOCK TABLE componenttypes IN ACCESS EXCLUSIVE MODE')
          const started = Date.now()
          const res = await supertest(origin).get('/api/v1/componenttypes')
          expect(res.status).to.equal(503)
          expect(res.body.code).to.equal('deadline_exceeded')
          expect(Date.now() - started).to.be.within(550, 2_000)
          const freed = await within(1_000, () => pool().numUsed() === 0)
          expect(freed, 'the statement cancelled, its connection back').to.be.below(1_000)
          expect(await activeOnComponenttypes(checker)).to.equal(0)
        } finally {
          await trx.rollback()
          await checker.destroy()
        }
      })

      it('no free pooled connection in time answers 503 overloaded (not "database unavailable"), logged as one line', async () => {
        const { logger, lines } = capturedLogger()
        const small = openDatabase({ url: PG_URL!, poolSize: 1, acquireTimeout: 300, logger: { warn() {} } })
        const tiny = await createEngine({ db: small, schemasDir: SCHEMAS, plugins: resourcePlugins, checkSchema: false, logger })
        try {
          await small.transaction(async (trx) => {
            await trx.raw('SELECT 1')
            const res = await supertest(tiny.app().callback()).get('/api/v1/componenttypes').set('X-Request-Id', 'trace-pool')
            expectOverloaded(res)
            expect(res.body.message).to.match(/no free database connection/)
          })
          const logged = lines.filter((l) => l.request_id === 'trace-pool')
          expect(logged).to.have.length(1)
          expect(logged[0]).to.include({ msg: 'refused', code: 'overloaded', status: 503 })
          expect(logged[0].reason).to.match(/Timeout acquiring a connection/)
          expect(JSON.stringify(logged[0])).to.not.match(/\\n\s+at /)
        } finally {
          await small.destroy()
        }
      })
    },
  )
})
