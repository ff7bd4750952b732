import crypto from 'node:crypto'
import http from 'node:http'
import { expect } from 'chai'
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose'
import type { Knex } from 'knex'
import supertest from 'supertest'
import { createEngine, type Engine, type EngineLogger, type Row } from '../core'
import { ensureAdmin, setPassword, type JwtOptions } from '../core/identity'
import { serverPlugins } from '../resources'
import { expectError } from './helpers/errors'
import { keepAliveAgent, request } from './helpers/http-client'
import { claimPort, releasePort } from './helpers/ports'
import { DATABASE, engineTables, resetTables, SCHEMAS, tableChecksums, testDatabase } from './support'

/** One line an engine logged. */
interface LogEntry {
  level: 'error' | 'warn' | 'info'
  details: Record<string, unknown>
  message: string
}

/** A logger that keeps every line, for the tests to read. */
function capturingLogger(lines: LogEntry[]): EngineLogger {
  return {
    error: (details, message) => void lines.push({ level: 'error', details, message }),
    warn: (details, message) => void lines.push({ level: 'warn', details, message }),
    info: (details, message) => void lines.push({ level: 'info', details, message }),
  }
}

/** An `Authorization: Basic` value. */
function basic(login: string, password: string): string {
  return `Basic ${Buffer.from(`${login}:${password}`).toString('base64')}`
}

const bearer = (token: string) => `Bearer ${token}`

/** Serves `handler` on a port of the test range until `close()`. */
async function listen(handler: http.RequestListener): Promise<{ origin: string; close(): Promise<void> }> {
  for (;;) {
    const port = await claimPort()
    const server = http.createServer(handler)
    const ok = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false))
      server.listen(port, '127.0.0.1', () => resolve(true))
    })
    if (!ok) continue
    return {
      origin: `http://127.0.0.1:${port}`,
      async close() {
        server.closeAllConnections()
        await new Promise((resolve) => server.close(resolve))
        releasePort(port)
      },
    }
  }
}

/** Asserts a 401 `unauthorized` answer that names both schemes in `WWW-Authenticate`. */
function expectUnauthorized(res: { status: number; body: any; text?: string; headers: Record<string, any> }, what: string): void {
  expect(res.status, `${what}: ${res.text ?? JSON.stringify(res.body)}`).to.equal(401)
  expectError(res, 401, 'Credentials are missing or wrong', 'unauthorized')
  const challenge = String(res.headers['www-authenticate'])
  expect(challenge, what).to.include('Basic realm="dci"')
  expect(challenge, what).to.match(/(^|, )Bearer\b/)
}

/** Every table the identity plugin and the resources write: the engine's resources and the API keys. */
const tablesOf = (engine: Engine) => ['apikeys', ...engineTables(engine)]

const PASSWORDS = { root: 'root password 1', alice: 'alice password 1', bob: 'bob password 1', carol: 'carol password 1' }

interface Fixture {
  alpha: Row
  beta: Row
  root: Row
  alice: Row
  bob: Row
  carol: Row
}

/**
 * Two teams and four users, made in-process (as server code: no identity) through the services, so
 * the passwords are hashed by the identity plugin's hooks: root (super_admin, alpha), alice (admin of
 * alpha, with an email), bob (user of alpha), carol (admin of beta).
 */
async function makeFixture(engine: Engine): Promise<Fixture> {
  const team = (name: string) => engine.service('team').create({ name })
  const [alpha, beta] = await Promise.all([team('alpha'), team('beta')])
  const user = (name: keyof typeof PASSWORDS, role: string, teamRow: Row, email?: string) =>
    engine.service('user').create({ name, role, team: teamRow.id, password: PASSWORDS[name], ...(email ? { email } : {}) })
  const [root, alice, bob, carol] = await Promise.all([
    user('root', 'super_admin', alpha),
    user('alice', 'admin', alpha, 'alice@example.com'),
    user('bob', 'user', alpha),
    user('carol', 'admin', beta),
  ])
  return { alpha, beta, root, alice, bob, carol }
}

