import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { spawn } from 'node:child_process'
import { expect } from 'chai'
import { ApiRequestError, PreconditionFailedError, createClient, q, type Client, type Credentials } from '../client'
import type { Row } from '../core/data/repository'
import { plugins } from '../resources'
import type { Resources } from '../resources/types'
import { ACTIONS, type Actions } from '../resources/types/actions'
import { ADMIN_AUTH, ADMIN_PASSWORD, ROOT, resetTables, serverApp, testApp, type TestApp } from './support'

const MISSING = '00000000-0000-4000-8000-000000000000'

/** The error a promise rejects with (fails the test when it resolves). */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise
  } catch (err) {
    return err as Error
  }
  throw new Error('expected the call to fail')
}

describe('typed client against a live server', () => {
  let app: TestApp
  let server: http.Server
  let baseUrl: string
  let client: Client<Resources, Actions>
  before(async function () {
    this.timeout(120_000) // the embedded database starts in seconds, slower on a busy machine
    app = await testApp()
    server = http.createServer(app.engine.app().callback())
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`
    client = createClient<Resources, Actions>({ baseUrl, actions: ACTIONS })
  })
  after(async () => {
    await new Promise((resolve) => server.close(resolve))
  })
  beforeEach(async () => {
    await resetTables(app.db)
  })

  it('create answers the stored object, and get reads it back', async () => {
    const type = await client.componenttypes.create({ name: 'rhel' })
    expect(type).to.include({ name: 'rhel' })
    expect(type.id).to.match(/^[0-9a-f-]{36}$/)
    expect(type.etag).to.match(/^[0-9a-f]{32}$/)
    expect(await client.componenttypes.get(type.id)).to.deep.equal(type)
  })

  it('get, update and remove take the name of a resource with x-lookup in place of its id', async () => {
    const type = await client.componenttypes.create({ name: 'rhel 9/beta' })
    expect(await client.componenttypes.get('rhel 9/beta')).to.deep.equal(type)
    const updated = await client.componenttypes.update('rhel 9/beta', { name: 'rhel-9' }, { etag: type.etag, representation: true })
    expect(updated.item).to.include({ id: type.id, name: 'rhel-9' })
    const stale = await rejection(client.componenttypes.remove('rhel-9', { etag: type.etag }))
    expect(stale).to.be.instanceOf(PreconditionFailedError)
    await client.componenttypes.remove('rhel-9', { etag: updated.etag })
    const gone = await rejection(client.componenttypes.get('rhel-9'))
    expect(gone).to.be.instanceOf(ApiRequestError)
    expect((gone as ApiRequestError).status).to.equal(404)
  })

  it('get with embed replaces the relation id by the related object', async () => {
    const type = await client.componenttypes.create({ name: 'rhel' })
    const component = await client.components.create({ name: 'RHEL-9.4', componenttype: type.id })
    expect(component.componenttype).to.equal(type.id)
    const embedded = await client.components.get(component.id, { embed: ['componenttype'] })
    expect(embedded.componenttype).to.deep.equal(type)
    expect(embedded.componenttype?.id).to.equal(type.id)
  })

  it('list takes a query built with q (fields and values checked by the compiler) and the server filters by it', async () => {
    const rhel = await client.componenttypes.create({ name: 'rhel' })
    const other = await client.componenttypes.create({ name: 'other "one"' })
    for (const name of ['a1', 'a2', 'b1']) await client.components.create({ name, componenttype: rhel.id })
    await client.components.create({ name: 'a3', componenttype: other.id })
    const names = async (query: Parameters<typeof client.components.list>[0]) =>
      (await client.components.list({ sort: ['name'], ...query })).items.map((c) => c.name)
    expect(await names({ query: q.and(q.eq('componenttype.name', 'rhel'), q.like('name', 'a%')) })).to.deep.equal(['a1', 'a2'])
    expect(await names({ query: q.or(q.in('name', 'b1', 'a3'), q.eq('componenttype.name', 'other "one"')) })).to.deep.equal(['a3', 'b1'])
    expect(await names({ query: q.not(q.contains('name', '1')), where: { componenttype: rhel.id } })).to.deep.equal(['a2'])
    expect(await names({ query: q.gt('created_at', new Date(Date.now() + 60_000)) })).to.deep.equal([])
    expect(await names({ query: 'null(sha)' })).to.have.length(4)
    // As the grammar writes values: text quoted with \" and \\, dates as ISO text, numbers and booleans bare.
    expect(q.eq<{ name: string }>('name', 'a "b" \\').text).to.equal('eq(name,"a \\"b\\" \\\\")')
    expect(q.ge<{ at: string }>('at', new Date(0)).text).to.equal('ge(at,"1970-01-01T00:00:00.000Z")')
    expect(q.and<{ n: number; ok: boolean }>(q.eq('n', -1.5), q.ne('ok', false)).text).to.equal('and(eq(n,-1.5),ne(ok,false))')
    expect(q.contains<{ tags: string[] }>('tags', 'x').text).to.equal('contains(tags,"x")')
    expect(() => q.eq<{ n: number }>('n', Number.NaN)).to.throw(RangeError)
    const err = await rejection(client.components.list({ query: 'eq(nope,1)' }))
    expect(err).to.be.instanceOf(ApiRequestError)
    expect((err as ApiRequestError).body).to.include({ code: 'invalid_query' })
  })

  it('list sends q, a full-text search, ranked without sort; the server refuses a q without words', async () => {
    const type = await client.componenttypes.create({ name: 'searched' })
    for (const [name, title] of [
      ['kernel tools', 'kernel kernel'],
      ['kernel', null],
      ['userspace', 'tools'],
    ] as const) {
      await client.components.create({ name, title, componenttype: type.id })
    }
    const names = async (params: Parameters<typeof client.components.list>[0]) => (await client.components.list(params)).items.map((c) => c.name)
    expect(await names({ q: 'kernel' })).to.deep.equal(['kernel tools', 'kernel'])
    expect(await names({ q: 'kernel', sort: ['name'] })).to.deep.equal(['kernel', 'kernel tools'])
    expect(await names({ q: 'tools -kernel', count: 'none' })).to.deep.equal(['userspace'])
    const err = await rejection(client.components.list({ q: '!!' }))
    expect(err).to.be.instanceOf(ApiRequestError)
    expect((err as ApiRequestError).body).to.include({
      code: 'invalid_parameter',
      message: "Invalid 'q' parameter: has no word to search for (letters or digits)",
    })
  })

  it('list sends where, sort, limit, offset and embed, and answers items, count and the list ETag', async () => {
    const t1 = await client.componenttypes.create({ name: 't1' })
    const t2 = await client.componenttypes.create({ name: 't2' })
    for (const name of ['c', 'a', 'b']) await client.components.create({ name, componenttype: t1.id })
    await client.components.create({ name: 'z', componenttype: t2.id })

    const page = await client.components.list({
      where: { componenttype: t1.id },
      sort: ['-name'],
      limit: 2,
      offset: 1,
      embed: ['componenttype'],
      count: 'exact',
    })
    expect(page.items.map((c) => c.name)).to.deep.equal(['b', 'a'])
    expect(page.count).to.equal(3)
    expect(page.countExact).to.equal(true)
    expect(page.items[0].componenttype).to.deep.equal(t1)
    expect(page.etag).to.match(/^[0-9a-f]{32}$/)

    const both = await client.components.list({ where: { componenttype: t1.id, name: 'a' } })
    expect(both.items.map((c) => c.name)).to.deep.equal(['a'])
    const all = await client.components.list()
    expect(all.count).to.equal(4)
    expect(all.items.map((c) => c.name)).to.deep.equal(['c', 'a', 'b', 'z'])
  })

  it('a where value with a comma is refused before any request is sent', async () => {
    let requests = 0
    const counting = createClient<Resources>({
      baseUrl,
      fetch: (input, init) => {
        requests += 1
        return fetch(input, init)
      },
    })
    const err = await rejection(counting.componenttypes.list({ where: { name: 'a,b' } }))
    expect(err).to.be.instanceOf(RangeError)
    expect(requests).to.equal(0)
    await counting.componenttypes.list()
    expect(requests, 'the fetch option is the one used').to.equal(1)
  })

  it('update sends If-Match and answers the new ETag; with representation, the updated object too', async () => {
    const type = await client.componenttypes.create({ name: 'a' })
    const first = await client.componenttypes.update(type.id, { name: 'b' }, { etag: type.etag })
    expect(first).to.have.all.keys('etag')
    expect(first.etag)
      .to.match(/^[0-9a-f]{32}$/)
      .and.not.equal(type.etag)
    expect((await client.componenttypes.get(type.id)).etag).to.equal(first.etag)

    const second = await client.componenttypes.update(type.id, { name: 'c' }, { etag: first.etag, representation: true })
    expect(second.item).to.include({ id: type.id, name: 'c', etag: second.etag })
  })

  it('an etag of * is sent as If-Match: * and matches whatever the current ETag is', async () => {
    const type = await client.componenttypes.create({ name: 'a' })
    await client.componenttypes.update(type.id, { name: 'b' }, { etag: type.etag })
    const forced = await client.componenttypes.update(type.id, { name: 'c' }, { etag: '*', representation: true })
    expect(forced.item.name).to.equal('c')
    await client.componenttypes.remove(type.id, { etag: '*' })
    expect((await client.componenttypes.list()).count).to.equal(0)
  })

  it('update with a stale ETag throws PreconditionFailedError (412) and changes nothing', async () => {
    const type = await client.componenttypes.create({ name: 'a' })
    await client.componenttypes.update(type.id, { name: 'b' }, { etag: type.etag })
    const err = await rejection(client.componenttypes.update(type.id, { name: 'c' }, { etag: type.etag }))
    expect(err).to.be.instanceOf(PreconditionFailedError)
    expect(err).to.be.instanceOf(ApiRequestError)
    const failed = err as PreconditionFailedError
    expect(failed.status).to.equal(412)
    expect(failed.body).to.deep.equal({
      message: "'If-match' header does not match the current ETag",
      payload: {},
      status_code: 412,
      code: 'precondition_failed',
    })
    expect(failed.code).to.equal('precondition_failed')
    expect(failed.request).to.equal(`PUT /componenttypes/${type.id}`)
    expect((await client.componenttypes.get(type.id)).name).to.equal('b')
  })

  it('remove deletes with the current ETag; a stale one throws PreconditionFailedError and keeps the row', async () => {
    const type = await client.componenttypes.create({ name: 'a' })
    const stale = await rejection(client.componenttypes.remove(type.id, { etag: '0123456789abcdef0123456789abcdef' }))
    expect(stale).to.be.instanceOf(PreconditionFailedError)
    expect((await client.componenttypes.get(type.id)).id).to.equal(type.id)
    await client.componenttypes.remove(type.id, { etag: type.etag })
    const gone = await rejection(client.componenttypes.get(type.id))
    expect(gone).to.be.instanceOf(ApiRequestError).and.not.instanceOf(PreconditionFailedError)
    expect((gone as ApiRequestError).status).to.equal(404)
  })

  it('other errors surface as ApiRequestError with the status and the error body: 400, 404, 409, 422', async () => {
    const type = await client.componenttypes.create({ name: 'a' })
    const cases: Array<[Promise<unknown>, number]> = [
      [client.componenttypes.list({ sort: ['-nope' as 'name'] }), 400],
      [client.componenttypes.create({ name: 'a' }), 409],
      [client.components.create({ name: 'c', componenttype: MISSING }), 422],
      [client.componenttypes.update(MISSING, { name: 'x' }, { etag: '*' }), 404],
    ]
    for (const [call, status] of cases) {
      const err = (await rejection(call)) as ApiRequestError
      expect(err, `status ${status}`).to.be.instanceOf(ApiRequestError)
      expect(err.status).to.equal(status)
      expect(err.body.status_code).to.equal(status)
      expect(err.body.message).to.be.a('string').and.not.equal('')
      expect(err.message).to.include(String(status))
    }
    expect((await client.componenttypes.get(type.id)).name).to.equal('a')
  })

  it('an action is a typed method: the components of one type as a page, a missing type as a 404 ApiRequestError', async () => {
    const rhel = await client.componenttypes.create({ name: 'rhel' })
    const fedora = await client.componenttypes.create({ name: 'fedora' })
    for (const name of ['RHEL-9', 'RHEL-10']) await client.components.create({ name, componenttype: rhel.id })
    await client.components.create({ name: 'F-41', componenttype: fedora.id })
    const page = await client.action('list_componenttype_components', { path: { id: rhel.id }, query: { sort: ['-name'], limit: 1 } })
    expect(page.items.map((c) => c.name)).to.deep.equal(['RHEL-9'])
    expect(page.count).to.equal(2)
    const err = await rejection(client.action('list_componenttype_components', { path: { id: MISSING } }))
    expect(err).to.be.instanceOf(ApiRequestError)
    expect((err as ApiRequestError).code).to.equal('not_found')
  })

  it('every registered resource is reachable with its generated types: teams and remotecis', async () => {
    const team = await client.teams.create({ name: 'dci' })
    const remoteci = await client.remotecis.create({ name: 'lab-1', team: team.id, data: { arch: 'x86_64' } })
    expect(remoteci.data).to.deep.equal({ arch: 'x86_64' })
    const page = await client.remotecis.list({ where: { team: team.id }, embed: ['team'] })
    expect(page.items.map((r) => r.team?.name)).to.deep.equal(['dci'])
    const { etag } = await client.remotecis.update(remoteci.id, { data: null }, { etag: remoteci.etag })
    expect((await client.remotecis.get(remoteci.id)).data).to.equal(null)
    await client.remotecis.remove(remoteci.id, { etag })
  })
})

describe('typed client with credentials, against an engine with the identity plugin', () => {
  const IDENTITY_TABLES = ['components', 'componenttypes', 'remotecis', 'apikeys', 'audits', 'users', 'teams']
  const ROOT_PASSWORD = 'root password 1'
  // Not ASCII: Basic credentials are sent as UTF-8 (RFC 7617), as the server reads them.
  const ALICE_PASSWORD = 'pässwörd ✓ 2'
  let app: TestApp
  let server: http.Server
  let baseUrl: string
  let root: Row
  let alice: Row
  /** The Authorization header of every request a client sent, in order. */
  let sent: Array<string | null>
  const recording: typeof fetch = (input, init) => {
    sent.push(new Headers(init?.headers).get('authorization'))
    return fetch(input, init)
  }
  const as = (credentials: Credentials | undefined) => createClient<Resources, Actions>({ baseUrl, actions: ACTIONS, credentials, fetch: recording })
  const basic = (username: string, password: string) => `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`

  before(async function () {
    this.timeout(120_000)
    app = await testApp({ plugins })
    server = http.createServer(app.engine.app().callback())
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`
  })
  after(async () => {
    await new Promise((resolve) => server.close(resolve))
    await resetTables(app.db, IDENTITY_TABLES)
  })
  beforeEach(async function () {
    this.timeout(30_000) // two Argon2id hashes
    await resetTables(app.db, IDENTITY_TABLES)
    sent = []
    // Server code (no identity): the services, as a host or `npm run user` creates users.
    const team = await app.engine.service('team').create({ name: 'qa' })
    root = await app.engine.service('user').create({ name: 'root', password: ROOT_PASSWORD, role: 'super_admin', team: team.id })
    alice = await app.engine.service('user').create({ name: 'alice', email: 'alice@example.com', password: ALICE_PASSWORD, team: team.id })
  })

  it('Basic credentials go with every request: resources, actions, reads and writes', async () => {
    const dci = as({ basic: { username: 'root', password: ROOT_PASSWORD } })
    expect((await dci.action('get_identity', { path: {} })).identity).to.include({ id: root.id, name: 'root', kind: 'user', role: 'super_admin' })
    const type = await dci.componenttypes.create({ name: 'rhel' })
    const component = await dci.components.create({ name: 'RHEL-9', componenttype: type.id })
    expect((await dci.components.list({ where: { componenttype: type.id } })).items.map((c) => c.id)).to.deep.equal([component.id])
    expect((await dci.components.get(component.id)).name).to.equal('RHEL-9')
    const { etag } = await dci.components.update(component.id, { name: 'RHEL-9.1' }, { etag: component.etag })
    await dci.components.remove(component.id, { etag })
    expect(sent).to.have.length(7)
    expect(new Set(sent)).to.deep.equal(new Set([basic('root', ROOT_PASSWORD)]))
    // The writes were made as root: the audit trail names it.
    const audits = await dci.audits.list({ where: { resource: 'component' }, sort: ['created_at'] })
    expect(audits.items.map((a) => [a.action, a.identity_name])).to.deep.equal([
      ['create', 'root'],
      ['update', 'root'],
      ['delete', 'root'],
    ])
  })

  it('Basic takes the email as login name, and a password that is not ASCII, sent as UTF-8', async () => {
    const dci = as({ basic: { username: 'alice@example.com', password: ALICE_PASSWORD } })
    expect((await dci.action('get_identity', { path: {} })).identity).to.include({ id: alice.id, name: 'alice', role: 'user' })
    expect(sent).to.deep.equal([basic('alice@example.com', ALICE_PASSWORD)])
  })

  it('Bearer: an API key made by the action authenticates every request; listed without its token; revoked, it answers 401', async () => {
    const admin = as({ basic: { username: 'root', password: ROOT_PASSWORD } })
    const { apikey } = await admin.action('create_user_apikey', { path: { id: alice.id }, body: { name: 'ci' } })
    expect(apikey.token).to.match(/^dci_/)
    sent = []
    const dci = as({ bearer: apikey.token })
    expect((await dci.action('get_identity', { path: {} })).identity).to.include({ id: alice.id, kind: 'user', role: 'user' })
    expect((await dci.componenttypes.list()).count).to.equal(0)
    const listed = await dci.action('list_user_apikeys', { path: { id: alice.id } })
    expect(listed.apikeys.map((k) => k.id)).to.deep.equal([apikey.id])
    expect(listed.apikeys[0]).to.not.have.property('token')
    expect(sent).to.deep.equal(Array(3).fill(`Bearer ${apikey.token}`))

    await dci.action('delete_user_apikey', { path: { id: alice.id, keyid: apikey.id } })
    const err = (await rejection(dci.componenttypes.list())) as ApiRequestError
    expect(err).to.be.instanceOf(ApiRequestError)
    expect(err.status).to.equal(401)
    expect(err.code).to.equal('unauthorized')
  })

  it('a function gives the header of each request, called before each one; undefined sends none', async () => {
    const admin = as({ basic: { username: 'root', password: ROOT_PASSWORD } })
    const { apikey } = await admin.action('create_user_apikey', { path: { id: root.id }, body: {} })
    sent = []
    let calls = 0
    let header: string | undefined
    const dci = as(async () => {
      calls += 1
      return header
    })
    const missing = (await rejection(dci.componenttypes.list())) as ApiRequestError
    expect(missing.status).to.equal(401)
    expect(missing.code).to.equal('unauthorized')
    header = `Bearer ${apikey.token}`
    const type = await dci.componenttypes.create({ name: 'rhel' })
    header = basic('root', ROOT_PASSWORD)
    expect((await dci.componenttypes.get(type.id)).name).to.equal('rhel')
    expect(calls).to.equal(3)
    expect(sent).to.deep.equal([null, `Bearer ${apikey.token}`, basic('root', ROOT_PASSWORD)])
  })

  it('401 and 403 keep their typed code: no credentials, a wrong password, an unknown key; a role that may not write', async () => {
    const cases: Array<[Credentials | undefined, number, string]> = [
      [undefined, 401, 'unauthorized'],
      [{ basic: { username: 'root', password: 'wrong password' } }, 401, 'unauthorized'],
      [{ basic: { username: 'nobody', password: ROOT_PASSWORD } }, 401, 'unauthorized'],
      [{ bearer: 'dci_unknownunknownunknownunknownunknownunknown' }, 401, 'unauthorized'],
      [{ basic: { username: 'alice', password: ALICE_PASSWORD } }, 403, 'forbidden'],
    ]
    for (const [credentials, status, code] of cases) {
      const err = (await rejection(as(credentials).componenttypes.create({ name: 'rhel' }))) as ApiRequestError
      const label = JSON.stringify(credentials)
      expect(err, label).to.be.instanceOf(ApiRequestError)
      expect(err.status, label).to.equal(status)
      expect(err.code, label).to.equal(code)
      expect(err.body.code, label).to.equal(code)
      expect(err.request).to.equal('POST /componenttypes')
    }
    expect((await app.engine.service('componenttype').find()).items).to.deep.equal([])
  })

  it('credentials that cannot be sent are refused when the client is made, before any request', async () => {
    const refused: Array<[string, () => unknown]> = [
      ['a username with a colon', () => as({ basic: { username: 'ro:ot', password: 'x' } })],
      ['an empty username', () => as({ basic: { username: '', password: 'x' } })],
      ['a token with a line break', () => as({ bearer: 'dci_abc\n' })],
      ['a token with its scheme', () => as({ bearer: 'Bearer dci_abc' })],
      ['an empty token', () => as({ bearer: '' })],
      ['no known form', () => as({ token: 'x' } as unknown as Credentials)],
      [
        'credentials and an Authorization header',
        () => createClient({ baseUrl, credentials: { bearer: 'dci_abc' }, headers: { authorization: 'Basic eDp5' } }),
      ],
    ]
    for (const [label, make] of refused) expect(make, label).to.throw(TypeError)
    const odd = as((() => 42) as unknown as () => string)
    expect(await rejection(odd.componenttypes.list())).to.be.instanceOf(TypeError)
    expect(sent).to.deep.equal([])
  })
})

