import http from 'node:http'
import net from 'node:net'
import { expect } from 'chai'
import { PG_URL, withDatabase } from './helpers/pg'
import { claimPort } from './helpers/ports'
import { adminFetch, killAllServers, ownDatabase, spawnServer, startServer, stopServer, type OwnDatabase, type ServerProcess } from './helpers/server-process'

/** Waits for the process to exit, at most `ms`; undefined if it still runs. */
async function exitWithin(server: ServerProcess, ms: number): Promise<number | null | undefined> {
  const timer = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ms).unref())
  return Promise.race([server.exited, timer])
}

/** The process wrote exactly one line, the fatal one, and nothing else on stdout or stderr. */
function theOnlyLine(server: ServerProcess): Record<string, any> {
  expect(server.otherOutput.join(''), 'stderr and non-JSON output').to.equal('')
  expect(server.logs.map((l) => l.msg)).to.deep.equal(['start-up failed'])
  expect(server.logs[0].level).to.equal(60)
  return server.logs[0]
}

describe('start-up stops at once, naming what to fix, on what waiting cannot cure', function () {
  this.timeout(60_000)
  after(() => killAllServers())

  it('a database that does not exist: exit 1 within seconds, one line naming the database and how to create it', async function () {
    if (!PG_URL) return this.skip() // needs a PostgreSQL server to ask
    const name = `dci_missing_${process.pid}`
    const started = Date.now()
    const server = spawnServer(await claimPort(), { DATABASE_URL: withDatabase(PG_URL, name) })
    expect(await exitWithin(server, 15_000)).to.equal(1)
    expect(Date.now() - started).to.be.below(15_000)
    const line = theOnlyLine(server)
    expect(line.code).to.equal('3D000')
    expect(line.err).to.include(`database "${name}" does not exist`)
    expect(line.err).to.include(`CREATE DATABASE "${name}"`)
    expect(line.err).to.match(/createdb .*dci_missing_/)
  })

  it('a user PostgreSQL does not know: exit 1, one line naming the user', async function () {
    if (!PG_URL) return this.skip()
    const url = new URL(PG_URL)
    url.username = `nobody_${process.pid}`
    url.password = 'not-this-one'
    const server = spawnServer(await claimPort(), { DATABASE_URL: url.toString() })
    expect(await exitWithin(server, 15_000)).to.equal(1)
    const line = theOnlyLine(server)
    expect(line.code).to.be.oneOf(['28000', '28P01'])
    expect(line.err).to.include(`user "nobody_${process.pid}"`)
    expect(line.err).not.to.include('not-this-one')
  })

  it('a DATABASE_URL that is not a URL: exit 1, one line naming the variable, never the password', async () => {
    const server = spawnServer(await claimPort(), { DATABASE_URL: 'postgres://me:hunter2@db.example.com:port/dci' })
    expect(await exitWithin(server, 15_000)).to.equal(1)
    const line = theOnlyLine(server)
    expect(line.err).to.match(/^DATABASE_URL is not a URL/)
    expect(line.err).not.to.include('hunter2')
  })

  it('a host name that does not resolve: exit 1, one line naming the host', async () => {
    const server = spawnServer(await claimPort(), { DATABASE_URL: 'postgres://me@no-such-host.invalid:5432/dci' })
    expect(await exitWithin(server, 15_000)).to.equal(1)
    const line = theOnlyLine(server)
    expect(line.err).to.include('the host "no-such-host.invalid" of DATABASE_URL is not known')
  })

  it('bound to a non-loopback address without ALLOWED_HOSTS: exit 1, one line saying to set it', async () => {
    const server = spawnServer(await claimPort(), { HOST: '0.0.0.0', ALLOWED_HOSTS: '' })
    expect(await exitWithin(server, 15_000)).to.equal(1)
    const line = theOnlyLine(server)
    expect(line.err).to.match(/^ALLOWED_HOSTS must be set when HOST \(0\.0\.0\.0\) is not a loopback address/)
  })
})

