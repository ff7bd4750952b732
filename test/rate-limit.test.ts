import { randomUUID } from 'node:crypto'
import { expect } from 'chai'
import Redis from 'ioredis'
import supertest from 'supertest'
import { createEngine, type Authenticator, type Engine, type RateLimitOptions } from '../core'
import { resourcePlugins } from '../resources'
import { sleep } from './helpers/http-client'
import { claimPort, releasePort } from './helpers/ports'
import { SCHEMAS, testDatabase } from './support'

const REDIS_URL = process.env.RATE_LIMIT_TEST_REDIS_URL || 'redis://127.0.0.1:6379'

/** Credentials checked by {@link headerCaller}, counted (a refused address must not cost any). */
let checks = 0

/**
 * Callers named by an `X-Caller` header; none when it is absent (anonymous, counted by address);
 * `X-Caller: wrong` stands for wrong credentials (401).
 */
const headerCaller: Authenticator = {
  identify: (request) => {
    checks++
    const name = request.headers['x-caller']
    if (name === 'wrong') return undefined
    return typeof name === 'string' ? { kind: 'user', id: name } : {}
  },
  challenges: ['Basic realm="test"'],
}

function logLines() {
  const lines: Array<{ level: string; details: Record<string, unknown>; msg: string }> = []
  const at = (level: string) => (details: Record<string, unknown>, msg: string) => lines.push({ level, details, msg })
  return { lines, logger: { error: at('error'), warn: at('warn'), info: at('info') } }
}

async function engineWith(rateLimit: RateLimitOptions, logger = logLines().logger): Promise<Engine> {
  return createEngine({
    db: await testDatabase(),
    schemasDir: SCHEMAS,
    plugins: resourcePlugins,
    authenticator: headerCaller,
    rateLimit,
    checkSchema: false,
    logger,
  })
}

function expectRateLimited(res: supertest.Response, points: number, windowSeconds: number) {
  expect(res.status, JSON.stringify(res.body)).to.equal(429)
  expect(res.body.code).to.equal('rate_limited')
  expect(res.body.status_code).to.equal(429)
  const retryAfter = Number(res.headers['retry-after'])
  expect(retryAfter).to.be.within(1, windowSeconds)
  expect(res.body.payload).to.deep.equal({ retry_after: retryAfter })
  expect(res.headers['ratelimit-policy']).to.equal(`"default";q=${points};w=${windowSeconds}`)
  expect(res.headers.ratelimit).to.match(/^"default";r=0;t=\d+$/)
  expect(res.headers['content-type']).to.match(/^application\/json/)
}