/** Runs examples/client.ts as a user would, and answers its exit code and output lines. */
async function runExample(env: Record<string, string>): Promise<{ code: number | null; lines: string[]; stderr: string }> {
  const child = spawn(process.execPath, ['--require', 'tsx/cjs', 'examples/client.ts'], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => (stdout += chunk))
  child.stderr.on('data', (chunk) => (stderr += chunk))
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  return { code, lines: stdout.trim().split('\n'), stderr }
}

/** The lines every run of the example prints after `server: <url>`. */
function expectExampleRun(lines: string[]): void {
  const [, type] = /^created componenttype (rhel-[0-9a-f]{6})$/.exec(lines[1]) ?? []
  expect(type, lines[1]).to.be.a('string')
  expect(lines.slice(2)).to.deep.equal([
    'created components RHEL-9.3, RHEL-9.4',
    `newest rhel component: RHEL-9.4 (2 in all), type ${type}`,
    'renamed RHEL-9.4 to RHEL-9.4.1, new etag differs: true',
    'a stale etag is refused: 412 PreconditionFailedError',
    'deleted 2 components and 1 componenttype',
  ])
}

describe('examples/client.ts run as a program', () => {
  it('starts its own server, runs every client call and exits 0', async function () {
    this.timeout(120_000)
    const { code, lines, stderr } = await runExample({ DATABASE_URL: '', DCI_URL: '', DCI_PASSWORD: '', DCI_TOKEN: '' })
    expect(code, stderr).to.equal(0)
    expect(lines[0]).to.match(/^server: http:\/\/127\.0\.0\.1:\d+\/api\/v1$/)
    expectExampleRun(lines)
  })

  it('with DCI_URL and DCI_PASSWORD, runs against that server (identity on) as admin, exits 0 and leaves no row behind', async function () {
    this.timeout(120_000)
    const app = await serverApp()
    const server = http.createServer(app.engine.app().callback())
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`
      const { code, lines, stderr } = await runExample({ DCI_URL: url, DCI_USER: 'admin', DCI_PASSWORD: ADMIN_PASSWORD, DCI_TOKEN: '' })
      expect(code, stderr).to.equal(0)
      expect(lines[0]).to.equal(`server: ${url}`)
      expectExampleRun(lines)
      for (const plural of ['componenttypes', 'components']) {
        expect((await app.http.get(`/api/v1/${plural}`).set('Authorization', ADMIN_AUTH).expect(200)).body._meta.count, plural).to.equal(0)
      }
    } finally {
      await new Promise((resolve) => server.close(resolve))
      await resetTables(app.db)
    }
  })

  it("with DCI_URL and DCI_TOKEN, runs against a server with identity as the key's user", async function () {
    this.timeout(120_000)
    const tables = ['components', 'componenttypes', 'remotecis', 'apikeys', 'audits', 'users', 'teams']
    const app = await testApp({ plugins })
    await resetTables(app.db, tables)
    const team = await app.engine.service('team').create({ name: 'admin' })
    const admin = await app.engine.service('user').create({ name: 'ci-admin', password: 'a long password', role: 'super_admin', team: team.id })
    // The action in-process, as server code (no identity): the token is in its answer only.
    const { apikey } = (await app.engine.action('create_user_apikey').call({ path: { id: admin.id }, body: { name: 'example' } })) as {
      apikey: { token: string }
    }
    const server = http.createServer(app.engine.app().callback())
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`
      const { code, lines, stderr } = await runExample({ DCI_URL: url, DCI_TOKEN: apikey.token })
      expect(code, stderr).to.equal(0)
      expectExampleRun(lines)
      const audits = (await app.engine.service('audit').find({ query: { where: { identity_name: 'ci-admin' }, limit: 100 } })).items
      expect(audits.map((a) => a.action).sort()).to.deep.equal(['create', 'create', 'create', 'delete', 'delete', 'delete', 'update'])
      const failed = await runExample({ DCI_URL: url, DCI_USER: 'ci-admin', DCI_PASSWORD: 'not the password' })
      expect(failed.code).to.equal(1)
      expect(failed.stderr).to.include('401').and.include('unauthorized')
    } finally {
      await new Promise((resolve) => server.close(resolve))
      await resetTables(app.db, tables)
    }
  })
})