describe(`credentials: HTTP Basic, API keys, JWTs, bootstrap (${DATABASE})`, function () {
  this.timeout(120_000)
  let db: Knex
  let engine: Engine
  let api: ReturnType<typeof supertest>
  let tables: string[]
  let fx: Fixture
  const logs: LogEntry[] = []
  const as = (name: keyof typeof PASSWORDS) => basic(name, PASSWORDS[name])
  const failures = () => logs.filter((l) => l.message === 'authentication failed')

  before(async () => {
    db = await testDatabase()
    engine = await createEngine({ db, schemasDir: SCHEMAS, plugins: serverPlugins(), logger: capturingLogger(logs) })
    api = supertest(engine.app().callback())
    tables = tablesOf(engine)
  })
  beforeEach(async () => {
    await resetTables(db, tables)
    fx = await makeFixture(engine)
    logs.length = 0
  })
  afterEach(() => {
    // No request of this file may end in a 5xx (whose cause the engine logs as an error).
    expect(logs.filter((l) => l.level === 'error').map((l) => l.details.err)).to.deep.equal([])
  })

  const identityOf = (user: Row) => ({ kind: 'user', id: user.id, name: user.name, email: user.email ?? null, role: user.role, team: user.team })

  describe('HTTP Basic', () => {
    it("a user's name or email with the password identifies the user: GET /identity answers who it is", async () => {
      for (const login of ['alice', 'alice@example.com']) {
        const res = await api.get('/api/v1/identity').set('Authorization', basic(login, PASSWORDS.alice)).expect(200)
        expect(res.body.identity, login).to.deep.equal(identityOf(fx.alice))
      }
      // The scheme's name is case-insensitive (RFC 9110).
      const lower = await api.get('/api/v1/identity').set('Authorization', as('bob').replace('Basic', 'basic')).expect(200)
      expect(lower.body.identity).to.deep.equal(identityOf(fx.bob))
      expect(failures()).to.deep.equal([])
    })

    it('wrong password, unknown user, malformed headers, unknown schemes, huge headers: 401 unauthorized with both challenges, nothing changed', async () => {
      const b64 = (bytes: Buffer | string) => Buffer.from(bytes).toString('base64')
      const headers: Record<string, string | undefined> = {
        'no header': undefined,
        'empty header': '',
        'wrong password': basic('alice', 'alice password 2'),
        'wrong password by email': basic('alice@example.com', 'nope nope'),
        "another user's password": basic('alice', PASSWORDS.bob),
        'unknown user': basic('nobody', PASSWORDS.alice),
        'empty password': basic('alice', ''),
        'login with a NUL': basic('ali\u0000ce', PASSWORDS.alice),
        'password with a NUL': basic('alice', `${PASSWORDS.alice}\u0000`),
        'Basic alone': 'Basic',
        'Basic and a space': 'Basic ',
        'Basic without a colon': `Basic ${b64('alice')}`,
        'Basic with an empty login': `Basic ${b64(`:${PASSWORDS.alice}`)}`,
        'Basic not base64': 'Basic !!!not-base64!!!',
        'Basic with invalid UTF-8': `Basic ${b64(Buffer.from([0xff, 0xfe, 0x3a, 0x41]))}`,
        'Basic with a second word': `${as('alice')} extra`,
        'Basic without its space': as('alice').replace(' ', ''),
        'Basic twice': `${as('alice')}, ${as('alice')}`,
        'a login of 256 characters': basic('a'.repeat(256), 'password'),
        'a password of 1025 characters': basic('alice', 'x'.repeat(1025)),
        'Bearer alone': 'Bearer',
        'Bearer with spaces': 'Bearer a b c',
        'Bearer of an unknown API key': bearer(`dci_${crypto.randomBytes(32).toString('base64url')}`),
        'Bearer of no known shape': bearer('not-a-token'),
        'Bearer JWT without an issuer configured': bearer('eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl'),
        'a bare token': `dci_${crypto.randomBytes(32).toString('base64url')}`,
        'a bare name and password': `alice:${PASSWORDS.alice}`,
        Digest: 'Digest username="alice", realm="dci", nonce="x", uri="/", response="y"',
        Negotiate: 'Negotiate YIIBhgYGKwYBBQUCoIIBejCCAXagMDAuBgkqhkiC9xIBAgIGCSqGSIb3EgECAgYKKwYBBAGCNwICHgYKKwYBBAGCNwICCg==',
        'AWS signature': 'AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, Signature=abc',
        'huge Basic (5,000 characters)': `Basic ${'QUFB'.repeat(1250)}`,
        'huge Bearer (12,000 characters)': bearer(`dci_${'a'.repeat(12_000)}`),
        'huge garbage (14,000 characters)': 'x'.repeat(14_000),
      }
      const before = await tableChecksums(db, tables)
      for (const [what, header] of Object.entries(headers)) {
        for (const method of ['GET', 'POST'] as const) {
          const req = method === 'GET' ? api.get('/api/v1/identity') : api.post('/api/v1/teams').send({ name: 'gamma' })
          if (header !== undefined) req.set('Authorization', header)
          expectUnauthorized(await req, `${method} with ${what}`)
        }
      }
      expect(await tableChecksums(db, tables)).to.deep.equal(before)
    })

    it('a wrong password 1000 times: 401 each time, no 5xx, nothing changed; the right one still works after', async function () {
      this.timeout(300_000)
      const server = await listen(engine.app().callback())
      const agent = keepAliveAgent({ maxSockets: 8 })
      try {
        const before = await tableChecksums(db, tables)
        const statuses = new Map<number, number>()
        let next = 0
        // Eight clients at once, each password a different wrong one.
        await Promise.all(
          Array.from({ length: 8 }, async () => {
            while (next < 1000) {
              const i = next++
              const res = await request(agent, 'GET', `${server.origin}/api/v1/teams`, { headers: { authorization: basic('alice', `wrong password ${i}`) } })
              statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
              if (res.status !== 401 || res.body?.code !== 'unauthorized') throw new Error(`attempt ${i}: ${res.status} ${JSON.stringify(res.body)}`)
            }
          }),
        )
        expect(Object.fromEntries(statuses)).to.deep.equal({ 401: 1000 })
        expect(await tableChecksums(db, tables)).to.deep.equal(before)
        const failed = failures()
        expect(failed).to.have.length(1000)
        for (const line of failed) expect(line.details).to.include({ scheme: 'basic', login: 'alice' })
        expect(JSON.stringify(logs)).to.not.include('wrong password')
        const res = await request(agent, 'GET', `${server.origin}/api/v1/identity`, { headers: { authorization: as('alice') } })
        expect(res.status).to.equal(200)
        expect(res.body.identity.name).to.equal('alice')
      } finally {
        agent.destroy()
        await server.close()
      }
    })

    it('a failed login is logged once, with the client address and the request id, never with the password or the credential', async () => {
      const token = `dci_${crypto.randomBytes(32).toString('base64url')}`
      const attempts = [
        { header: basic('alice', 'a secret guess'), scheme: 'basic', login: 'alice', secret: 'a secret guess' },
        { header: basic('nobody', 'another secret guess'), scheme: 'basic', login: 'nobody', secret: 'another secret guess' },
        { header: bearer(token), scheme: 'bearer', secret: token.slice(4) },
        { header: `Basic ${'QUFB'.repeat(1250)}`, scheme: 'unknown', secret: 'QUFBQUFB' },
      ]
      for (const [i, attempt] of attempts.entries()) {
        logs.length = 0
        await api.get('/api/v1/teams').set('Authorization', attempt.header).set('X-Request-Id', `attempt-${i}`).expect(401)
        const failed = failures()
        expect(failed, attempt.header.slice(0, 40)).to.have.length(1)
        expect(failed[0].level).to.equal('warn')
        expect(failed[0].details).to.include({ scheme: attempt.scheme, request_id: `attempt-${i}` })
        expect(failed[0].details.client).to.match(/^(::ffff:)?127\.0\.0\.1$/)
        if (attempt.login) expect(failed[0].details.login).to.equal(attempt.login)
        const text = JSON.stringify(logs)
        expect(text).to.not.include(attempt.secret)
        expect(text).to.not.include(attempt.header.slice(7, 30))
      }
      // No credentials at all is no failed login, and a good one logs nothing either.
      logs.length = 0
      await api.get('/api/v1/teams').expect(401)
      await api.get('/api/v1/teams').set('Authorization', as('alice')).expect(200)
      expect(logs).to.deep.equal([])
    })
  })

  describe('the Basic cache', () => {
    /** Logs in (which caches the credential) and checks it works again from the cache. */
    async function loggedIn(header: string): Promise<void> {
      await api.get('/api/v1/identity').set('Authorization', header).expect(200)
      await api.get('/api/v1/identity').set('Authorization', header).expect(200)
    }

    it('after a password change by PUT with If-Match, the old password fails at once and the new one works', async () => {
      await loggedIn(as('bob'))
      const own = await api.get(`/api/v1/users/${fx.bob.id}`).set('Authorization', as('bob')).expect(200)
      await api
        .put(`/api/v1/users/${fx.bob.id}`)
        .set('Authorization', as('bob'))
        .set('If-Match', own.headers.etag)
        .send({ password: 'bob password 2' })
        .expect(204)
      expectUnauthorized(await api.get('/api/v1/identity').set('Authorization', as('bob')), 'the old password')
      const res = await api.get('/api/v1/identity').set('Authorization', basic('bob', 'bob password 2')).expect(200)
      expect(res.body.identity).to.deep.equal(identityOf(fx.bob))
    })

    it('after setPassword (npm run user -- password), the old password fails at once and the new one works', async () => {
      await loggedIn(as('alice'))
      await loggedIn(basic('alice@example.com', PASSWORDS.alice))
      await setPassword(engine, 'alice', 'alice password 2')
      expectUnauthorized(await api.get('/api/v1/identity').set('Authorization', as('alice')), 'the old password')
      expectUnauthorized(await api.get('/api/v1/identity').set('Authorization', basic('alice@example.com', PASSWORDS.alice)), 'the old password by email')
      await api.get('/api/v1/identity').set('Authorization', basic('alice@example.com', 'alice password 2')).expect(200)
    })

    it('a removed user fails at once', async () => {
      await loggedIn(as('bob'))
      await api.delete(`/api/v1/users/${fx.bob.id}`).set('Authorization', as('alice')).set('If-Match', `"${fx.bob.etag}"`).expect(204)
      expectUnauthorized(await api.get('/api/v1/identity').set('Authorization', as('bob')), 'a removed user')
    })

    it('a removed user created again with the same name and password is a new identity', async () => {
      await loggedIn(as('bob'))
      await engine.service('user').remove(fx.bob.id, { ifMatch: '*' })
      const again = await engine.service('user').create({ name: 'bob', password: PASSWORDS.bob, team: fx.beta.id })
      const res = await api.get('/api/v1/identity').set('Authorization', as('bob')).expect(200)
      expect(res.body.identity).to.deep.equal(identityOf(again))
      expect(res.body.identity.id).to.not.equal(fx.bob.id)
    })

    it('a changed role applies on the next request', async () => {
      await loggedIn(as('bob'))
      const create = () => api.post('/api/v1/remotecis').set('Authorization', as('bob')).send({ name: 'lab' })
      expectError(await create(), 403, 'The role user may not create remotecis', 'forbidden')
      await api.put(`/api/v1/users/${fx.bob.id}`).set('Authorization', as('root')).set('If-Match', `"${fx.bob.etag}"`).send({ role: 'admin' }).expect(204)
      const res = await api.get('/api/v1/identity').set('Authorization', as('bob')).expect(200)
      expect(res.body.identity.role).to.equal('admin')
      expect((await create().expect(201)).body.remoteci.team).to.equal(fx.alpha.id)
    })
  })

  describe('API keys', () => {
    const createKey = (path: string, header: string, body: Record<string, unknown> = {}) =>
      api.post(`/api/v1/${path}/apikeys`).set('Authorization', header).send(body)

    it('POST /users/:id/apikeys answers 201 with the token once; the stored row holds only its SHA-256 digest', async () => {
      const before = Date.now()
      const res = await createKey(`users/${fx.alice.id}`, as('alice'), { name: 'ci' }).expect(201)
      const key = res.body.apikey
      expect(Object.keys(res.body)).to.deep.equal(['apikey'])
      expect(key).to.have.all.keys('id', 'name', 'created_at', 'last_used_at', 'token')
      expect(key).to.include({ name: 'ci', last_used_at: null })
      expect(key.token).to.match(/^dci_[A-Za-z0-9_-]{43}$/)
      expect(new Date(key.created_at).getTime()).to.be.within(before - 5_000, Date.now() + 5_000)

      const rows = await db('apikeys').select('*')
      expect(rows).to.have.length(1)
      expect(rows[0]).to.include({ id: key.id, holder_kind: 'user', holder_id: fx.alice.id, name: 'ci' })
      expect(rows[0].token_hash).to.equal(crypto.createHash('sha256').update(key.token).digest('hex'))
      const stored = JSON.stringify(rows)
      expect(stored).to.not.include(key.token)
      expect(stored).to.not.include(key.token.slice(4, 24))

      // The token is never answered again: not in the list, not in the key holder's row.
      const list = await api.get(`/api/v1/users/${fx.alice.id}/apikeys`).set('Authorization', as('alice')).expect(200)
      const user = await api.get(`/api/v1/users/${fx.alice.id}`).set('Authorization', bearer(key.token)).expect(200)
      expect(list.text + user.text).to.not.include(key.token.slice(4, 24))
    })

    it('GET lists the keys without tokens, with created_at and last_used_at, which a use sets', async () => {
      const first = (await createKey(`users/${fx.bob.id}`, as('bob'), { name: 'first' }).expect(201)).body.apikey
      const second = (await createKey(`users/${fx.bob.id}`, as('bob')).expect(201)).body.apikey
      const list = async () => (await api.get(`/api/v1/users/${fx.bob.id}/apikeys`).set('Authorization', as('bob')).expect(200)).body
      const listed = await list()
      expect(listed).to.deep.equal({
        apikeys: [first, second].map(({ token: _, ...rest }) => rest),
      })
      expect(listed.apikeys[1].name).to.equal(null)

      const used = Date.now()
      await api.get('/api/v1/identity').set('Authorization', bearer(first.token)).expect(200)
      // The use is recorded beside the request, not in its way: poll for it.
      let after = await list()
      for (let i = 0; i < 50 && after.apikeys[0].last_used_at === null; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100))
        after = await list()
      }
      expect(new Date(after.apikeys[0].last_used_at).getTime()).to.be.within(used - 5_000, Date.now() + 5_000)
      expect(after.apikeys[1].last_used_at).to.equal(null)
    })

    it('DELETE revokes a key at once; again, 404', async () => {
      const key = (await createKey(`users/${fx.alice.id}`, as('alice')).expect(201)).body.apikey
      await api.get('/api/v1/identity').set('Authorization', bearer(key.token)).expect(200)
      await api.delete(`/api/v1/users/${fx.alice.id}/apikeys/${key.id}`).set('Authorization', as('alice')).expect(204)
      expectUnauthorized(await api.get('/api/v1/identity').set('Authorization', bearer(key.token)), 'a revoked key')
      expectError(await api.delete(`/api/v1/users/${fx.alice.id}/apikeys/${key.id}`).set('Authorization', as('alice')), 404, 'apikey not found', 'not_found')
      expect(await db('apikeys').where({ id: key.id })).to.deep.equal([])
      // A key is revoked through its own holder only; an id that is no uuid is no key either.
      const bobs = (await createKey(`users/${fx.bob.id}`, as('bob')).expect(201)).body.apikey
      expectError(await api.delete(`/api/v1/users/${fx.alice.id}/apikeys/${bobs.id}`).set('Authorization', as('alice')), 404, 'apikey not found', 'not_found')
      expectError(await api.delete(`/api/v1/users/${fx.alice.id}/apikeys/not-a-uuid`).set('Authorization', as('alice')), 404)
      await api.get('/api/v1/identity').set('Authorization', bearer(bobs.token)).expect(200)
    })

    it("a user's key is the user: the same identity, role and team scoping as Basic", async () => {
      const key = (await createKey(`users/${fx.bob.id}`, as('bob')).expect(201)).body.apikey
      const res = await api.get('/api/v1/identity').set('Authorization', bearer(key.token)).expect(200)
      expect(res.body.identity).to.deep.equal(identityOf(fx.bob))
      const teams = await api.get('/api/v1/teams').set('Authorization', bearer(key.token)).expect(200)
      expect(teams.body.teams.map((t: Row) => t.name)).to.deep.equal(['alpha'])
    })

    it("a remoteci's key: identity kind remoteci, role remoteci, the remoteci's team, and that team's rows only", async () => {
      const lab = (await api.post('/api/v1/remotecis').set('Authorization', as('carol')).send({ name: 'lab' }).expect(201)).body.remoteci
      expect(lab.team).to.equal(fx.beta.id)
      const key = (await createKey(`remotecis/${lab.id}`, as('carol'), { name: 'lab agent' }).expect(201)).body.apikey
      const stored = await db('apikeys').where({ id: key.id }).first()
      expect(stored).to.include({ holder_kind: 'remoteci', holder_id: lab.id })
      const res = await api.get('/api/v1/identity').set('Authorization', bearer(key.token)).expect(200)
      expect(res.body.identity).to.deep.equal({ kind: 'remoteci', id: lab.id, name: 'lab', role: 'remoteci', team: fx.beta.id })
      const teams = await api.get('/api/v1/teams').set('Authorization', bearer(key.token)).expect(200)
      expect(teams.body.teams.map((t: Row) => t.name)).to.deep.equal(['beta'])
      expectError(await api.get(`/api/v1/teams/${fx.alpha.id}`).set('Authorization', bearer(key.token)), 404)
      const listed = await api.get(`/api/v1/remotecis/${lab.id}/apikeys`).set('Authorization', as('carol')).expect(200)
      expect(listed.body.apikeys.map((k: Row) => k.name)).to.deep.equal(['lab agent'])
    })

    it("who manages keys: a holder its own, an admin its team's; another team's holder is a 404, a user's admin a 403", async () => {
      const lab = (await api.post('/api/v1/remotecis').set('Authorization', as('carol')).send({ name: 'lab' }).expect(201)).body.remoteci
      await createKey(`users/${fx.bob.id}`, as('bob')).expect(201)
      await createKey(`users/${fx.bob.id}`, as('alice')).expect(201)
      expectError(await createKey(`users/${fx.alice.id}`, as('bob')), 403, 'The role user may not run create_user_apikey', 'forbidden')
      expectError(await createKey(`remotecis/${lab.id}`, as('alice')), 404)
      expectError(await createKey(`users/${fx.alice.id}`, as('carol')), 404)
      expectError(await api.get(`/api/v1/remotecis/${lab.id}/apikeys`).set('Authorization', as('alice')), 404)
      const remoteciKey = (await createKey(`remotecis/${lab.id}`, as('root')).expect(201)).body.apikey
      // A remoteci lists its own keys with its own key.
      const own = await api.get(`/api/v1/remotecis/${lab.id}/apikeys`).set('Authorization', bearer(remoteciKey.token)).expect(200)
      expect(own.body.apikeys.map((k: Row) => k.id)).to.deep.equal([remoteciKey.id])
    })

    it("removing a key's holder removes its keys: they fail at once", async () => {
      const key = (await createKey(`users/${fx.bob.id}`, as('bob')).expect(201)).body.apikey
      await api.get('/api/v1/identity').set('Authorization', bearer(key.token)).expect(200)
      await api.delete(`/api/v1/users/${fx.bob.id}`).set('Authorization', as('alice')).set('If-Match', '*').expect(204)
      expectUnauthorized(await api.get('/api/v1/identity').set('Authorization', bearer(key.token)), "a removed user's key")
      expect(await db('apikeys').where({ holder_id: fx.bob.id })).to.deep.equal([])
    })
  })

  describe('JWTs of an external identity provider', () => {
    const ISSUER = 'https://idp.example.test'
    const AUDIENCE = 'dci'
    let jwks: { origin: string; close(): Promise<void> }
    let jwtApi: ReturnType<typeof supertest>
    let privateKey: CryptoKey
    let otherKey: CryptoKey
    let publicJwk: JWK
    let jwksRequests = 0

    before(async () => {
      const pair = await generateKeyPair('RS256', { extractable: true })
      privateKey = pair.privateKey
      otherKey = (await generateKeyPair('RS256')).privateKey
      publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'key-1', alg: 'RS256', use: 'sig' }
      jwks = await listen((_req, res) => {
        jwksRequests++
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ keys: [publicJwk] }))
      })
      const jwt: JwtOptions = { jwksUrl: `${jwks.origin}/jwks.json`, issuer: ISSUER, audience: AUDIENCE, claim: 'preferred_username' }
      const jwtEngine = await createEngine({ db, schemasDir: SCHEMAS, plugins: serverPlugins({ jwt }), logger: capturingLogger(logs) })
      jwtApi = supertest(jwtEngine.app().callback())
    })
    after(async () => {
      await jwks?.close()
    })

    /** A token of the issuer for `claims`, changed by `edit` before it is signed. */
    function token(claims: Record<string, unknown>, edit: (jwt: SignJWT) => SignJWT = (j) => j, key: CryptoKey = privateKey, kid = 'key-1') {
      const jwt = new SignJWT({ sub: 'idp-user-7', ...claims })
        .setProtectedHeader({ alg: 'RS256', kid })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setIssuedAt()
        .setExpirationTime('5m')
      return edit(jwt).sign(key)
    }
    const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

    it('a valid token names an existing user by the configured claim: that user, role and team', async () => {
      const res = await jwtApi
        .get('/api/v1/identity')
        .set('Authorization', bearer(await token({ preferred_username: 'alice' })))
        .expect(200)
      expect(res.body.identity).to.deep.equal(identityOf(fx.alice))
      const teams = await jwtApi
        .get('/api/v1/teams')
        .set('Authorization', bearer(await token({ preferred_username: 'carol' })))
        .expect(200)
      expect(teams.body.teams.map((t: Row) => t.name)).to.deep.equal(['beta'])
      expect(jwksRequests).to.be.greaterThan(0)
    })

    it('wrong issuer or audience, expired, not yet valid, unknown kid, wrong key, unsigned, tampered, HS256 with the public key, unknown user, no claim: 401', async () => {
      const valid = await token({ preferred_username: 'alice' })
      const [header, , signature] = valid.split('.')
      const now = Math.floor(Date.now() / 1000)
      const cases: Record<string, string> = {
        'wrong issuer': await token({ preferred_username: 'alice' }, (j) => j.setIssuer('https://evil.example.test')),
        'wrong audience': await token({ preferred_username: 'alice' }, (j) => j.setAudience('another-service')),
        expired: await token({ preferred_username: 'alice' }, (j) => j.setIssuedAt(now - 3600).setExpirationTime(now - 600)),
        'not yet valid': await token({ preferred_username: 'alice' }, (j) => j.setNotBefore(now + 600)),
        'unknown kid': await token({ preferred_username: 'alice' }, undefined, otherKey, 'key-2'),
        'signed by another key under the known kid': await token({ preferred_username: 'alice' }, undefined, otherKey),
        'unsigned (alg none)': `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ preferred_username: 'alice', iss: ISSUER, aud: AUDIENCE, exp: now + 300 })}.`,
        'alg none with a signature': `${b64url({ alg: 'none', kid: 'key-1' })}.${b64url({ preferred_username: 'alice', iss: ISSUER, aud: AUDIENCE, exp: now + 300 })}.${signature}`,
        'tampered claims': `${header}.${b64url({ preferred_username: 'root', sub: 'idp-user-7', iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 300 })}.${signature}`,
        'HS256 keyed with the public key': await new SignJWT({ preferred_username: 'alice' })
          .setProtectedHeader({ alg: 'HS256', kid: 'key-1' })
          .setIssuer(ISSUER)
          .setAudience(AUDIENCE)
          .setExpirationTime('5m')
          .sign(new TextEncoder().encode(JSON.stringify(publicJwk))),
        'unknown user': await token({ preferred_username: 'nobody' }),
        'a NUL in the user claim': await token({ preferred_username: 'ali\u0000ce' }),
        'no user claim': await token({}),
        'a user claim that is no string': await token({ preferred_username: ['alice'] }),
        'the right token in the wrong scheme': `Basic ${valid}`,
      }
      // Why each failed, as logged: each case is refused for its own reason.
      const jwt = (reason: string) => ({ scheme: 'jwt', reason })
      const reasons: Record<string, Record<string, string>> = {
        'wrong issuer': jwt('ERR_JWT_CLAIM_VALIDATION_FAILED'),
        'wrong audience': jwt('ERR_JWT_CLAIM_VALIDATION_FAILED'),
        expired: jwt('ERR_JWT_EXPIRED'),
        'not yet valid': jwt('ERR_JWT_CLAIM_VALIDATION_FAILED'),
        'unknown kid': jwt('ERR_JWKS_NO_MATCHING_KEY'),
        'signed by another key under the known kid': jwt('ERR_JWS_SIGNATURE_VERIFICATION_FAILED'),
        // No signature: not even shaped as a signed JWT.
        'unsigned (alg none)': { scheme: 'bearer' },
        'alg none with a signature': jwt('ERR_JOSE_NOT_SUPPORTED'),
        'tampered claims': jwt('ERR_JWS_SIGNATURE_VERIFICATION_FAILED'),
        'HS256 keyed with the public key': jwt('ERR_JOSE_NOT_SUPPORTED'),
        'unknown user': { scheme: 'jwt', login: 'nobody' },
        'a NUL in the user claim': jwt('no user claim'),
        'no user claim': jwt('no user claim'),
        'a user claim that is no string': jwt('no user claim'),
        'the right token in the wrong scheme': { scheme: 'unknown' },
      }
      expect(Object.keys(reasons)).to.deep.equal(Object.keys(cases))
      const before = await tableChecksums(db, tables)
      for (const [what, value] of Object.entries(cases)) {
        logs.length = 0
        const res = await jwtApi.get('/api/v1/identity').set('Authorization', what.startsWith('the right') ? value : bearer(value))
        expectUnauthorized(res, what)
        expect(failures(), what).to.have.length(1)
        expect(failures()[0].details, what).to.include(reasons[what])
      }
      expect(await tableChecksums(db, tables)).to.deep.equal(before)
      // The valid token still works: nothing above was cached as good.
      await jwtApi.get('/api/v1/identity').set('Authorization', bearer(valid)).expect(200)
    })

    it('an engine without an issuer refuses a JWT of that issuer', async () => {
      expectUnauthorized(await api.get('/api/v1/identity').set('Authorization', bearer(await token({ preferred_username: 'alice' }))), 'no issuer configured')
    })
  })

  describe('bootstrap: ensureAdmin', () => {
    beforeEach(async () => {
      // An empty database: no users.
      await resetTables(db, tables)
      logs.length = 0
    })

    const admins = async () => {
      const users = await db('users').select('name', 'role', 'team')
      const teams = await db('teams').select('id', 'name')
      return { users, teams }
    }

    it('with ADMIN_PASSWORD: team admin and user admin (super_admin), who logs in with it; the log does not show it', async () => {
      const lines: LogEntry[] = []
      expect(await ensureAdmin(engine, { password: 'admin password 1', logger: capturingLogger(lines) })).to.equal('admin password 1')
      const { users, teams } = await admins()
      expect(teams.map((t) => t.name)).to.deep.equal(['admin'])
      expect(users).to.deep.equal([{ name: 'admin', role: 'super_admin', team: teams[0].id }])
      const res = await api.get('/api/v1/identity').set('Authorization', basic('admin', 'admin password 1')).expect(200)
      expect(res.body.identity).to.include({ name: 'admin', role: 'super_admin', team: teams[0].id })
      expect(lines.map((l) => [l.level, l.message])).to.deep.equal([['info', 'created user admin (super_admin) with the password of ADMIN_PASSWORD']])
      expect(JSON.stringify(lines)).to.not.include('admin password 1')
    })

    it('without it: a generated password is logged once, on one line, and works', async () => {
      const lines: LogEntry[] = []
      const password = await ensureAdmin(engine, { logger: capturingLogger(lines) })
      expect(password).to.be.a('string').with.length.of.at.least(20)
      expect(lines).to.have.length(1)
      expect(lines[0].level).to.equal('warn')
      expect(lines[0].message).to.include(password!)
      expect(lines[0].message).to.not.match(/[\r\n]/)
      await api.get('/api/v1/identity').set('Authorization', basic('admin', password!)).expect(200)
    })

    it('a second start (users exist) creates nothing, changes no password and logs nothing', async () => {
      await ensureAdmin(engine, { password: 'admin password 1' })
      const before = await tableChecksums(db, tables)
      const lines: LogEntry[] = []
      expect(await ensureAdmin(engine, { password: 'admin password 2', logger: capturingLogger(lines) })).to.equal(undefined)
      expect(await ensureAdmin(engine, { logger: capturingLogger(lines) })).to.equal(undefined)
      expect(lines).to.deep.equal([])
      expect(await tableChecksums(db, tables)).to.deep.equal(before)
      expectUnauthorized(await api.get('/api/v1/identity').set('Authorization', basic('admin', 'admin password 2')), 'the second password')
      await api.get('/api/v1/identity').set('Authorization', basic('admin', 'admin password 1')).expect(200)
    })

    it('any user makes a database bootstrapped: no admin is added beside them', async () => {
      const team = await engine.service('team').create({ name: 'ops' })
      await engine.service('user').create({ name: 'alice', password: PASSWORDS.alice, team: team.id })
      expect(await ensureAdmin(engine, {})).to.equal(undefined)
      expect((await admins()).users.map((u) => u.name)).to.deep.equal(['alice'])
    })

    /**
     * `engine` as ensureAdmin sees it, but the first read of users and the first read of teams wait
     * until every racer has made its own: all of them find an empty database, and all try to create.
     */
    function racing(target: Engine, gates: Record<string, () => Promise<void>>) {
      const waited = new Set<string>()
      return {
        service(name: string) {
          const service = target.service(name)
          return {
            create: (data: Record<string, unknown>, params?: Record<string, unknown>) => service.create(data, params),
            update: (id: string, data: Record<string, unknown>, params?: Record<string, unknown>) => service.update(id, data, params),
            async find(params?: Record<string, unknown>) {
              const page = await service.find(params)
              if (gates[name] && !waited.has(name)) {
                waited.add(name)
                await gates[name]()
              }
              return page
            },
          }
        },
      }
    }
    /** Resolves for everyone once `n` callers have arrived. */
    function gate(n: number): () => Promise<void> {
      let arrived = 0
      let open!: () => void
      const opened = new Promise<void>((resolve) => (open = resolve))
      return () => {
        if (++arrived === n) open()
        return opened
      }
    }

    it('two concurrent starts on an empty database (two engines) leave exactly one admin and one admin team, logged once', async () => {
      const other = await createEngine({ db, schemasDir: SCHEMAS, plugins: serverPlugins(), logger: capturingLogger(logs) })
      for (let round = 0; round < 4; round++) {
        await resetTables(db, tables)
        const lines: LogEntry[] = []
        // Rounds 0 and 1 force the race (both see no users and no team); rounds 2 and 3 let it happen as it comes.
        const gates: Record<string, () => Promise<void>> = round < 2 ? { user: gate(2), team: gate(2) } : {}
        const results = await Promise.all([engine, other].map((e) => ensureAdmin(racing(e, gates), { logger: capturingLogger(lines) })))
        const set = results.filter((p) => p !== undefined)
        expect(set, `round ${round}`).to.have.length(1)
        const { users, teams } = await admins()
        expect(
          teams.map((t) => t.name),
          `round ${round}`,
        ).to.deep.equal(['admin'])
        expect(users, `round ${round}`).to.deep.equal([{ name: 'admin', role: 'super_admin', team: teams[0].id }])
        expect(lines.filter((l) => l.message.includes(set[0]!))).to.have.length(1)
        expect(lines, `round ${round}`).to.have.length(1)
        await api.get('/api/v1/identity').set('Authorization', basic('admin', set[0]!)).expect(200)
      }
    })
  })
})
