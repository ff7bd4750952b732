import { spawn } from 'node:child_process'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { expect } from 'chai'
import type { Knex } from 'knex'
import type { Engine } from '../core'
import { buildExpressApp } from '../examples/hosts/express'
import { buildFastifyApp } from '../examples/hosts/fastify'
import { buildKoaApp } from '../examples/hosts/koa'
import { buildNodeHttpServer } from '../examples/hosts/node-http'
import { resetTables, testDatabase } from './support'

/** One example host, listening on a free port of 127.0.0.1. */
interface Running {
  port: number
  engine: Engine
  close(): Promise<void>
}

interface Host {
  name: string
  file: string
  /** Where the host serves the engine: every link starts with it. */
  mount: string
  start(db: Knex): Promise<Running>
}

/** Listens on port 0 and closes every connection on close (the client keeps none alive anyway). */
async function listen(server: http.Server, engine: Engine): Promise<Running> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    engine,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

const HOSTS: Host[] = [
  {
    name: 'node:http',
    file: 'examples/hosts/node-http.ts',
    mount: '/dci',
    async start(db) {
      const { server, engine } = await buildNodeHttpServer(db)
      return listen(server, engine)
    },
  },
  {
    name: 'koa',
    file: 'examples/hosts/koa.ts',
    mount: '',
    async start(db) {
      const { app, engine } = await buildKoaApp(db)
      return listen(http.createServer(app.callback()), engine)
    },
  },
  {
    name: 'Express',
    file: 'examples/hosts/express.ts',
    mount: '/dci',
    async start(db) {
      const { app, engine } = await buildExpressApp(db)
      return listen(http.createServer(app), engine)
    },
  },
  {
    name: 'Fastify',
    file: 'examples/hosts/fastify.ts',
    mount: '/dci',
    async start(db) {
      const { app, engine } = await buildFastifyApp(db)
      // A JSON route of the host's own, outside the engine's plugin: fastify's JSON parser still serves it.
      app.post('/echo', async (request) => ({ echoed: request.body }))
      await app.listen({ port: 0, host: '127.0.0.1' })
      return { port: (app.server.address() as AddressInfo).port, engine, close: () => app.close() }
    },
  },
]

interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  text: string
  json: any
}

interface Sent {
  headers?: Record<string, string>
  /** A string or Buffer sent with its Content-Length, or chunks sent without one (chunked). */
  body?: string | Buffer | Buffer[]
}

/** One request over real HTTP, on a connection of its own (no keep-alive between tests). */
function request(port: number, method: string, path: string, sent: Sent = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...sent.headers }
    if (typeof sent.body === 'string' || Buffer.isBuffer(sent.body)) headers['Content-Length'] = Buffer.byteLength(sent.body)
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let json: unknown
        if (/json/.test(res.headers['content-type'] ?? '')) json = JSON.parse(text)
        resolve({ status: res.statusCode!, headers: res.headers, text, json })
      })
      res.on('error', reject)
    })
    // A server may answer (413) and close before it has read a large body: the answer still counts.
    req.on('error', (error: NodeJS.ErrnoException) => (error.code === 'EPIPE' || error.code === 'ECONNRESET' ? undefined : reject(error)))
    if (Array.isArray(sent.body)) {
      for (const chunk of sent.body) req.write(chunk)
      req.end()
    } else req.end(sent.body)
  })
}

const JSON_TYPE = { 'Content-Type': 'application/json' }
const OVER_1MB = JSON.stringify({ name: 'x'.repeat(1024 * 1024 + 10) })

/** Bodies the engine refuses before any write, the same whichever host serves it. */
const BAD_BODIES: Array<{ title: string; method: 'POST' | 'PUT'; sent: Sent; status: number; code: string }> = [
  { title: 'invalid JSON', method: 'POST', sent: { headers: JSON_TYPE, body: '{"name": ' }, status: 400, code: 'invalid_json' },
  { title: 'invalid JSON in a PUT', method: 'PUT', sent: { headers: JSON_TYPE, body: '{"name": ' }, status: 400, code: 'invalid_json' },
  { title: 'a JSON array', method: 'POST', sent: { headers: JSON_TYPE, body: '[]' }, status: 400, code: 'invalid_body' },
  {
    title: 'a text/plain body',
    method: 'POST',
    sent: { headers: { 'Content-Type': 'text/plain' }, body: 'name=x' },
    status: 415,
    code: 'unsupported_media_type',
  },
  {
    title: 'a text/plain body in a PUT',
    method: 'PUT',
    sent: { headers: { 'Content-Type': 'text/plain' }, body: 'name=x' },
    status: 415,
    code: 'unsupported_media_type',
  },
  { title: 'a body without Content-Type', method: 'POST', sent: { body: '{"name":"x"}' }, status: 415, code: 'unsupported_media_type' },
  { title: 'a body over 1 MB', method: 'POST', sent: { headers: JSON_TYPE, body: OVER_1MB }, status: 413, code: 'payload_too_large' },
  {
    title: 'a body over 1 MB streamed in chunks, without Content-Length',
    method: 'POST',
    sent: { headers: JSON_TYPE, body: [Buffer.from(OVER_1MB.slice(0, 600_000)), Buffer.from(OVER_1MB.slice(600_000))] },
    status: 413,
    code: 'payload_too_large',
  },
]

