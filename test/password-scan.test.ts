import crypto from 'node:crypto'
import { expect } from 'chai'
import type supertest from 'supertest'
import { loadSchemas, type Engine, type ResourceDefinition, type Row } from '../core'
import { collectPlugins } from '../core/plugins/registry'
import { plugins } from '../resources'
import { conformanceSuite } from './conformance/suite'
import { RowFactory } from './conformance/rows'
import { clientOf, makeWorld, resetIdentityTables, ROLES, memberOf, type Answer, type Client, type Transport, type World } from './helpers/callers'
import { serviceAgent } from './helpers/service-agent'
import { SCHEMAS, type TestApp } from './support'

// The resources the engine serves, read synchronously (mocha declares tests synchronously).
const contributions = collectPlugins(plugins, { error() {}, warn() {}, info() {} })
const definitions = loadSchemas(SCHEMAS, contributions.keywords, contributions.schemaFiles)
const byName = new Map(definitions.map((d) => [d.name, d]))

/**
 * The resources the conformance suite can run on while a super_admin is logged in: it empties the
 * tables of the resources it tests before each case, so not the users (the credentials) nor what a
 * user's row needs (its team); not read-only ones (it writes); not those with write-only fields (its
 * "POST answers the body sent" does not hold for them); not team-owned ones (its "POST without a
 * required field answers 400" does not hold for the owner field, which the identity plugin fills
 * from the caller's team). The route scan below covers the others.
 */
const credentialTables = new Set(['user', ...(byName.get('user')?.fields.flatMap((f) => (f.relation ? [f.relation.resource] : [])) ?? [])])
const conformanceResources = definitions.filter((d) => !credentialTables.has(d.name) && !d.readOnly && !d.owner && !d.fields.some((f) => f.hidden))

/** One answer of the scan: which call, and everything the client received. */
interface Recorded {
  source: string
  method: string
  /** The OpenAPI path template (route scan), or the path. */
  route: string
  status: number
  text: string
  headers: Record<string, unknown>
}

const records: Recorded[] = []
/** Every plain password a user of this file has (or was sent with a request). */
const passwords = new Set<string>()

const newPassword = (what: string) => {
  const password = `pw-${what}-${crypto.randomBytes(9).toString('base64url')}`
  passwords.add(password)
  return password
}

/** A client whose answers are recorded. */
function recording(client: Client, source: string, route: (path: string) => string = (p) => p): Client {
  return async (method, path, options) => {
    const res = await client(method, path, options)
    records.push({ source, method, route: route(path), status: res.status, text: res.text, headers: res.headers })
    return res
  }
}

/** A supertest-like agent whose requests carry `authorization` and whose answers are recorded. */
function recordingAgent(http: ReturnType<typeof supertest>, authorization: string, source: string) {
  const verb = (method: 'get' | 'post' | 'put' | 'delete' | 'head') => (url: string) =>
    http[method](url)
      .set('Authorization', authorization)
      .on('response', (res: { status: number; text: string; headers: Record<string, unknown> }) => {
        records.push({ source, method: method.toUpperCase(), route: url, status: res.status, text: res.text ?? '', headers: res.headers })
      })
  return { get: verb('get'), post: verb('post'), put: verb('put'), delete: verb('delete'), head: verb('head') }
}

/** Names of the relations of a resource, comma-separated (for `embed`). */
const embedAll = (def: ResourceDefinition) =>
  def.fields
    .filter((f) => f.relation)
    .map((f) => f.name)
    .join(',')

