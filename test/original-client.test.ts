import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import type { Knex } from 'knex'
import { migrateLatest } from '../core'
import { expectError } from './helpers/errors'
import { ADMIN_AUTH, freshDatabase, MIGRATIONS, serverApp, type ServerApp } from './support'

/**
 * The 2015 python-dciclient speaks through python-requests: these headers, JSON written by Python's
 * `json.dumps` (`", "` and `": "` separators), Basic credentials, and `If-match` (sic) set to the
 * `etag` field of the body it read last, unquoted.
 */
const PYTHON_HEADERS = {
  'User-Agent': 'python-requests/2.7.0 CPython/2.7.5 Linux/3.10.0',
  Accept: '*/*',
  'Accept-Encoding': 'gzip, deflate',
  Authorization: ADMIN_AUTH,
}

/** `json.dumps(value)` as Python 2.7 writes it. */
function pythonDumps(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pythonDumps).join(', ')}]`
  if (value && typeof value === 'object') {
    return `{${Object.entries(value)
      .map(([k, v]) => `${JSON.stringify(k)}: ${pythonDumps(v)}`)
      .join(', ')}}`
  }
  return JSON.stringify(value)
}

/** The 2015 component fields, as a feeder sent them (the DCI feeders of the time, for a git commit). */
const FEEDER_FIELDS = {
  canonical_project_name: 'OpenStack Nova',
  data: { component_type: 'git_commit', branch: 'master', tags: ['rc1'] },
  sha: '2c5b1f8a4dbe6a2f1c1f1a0b9d1e7b3c2a9f0e11',
  title: 'Fix the scheduler filters',
  message: 'Fix the scheduler filters\n\nThe filters ignored\tdisabled hosts.\n',
  url: 'https://github.com/openstack/nova/commit/2c5b1f8a4dbe6a2f1c1f1a0b9d1e7b3c2a9f0e11',
  git: 'https://github.com/openstack/nova.git',
  ref: 'refs/heads/master',
}

describe('the original 2015 client (python-dciclient) replayed', function () {
  this.timeout(180_000) // the embedded database starts slowly on a loaded machine
  let app: ServerApp

  /** One request as python-requests sends it; `json` is the body, `ifMatch` the unquoted etag. */
  const send = (method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE', url: string, options: { json?: unknown; ifMatch?: string } = {}) => {
    const verb = method.toLowerCase() as 'get' | 'head' | 'post' | 'put' | 'delete'
    let req = app.http[verb](url).set(PYTHON_HEADERS)
    if (options.ifMatch !== undefined) req = req.set('If-match', options.ifMatch)
    if (options.json !== undefined) req = req.set('Content-Type', 'application/json').send(pythonDumps(options.json))
    return req
  }

  before(async () => {
    app = await serverApp()
  })
  beforeEach(() => app.reset())

  it('componenttypes: create, list, show, update and delete, each write with If-match copied from the etag of the body read last', async () => {
    const created = await send('POST', '/api/v1/componenttypes', { json: { name: 'git_commit' } }).expect(201)
    const type = created.body.componenttype
    expect(type).to.include({ name: 'git_commit' })
    expect(created.headers.etag).to.equal(`"${type.etag}"`)

    const listed = await send('GET', '/api/v1/componenttypes').expect(200)
    expect(listed.body).to.deep.equal({ componenttypes: [type], _meta: { count: 1 } })
    const shown = await send('GET', `/api/v1/componenttypes/${type.id}`).expect(200)
    expect(shown.body).to.deep.equal({ componenttype: type })

    const unconditional = await send('PUT', `/api/v1/componenttypes/${type.id}`, { json: { name: 'puddle' } }).expect(412)
    expect(unconditional.body).to.deep.include({ message: "'If-match' header must be provided", status_code: 412, payload: {} })
    await send('PUT', `/api/v1/componenttypes/${type.id}`, { json: { name: 'puddle' }, ifMatch: shown.body.componenttype.etag }).expect(204)
    const updated = (await send('GET', `/api/v1/componenttypes/${type.id}`).expect(200)).body.componenttype
    expect(updated).to.include({ id: type.id, name: 'puddle' })
    expect(updated.etag).to.not.equal(type.etag)

    await send('DELETE', `/api/v1/componenttypes/${type.id}`, { ifMatch: updated.etag }).expect(204)
    await send('GET', `/api/v1/componenttypes/${type.id}`).expect(404)
    expect((await send('GET', '/api/v1/componenttypes').expect(200)).body).to.deep.equal({ componenttypes: [], _meta: { count: 0 } })
  })

  it('components with the 2015 fields: create, list where sha, show with embed=componenttype, update and delete', async () => {
    const type = (await send('POST', '/api/v1/componenttypes', { json: { name: 'git_commit' } }).expect(201)).body.componenttype
    const created = await send('POST', '/api/v1/components', { json: { name: 'nova 2c5b1f8', componenttype: type.id, ...FEEDER_FIELDS } }).expect(201)
    const component = created.body.component
    expect(component).to.deep.include({ name: 'nova 2c5b1f8', componenttype: type.id, ...FEEDER_FIELDS })

    const bySha = await send('GET', `/api/v1/components?where=sha:${FEEDER_FIELDS.sha}`).expect(200)
    expect(bySha.body).to.deep.equal({ components: [component], _meta: { count: 1 } })
    const byProject = await send('GET', `/api/v1/components?where=canonical_project_name:${encodeURIComponent(FEEDER_FIELDS.canonical_project_name)}`).expect(
      200,
    )
    expect(byProject.body.components.map((c: { id: string }) => c.id)).to.deep.equal([component.id])

    const embedded = (await send('GET', `/api/v1/components/${component.id}?embed=componenttype`).expect(200)).body.component
    expect(embedded).to.deep.equal({ ...component, componenttype: type })
    const listedEmbedded = (await send('GET', '/api/v1/components?embed=componenttype').expect(200)).body.components
    expect(listedEmbedded).to.deep.equal([{ ...component, componenttype: type }])

    // The client copies the etag of the embedded answer's own row: it is the row's, unquoted.
    await send('PUT', `/api/v1/components/${component.id}`, { json: { title: 'Fix the filters', data: {} }, ifMatch: embedded.etag }).expect(204)
    const updated = (await send('GET', `/api/v1/components/${component.id}`).expect(200)).body.component
    expect(updated).to.deep.include({ title: 'Fix the filters', data: {}, sha: FEEDER_FIELDS.sha })
    await send('DELETE', `/api/v1/components/${component.id}`, { ifMatch: updated.etag }).expect(204)
    await send('GET', `/api/v1/components/${component.id}`).expect(404)
  })

  it('lookup by name: a componenttype and a team are shown, updated and deleted by name; an unknown name is a 404', async () => {
    const type = (await send('POST', '/api/v1/componenttypes', { json: { name: 'rhel' } }).expect(201)).body.componenttype
    const shown = (await send('GET', '/api/v1/componenttypes/rhel').expect(200)).body.componenttype
    expect(shown).to.deep.equal(type)
    await send('PUT', '/api/v1/componenttypes/rhel', { json: { name: 'RHEL' }, ifMatch: shown.etag }).expect(204)
    expectError(await send('GET', '/api/v1/componenttypes/rhel'), 404)
    const renamed = (await send('GET', '/api/v1/componenttypes/RHEL').expect(200)).body.componenttype
    expect(renamed.id).to.equal(type.id)
    await send('DELETE', '/api/v1/componenttypes/RHEL', { ifMatch: renamed.etag }).expect(204)

    const team = (await send('POST', '/api/v1/teams', { json: { name: 'partner one' } }).expect(201)).body.team
    const byName = (await send('GET', '/api/v1/teams/partner%20one').expect(200)).body.team
    expect(byName).to.deep.equal(team)
    await send('DELETE', '/api/v1/teams/partner%20one', { ifMatch: team.etag }).expect(204)
    expectError(await send('GET', '/api/v1/teams/partner%20one'), 404)
  })

  it('remotecis: created without data, data answers {}; a team is named by its id', async () => {
    const team = (await send('POST', '/api/v1/teams', { json: { name: 'partner' } }).expect(201)).body.team
    const remoteci = (await send('POST', '/api/v1/remotecis', { json: { name: 'lab-1', team: team.id } }).expect(201)).body.remoteci
    expect(remoteci.data).to.deep.equal({})
    expect((await send('GET', `/api/v1/remotecis/${remoteci.id}`).expect(200)).body.remoteci.data).to.deep.equal({})
  })

  it('a stale If-match answers 412 (the original server said 409) and changes nothing', async () => {
    const type = (await send('POST', '/api/v1/componenttypes', { json: { name: 'rhel' } }).expect(201)).body.componenttype
    await send('PUT', `/api/v1/componenttypes/${type.id}`, { json: { name: 'fedora' }, ifMatch: type.etag }).expect(204)
    const current = (await send('GET', `/api/v1/componenttypes/${type.id}`).expect(200)).body.componenttype
    expectError(await send('PUT', `/api/v1/componenttypes/${type.id}`, { json: { name: 'centos' }, ifMatch: type.etag }), 412)
    expectError(await send('DELETE', `/api/v1/componenttypes/${type.id}`, { ifMatch: type.etag }), 412)
    expect((await send('GET', `/api/v1/componenttypes/${type.id}`).expect(200)).body.componenttype).to.deep.equal(current)
  })

  it('the pre-v1 routes (/api/componenttypes) are not served: 404', async () => {
    await send('GET', '/api/componenttypes').expect(404)
    await send('POST', '/api/componenttypes', { json: { name: 'rhel' } }).expect(404)
    expect((await send('GET', '/api/v1/componenttypes').expect(200)).body._meta).to.deep.equal({ count: 0 })
  })

  // The `_id` names of relations (componenttype_id, team_id): x-alias on every relation.
  describe('`<relation>_id` names on input and output', () => {
    it('a component is created with componenttype_id and answers both componenttype and componenttype_id', async () => {
      const type = (await send('POST', '/api/v1/componenttypes', { json: { name: 'git_commit' } }).expect(201)).body.componenttype
      const component = (await send('POST', '/api/v1/components', { json: { name: 'nova', componenttype_id: type.id, ...FEEDER_FIELDS } }).expect(201)).body
        .component
      expect(component).to.deep.include({ componenttype: type.id, componenttype_id: type.id })
      const listed = (await send('GET', `/api/v1/components?where=componenttype_id:${type.id}`).expect(200)).body.components
      expect(listed.map((c: { id: string }) => c.id)).to.deep.equal([component.id])
      const embedded = (await send('GET', `/api/v1/components/${component.id}?embed=componenttype`).expect(200)).body.component
      expect(embedded.componenttype).to.deep.equal(type)
      expect(embedded.componenttype_id).to.equal(type.id)
      await send('PUT', `/api/v1/components/${component.id}`, { json: { componenttype_id: type.id, title: 'again' }, ifMatch: component.etag }).expect(204)
    })

    it('a remoteci is created with team_id and answers both team and team_id', async () => {
      const team = (await send('POST', '/api/v1/teams', { json: { name: 'partner' } }).expect(201)).body.team
      const remoteci = (await send('POST', '/api/v1/remotecis', { json: { name: 'lab-1', team_id: team.id } }).expect(201)).body.remoteci
      expect(remoteci).to.deep.include({ team: team.id, team_id: team.id, data: {} })
    })
  })
})

describe('the 2015 component fields and the data defaults', function () {
  this.timeout(180_000)
  let app: ServerApp
  let type: { id: string }

  before(async () => {
    app = await serverApp()
  })
  beforeEach(async () => {
    await app.reset()
    type = (await app.http.post('/api/v1/componenttypes').set('Authorization', ADMIN_AUTH).send({ name: 'git_commit' }).expect(201)).body.componenttype
  })

  const post = (url: string, body: object) => app.http.post(url).set('Authorization', ADMIN_AUTH).send(body)

  it('every field is stored and answered as sent, through HTTP and the services', async () => {
    const row = (await post('/api/v1/components', { name: 'nova', componenttype: type.id, ...FEEDER_FIELDS }).expect(201)).body.component
    expect(row).to.deep.include(FEEDER_FIELDS)
    const stored = await app.db('components').where({ id: row.id }).first()
    expect(stored).to.deep.include(FEEDER_FIELDS)
    const made = await app.engine.service('component').create({ name: 'nova 2', componenttype: type.id, ...FEEDER_FIELDS })
    expect(made).to.deep.include(FEEDER_FIELDS)
  })

  it('url must be a URI: POST and PUT with another string answer 400 naming url, and change nothing', async () => {
    for (const url of ['github.com/openstack/nova', 'not a url', '']) {
      const res = await post('/api/v1/components', { name: 'nova', componenttype: type.id, url })
      expect(expectError(res, 400).payload.errors).to.have.keys('url')
    }
    expect(Number((await app.db('components').count({ n: '*' }))[0].n)).to.equal(0)
    const row = (await post('/api/v1/components', { name: 'nova', componenttype: type.id }).expect(201)).body.component
    const res = await app.http.put(`/api/v1/components/${row.id}`).set('Authorization', ADMIN_AUTH).set('If-Match', row.etag).send({ url: 'nope' })
    expect(expectError(res, 400).payload.errors).to.have.keys('url')
    expect((await app.http.get(`/api/v1/components/${row.id}`).set('Authorization', ADMIN_AUTH).expect(200)).body.component).to.deep.equal(row)
  })

  it('data is {} on components and remotecis created without it, through HTTP and the services; data sent is kept', async () => {
    const component = (await post('/api/v1/components', { name: 'nova', componenttype: type.id }).expect(201)).body.component
    expect(component.data).to.deep.equal({})
    expect(component).to.include({ sha: null, url: null, canonical_project_name: null })
    const team = (await post('/api/v1/teams', { name: 'partner' }).expect(201)).body.team
    const remoteci = (await post('/api/v1/remotecis', { name: 'lab-1', team: team.id }).expect(201)).body.remoteci
    expect(remoteci.data).to.deep.equal({})
    expect((await app.engine.service('remoteci').create({ name: 'lab-2', team: team.id })).data).to.deep.equal({})
    expect((await app.engine.service('component').create({ name: 'nova 2', componenttype: type.id })).data).to.deep.equal({})
    const kept = (await post('/api/v1/remotecis', { name: 'lab-3', team: team.id, data: { arch: 'x86_64' } }).expect(201)).body.remoteci
    expect(kept.data).to.deep.equal({ arch: 'x86_64' })
  })
})

describe('the migration of the 2015 component fields, on a database with rows', function () {
  this.timeout(180_000)
  let fresh: { db: Knex; drop(): Promise<void> }
  let olderMigrations: string

  before(async () => {
    fresh = await freshDatabase()
    // The migrations up to the one before this change, then rows as the server wrote them.
    const files = fs.readdirSync(MIGRATIONS).sort()
    const mine = files.findIndex((f) => f.includes('alter_components_remotecis'))
    expect(mine).to.be.greaterThan(0)
    olderMigrations = fs.mkdtempSync(path.join(os.tmpdir(), 'dci-migrations-'))
    for (const f of files.slice(0, mine)) fs.copyFileSync(path.join(MIGRATIONS, f), path.join(olderMigrations, f))
    await migrateLatest(fresh.db, olderMigrations)
  })
  after(async () => {
    fs.rmSync(olderMigrations, { recursive: true, force: true })
    await fresh?.drop()
  })

  it('existing remotecis with null data get {}, others keep theirs; existing components get data {}; new rows default to {}', async () => {
    const db = fresh.db
    const [team] = await db('teams').insert({ name: 'partner', etag: 'e0' }).returning('id')
    await db('remotecis').insert([
      { name: 'null-data', team: team.id, etag: 'e1' },
      { name: 'some-data', team: team.id, data: JSON.stringify({ arch: 'x86_64' }), etag: 'e2' },
    ])
    const [ct] = await db('componenttypes').insert({ name: 'git_commit', etag: 'e3' }).returning('id')
    await db('components').insert({ name: 'nova', componenttype: ct.id, etag: 'e4' })

    // This change is the next migration applied (later ones follow it).
    expect((await migrateLatest(db, MIGRATIONS))[0]).to.match(/_alter_components_remotecis$/)
    const remotecis = Object.fromEntries((await db('remotecis').select('name', 'data', 'etag')).map((r) => [r.name, r]))
    expect(remotecis['null-data'].data).to.deep.equal({})
    // A changed row gets a new ETag (the row_version trigger), so a client's cached copy is not served as current.
    expect(remotecis['null-data'].etag).to.not.equal('e1')
    expect(remotecis['some-data']).to.deep.equal({ name: 'some-data', data: { arch: 'x86_64' }, etag: 'e2' })
    expect((await db('components').first('data', 'sha', 'url')) as object).to.deep.equal({ data: {}, sha: null, url: null })

    await db('remotecis').insert({ name: 'new', team: team.id, etag: 'e5' })
    expect((await db('remotecis').where({ name: 'new' }).first('data')).data).to.deep.equal({})
    const indexes = (await db.raw("SELECT indexdef FROM pg_indexes WHERE tablename = 'components'")).rows.map((r: { indexdef: string }) => r.indexdef)
    expect(indexes.some((d: string) => /\(sha\)/.test(d))).to.equal(true)
    expect(indexes.some((d: string) => /\(canonical_project_name\)/.test(d))).to.equal(true)
  })
})