for (const host of HOSTS) {
  describe(`${host.file}: the engine in ${host.name}, under '${host.mount || '/'}'`, () => {
    const api = `${host.mount}/api/v1`
    let running: Running
    let koa: Running
    before(async () => {
      const db = await testDatabase()
      await resetTables(db)
      running = await host.start(db)
      // The reference: the same engine served as a plain koa app, without any host around it.
      koa = await listen(http.createServer(running.engine.app().callback()), running.engine)
    })
    after(() => Promise.all([running?.close(), koa?.close()]))

    const send = (method: string, path: string, sent?: Sent) => request(running.port, method, path, sent)

    it(`GET ${api} answers the index, every link under the mount path`, async () => {
      const res = await send('GET', api)
      expect(res.status).to.equal(200)
      expect(res.json.resources).to.include({ componenttypes: `${api}/componenttypes`, components: `${api}/components` })
      expect(res.json.links).to.deep.equal({ openapi: `${api}/openapi.json`, docs: `${api}/docs/` })
      const listed = await send('GET', res.json.resources.componenttypes)
      expect(listed.status).to.equal(200)
      expect(listed.json).to.have.property('componenttypes').that.is.an('array')
    })

    it(`GET ${api}/openapi.json names the mount path in servers[0].url`, async () => {
      const res = await send('GET', `${api}/openapi.json`)
      expect(res.status).to.equal(200)
      expect(res.json.openapi).to.match(/^3\.1/)
      expect(res.json.servers[0].url).to.equal(api)
    })

    it('POST answers 201 with a Location under the mount path that GETs the row; PUT with If-Match answers 204', async () => {
      const created = await send('POST', `${api}/componenttypes`, { headers: JSON_TYPE, body: JSON.stringify({ name: `made-in-${host.name}` }) })
      expect(created.status).to.equal(201)
      const id = created.json.componenttype.id
      expect(created.headers.location).to.equal(`${api}/componenttypes/${id}`)

      const fetched = await send('GET', created.headers.location!)
      expect(fetched.status).to.equal(200)
      expect(fetched.json.componenttype).to.include({ id, name: `made-in-${host.name}` })

      const put = await send('PUT', created.headers.location!, {
        headers: { ...JSON_TYPE, 'If-Match': fetched.headers.etag! },
        body: JSON.stringify({ name: 'renamed' }),
      })
      expect(put.status, put.text).to.equal(204)
      expect(put.headers.etag).to.be.a('string').and.not.equal(fetched.headers.etag)
      const renamed = await send('GET', created.headers.location!)
      expect(renamed.json.componenttype.name).to.equal('renamed')

      const stale = await send('PUT', created.headers.location!, {
        headers: { ...JSON_TYPE, 'If-Match': fetched.headers.etag! },
        body: JSON.stringify({ name: 'again' }),
      })
      expect(stale.status).to.equal(412)
      expect(stale.json.code).to.equal('precondition_failed')
    })

    describe('a request body is read by the engine alone: its refusals are those of koa, and write nothing', () => {
      let target: string
      let table: string
      before(async () => {
        const created = await send('POST', `${api}/componenttypes`, { headers: JSON_TYPE, body: JSON.stringify({ name: 'target' }) })
        target = created.headers.location!.slice(api.length)
        table = (await send('GET', `${api}/componenttypes?sort=id`)).text
      })

      for (const bad of BAD_BODIES) {
        it(`${bad.method} of ${bad.title} answers ${bad.status} ${bad.code}, the JSON error koa answers`, async () => {
          const path = bad.method === 'POST' ? '/componenttypes' : target
          const sent = { ...bad.sent, headers: { 'If-Match': '*', ...bad.sent.headers } }
          const res = await send(bad.method, `${api}${path}`, sent)
          expect(res.status, res.text).to.equal(bad.status)
          expect(res.headers['content-type']).to.match(/^application\/json/)
          expect(res.json).to.include({ status_code: bad.status, code: bad.code })
          const expected = await request(koa.port, bad.method, `/api/v1${path}`, sent)
          expect(expected.status).to.equal(bad.status)
          expect(res.json).to.deep.equal(expected.json)
        })
      }

      it('after those refusals the table is as it was: nothing was written', async () => {
        expect((await send('GET', `${api}/componenttypes?sort=id`)).text).to.equal(table)
      })
    })

    it(`an unknown path under ${api} answers the engine's JSON 404`, async () => {
      const res = await send('GET', `${api}/nope`)
      expect(res.status).to.equal(404)
      expect(res.headers['content-type']).to.match(/^application\/json/)
      expect(res.json).to.include({ status_code: 404, code: 'route_not_found' })
    })
  })
}

