import crypto from 'node:crypto'
import type { Knex } from 'knex'
import supertest from 'supertest'
import { ApiError, createEngine, type Engine, type Params, type Plugin, type RawQuery, type Row } from '../../core'
import type { Caller } from '../../core/identity'
import { plugins as serverPlugins } from '../../resources'
import { SCHEMAS, testDatabase } from '../support'

/** An answer as both transports give it: status, body (parsed JSON), headers (lowercase names). */
export interface Answer {
  status: number
  body: any
  headers: Record<string, string>
  text: string
}

export interface CallOptions {
  body?: unknown
  /** Request headers: `If-Match`, `Prefer`, `X-Request-Id`... */
  headers?: Record<string, string>
}

/**
 * One caller's way into the API: `(method, path, options)` with a path under the engine's prefix
 * (query string included). Over HTTP it carries the caller's credentials; through the services it
 * carries the caller's identity, as the authenticator made it.
 */
export type Client = (method: string, path: string, options?: CallOptions) => Promise<Answer>

export type Transport = 'http' | 'services'

/** A supertest client whose requests carry `authorization` (none: anonymous). */
export function httpClient(http: ReturnType<typeof supertest>, authorization?: string): Client {
  return async (method, path, options = {}) => {
    const verb = method.toLowerCase() as 'get' | 'post' | 'put' | 'delete' | 'head' | 'patch'
    let req = http[verb](path)
    if (authorization) req = req.set('Authorization', authorization)
    for (const [name, value] of Object.entries(options.headers ?? {})) req = req.set(name, value)
    if (options.body !== undefined) req = req.send(options.body as object)
    const res = await req
    return { status: res.status, body: res.body, headers: res.headers as Record<string, string>, text: res.text }
  }
}

/** The actions of an engine as routes: method, path pattern segments, name (from its OpenAPI document). */
function actionRoutes(engine: Engine): Array<{ method: string; segments: string[]; name: string }> {
  const routes: Array<{ method: string; segments: string[]; name: string }> = []
  for (const [path, item] of Object.entries(engine.openapi().paths)) {
    for (const [method, operation] of Object.entries(item as Record<string, { operationId?: string }>)) {
      const name = operation?.operationId
      if (!name) continue
      try {
        engine.action(name)
      } catch {
        continue
      }
      routes.push({ method: method.toUpperCase(), segments: path.split('/').filter(Boolean), name })
    }
  }
  return routes
}

/** The answer as the wire would carry it: JSON (dates as strings), no body on a 204. */
function respond(status: number, body: unknown, headers: Record<string, string> = {}): Answer {
  const text = status === 204 || body === undefined ? '' : JSON.stringify(body)
  return { status, body: text ? JSON.parse(text) : {}, headers, text }
}

/**
 * A client that never touches HTTP: each request is mapped to the in-process call of the same
 * meaning, made with `params` (the caller's identity): `GET /<plural>` -> `service.find`,
 * `PUT /<plural>/<id>` with `If-Match` -> `service.update` with `ifMatch`..., an action's route ->
 * `engine.action(name).call(...)`. `X-Request-Id` becomes `params.requestId`. Errors thrown as
 * {@link ApiError} become their status and body.
 */
