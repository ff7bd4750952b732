import { compileErrors, validate } from '@readme/openapi-parser'
import { expect } from 'chai'
import fc from 'fast-check'
import supertest from 'supertest'
import { ApiError, type Authenticator, createEngine, definePlugin, type Engine, type Identity } from '../core'
// The resources without the server's identity plugin: this file installs its own authenticator.
import { resourcePlugins as plugins } from '../resources'
import { expectError } from './helpers/errors'
import { resetTables, SCHEMAS, tableChecksums, testDatabase } from './support'

/** A host's own authenticator: `Bearer <name>` for the known names, `Bearer banned` is a 403. */
const tokens: Authenticator = {
  challenges: ['Bearer realm="test"'],
  securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
  identify(request) {
    const header = request.headers.authorization
    const match = typeof header === 'string' ? /^Bearer (\w+)$/.exec(header) : null
    if (match?.[1] === 'banned') throw new ApiError(403, 'This caller is banned', {}, {}, 'forbidden')
    return match && ['alice', 'bob'].includes(match[1]) ? { kind: 'user', name: match[1] } : undefined
  },
}

describe('authentication: a host function from a request to an identity', function () {
  this.timeout(60_000)
  let engine: Engine
  let http: ReturnType<typeof supertest>
  const seen: Identity[] = []

  before(async () => {
    const db = await testDatabase()
    const probe = definePlugin({ name: 'probe', setup: (api) => api.hooks('*', { before: { all: (ctx) => void seen.push(ctx.params.identity) } }) })
    engine = await createEngine({ db, schemasDir: SCHEMAS, plugins: [probe, ...plugins], authenticator: tokens })
    http = supertest(engine.app().callback())
  })
  beforeEach(async () => {
    seen.length = 0
    await resetTables(await testDatabase())
  })

  it('the identity it answers is the identity of every service call the request makes', async () => {
    await http.post('/api/v1/componenttypes').set('Authorization', 'Bearer alice').send({ name: 'rhel' }).expect(201)
    await http.get('/api/v1/componenttypes').set('Authorization', 'Bearer bob').expect(200)
    expect(seen).to.deep.equal([
      { kind: 'user', name: 'alice' },
      { kind: 'user', name: 'bob' },
    ])
  })

  it('no credentials, or wrong ones, answer 401 unauthorized with WWW-Authenticate, before the body is read, and change nothing', async () => {
    const db = await testDatabase()
    const before = await tableChecksums(db, ['componenttypes'])
    for (const header of [undefined, 'Bearer mallory', 'Basic YWxpY2U6eA==', 'Bearer', 'bearer alice', 'x'.repeat(4000)]) {
      const req = http.post('/api/v1/componenttypes').set('Content-Type', 'application/json')
      if (header !== undefined) req.set('Authorization', header)
      // Invalid JSON: a 401 proves the body was never parsed.
      const res = await req.send('{not json')
      expectError(res, 401, 'Credentials are missing or wrong', 'unauthorized')
      expect(res.headers['www-authenticate']).to.equal('Bearer realm="test"')
    }
    expect(await tableChecksums(db, ['componenttypes'])).to.deep.equal(before)
    expect(seen).to.deep.equal([])
  })

  it('fuzzed Authorization headers answer 401 JSON (or the known callers), never a 5xx, and change nothing', async () => {
    const db = await testDatabase()
    const before = await tableChecksums(db, ['teams'])
    const header = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ unit: 'binary', maxLength: 100 }),
      fc.tuple(fc.constantFrom('Bearer', 'Basic', 'bearer', 'Digest', ''), fc.string({ maxLength: 60 })).map(([scheme, rest]) => `${scheme} ${rest}`),
    )
    await fc.assert(
      fc.asyncProperty(header, async (value) => {
        // Node refuses header values with control characters before any request is sent.
        if (!/^[\t\x20-\x7e\x80-\xff]*$/.test(value)) return
        const res = await http.post('/api/v1/teams').set('Authorization', value).send({ name: 3 })
        expect(res.status, `${JSON.stringify(value)}: ${res.text}`).to.be.oneOf([400, 401])
        expect(res.body.code).to.be.oneOf(['unauthorized', 'validation_failed'])
      }),
      { numRuns: 300 },
    )
    expect(await tableChecksums(db, ['teams'])).to.deep.equal(before)
  })

  it('an authenticator may refuse with its own error: 403 forbidden', async () => {
    expectError(await http.get('/api/v1/teams').set('Authorization', 'Bearer banned'), 403, 'This caller is banned', 'forbidden')
  })

  it('the index and openapi.json need no credentials; an unknown route is still a 404', async () => {
    await http.get('/api/v1').expect(200)
    await http.get('/api/v1/').expect(200)
    await http.get('/api/v1/openapi.json').expect(200)
    expectError(await http.get('/api/v1/nothing'), 404, 'No route for GET /api/v1/nothing', 'route_not_found')
  })

  it('openapi.json declares the scheme, requires it everywhere but the index, and documents each 401 and 403', () => {
    const doc = engine.openapi() as unknown as Record<string, any>
    expect(doc.components.securitySchemes).to.deep.equal({ bearer: { type: 'http', scheme: 'bearer' } })
    expect(doc.security).to.deep.equal([{ bearer: [] }])
    expect(doc.paths['/'].get.security).to.deep.equal([])
    expect(doc.paths['/'].get.responses).to.not.have.property('401')
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      if (path === '/') continue
      for (const method of ['get', 'post', 'put', 'delete']) {
        if (!item[method]) continue
        expect(item[method].responses['401'], `${method} ${path}`).to.deep.equal({ $ref: '#/components/responses/Unauthorized' })
        expect(item[method].responses['403'], `${method} ${path}`).to.deep.equal({ $ref: '#/components/responses/Forbidden' })
      }
    }
    expect(doc.paths['/'].get.responses).to.not.have.property('403')
    expect(doc.components.responses.Unauthorized.headers).to.have.property('WWW-Authenticate')
    expect(doc.components.schemas.Forbidden.properties.code.enum).to.include('forbidden')
  })

  it('the secured document is valid OpenAPI 3.1', async () => {
    const result = await validate(structuredClone(engine.openapi()) as never)
    expect(result.valid, result.valid ? '' : compileErrors(result)).to.equal(true)
  })

  it('in-process calls are not authenticated: the caller gives the identity', async () => {
    await engine.service('team').create({ name: 'ops' }, { identity: { kind: 'script' } })
    expect(seen).to.deep.equal([{ kind: 'script' }])
  })

  it('one authenticator only: a second, from a plugin or the options, stops start-up naming the plugin', async () => {
    const db = await testDatabase()
    const one = definePlugin({ name: 'one', setup: (api) => api.authenticator(tokens) })
    const two = definePlugin({ name: 'two', setup: (api) => api.authenticator(tokens) })
    expect(String(await createEngine({ db, schemasDir: SCHEMAS, plugins: [one, two] }).catch((e: Error) => e))).to.include(
      "plugin 'two': plugin 'one' already installed an authenticator",
    )
    expect(String(await createEngine({ db, schemasDir: SCHEMAS, plugins: [one], authenticator: tokens }).catch((e: Error) => e))).to.include(
      "plugin 'one' installs another",
    )
  })
})