describe('server.ts wires the HTTP edge from its environment', function () {
  this.timeout(180_000)
  let own: OwnDatabase
  let server: ServerProcess
  const origin = 'https://app.example.com'

  before(async () => {
    own = await ownDatabase('edge', Boolean(PG_URL))
    server = await startServer({ ...own.env, CORS_ORIGINS: `${origin}, http://localhost:3000` })
  })
  after(async () => {
    if (server) await stopServer(server)
    await own?.dispose()
  })

  /** One GET with a Host header of our choosing (fetch cannot set it). */
  const get = (path: string, headers: Record<string, string>) =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: server.port, path, headers }, (res) => {
        let body = ''
        res.setEncoding('utf8').on('data', (c) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }))
      })
      req.on('error', reject)
      req.end()
    })

  it('loopback names by default: another Host is 421, /healthz and /readyz answer any Host', async () => {
    expect((await get('/api/v1', { host: `localhost:${server.port}` })).status).to.equal(200)
    const refused = await get('/api/v1', { host: 'rebound.example' })
    expect(refused.status).to.equal(421)
    expect(JSON.parse(refused.body).code).to.equal('misdirected_request')
    expect((await get('/healthz', { host: '10.0.0.1' })).body).to.equal('{"status":"ok"}')
    const ready = await get('/readyz', { host: '10.0.0.1' })
    expect([ready.status, ready.body]).to.deep.equal([200, '{"status":"ready"}'])
  })

  it('CORS_ORIGINS: the listed origins, no other', async () => {
    expect((await get('/api/v1', { host: 'localhost', origin })).headers['access-control-allow-origin']).to.equal(origin)
    expect((await get('/api/v1', { host: 'localhost', origin: 'http://localhost:3000' })).headers['access-control-allow-origin']).to.equal(
      'http://localhost:3000',
    )
    expect((await get('/api/v1', { host: 'localhost', origin: 'https://evil.example' })).headers['access-control-allow-origin']).to.equal(undefined)
  })

  it('GET /metrics to a loopback peer, with the process metrics; a bad request line is a JSON 400', async () => {
    const metrics = await get('/metrics', { host: 'localhost' })
    expect(metrics.status).to.equal(200)
    expect(metrics.body).to.include('process_resident_memory_bytes')
    expect(metrics.body).to.match(/http_requests_total\{route="\/api\/v1",method="GET",status="200"\} \d+/)
    const answer = await new Promise<string>((resolve) => {
      let text = ''
      const socket = net.connect(server.port, '127.0.0.1', () => socket.write('BAD REQUEST LINE\r\n\r\n'))
      socket.setEncoding('utf8').on('data', (c) => (text += c))
      socket.on('close', () => resolve(text))
    })
    expect(answer).to.match(/^HTTP\/1\.1 400 Bad Request\r\n/)
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).code).to.equal('bad_request')
    // The server's log reaches this process through a pipe: the line may come a moment after the answer.
    const logged = () => server.logs.find((l) => l.msg === 'malformed request')
    for (let waited = 0; !logged() && waited < 5_000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50))
    expect(logged()?.status).to.equal(400)
  })
})

describe('server.ts reads its limits from its environment: RATE_LIMIT, MAX_RESPONSE_BYTES, MAX_FIELD_BYTES', function () {
  this.timeout(180_000)
  let own: OwnDatabase
  let server: ServerProcess

  before(async () => {
    own = await ownDatabase('limits_env', Boolean(PG_URL))
    server = await startServer({ ...own.env, RATE_LIMIT: '10/60s', MAX_RESPONSE_BYTES: '400', MAX_FIELD_BYTES: '100' })
  })
  after(async () => {
    if (server) await stopServer(server)
    await own?.dispose()
  })

  it('the byte budget and the field cap apply, the admin gets 10 requests a minute, and wrong passwords are limited per address', async () => {
    const post = (path: string, body: unknown) =>
      adminFetch(`${server.origin}/api/v1/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    // 1-3: three componenttypes.
    for (const name of ['env-a', 'env-b', 'env-c']) expect((await post('componenttypes', { name })).status).to.equal(201)
    // 4: a data field over MAX_FIELD_BYTES is a 400 naming it.
    const types: any = await (await adminFetch(`${server.origin}/api/v1/componenttypes?where=name:env-a`)).json()
    const big = await post('components', { name: 'big', componenttype: types.componenttypes[0].id, data: { blob: 'x'.repeat(200) } })
    expect(big.status).to.equal(400)
    expect(JSON.stringify(await big.json())).to.include('must take at most 100 bytes')
    // 5 (the GET above was 4): three rows do not fit in 400 bytes: the page is cut, and says where the next starts.
    const page = await adminFetch(`${server.origin}/api/v1/componenttypes?sort=name&limit=3`)
    const body: any = await page.json()
    expect(page.status, JSON.stringify(body)).to.equal(200)
    expect(body._meta.truncated).to.equal(true)
    expect(body.componenttypes.length).to.be.below(3)
    expect(body._meta.next_offset).to.equal(body.componenttypes.length)
    expect(page.headers.get('ratelimit-policy')).to.equal('"default";q=10;w=60')
    const left = Number(/^"default";r=(\d+);t=\d+$/.exec(page.headers.get('ratelimit') ?? '')?.[1])
    expect(left).to.be.within(0, 4)
    // The requests left are served, the next is refused.
    for (let i = 0; i < left; i++) expect((await adminFetch(`${server.origin}/api/v1/componenttypes`)).status).to.equal(200)
    const limited = await adminFetch(`${server.origin}/api/v1/componenttypes`)
    expect(limited.status).to.equal(429)
    expect(((await limited.json()) as any).code).to.equal('rate_limited')
    // Wrong passwords from this address: checked (401) until the address's count is past 10, then 429
    // before any check; anonymous requests of this address (the index) share that count.
    const wrong = { authorization: `Basic ${Buffer.from('admin:wrong-password').toString('base64')}` }
    const statuses: number[] = []
    for (let i = 0; i < 14; i++) statuses.push((await fetch(`${server.origin}/api/v1/componenttypes`, { headers: wrong })).status)
    const firstRefused = statuses.indexOf(429)
    expect(firstRefused, JSON.stringify(statuses)).to.be.within(1, 11)
    expect(statuses.slice(0, firstRefused).every((s) => s === 401)).to.equal(true)
    expect(statuses.slice(firstRefused).every((s) => s === 429)).to.equal(true)
  })
})