describe('no answer of any route shows a password or its hash', function () {
  this.timeout(300_000)
  let world: World
  let rows: RowFactory

  before(async () => {
    world = await makeWorld()
    for (const member of Object.values(world.users)) passwords.add(member.password!)
    const app: TestApp = { engine: world.engine, db: world.db, http: serviceAgent(world.engine, { trusted: true }) as unknown as TestApp['http'] }
    rows = new RowFactory(app)
  })
  // Later test files share the database: leave them the identity tables empty, as found.
  after(() => resetIdentityTables(world.db))

  /**
   * A fresh row of `name` in team A (a fresh team for the team resource), made by server code through
   * the services (users get a password, hashed by the identity plugin); audits, read-only, by trusted code.
   */
  const fixture = async (name: string, overrides: Record<string, unknown> = {}): Promise<Row> => {
    const def = byName.get(name)!
    const pinned: Record<string, unknown> = def.owner && def.owner !== 'id' ? { [def.owner]: world.teams.A.id, ...overrides } : { ...overrides }
    if (name === 'user') Object.assign(pinned, { role: 'user', password: newPassword('fixture') })
    const body = await rows.body(name, pinned)
    return world.engine.service(name).create(body, def.readOnly ? { trusted: true } : {})
  }

  describe('every route of openapi.json, as every role, over both transports', () => {
    /**
     * Calls every operation of openapi.json once or twice: lists and details with and without every
     * embed, creates (users with a password), updates with `Prefer: return=representation` (users'
     * passwords changed), deletes, and every action, on fresh rows of the caller's team.
     */
    const exercise = async (engine: Engine, client: Client, transport: Transport) => {
      for (const [template, item] of Object.entries(engine.openapi().paths)) {
        // The index is HTTP's own (no service answers it).
        if (template === '/' && transport === 'services') continue
        for (const method of ['get', 'post', 'put', 'delete'] as const) {
          const operation = (item as Record<string, { operationId?: string } | undefined>)[method]
          if (!operation?.operationId) continue
          const segments = template.split('/').filter(Boolean)
          const def = definitions.find((d) => d.plural === segments[0])
          const action = segments.length > 2 || !def
          const values: Record<string, string> = {}
          if (template.includes('{id}')) {
            const row = await fixture(def!.name)
            values.id = row.id
            // The components of a type (the nested route) are listed too.
            if (action && def!.name === 'componenttype') await fixture('component', { componenttype: row.id })
          }
          if (template.includes('{keyid}')) {
            const made = (await engine.action(`create_${def!.name}_apikey`).call({ path: { id: values.id }, body: {} })) as { apikey: { id: string } }
            values.keyid = made.apikey.id
          }
          const path = `${engine.prefix}${template.replace(/\{(\w+)\}/g, (_, p: string) => values[p])}`.replace(/\/$/, '')
          const call = (suffix = '', options: Parameters<Client>[2] = {}) => client(method.toUpperCase(), `${path}${suffix}`, options)
          if (method === 'get') {
            await call()
            const embed = def && !action ? embedAll(def) : ''
            if (embed) await call(`?embed=${embed}`)
          } else if (method === 'post' && !action) {
            const pinned: Record<string, unknown> = def!.owner && def!.owner !== 'id' ? { [def!.owner]: world.teams.A.id } : {}
            if (def!.name === 'user') Object.assign(pinned, { role: 'user', password: newPassword('created') })
            await call('', { body: await rows.body(def!.name, pinned) })
          } else if (method === 'put') {
            const body = rows.updateBody(def!.name)
            if (def!.name === 'user') Object.assign(body, { role: 'user', password: newPassword('updated') })
            await call('', { body, headers: { 'If-Match': '*', Prefer: 'return=representation' } })
          } else if (method === 'delete') {
            await call('', { headers: { 'If-Match': '*' } })
          } else {
            await call('', { body: {} })
          }
        }
      }
    }

    for (const transport of ['http', 'services'] as Transport[]) {
      for (const role of ROLES) {
        it(`${role} over ${transport}: lists, details, embeds, creates, updates with Prefer: return=representation, deletes and actions`, async () => {
          const source = `routes/${transport}/${role}`
          const templates = Object.keys(world.engine.openapi().paths)
          // Which template a concrete path came from, for the coverage check.
          const routeOf = (path: string) => {
            const segments = path.split('?')[0].slice(world.engine.prefix.length).split('/').filter(Boolean)
            return (
              templates.find((t) => {
                const parts = t.split('/').filter(Boolean)
                return parts.length === segments.length && parts.every((p, i) => p.startsWith('{') || p === segments[i])
              }) ?? path
            )
          }
          await exercise(world.engine, recording(clientOf(world, memberOf(world, role), transport), source, routeOf), transport)
          const mine = records.filter((r) => r.source === source)
          expect(mine.length).to.be.at.least(Object.keys(world.engine.openapi().paths).length)
          expect(mine.filter((r) => r.status >= 500)).to.deep.equal([])
        })
      }

      it(`answers to requests that carry a password and fail (400, 403, 404, 409, 412) over ${transport}`, async () => {
        const source = `errors/${transport}`
        const prefix = world.engine.prefix
        const admin = recording(clientOf(world, world.users.adminA, transport), source)
        const boss = recording(clientOf(world, world.users.super, transport), source)
        const self = await fixture('user')
        const expectations: Array<[Client, string, string, unknown, Record<string, string>, number]> = [
          [boss, 'POST', '/users', { name: 'adminA', password: newPassword('dup'), team: world.teams.A.id }, {}, 409],
          [admin, 'POST', '/users', { name: 'bad-role', password: newPassword('role'), role: 'emperor' }, {}, 400],
          [admin, 'POST', '/users', { name: 'extra', password: newPassword('extra'), surprise: 1 }, {}, 400],
          [admin, 'POST', '/users', { name: 'typed', password: 123456789 }, {}, 400],
          [admin, 'POST', '/users', { name: 'short', password: 'short' }, {}, 400],
          [admin, 'POST', '/users', { name: 'promoted', password: newPassword('promote'), role: 'super_admin' }, {}, 403],
          [admin, 'PUT', `/users/${world.users.super.row.id}`, { password: newPassword('boss') }, { 'If-Match': '*' }, 403],
          [admin, 'PUT', `/users/${world.users.adminB.row.id}`, { password: newPassword('other') }, { 'If-Match': '*' }, 404],
          [admin, 'PUT', `/users/${self.id}`, { password: newPassword('stale') }, { 'If-Match': '"0123456789abcdef0123456789abcdef"' }, 412],
          [admin, 'PUT', `/users/${self.id}`, { password: newPassword('unconditional') }, {}, 412],
          [admin, 'GET', '/users?where=password:x', undefined, {}, 400],
          [admin, 'GET', '/users?sort=password', undefined, {}, 400],
          [admin, 'GET', '/users?embed=password', undefined, {}, 400],
        ]
        for (const [client, method, path, body, headers, status] of expectations) {
          const res: Answer = await client(method, `${prefix}${path}`, { body, headers })
          expect(res.status, `${method} ${path}: ${res.text}`).to.equal(status)
        }
      })
    }

    it("answers 401 to wrong credentials: a wrong password, another user's password, none, garbage", async () => {
      const source = 'errors/401'
      const { adminA, userA } = world.users
      const basic = (login: string, password: string) => `Basic ${Buffer.from(`${login}:${password}`).toString('base64')}`
      for (const authorization of [
        basic('adminA', newPassword('wrong')),
        basic('adminA', userA.password!),
        basic('nobody', adminA.password!),
        basic('admina@example.com', `${adminA.password}x`),
        `Bearer ${adminA.password}`,
        `Basic ${adminA.password}`,
        `Digest ${adminA.password}`,
        undefined,
      ]) {
        const res = await recording(clientOfAnonymous(world), source)('GET', `${world.engine.prefix}/users`, {
          headers: authorization ? { Authorization: authorization } : {},
        })
        expect(res.status, authorization).to.equal(401)
        expect(res.headers['www-authenticate']).to.include('Basic realm="dci"')
      }
    })

    it('openapi.json and the index: no response schema has a write-only field; a read-only resource documents GET only', async () => {
      const source = 'public'
      const client = recording(clientOfAnonymous(world), source)
      const doc = await client('GET', `${world.engine.prefix}/openapi.json`)
      expect(doc.status).to.equal(200)
      expect((await client('GET', world.engine.prefix)).status).to.equal(200)
      const document = doc.body
      const hidden = new Set(definitions.flatMap((d) => d.fields.filter((f) => f.hidden).map((f) => f.name)))
      expect([...hidden]).to.include('password')
      /** Property names a schema (its $refs followed) may answer. */
      const properties = (schema: unknown, seen = new Set<string>()): string[] => {
        if (!schema || typeof schema !== 'object') return []
        const s = schema as Record<string, unknown>
        if (typeof s.$ref === 'string') {
          if (seen.has(s.$ref)) return []
          seen.add(s.$ref)
          const target = s.$ref
            .replace('#/', '')
            .split('/')
            .reduce((o: any, k) => o?.[k], document)
          return properties(target, seen)
        }
        return [
          ...Object.keys((s.properties as object) ?? {}),
          ...Object.values(s).flatMap((v) => (Array.isArray(v) ? v.flatMap((x) => properties(x, seen)) : properties(v, seen))),
        ]
      }
      for (const [path, item] of Object.entries(document.paths as Record<string, Record<string, any>>)) {
        for (const [method, operation] of Object.entries(item)) {
          if (!operation?.responses) continue
          const answered = properties(operation.responses)
          for (const field of hidden) expect(answered, `${method.toUpperCase()} ${path} answers ${field}`).to.not.include(field)
        }
      }
      for (const def of definitions.filter((d) => d.readOnly)) {
        expect(Object.keys(document.paths[`/${def.plural}`])).to.not.include.members(['post'])
        expect(Object.keys(document.paths[`/${def.plural}/{id}`])).to.not.include.members(['put', 'delete'])
      }
    })

    it('covered: every operation of openapi.json answered 2xx to the super_admin, over both transports (openapi.json and the index over HTTP)', () => {
      const missing: string[] = []
      for (const [template, item] of Object.entries(world.engine.openapi().paths)) {
        for (const method of ['get', 'post', 'put', 'delete']) {
          if (!(item as Record<string, unknown>)[method]) continue
          for (const transport of ['http', 'services']) {
            if (template === '/' && transport === 'services') continue
            const ok = records.some(
              (r) => r.source === `routes/${transport}/super_admin` && r.method === method.toUpperCase() && r.route === template && r.status < 300,
            )
            if (!ok) missing.push(`${method.toUpperCase()} ${template} (${transport})`)
          }
        }
      }
      expect(missing).to.deep.equal([])
    })
  })

  describe(`the conformance suite with the identity plugin on, as a super_admin over HTTP (${conformanceResources.map((d) => d.name).join(', ')}), every answer recorded`, () => {
    let app: TestApp
    before(() => {
      // The suite empties the tables of the resources it is given before each case: only those it tests.
      const engine = { ...world.engine, resources: new Map([...world.engine.resources].filter(([name]) => conformanceResources.some((d) => d.name === name))) }
      const http = recordingAgent(world.http, world.users.super.basic!, 'conformance')
      app = { engine, db: world.db, http: http as unknown as TestApp['http'] }
    })
    // The suite's row factory starts its seeds anew for each case, which is fine for the tables it
    // empties; rows of other tables (the parents of rows, if any) stay, so seeds must not repeat.
    let seed = 1_000_000
    class FreshSeeds extends RowFactory {
      override nextSeed(): number {
        return seed++
      }
    }

    it('runs on resources the engine registered, with the identity plugin on', () => {
      expect(conformanceResources.length).to.be.at.least(2)
      for (const def of conformanceResources) expect(world.engine.resources.has(def.name)).to.equal(true)
      expect(world.engine.resources.has('user')).to.equal(true)
    })

    for (const def of conformanceResources) conformanceSuite(def, () => app, { rows: (app) => new FreshSeeds(app) })
  })

  describe('the scan of every recorded answer', () => {
    it('recorded the answers of the route scan, the error cases and the conformance run', () => {
      for (const source of ['routes/http/super_admin', 'routes/services/remoteci', 'errors/http', 'errors/services', 'errors/401', 'public', 'conformance']) {
        expect(
          records.filter((r) => r.source === source),
          source,
        ).to.not.have.length(0)
      }
      expect(records.filter((r) => r.source === 'conformance').length).to.be.at.least(100)
    })

    it('no answer body or header contains a plain password, a stored hash (or its digest part), or "$argon2"', async () => {
      const hashes: string[] = (await world.db('users').select('password')).map((r: { password: string }) => r.password)
      expect(hashes.length).to.be.at.least(5)
      const secrets = [...passwords, ...hashes, ...hashes.map((h) => h.slice(h.lastIndexOf('$') + 1)), '$argon2']
      const leaksOf = (list: Recorded[]) => {
        const leaks: string[] = []
        for (const record of list) {
          const text = `${record.text}\n${JSON.stringify(record.headers)}`
          for (const secret of secrets) {
            if (text.includes(secret)) leaks.push(`${record.source}: ${record.method} ${record.route} (${record.status}) shows ${secret}`)
          }
        }
        return leaks
      }
      // The scan finds a hash where one is answered: trusted server code reads rows as stored.
      const stored = await world.engine.service('user').get(world.users.userA.row.id, { trusted: true })
      expect(leaksOf([{ source: 'control', method: 'GET', route: 'trusted', status: 200, text: JSON.stringify(stored), headers: {} }])).to.have.length.at.least(
        1,
      )
      const leaks = leaksOf(records)
      expect(leaks, leaks.slice(0, 10).join('\n')).to.deep.equal([])
      expect(passwords.size).to.be.at.least(20)
    })
  })
})

/** A client without credentials (HTTP). */
function clientOfAnonymous(world: World): Client {
  return async (method, path, options = {}) => {
    let req = world.http[method.toLowerCase() as 'get'](path)
    for (const [name, value] of Object.entries(options.headers ?? {})) req = req.set(name, value)
    const res = await req
    return { status: res.status, body: res.body, headers: res.headers as Record<string, string>, text: res.text }
  }
}