describe('what each host does outside the engine', () => {
  const started: Running[] = []
  const start = async (host: string) => {
    const running = await HOSTS.find((h) => h.name === host)!.start(await testDatabase())
    started.push(running)
    return running.port
  }
  after(() => Promise.all(started.map((r) => r.close())))

  it('node:http: a path outside /dci, the bare prefix included, gets the JSON 404 with the security headers (no host to pass it to)', async () => {
    const port = await start('node:http')
    for (const path of ['/api/v1', '/api/v1/componenttypes', '/elsewhere?x=1', '/dcix/api/v1']) {
      const res = await request(port, 'GET', path)
      expect(res.status, path).to.equal(404)
      expect(res.headers['content-type']).to.equal('application/json; charset=utf-8')
      expect(res.headers['x-content-type-options']).to.equal('nosniff')
      expect(res.json).to.deep.equal({ message: `No route for GET ${path.split('?')[0]}`, payload: {}, status_code: 404, code: 'route_not_found' })
    }
    expect((await request(port, 'GET', '/dci/elsewhere')).json).to.include({ code: 'route_not_found' })
  })

  it('koa: the host keeps its own route and its own 404 beside the middleware', async () => {
    const port = await start('koa')
    expect((await request(port, 'GET', '/health')).json).to.deep.equal({ status: 'ok' })
    const other = await request(port, 'GET', '/elsewhere')
    expect(other.status).to.equal(404)
    expect(other.text).to.equal('Not Found')
  })

  it("Express: a path under /dci outside the engine's prefix goes on to Express (next()): its own route, else its own 404", async () => {
    const port = await start('Express')
    const own = await request(port, 'GET', '/dci/health')
    expect(own.status).to.equal(200)
    expect(own.json).to.deep.equal({ status: 'ok' })
    const other = await request(port, 'GET', '/dci/elsewhere')
    expect(other.status).to.equal(404)
    expect(other.text).to.include('Cannot GET /dci/elsewhere') // Express's page, not the engine's JSON
    expect((await request(port, 'GET', '/dci')).text).to.include('Cannot GET /dci')
  })

  it("Fastify: the host's own routes, JSON bodies parsed by Fastify included, live beside the engine's plugin", async () => {
    const port = await start('Fastify')
    expect((await request(port, 'GET', '/health')).json).to.deep.equal({ status: 'ok' })
    const echo = await request(port, 'POST', '/echo', { headers: JSON_TYPE, body: '{"a":1}' })
    expect(echo.json).to.deep.equal({ echoed: { a: 1 } })
    const outside = await request(port, 'GET', '/elsewhere')
    expect(outside.status).to.equal(404)
    expect(outside.json).to.include({ statusCode: 404 }) // Fastify's 404, not the engine's
    const under = await request(port, 'GET', '/dci/elsewhere')
    expect(under.json).to.include({ code: 'route_not_found' })
  })
})

describe('examples/hosts/* run as programs', () => {
  const signals = ['SIGINT', 'SIGTERM'] as const
  HOSTS.forEach((host, i) => {
    const signal = signals[i % 2]
    it(`${host.file} starts, serves ${host.mount}/api/v1 on its port, and stops on ${signal} with exit code 0`, async function () {
      this.timeout(60_000)
      const child = spawn(process.execPath, ['--require', 'tsx/cjs', host.file], {
        env: { ...process.env, PORT: '0', DATABASE_URL: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      try {
        const url = await new Promise<string>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('example did not start in 45 s')), 45_000)
          child.stdout.on('data', (chunk) => {
            const found = /http:\/\/127\.0\.0\.1:\d+\S*/.exec(String(chunk))
            if (found) {
              clearTimeout(timer)
              resolve(found[0])
            }
          })
          child.on('exit', (code) => reject(new Error(`example exited with ${code}`)))
        })
        expect(url).to.match(new RegExp(`${host.mount}/api/v1$`))
        const index = await fetch(url)
        expect(index.status).to.equal(200)
        expect(((await index.json()) as any).links.openapi).to.equal(`${host.mount}/api/v1/openapi.json`)
      } finally {
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill(signal)
        expect(await exited).to.equal(0)
      }
    })
  })
})