export function serviceClient(engine: Engine, params: Params): Client {
  const routes = actionRoutes(engine)
  return async (method, path, options = {}) => {
    const url = new URL(path, 'http://in-process')
    const query: RawQuery = {}
    for (const [key, value] of url.searchParams) {
      const seen = query[key]
      query[key] = seen === undefined ? value : [...(Array.isArray(seen) ? seen : [seen]), value]
    }
    const headers = Object.fromEntries(Object.entries(options.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]))
    const call: Params = { ...params, ...(headers['x-request-id'] ? { requestId: headers['x-request-id'] } : {}) }
    // Path segments as the router gives them to routes: URL-decoded.
    const segments = url.pathname.slice(engine.prefix.length).split('/').filter(Boolean).map(decodeURIComponent)
    try {
      const route = routes.find(
        (r) => r.method === method && r.segments.length === segments.length && r.segments.every((s, i) => s.startsWith('{') || s === segments[i]),
      )
      if (route) {
        const action = engine.action(route.name)
        const pathParams = Object.fromEntries(route.segments.flatMap((s, i) => (s.startsWith('{') ? [[s.slice(1, -1), segments[i]]] : [])))
        const result = await action.call({ path: pathParams, query, body: options.body }, call)
        if (action.listKey) {
          const page = result as { items: Row[]; meta: unknown }
          return respond(200, { [action.listKey]: page.items, _meta: page.meta })
        }
        return respond(action.definition.status ?? 200, result ?? {})
      }
      const [plural, id, ...rest] = segments
      const resource = [...engine.resources.values()].find((r) => r.plural === plural)
      if (!resource || rest.length) throw new Error(`the service client maps no route ${method} ${path}`)
      const service = resource.service
      const conditional = { ifMatch: headers['if-match'], ...(headers['if-none-match'] ? { ifNoneMatch: headers['if-none-match'] } : {}) }
      if (id === undefined && method === 'GET') {
        const page = await service.find({ ...call, query })
        return respond(200, { [plural]: page.items, _meta: page.meta })
      }
      if (id === undefined && method === 'POST') {
        const row = await service.create(options.body as Record<string, unknown>, call)
        return respond(201, { [resource.name]: row }, { etag: `"${row.etag}"` })
      }
      if (id !== undefined && method === 'GET') {
        const row = await service.get(id, { ...call, query })
        return respond(200, { [resource.name]: row }, { etag: `"${row.etag}"` })
      }
      if (id !== undefined && method === 'PUT') {
        const row = await service.update(id, (options.body ?? {}) as Record<string, unknown>, { ...call, ...conditional })
        const represent = /\breturn=representation\b/.test(headers.prefer ?? '')
        return respond(represent ? 200 : 204, represent ? { [resource.name]: row } : undefined, { etag: `"${row.etag}"` })
      }
      if (id !== undefined && method === 'DELETE') {
        await service.remove(id, { ...call, ...conditional })
        return respond(204, undefined)
      }
      throw new Error(`the service client maps no route ${method} ${path}`)
    } catch (err) {
      if (err instanceof ApiError) return respond(err.status, err.toJSON())
      throw err
    }
  }
}

/** The callers of the tests: a super_admin, an admin and a user in each of two teams, a remoteci of each team. */
export const MEMBERS = ['super', 'adminA', 'userA', 'adminB', 'userB'] as const
export type MemberKey = (typeof MEMBERS)[number]

/** One user or remoteci of the world, with its credentials and its identity. */
export interface Member {
  kind: 'user' | 'remoteci'
  row: Row
  /** A user's password (plain), for Basic. */
  password?: string
  /** `Basic ...` for users. */
  basic?: string
  /** `Bearer dci_...`: an API key of this user or remoteci. */
  bearer: string
  /** The API key's id. */
  keyId: string
  /** What `GET /identity` answers for it. */
  identity: Caller
}

/** Two teams, their users and remotecis, on one engine with the server's plugins. */
export interface World {
  engine: Engine
  db: Knex
  http: ReturnType<typeof supertest>
  teams: { A: Row; B: Row }
  users: Record<MemberKey, Member>
  remotecis: { A: Member; B: Member }
}

/** Every table the server's engine serves, plus the API keys (truncated before a world is made). */
export const IDENTITY_TABLES = ['components', 'componenttypes', 'remotecis', 'users', 'audits', 'apikeys', 'teams']

/** Empties the server's tables. */
export async function resetIdentityTables(db: Knex): Promise<void> {
  await db.raw(`TRUNCATE ${IDENTITY_TABLES.map((t) => `"${t}"`).join(', ')} CASCADE`)
}

