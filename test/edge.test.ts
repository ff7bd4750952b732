import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { expect } from 'chai'
import Koa from 'koa'
import supertest from 'supertest'
import { clientErrorHandler, createEngine, definePlugin, expectContinue, type Engine, type EngineOptions } from '../core'
import { serverPlugins } from '../resources'
import { ADMIN_AUTH, ADMIN_PASSWORD, SCHEMAS, testDatabase, resetTables } from './support'
import { ensureAdmin } from '../core/identity'

/** Log lines an engine or handler wrote, by level. */
function captureLogger() {
  const lines: Array<{ level: string; msg: string } & Record<string, unknown>> = []
  const at = (level: string) => (details: Record<string, unknown>, msg: string) => void lines.push({ level, msg, ...details })
  return { lines, logger: { error: at('error'), warn: at('warn'), info: at('info') } }
}

/** An engine with the server's plugins (authentication on) and `options`, with user admin. */
async function engineWith(options: Partial<EngineOptions> = {}): Promise<Engine> {
  const db = await testDatabase()
  const engine = await createEngine({ db, schemasDir: SCHEMAS, plugins: serverPlugins(), checkSchema: false, ...options })
  return engine
}

/** A node:http server of `engine.app()` wired as server.ts wires it, on a free port of 127.0.0.1. */
async function serve(engine: Engine, logger = captureLogger().logger, serverOptions: http.ServerOptions = {}) {
  const handle = engine.app().callback()
  const server = http.createServer(serverOptions, handle)
  server.on('clientError', clientErrorHandler(logger))
  server.on('checkContinue', expectContinue(handle))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

/** A raw HTTP exchange: writes `text`, collects everything the server sends until it closes or `waitMs` passes. */
function raw(port: number, text: string, options: { waitMs?: number; onData?: (sofar: string, socket: net.Socket) => void } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let received = ''
    const timer = setTimeout(() => {
      socket.destroy()
      resolve(received)
    }, options.waitMs ?? 3_000)
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      received += chunk
      options.onData?.(received, socket)
    })
    socket.on('error', reject)
    socket.on('close', () => {
      clearTimeout(timer)
      resolve(received)
    })
    socket.write(text)
  })
}

/** The status, headers and JSON body of the last response in `text` (after any `100 Continue`). */
function parseResponse(text: string): { status: number; headers: Record<string, string>; body: any; interim: number[] } {
  const interim: number[] = []
  let rest = text
  while (/^HTTP\/1\.1 1\d\d /.test(rest)) {
    interim.push(Number(rest.slice(9, 12)))
    rest = rest.slice(rest.indexOf('\r\n\r\n') + 4)
  }
  const end = rest.indexOf('\r\n\r\n')
  const [statusLine, ...lines] = rest.slice(0, end).split('\r\n')
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]))
  const bodyText = rest.slice(end + 4)
  let body: unknown
  try {
    body = JSON.parse(bodyText)
  } catch {
    body = bodyText
  }
  return { status: Number(statusLine?.slice(9, 12)), headers, body, interim }
}

function expectErrorShape(body: any, status: number, code: string): void {
  expect(body, JSON.stringify(body)).to.have.all.keys('message', 'payload', 'status_code', 'code')
  expect(body.status_code).to.equal(status)
  expect(body.code).to.equal(code)
}

