import net from 'node:net'
import { expect } from 'chai'
import supertest from 'supertest'
import { createEngine, definePlugin, migrateLatest, openDatabase, type Engine } from '../core'
import componenttype from '../resources/componenttype'
import { createScratchDatabase, PG_URL, type ScratchDatabase } from './helpers/pg'
import { sleep } from './helpers/http-client'
import { expectQueryTimeout } from './helpers/errors'
import { capturedLogger } from './helpers/logs'
import { ADMIN_AUTH, adminFetch, killAllServers, ownDatabase, startServer, type OwnDatabase, type ServerProcess } from './helpers/server-process'
import { MIGRATIONS, SCHEMAS, testApp } from './support'

/** Polls until `count` lines satisfy `predicate` (request lines are written when the response closes). */
async function linesMatching(lines: Array<Record<string, any>>, predicate: (l: Record<string, any>) => boolean, count: number) {
  const deadline = Date.now() + 5_000
  while (lines.filter(predicate).length < count && Date.now() < deadline) await sleep(20)
  return lines.filter(predicate)
}

/** Test-only routes through the plugin API: one that fails, one that runs a slow statement through raw knex. */
const probeRoutes = definePlugin({
  name: 'probe',
  setup(api) {
    api.action({
      name: 'probe_boom',
      method: 'GET',
      path: '/probe/boom',
      summary: 'Fails with an error that is not an ApiError',
      transaction: false,
      handler() {
        throw new Error('secret detail: SELECT * FROM users')
      },
    })
    api.action({
      name: 'probe_slow',
      method: 'GET',
      path: '/probe/slow',
      summary: 'Runs a statement slower than the statement timeout',
      transaction: false,
      async handler(ctx) {
        await ctx.db.raw('SELECT pg_sleep(2)')
        return { slept: true }
      },
    })
  },
})

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
}