/**
 * An engine with the server's plugins (identity on) on the test database, emptied, with teams A and
 * B; users `super` (super_admin of team A), `adminA`, `userA`, `adminB`, `userB` (each with a password
 * and an API key); remotecis A and B (each with an API key). `database` (default: the test database)
 * must be migrated. Made by server code (no identity), so
 * the passwords are hashed by the identity plugin's hooks (about 50 ms each: make a world once per file).
 */
export async function makeWorld(extraPlugins: Plugin[] = [], database?: Knex): Promise<World> {
  const db = database ?? (await testDatabase())
  await resetIdentityTables(db)
  const engine = await createEngine({ db, schemasDir: SCHEMAS, plugins: [...serverPlugins, ...extraPlugins] })
  const http = supertest(engine.app().callback())
  const team = (name: string) => engine.service('team').create({ name })
  const teams = { A: await team('team-a'), B: await team('team-b') }
  const key = async (holder: 'user' | 'remoteci', id: string) => {
    const made = (await engine.action(`create_${holder}_apikey`).call({ path: { id }, body: { name: 'tests' } })) as { apikey: { id: string; token: string } }
    return { bearer: `Bearer ${made.apikey.token}`, keyId: made.apikey.id }
  }
  const identityOf = async (authorization: string) => {
    const res = await http.get('/api/v1/identity').set('Authorization', authorization)
    if (res.status !== 200) throw new Error(`GET /identity answered ${res.status}: ${res.text}`)
    return res.body.identity as Caller
  }
  const specs: Record<MemberKey, { role: string; team: Row }> = {
    super: { role: 'super_admin', team: teams.A },
    adminA: { role: 'admin', team: teams.A },
    userA: { role: 'user', team: teams.A },
    adminB: { role: 'admin', team: teams.B },
    userB: { role: 'user', team: teams.B },
  }
  const users = {} as Record<MemberKey, Member>
  await Promise.all(
    MEMBERS.map(async (name) => {
      const password = `pw-${name}-${crypto.randomBytes(9).toString('base64url')}`
      const row = await engine
        .service('user')
        .create({ name, email: `${name.toLowerCase()}@example.com`, password, role: specs[name].role, team: specs[name].team.id })
      const basic = `Basic ${Buffer.from(`${name}:${password}`).toString('base64')}`
      users[name] = { kind: 'user', row, password, basic, ...(await key('user', row.id)), identity: await identityOf(basic) }
    }),
  )
  const remoteci = async (name: string, owner: Row): Promise<Member> => {
    const row = await engine.service('remoteci').create({ name, team: owner.id })
    const credentials = await key('remoteci', row.id)
    return { kind: 'remoteci', row, ...credentials, identity: await identityOf(credentials.bearer) }
  }
  const remotecis = { A: await remoteci('lab-a', teams.A), B: await remoteci('lab-b', teams.B) }
  return { engine, db, http, teams, users, remotecis }
}

/** The callers of the access matrix, by role: users of team A, and the remoteci of team A. */
export const ROLES = ['super_admin', 'admin', 'user', 'remoteci'] as const
export type Role = (typeof ROLES)[number]

export function memberOf(world: World, role: Role): Member {
  switch (role) {
    case 'super_admin':
      return world.users.super
    case 'admin':
      return world.users.adminA
    case 'user':
      return world.users.userA
    case 'remoteci':
      return world.remotecis.A
  }
}

/**
 * A member's client on a transport: HTTP with Basic (users) or Bearer (remotecis, or `bearer: true`),
 * or the services with the identity `GET /identity` answered.
 */
export function clientOf(world: World, member: Member, transport: Transport, options: { bearer?: boolean } = {}): Client {
  if (transport === 'services') return serviceClient(world.engine, { identity: { ...member.identity } })
  return httpClient(world.http, options.bearer || !member.basic ? member.bearer : member.basic)
}