describe('rate limits', function () {
  this.timeout(30_000)
  const clients: Redis[] = []
  // One key prefix per run: counts of other runs sharing this Redis never mix with ours.
  const runPrefix = `dci-rate-test-${process.pid}-${randomUUID().slice(0, 8)}`

  after(async () => {
    for (const client of clients) client.disconnect()
  })

  function redisClient(url = REDIS_URL): Redis {
    const client = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => 200 })
    clients.push(client)
    return client
  }

  it('in memory: each answer carries RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers); past the limit, 429 rate_limited with Retry-After', async () => {
    const http = supertest((await engineWith({ points: 3, windowSeconds: 60 })).app().callback())
    for (const remaining of [2, 1, 0]) {
      const res = await http.get('/api/v1/componenttypes?limit=1').set('X-Caller', 'alice').expect(200)
      expect(res.headers['ratelimit-policy']).to.equal('"default";q=3;w=60')
      expect(res.headers.ratelimit).to.match(new RegExp(`^"default";r=${remaining};t=(60|59)$`))
    }
    expectRateLimited(await http.get('/api/v1/componenttypes').set('X-Caller', 'alice'), 3, 60)
    // Refused before the body is read or anything written.
    expectRateLimited(await http.post('/api/v1/componenttypes').set('X-Caller', 'alice').send({ name: 'never' }), 3, 60)
    expect((await http.get('/api/v1/componenttypes?where=name:never').set('X-Caller', 'bob').expect(200)).body._meta.count).to.equal(0)
  })

  it('counts per identity, and anonymous callers per client address', async () => {
    const http = supertest((await engineWith({ points: 2, windowSeconds: 60 })).app().callback())
    for (let i = 0; i < 2; i++) await http.get('/api/v1/componenttypes').set('X-Caller', 'carol').expect(200)
    expectRateLimited(await http.get('/api/v1/componenttypes').set('X-Caller', 'carol'), 2, 60)
    await http.get('/api/v1/componenttypes').set('X-Caller', 'dave').expect(200)
    // Anonymous: one budget for the address, whoever it is.
    for (let i = 0; i < 2; i++) await http.get('/api/v1/componenttypes').expect(200)
    expectRateLimited(await http.get('/api/v1/componenttypes'), 2, 60)
    await http.get('/api/v1/componenttypes').set('X-Caller', 'dave').expect(200)
  })

  it('the window ends: a limited caller is served again after Retry-After', async () => {
    const http = supertest((await engineWith({ points: 1, windowSeconds: 1 })).app().callback())
    await http.get('/api/v1/componenttypes').set('X-Caller', 'erin').expect(200)
    const limited = await http.get('/api/v1/componenttypes').set('X-Caller', 'erin')
    expectRateLimited(limited, 1, 1)
    await sleep(Number(limited.headers['retry-after']) * 1000 + 50)
    await http.get('/api/v1/componenttypes').set('X-Caller', 'erin').expect(200)
  })

  it('with Redis: two engines (two processes) given the same Redis share one count per caller', async () => {
    const options = { points: 4, windowSeconds: 60, keyPrefix: `${runPrefix}-shared` }
    const a = supertest((await engineWith({ ...options, redis: redisClient() })).app().callback())
    const b = supertest((await engineWith({ ...options, redis: redisClient() })).app().callback())
    await sleep(200) // connected
    await a.get('/api/v1/componenttypes').set('X-Caller', 'frank').expect(200)
    await b.get('/api/v1/componenttypes').set('X-Caller', 'frank').expect(200)
    await a.get('/api/v1/componenttypes').set('X-Caller', 'frank').expect(200)
    const last = await b.get('/api/v1/componenttypes').set('X-Caller', 'frank').expect(200)
    expect(last.headers.ratelimit).to.match(/^"default";r=0;/)
    expectRateLimited(await a.get('/api/v1/componenttypes').set('X-Caller', 'frank'), 4, 60)
    expectRateLimited(await b.get('/api/v1/componenttypes').set('X-Caller', 'frank'), 4, 60)
    const checker = redisClient()
    await sleep(100)
    expect(Number(await checker.get(`${options.keyPrefix}:user:frank`))).to.be.at.least(4)
  })

  it('Redis unreachable: requests are still served and limited, per process in memory, with one warning line, not one per request', async () => {
    const port = await claimPort() // free: nothing listens there
    try {
      const { lines, logger } = logLines()
      const http = supertest(
        (await engineWith({ points: 3, windowSeconds: 60, keyPrefix: `${runPrefix}-down`, redis: redisClient(`redis://127.0.0.1:${port}`) }, logger))
          .app()
          .callback(),
      )
      await sleep(300)
      for (let i = 0; i < 3; i++) await http.get('/api/v1/componenttypes').set('X-Caller', 'gina').expect(200)
      expectRateLimited(await http.get('/api/v1/componenttypes').set('X-Caller', 'gina'), 3, 60)
      for (let i = 0; i < 5; i++) await http.get('/api/v1/componenttypes').set('X-Caller', `h${i}`).expect(200)
      await sleep(600) // reconnection attempts go on meanwhile
      const warnings = lines.filter((l) => l.level === 'warn')
      expect(warnings.filter((l) => l.msg !== 'refused').map((l) => l.msg)).to.deep.equal([
        'rate limit store (Redis) unreachable: each process counts in its own memory until it is back',
      ])
      // The one 429, as one line of its own.
      expect(warnings.filter((l) => l.msg === 'refused').map((l) => l.details.code)).to.deep.equal(['rate_limited'])
      expect(lines.filter((l) => l.level === 'error')).to.deep.equal([])
    } finally {
      releasePort(port)
    }
  })

  it('failed logins count against the client address: past the limit, 429 before the credentials are checked, for any credentials, until the window ends', async () => {
    const http = supertest((await engineWith({ points: 3, windowSeconds: 2 })).app().callback())
    // Good requests of an identity do not spend the address's failures.
    for (let i = 0; i < 3; i++) await http.get('/api/v1/componenttypes').set('X-Caller', 'ivan').expect(200)
    const before = checks
    // Three failures are within the limit, the fourth goes past it: all four were checked and answered 401.
    for (let i = 0; i < 4; i++) expect((await http.get('/api/v1/componenttypes').set('X-Caller', 'wrong')).status).to.equal(401)
    expect(checks - before).to.equal(4)
    const limited = await http.get('/api/v1/componenttypes').set('X-Caller', 'wrong')
    expectRateLimited(limited, 3, 2)
    // From that address, good credentials too, and a write: refused, none checked, nothing written.
    expectRateLimited(await http.get('/api/v1/componenttypes').set('X-Caller', 'judy'), 3, 2)
    expectRateLimited(await http.post('/api/v1/componenttypes').set('X-Caller', 'judy').send({ name: 'never' }), 3, 2)
    expect(checks - before).to.equal(4)
    await sleep(Number(limited.headers['retry-after']) * 1000 + 50)
    expect((await http.get('/api/v1/componenttypes?where=name:never').set('X-Caller', 'judy').expect(200)).body._meta.count).to.equal(0)
    expect((await http.get('/api/v1/componenttypes').set('X-Caller', 'wrong')).status).to.equal(401)
  })

  it('with Redis, failed logins are counted across processes: the address is refused in each process after at most one more try there', async () => {
    const options = { points: 2, windowSeconds: 60, keyPrefix: `${runPrefix}-logins` }
    const a = supertest((await engineWith({ ...options, redis: redisClient() })).app().callback())
    const b = supertest((await engineWith({ ...options, redis: redisClient() })).app().callback())
    await sleep(200) // connected
    expect((await a.get('/api/v1/componenttypes').set('X-Caller', 'wrong')).status).to.equal(401)
    expect((await b.get('/api/v1/componenttypes').set('X-Caller', 'wrong')).status).to.equal(401)
    // The third failure, shared count 3 > 2: b now refuses the address before checking anything.
    expect((await b.get('/api/v1/componenttypes').set('X-Caller', 'wrong')).status).to.equal(401)
    const before = checks
    expectRateLimited(await b.get('/api/v1/componenttypes').set('X-Caller', 'wrong'), 2, 60)
    expect(checks).to.equal(before)
    // a has not seen the address refused: one more try there, counted, and refused from then on.
    expect((await a.get('/api/v1/componenttypes').set('X-Caller', 'wrong')).status).to.equal(401)
    expectRateLimited(await a.get('/api/v1/componenttypes').set('X-Caller', 'wrong'), 2, 60)
    expect(checks - before).to.equal(1)
  })

  it('bad options stop createEngine, naming the option', async () => {
    for (const [options, name] of [
      [{ points: 0, windowSeconds: 60 }, 'points'],
      [{ points: 10, windowSeconds: 0.5 }, 'windowSeconds'],
    ] as const) {
      let failure: unknown
      try {
        await engineWith(options)
      } catch (err) {
        failure = err
      }
      expect(String(failure)).to.match(new RegExp(`rateLimit\\.${name} must be a positive integer`))
    }
  })
})