describe('limits and hygiene', function () {
  this.timeout(60_000)

  describe('in process', () => {
    it('every answer (200, 400, 404 in and out of the prefix, 405) carries the JSON API security headers and no X-Powered-By or Server', async () => {
      const { http } = await testApp()
      const answers = await Promise.all([
        http.get('/api/v1/componenttypes').expect(200),
        http.post('/api/v1/componenttypes').set('Content-Type', 'application/json').send('{oops').expect(400),
        http.get('/api/v1/nothing-here').expect(404),
        http.get('/elsewhere').expect(404),
        http.patch('/api/v1/componenttypes').expect(405),
      ])
      for (const res of answers) {
        expect(res.headers, `answer ${res.status}`).to.include(SECURITY_HEADERS)
        expect(res.headers).to.not.have.property('x-powered-by')
        expect(res.headers).to.not.have.property('server')
        expect(res.headers['content-type']).to.match(/^application\/json/)
      }
    })

    it('with logRequests and a pino logger: one JSON line per request with method, path, status, duration_ms and the X-Request-Id', async () => {
      const { logger, lines } = capturedLogger()
      const { http } = await testApp({ logger, logRequests: true })
      const given = await http.get('/api/v1/componenttypes?limit=1').set('X-Request-Id', 'trace-given-1').expect(200)
      const bad = await http.post('/api/v1/componenttypes').send({ nope: 1 }).expect(400)
      const outside = await http.get('/elsewhere').expect(404)
      expect(given.headers['x-request-id']).to.equal('trace-given-1')
      const requests = await linesMatching(lines, (l) => l.msg === 'request', 3)
      expect(requests).to.have.length(3)
      const byId = (id: string) => requests.filter((l) => l.request_id === id)
      expect(byId('trace-given-1')).to.have.length(1)
      expect(byId('trace-given-1')[0]).to.include({ method: 'GET', path: '/api/v1/componenttypes', status: 200, level: 30 })
      expect(byId(bad.headers['x-request-id'])[0]).to.include({ method: 'POST', path: '/api/v1/componenttypes', status: 400 })
      expect(byId(outside.headers['x-request-id'])[0]).to.include({ method: 'GET', path: '/elsewhere', status: 404 })
      for (const line of requests) expect(line.duration_ms).to.be.a('number').and.at.least(0)
    })

    it('without logRequests the engine logs no request line (a library stays quiet)', async () => {
      const { logger, lines } = capturedLogger()
      const { http } = await testApp({ logger })
      await http.get('/api/v1/componenttypes').expect(200)
      await http.post('/api/v1/componenttypes').send({ nope: 1 }).expect(400)
      await sleep(100)
      // Start-up's one warning: without the identity plugin, its users and audits tables (and tables other test files
      // left in the shared database) are owned by no schema.
      expect(lines.filter((l) => !l.msg.startsWith('no schema owns tables'))).to.deep.equal([])
    })

    it('a 500 hides its cause from the client; its cause line and its request line both carry the request id', async () => {
      const { logger, lines } = capturedLogger()
      const { db } = await testApp()
      const engine = await createEngine({ db, schemasDir: SCHEMAS, plugins: [componenttype, probeRoutes], logger, logRequests: true })
      const res = await supertest(engine.app().callback()).get('/api/v1/probe/boom').set('X-Request-Id', 'trace-boom').expect(500)
      expect(res.body).to.deep.equal({ message: 'Internal server error', payload: { request_id: 'trace-boom' }, status_code: 500, code: 'internal' })
      expect(res.text).to.not.match(/secret|SELECT|at /)
      const logged = await linesMatching(lines, (l) => l.request_id === 'trace-boom', 2)
      expect(logged.map((l) => l.msg).sort()).to.deep.equal(['request', 'unhandled error'])
      expect(logged.every((l) => l.level === 50)).to.equal(true)
      expect(logged.find((l) => l.msg === 'unhandled error')!.err).to.match(/secret detail/)
      expect(logged.find((l) => l.msg === 'request')).to.include({ status: 500, path: '/api/v1/probe/boom' })
    })
  })

  describe(
    PG_URL
      ? 'statement timeout (PostgreSQL)'
      : 'statement timeout: SKIPPED on the embedded database, statement_timeout is a PostgreSQL connection setting (set DATABASE_URL)',
    () => {
      let scratch: ScratchDatabase | undefined
      let engine: Engine
      const { logger, lines } = capturedLogger()

      before(async function () {
        if (!PG_URL) return this.skip()
        scratch = await createScratchDatabase('limits')
        // Migrated with the default timeout: DDL on a busy machine may take longer than the 300 ms under test.
        const setup = openDatabase({ url: scratch.url, poolSize: 1 })
        await migrateLatest(setup, MIGRATIONS)
        await setup.destroy()
        const db = openDatabase({ url: scratch.url, statementTimeout: 300 })
        engine = await createEngine({ db, schemasDir: SCHEMAS, plugins: [componenttype, probeRoutes], logger, logRequests: true })
      })

      after(async () => {
        await engine?.db.destroy()
        await scratch?.drop()
      })

      it('a list query blocked past statement_timeout (table locked by another session) answers 503 JSON with Retry-After, logs one line without a stack, then 200 once free', async () => {
        const http = supertest(engine.app().callback())
        const trx = await scratch!.db.transaction()
        try {
          await trx.raw('LOCK TABLE componenttypes IN ACCESS EXCLUSIVE MODE')
          const started = Date.now()
          expectQueryTimeout(await http.get('/api/v1/componenttypes').set('X-Request-Id', 'trace-locked'))
          expect(Date.now() - started).to.be.below(5_000)
        } finally {
          await trx.rollback()
        }
        await http.get('/api/v1/componenttypes').expect(200)
        // One line for the refused request: its request line, with the code and the cause's first line, no stack.
        await sleep(100)
        const logged = await linesMatching(lines, (l) => l.request_id === 'trace-locked', 1)
        expect(logged).to.have.length(1)
        expect(logged[0]).to.include({ msg: 'request', status: 503, code: 'query_timeout' })
        expect(logged[0].reason).to.match(/statement timeout/)
        expect(JSON.stringify(logged[0])).to.not.match(/\n\s+at /)
      })

      it('a slow statement run through raw knex in a plugin route also answers 503, not 500', async () => {
        expectQueryTimeout(await supertest(engine.app().callback()).get('/api/v1/probe/slow'))
      })
    },
  )

  describe('server.ts limits', () => {
    let server: ServerProcess
    let own: OwnDatabase | undefined

    before(async function () {
      this.timeout(150_000)
      own = await ownDatabase('limits_server', Boolean(PG_URL))
      server = await startServer({ ...own.env, LOG_LEVEL: 'warn', HEADERS_TIMEOUT_MS: '1000', REQUEST_TIMEOUT_MS: '2000' })
    })

    after(async () => {
      await killAllServers()
      await own?.dispose()
    })

    /** Sends `data` on a fresh socket, never finishes the request; resolves with what the server sent and when it closed. */
    function stall(data: string): Promise<{ received: string; closedAfterMs: number }> {
      return new Promise((resolve, reject) => {
        const started = Date.now()
        const socket = net.connect(server.port, '127.0.0.1', () => socket.write(data))
        let received = ''
        socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk))
        socket.on('error', () => {}) // a reset is one way to be disconnected
        socket.on('close', () => resolve({ received, closedAfterMs: Date.now() - started }))
        setTimeout(() => {
          socket.destroy()
          reject(new Error('the server kept a stalled connection open for 15 s'))
        }, 15_000).unref()
      })
    }

    it('headers sent too slowly get 408 and a closed connection after HEADERS_TIMEOUT_MS', async () => {
      const { received, closedAfterMs } = await stall(`GET /api/v1/componenttypes HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: `)
      expect(received).to.match(/^HTTP\/1\.1 408 /)
      expect(closedAfterMs).to.be.at.least(900).and.below(10_000)
    })

    it('a body that never completes is cut after REQUEST_TIMEOUT_MS; the server keeps serving', async () => {
      const { closedAfterMs } = await stall(
        // With credentials: without them the answer is a 401 before the body is read.
        `POST /api/v1/componenttypes HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${ADMIN_AUTH}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"name":`,
      )
      expect(closedAfterMs).to.be.at.least(1_900).and.below(10_000)
      expect(server.alive()).to.equal(true)
      const res = await adminFetch(`${server.origin}/api/v1/componenttypes`)
      expect(res.status).to.equal(200)
    })

    it('LOG_LEVEL=warn: served requests write no info line on stdout', async () => {
      for (let i = 0; i < 3; i++) expect((await adminFetch(`${server.origin}/api/v1/componenttypes`)).status).to.equal(200)
      await sleep(200)
      expect(server.logs.filter((l) => l.level < 40)).to.deep.equal([])
    })
  })
})