describe('the HTTP edge', function () {
  this.timeout(60_000)

  before(async () => {
    const db = await testDatabase()
    await resetTables(db)
    await ensureAdmin(await engineWith(), { password: ADMIN_PASSWORD })
  })

  describe('Host check (allowedHosts, ALLOWED_HOSTS)', () => {
    let http_: ReturnType<typeof supertest>
    before(async () => {
      http_ = supertest((await engineWith({ allowedHosts: ['localhost', '127.0.0.1', '[::1]', 'api.example.com:8443', '.corp.example'] })).app().callback())
    })

    it('serves the allowed names, with any port unless one is given', async () => {
      for (const host of [
        'localhost',
        'localhost:5000',
        '127.0.0.1:1',
        '[::1]:5000',
        'LOCALHOST',
        'api.example.com:8443',
        'corp.example',
        'a.b.corp.example:9',
      ]) {
        const res = await http_.get('/api/v1/componenttypes?limit=1').set('Host', host).set('Authorization', ADMIN_AUTH)
        expect(res.status, host).to.equal(200)
      }
    })

    it('answers any other Host 421 misdirected_request, in JSON with a request id and the security headers, before authentication', async () => {
      for (const host of [
        'evil.example',
        'api.example.com',
        'api.example.com:443',
        'localhost.evil.example',
        'xcorp.example',
        '127.0.0.2',
        'local host',
        '[::1',
      ]) {
        const res = await http_.get('/api/v1/componenttypes').set('Host', host)
        expect(res.status, host).to.equal(421)
        expectErrorShape(res.body, 421, 'misdirected_request')
        expect(res.headers['x-request-id']).to.match(/^[\w.:-]+$/)
        expect(res.headers['x-content-type-options']).to.equal('nosniff')
        expect(res.headers['content-type']).to.match(/^application\/json/)
      }
      // Outside the API prefix too.
      const other = await http_.get('/elsewhere').set('Host', 'evil.example')
      expect(other.status).to.equal(421)
    })

    it('a request without Host (HTTP/1.0) is refused too', async () => {
      const engine = await engineWith({ allowedHosts: ['localhost'] })
      const running = await serve(engine)
      try {
        const res = parseResponse(await raw(running.port, 'GET /api/v1 HTTP/1.0\r\n\r\n'))
        expect(res.status).to.equal(421)
        expectErrorShape(res.body, 421, 'misdirected_request')
      } finally {
        await running.close()
      }
    })

    it('* serves any Host; unset (a library default) as well', async () => {
      for (const options of [{ allowedHosts: ['*'] }, {}]) {
        const h = supertest((await engineWith(options)).app().callback())
        const res = await h.get('/api/v1').set('Host', 'anything.example')
        expect(res.status).to.equal(200)
      }
    })

    it('/healthz and /readyz are exempt: a load balancer probes by address', async () => {
      expect((await http_.get('/healthz').set('Host', '10.1.2.3')).status).to.equal(200)
      expect((await http_.get('/readyz').set('Host', '10.1.2.3:5000')).status).to.equal(200)
    })

    it('embedded with middleware(), the check covers the engine paths and leaves the host app its own', async () => {
      const engine = await engineWith({ allowedHosts: ['localhost'] })
      const host = new Koa()
      host.use(engine.middleware())
      host.use((ctx) => {
        ctx.body = { host: 'app' }
      })
      const h = supertest(host.callback())
      expect((await h.get('/api/v1').set('Host', 'evil.example')).status).to.equal(421)
      expect((await h.get('/api/v1').set('Host', 'localhost')).status).to.equal(200)
      expect((await h.get('/other').set('Host', 'evil.example')).body).to.deep.equal({ host: 'app' })
    })

    it('an entry that is not a host name stops start-up, naming it', async () => {
      let error: Error | undefined
      try {
        await engineWith({ allowedHosts: ['http://localhost/'] })
      } catch (err) {
        error = err as Error
      }
      expect(error?.message).to.include("allowed host 'http://localhost/'")
    })
  })

  describe('CORS (corsOrigins, CORS_ORIGINS)', () => {
    const app = 'https://app.example.com'

    it('off by default: no CORS header, and a preflight is not answered as one', async () => {
      const h = supertest((await engineWith()).app().callback())
      const res = await h.get('/api/v1').set('Origin', app)
      expect(Object.keys(res.headers).filter((k) => k.startsWith('access-control-'))).to.deep.equal([])
      const pre = await h.options('/api/v1/components').set('Origin', app).set('Access-Control-Request-Method', 'POST')
      expect(Object.keys(pre.headers).filter((k) => k.startsWith('access-control-'))).to.deep.equal([])
    })

    it('a listed origin: the answer names it and exposes ETag, Location, X-Request-Id, Retry-After, RateLimit and Link', async () => {
      const h = supertest((await engineWith({ corsOrigins: [app, 'http://localhost:3000'] })).app().callback())
      const created = await h
        .post('/api/v1/componenttypes')
        .set('Origin', app)
        .set('Authorization', ADMIN_AUTH)
        .send({ name: `cors-${Date.now()}` })
      expect(created.status).to.equal(201)
      expect(created.headers['access-control-allow-origin']).to.equal(app)
      expect(created.headers.vary).to.match(/Origin/)
      const exposed = created.headers['access-control-expose-headers'].split(',')
      for (const name of ['ETag', 'Location', 'X-Request-Id', 'Retry-After', 'RateLimit', 'RateLimit-Policy', 'Link']) expect(exposed).to.include(name)
      // Error answers carry them too: a browser script can read the 401.
      const refused = await h.get('/api/v1/components').set('Origin', 'http://localhost:3000')
      expect(refused.status).to.equal(401)
      expect(refused.headers['access-control-allow-origin']).to.equal('http://localhost:3000')
    })

    it('answers a preflight 204 with the methods and the headers the API reads, a request id and the security headers', async () => {
      const h = supertest((await engineWith({ corsOrigins: [app] })).app().callback())
      const res = await h
        .options('/api/v1/components/00000000-0000-0000-0000-000000000000')
        .set('Origin', app)
        .set('Access-Control-Request-Method', 'PUT')
        .set('Access-Control-Request-Headers', 'if-match, content-type, authorization')
      expect(res.status).to.equal(204)
      expect(res.headers['access-control-allow-origin']).to.equal(app)
      expect(res.headers['access-control-allow-methods'].split(',')).to.include.members(['GET', 'HEAD', 'POST', 'PUT', 'DELETE'])
      expect(res.headers['access-control-allow-headers'].split(',')).to.include.members([
        'If-Match',
        'If-None-Match',
        'Authorization',
        'Content-Type',
        'X-Request-Id',
      ])
      expect(res.headers['access-control-max-age']).to.equal('600')
      expect(res.headers['x-request-id']).to.match(/^[\w.:-]+$/)
      expect(res.headers['x-content-type-options']).to.equal('nosniff')
    })

    it('an origin not listed gets no CORS header, on a request or a preflight', async () => {
      const h = supertest((await engineWith({ corsOrigins: [app] })).app().callback())
      for (const origin of ['https://evil.example', 'http://app.example.com', 'https://app.example.com:444', 'null']) {
        const res = await h.get('/api/v1').set('Origin', origin)
        expect(res.headers['access-control-allow-origin'], origin).to.equal(undefined)
        const pre = await h.options('/api/v1/components').set('Origin', origin).set('Access-Control-Request-Method', 'POST')
        expect(
          Object.keys(pre.headers).filter((k) => k.startsWith('access-control-')),
          origin,
        ).to.deep.equal([])
      }
    })

    it('* allows any origin', async () => {
      const h = supertest((await engineWith({ corsOrigins: '*' })).app().callback())
      const res = await h.get('/api/v1').set('Origin', 'https://anywhere.example')
      expect(res.headers['access-control-allow-origin']).to.equal('*')
    })

    it('an entry that is not an origin stops start-up, naming it', async () => {
      let error: Error | undefined
      try {
        await engineWith({ corsOrigins: ['https://app.example.com/path'] })
      } catch (err) {
        error = err as Error
      }
      expect(error?.message).to.include("CORS origin 'https://app.example.com/path'")
    })
  })

  describe("Node's own answers in JSON (clientErrorHandler)", () => {
    it('a bad request line: 400 bad_request in JSON with a request id, logged as one line', async () => {
      const { lines, logger } = captureLogger()
      const running = await serve(await engineWith(), logger)
      try {
        const res = parseResponse(await raw(running.port, 'NOT HTTP AT ALL\r\n\r\n'))
        expect(res.status).to.equal(400)
        expectErrorShape(res.body, 400, 'bad_request')
        expect(res.headers['content-type']).to.match(/^application\/json/)
        expect(res.headers['x-request-id']).to.match(/^[0-9a-f-]{36}$/)
        expect(res.headers['x-content-type-options']).to.equal('nosniff')
        expect(res.body.payload.request_id).to.equal(res.headers['x-request-id'])
        const logged = lines.filter((l) => l.msg === 'malformed request')
        expect(logged).to.have.length(1)
        expect(logged[0]).to.include({ request_id: res.headers['x-request-id'], status: 400 })
      } finally {
        await running.close()
      }
    })

    it('headers too large: 431 headers_too_large in JSON', async () => {
      const { lines, logger } = captureLogger()
      const running = await serve(await engineWith(), logger)
      try {
        const res = parseResponse(await raw(running.port, `GET /api/v1 HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`))
        expect(res.status).to.equal(431)
        expectErrorShape(res.body, 431, 'headers_too_large')
        expect(res.headers['x-request-id']).to.match(/^[0-9a-f-]{36}$/)
        expect(lines.filter((l) => l.msg === 'malformed request')).to.have.length(1)
      } finally {
        await running.close()
      }
    })

    it('headers too slow: 408 request_timeout in JSON', async () => {
      const { lines, logger } = captureLogger()
      const running = await serve(await engineWith(), logger, { headersTimeout: 500, requestTimeout: 1_000, connectionsCheckingInterval: 100 })
      try {
        const res = parseResponse(await raw(running.port, 'GET /api/v1 HTTP/1.1\r\nHost: localhost\r\n', { waitMs: 5_000 }))
        expect(res.status).to.equal(408)
        expectErrorShape(res.body, 408, 'request_timeout')
        expect(res.headers['x-request-id']).to.match(/^[0-9a-f-]{36}$/)
        expect(lines.filter((l) => l.msg === 'malformed request')).to.have.length(1)
      } finally {
        await running.close()
      }
    })

    it('a client that resets the connection mid-request is one log line, not a stack on stderr', async () => {
      const { lines, logger } = captureLogger()
      const running = await serve(await engineWith({ logger }), logger)
      const stderr: string[] = []
      const write = process.stderr.write
      process.stderr.write = ((chunk: string) => stderr.push(String(chunk)) > 0) as typeof process.stderr.write
      try {
        // Half a request, then a TCP reset: the parser's socket fails with ECONNRESET.
        await new Promise<void>((resolve) => {
          const socket = net.connect(running.port, '127.0.0.1', () => {
            socket.write('POST /api/v1/componenttypes HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n')
            setTimeout(() => {
              socket.resetAndDestroy()
              resolve()
            }, 100)
          })
        })
        for (let i = 0; i < 50 && !lines.some((l) => l.msg === 'client connection closed'); i++) await new Promise((r) => setTimeout(r, 20))
        const closed = lines.filter((l) => l.msg === 'client connection closed')
        expect(closed).to.have.length(1)
        expect(closed[0].code).to.equal('ECONNRESET')
        expect(lines.filter((l) => l.msg === 'malformed request')).to.deep.equal([])
      } finally {
        process.stderr.write = write
        await running.close()
      }
      expect(stderr.join('')).to.equal('')
    })

    it("a client that resets while its request runs: koa's error event is one log line, not a stack on stderr", async () => {
      const { lines, logger } = captureLogger()
      const slow = definePlugin({
        name: 'edge_slow',
        setup(api) {
          api.action({
            name: 'edge_slow',
            method: 'GET',
            path: '/edge/slow',
            summary: 'Answers a large body after 300 ms',
            transaction: false,
            async handler() {
              await new Promise((resolve) => setTimeout(resolve, 300))
              return { text: 'x'.repeat(2_000_000) }
            },
          })
        },
      })
      const running = await serve(await createEngine({ db: await testDatabase(), schemasDir: SCHEMAS, plugins: [slow], checkSchema: false, logger }), logger)
      const stderr: string[] = []
      const write = process.stderr.write
      process.stderr.write = ((chunk: string) => stderr.push(String(chunk)) > 0) as typeof process.stderr.write
      try {
        // The whole request, then a TCP reset while the action runs: the answer meets a reset socket.
        const socket = net.connect(running.port, '127.0.0.1', () => socket.write('GET /api/v1/edge/slow HTTP/1.1\r\nHost: localhost\r\n\r\n'))
        socket.on('error', () => {})
        await new Promise((resolve) => setTimeout(resolve, 100))
        socket.resetAndDestroy()
        for (let i = 0; i < 100 && !lines.some((l) => l.msg === 'client connection closed'); i++) await new Promise((r) => setTimeout(r, 20))
      } finally {
        process.stderr.write = write
        await running.close()
      }
      expect(stderr.join('')).to.equal('')
      const closed = lines.filter((l) => l.msg === 'client connection closed')
      expect(closed).to.have.length(1)
      expect(closed[0]).to.include({ level: 'info', method: 'GET', path: '/api/v1/edge/slow', code: 'ECONNRESET' })
      expect(lines.filter((l) => l.level === 'error')).to.deep.equal([])
    })
  })

  describe('Expect: 100-continue (expectContinue)', () => {
    let running: Awaited<ReturnType<typeof serve>>
    before(async () => {
      running = await serve(await engineWith({ bodyLimit: '1kb' }))
    })
    after(() => running.close())

    /** Sends the head of a request that expects 100, and its body only once the server says 100. */
    function expecting(head: string, body: string) {
      return raw(running.port, `${head}Expect: 100-continue\r\n\r\n`, {
        onData: (sofar, socket) => {
          if (/^HTTP\/1\.1 100 Continue\r\n\r\n$/.test(sofar)) socket.write(body)
        },
      }).then(parseResponse)
    }

    it('a request the engine accepts gets 100 Continue, then its answer', async () => {
      const body = JSON.stringify({ name: `continue-${Date.now()}` })
      const res = await expecting(
        `POST /api/v1/componenttypes HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${ADMIN_AUTH}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n`,
        body,
      )
      expect(res.interim).to.deep.equal([100])
      expect(res.status).to.equal(201)
      expect(res.body.componenttype.name).to.match(/^continue-/)
    })

    const refused: Array<[what: string, head: string, status: number, code: string]> = [
      ['an unknown route', 'POST /api/v1/nothing HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n', 404, 'route_not_found'],
      [
        'a method the path does not take',
        'PATCH /api/v1/componenttypes HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n',
        405,
        'method_not_allowed',
      ],
      ['a body over the limit', 'POST /api/v1/componenttypes HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n', 413, 'payload_too_large'],
      ['a body that is not JSON', 'POST /api/v1/componenttypes HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n', 415, 'unsupported_media_type'],
      ['a path outside the API', 'POST /elsewhere HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n', 404, 'route_not_found'],
    ]
    for (const [what, head, status, code] of refused) {
      it(`${what}: the final ${status} in JSON, without 100 and without reading the body`, async () => {
        const withAuth = head.replace('\r\n', `\r\nHost: localhost\r\nAuthorization: ${ADMIN_AUTH}\r\n`)
        // The body is never sent: the answer must come without it.
        const res = parseResponse(await raw(running.port, `${withAuth}Expect: 100-continue\r\n\r\n`))
        expect(res.interim).to.deep.equal([])
        expect(res.status).to.equal(status)
        expectErrorShape(res.body, status, code)
        expect(res.headers.connection).to.equal('close')
      })
    }

    it('without credentials: 401, without 100', async () => {
      const res = parseResponse(
        await raw(
          running.port,
          'POST /api/v1/componenttypes HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n',
        ),
      )
      expect(res.interim).to.deep.equal([])
      expect(res.status).to.equal(401)
    })
  })
})
