import fs from 'node:fs'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import supertest from 'supertest'
import { createEngine, openDatabase, type Engine, type EngineOptions } from '../core'
import { ensureAdmin } from '../core/identity'
import { serverPlugins } from '../resources'
import { ADMIN_AUTH, ADMIN_PASSWORD, MIGRATIONS, SCHEMAS, resetTables, testDatabase } from './support'

async function engineWith(options: Partial<EngineOptions> = {}): Promise<Engine> {
  const db = options.db ?? (await testDatabase())
  return createEngine({ db, schemasDir: SCHEMAS, plugins: serverPlugins(), checkSchema: false, ...options })
}

/** The value of one sample of the Prometheus text (`name{labels} value`), or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m || m[1] !== name) continue
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]))
    if (Object.entries(labels).every(([k, v]) => got[k] === v) && Object.keys(got).length === Object.keys(labels).length) return Number(m[3])
  }
  return undefined
}

/** A non-loopback address of this machine, if it has one. */
function externalAddress(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address
  return undefined
}

describe('health and metrics', function () {
  this.timeout(60_000)

  before(async () => {
    const db = await testDatabase()
    await resetTables(db)
    await ensureAdmin(await engineWith(), { password: ADMIN_PASSWORD })
  })

  describe('GET /healthz and GET /readyz', () => {
    it('answer 200 without credentials, outside the API prefix, with a request id and the security headers', async () => {
      const h = supertest((await engineWith({ migrationsDir: MIGRATIONS })).app().callback())
      const alive = await h.get('/healthz')
      expect([alive.status, alive.body]).to.deep.equal([200, { status: 'ok' }])
      expect(alive.headers['x-request-id']).to.match(/^[\w.:-]+$/)
      expect(alive.headers['x-content-type-options']).to.equal('nosniff')
      const ready = await h.get('/readyz')
      expect([ready.status, ready.body]).to.deep.equal([200, { status: 'ready' }])
      // The API itself still asks for credentials.
      expect((await h.get('/api/v1/components')).status).to.equal(401)
      expect((await h.post('/readyz')).status).to.equal(405)
    })

    it('readyz: 503 not_ready while a migration is pending', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dci-readyz-'))
      try {
        for (const file of fs.readdirSync(MIGRATIONS)) fs.copyFileSync(path.join(MIGRATIONS, file), path.join(dir, file))
        fs.writeFileSync(path.join(dir, '29991231000000_pending.ts'), 'export async function up() {}\nexport async function down() {}\n')
        const h = supertest((await engineWith({ migrationsDir: dir })).app().callback())
        const res = await h.get('/readyz')
        expect(res.status).to.equal(503)
        expect(res.body).to.deep.include({ code: 'not_ready', status_code: 503 })
        expect(res.body.message).to.equal('Not ready: 1 migration is pending')
        expect(res.headers['retry-after']).to.equal('1')
        expect((await h.get('/healthz')).status).to.equal(200)
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    })

    it('readyz: 503 at once when the database refuses connections, and within about 1 s when it does not answer', async () => {
      // A port that accepts connections and never answers: the database "hangs".
      const silent = net.createServer(() => {})
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
      const hangingPort = (silent.address() as AddressInfo).port
      const closed = net.createServer()
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
      const closedPort = (closed.address() as AddressInfo).port
      await new Promise((resolve) => closed.close(resolve))
      const quiet = { warn() {} }
      const refusing = openDatabase({ url: `postgres://nobody@127.0.0.1:${closedPort}/none`, logger: quiet })
      const hanging = openDatabase({ url: `postgres://nobody@127.0.0.1:${hangingPort}/none`, logger: quiet })
      try {
        const r = await supertest((await engineWith({ db: refusing })).app().callback()).get('/readyz')
        expect([r.status, r.body.code, r.body.message]).to.deep.equal([503, 'not_ready', 'Not ready: the database cannot be reached'])
        const started = Date.now()
        const h = await supertest((await engineWith({ db: hanging })).app().callback()).get('/readyz')
        const took = Date.now() - started
        expect([h.status, h.body.code, h.body.message]).to.deep.equal([503, 'not_ready', 'Not ready: the database did not answer within 1000 ms'])
        expect(took).to.be.within(900, 3_000)
      } finally {
        silent.close()
        await refusing.destroy()
        await hanging.destroy().catch(() => {})
      }
    })
  })

  describe('GET /metrics', () => {
    it('off by default: 404', async () => {
      const res = await supertest((await engineWith()).app().callback()).get('/metrics')
      expect(res.status).to.equal(404)
    })

    it('counts requests by route pattern (never the raw path), method and status, with latency, in flight, pool use and refusals', async () => {
      const engine = await engineWith({ metrics: true, allowedHosts: ['127.0.0.1', 'localhost'] })
      const server = http.createServer(engine.app().callback())
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      try {
        const auth = { authorization: ADMIN_AUTH }
        const ids = ['00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-000000000003']
        for (const id of ids) expect((await fetch(`${origin}/api/v1/componenttypes/${id}`, { headers: auth })).status).to.equal(404)
        expect((await fetch(`${origin}/api/v1/componenttypes?limit=1`, { headers: auth })).status).to.equal(200)
        expect((await fetch(`${origin}/no/such/path/${ids[0]}`)).status).to.equal(404)
        expect((await fetch(`${origin}/healthz`)).status).to.equal(200)
        // A refused Host (fetch cannot set Host: a raw request).
        await new Promise<void>((resolve) => {
          const req = http.request(`${origin}/api/v1`, { headers: { host: 'evil.example' } }, (res) => {
            expect(res.statusCode).to.equal(421)
            res.resume().on('end', resolve)
          })
          req.end()
        })
        const res = await fetch(`${origin}/metrics`)
        expect(res.status).to.equal(200)
        expect(res.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/)
        const text = await res.text()
        expect(sample(text, 'http_requests_total', { route: '/api/v1/componenttypes/:id', method: 'GET', status: '404' })).to.equal(3)
        expect(sample(text, 'http_requests_total', { route: '/api/v1/componenttypes', method: 'GET', status: '200' })).to.equal(1)
        expect(sample(text, 'http_requests_total', { route: '(unmatched)', method: 'GET', status: '404' })).to.equal(1)
        expect(sample(text, 'http_requests_total', { route: '/healthz', method: 'GET', status: '200' })).to.equal(1)
        expect(sample(text, 'http_requests_total', { route: '(unmatched)', method: 'GET', status: '421' })).to.equal(1)
        expect(text).not.to.include(ids[0])
        expect(sample(text, 'http_request_duration_seconds_count', { route: '/api/v1/componenttypes/:id', method: 'GET', status: '404' })).to.equal(3)
        expect(
          sample(text, 'http_request_duration_seconds_bucket', { route: '/api/v1/componenttypes/:id', method: 'GET', status: '404', le: '+Inf' }),
        ).to.equal(3)
        // The scrape itself is in flight while it is collected.
        expect(sample(text, 'http_requests_in_flight')).to.equal(1)
        expect(sample(text, 'http_requests_refused_total', { reason: 'host' })).to.equal(1)
        expect(sample(text, 'db_pool_connections', { state: 'used' })).to.equal(0)
        expect(sample(text, 'db_pool_connections', { state: 'free' })).to.be.at.least(1)
        expect(sample(text, 'db_pool_max')).to.be.at.least(1)
        expect(sample(text, 'db_pool_pending_acquires')).to.equal(0)
        // Other parts count their own refusals.
        engine.metrics!.refused.inc({ reason: 'overloaded' })
        expect(sample(await (await fetch(`${origin}/metrics`)).text(), 'http_requests_refused_total', { reason: 'overloaded' })).to.equal(1)
      } finally {
        server.closeAllConnections()
        await new Promise((resolve) => server.close(resolve))
      }
    })

    it('with a token: 401 without it or with another, 200 with it', async () => {
      const h = supertest((await engineWith({ metrics: { token: 's3cret' } })).app().callback())
      const none = await h.get('/metrics')
      expect([none.status, none.body.code]).to.deep.equal([401, 'unauthorized'])
      expect(none.headers['www-authenticate']).to.match(/^Bearer/)
      expect((await h.get('/metrics').set('Authorization', 'Bearer wrong')).status).to.equal(401)
      const ok = await h.get('/metrics').set('Authorization', 'Bearer s3cret')
      expect(ok.status).to.equal(200)
      expect(ok.text).to.include('# TYPE http_requests_total counter')
    })

    it('without a token, a peer that is not on loopback gets 403', async function () {
      const address = externalAddress()
      if (!address) return this.skip()
      const server = http.createServer((await engineWith({ metrics: true })).app().callback())
      await new Promise<void>((resolve) => server.listen(0, address, resolve))
      try {
        const res = await fetch(`http://${address}:${(server.address() as AddressInfo).port}/metrics`)
        expect(res.status).to.equal(403)
        expect(((await res.json()) as { code: string }).code).to.equal('forbidden')
      } finally {
        server.closeAllConnections()
        await new Promise((resolve) => server.close(resolve))
      }
    })
  })
})
