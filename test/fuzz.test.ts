import crypto from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { expect } from 'chai'
import fc from 'fast-check'
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose'
import type { Resource } from '../core'
import { BUILTIN_ERROR_CODES } from '../client/protocol'
import { listDigest } from '../core/query/cursor'
import { serverPlugins } from '../resources'
import { RowFactory, valueFromSchema, type ApiRow } from './conformance/rows'
import { engineTables, resetTables, tableChecksums, testApp, type TestApp } from './support'

/**
 * Property-based fuzzing of the HTTP API: random and adversarial query strings, ids, bodies, headers,
 * methods and content types. Every answer must be a 4xx with the error body or a well-formed 2xx/304,
 * never a 5xx, and a rejected request must leave every table exactly as it was.
 *
 * FUZZ_RUNS sets the total number of cases (default 3000); FUZZ_SEED replays a run (printed in the
 * test names and by fast-check on failure).
 */
const TOTAL_RUNS = Number(process.env.FUZZ_RUNS ?? 3000)
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31))
const MISSING = '00000000-0000-4000-8000-000000000000'
const PROTO_KEYS = ['__proto__', 'constructor', 'prototype']

interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  text: string
}

interface Request {
  method: string
  path: string
  headers?: Record<string, string>
  body?: string | Buffer
}

/** One HTTP exchange over a keep-alive agent, with nothing between the fuzzer and the server. */
function send(port: number, agent: http.Agent, req: Request): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...req.headers }
    if (req.body !== undefined) headers['Content-Length'] = Buffer.byteLength(req.body)
    const r = http.request({ host: '127.0.0.1', port, method: req.method, path: req.path, headers, agent }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    r.on('error', reject)
    if (req.body !== undefined) r.write(req.body)
    r.end()
  })
}

/** Listens on the first free port of 5150-5159 (the ports this project's tests may use). */
async function listen(server: http.Server): Promise<number> {
  for (let port = 5150; port <= 5159; port++) {
    const ok = await new Promise<boolean>((resolve) => {
      const onError = () => resolve(false)
      server.once('error', onError)
      server.listen(port, '127.0.0.1', () => {
        server.off('error', onError)
        resolve(true)
      })
    })
    if (ok) return (server.address() as AddressInfo).port
  }
  throw new Error('no free port in 5150-5159')
}

/** Percent-encodes every UTF-8 byte of a string but unreserved ASCII (lone surrogates become U+FFFD). */
function encode(value: string): string {
  let out = ''
  for (const byte of Buffer.from(value, 'utf8')) {
    const c = String.fromCharCode(byte)
    out += /[A-Za-z0-9\-_.~]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}

/** Characters Node lets through in a header value (no CR, LF or other controls). */
const headerSafe = (s: string) => s.replace(/[^\t\x20-\x7e\x80-\xff]/g, '?')

/** The browser origin the fuzzed engine allows (CORS). */
const FUZZ_ORIGIN = 'https://app.fuzz.test'

/** Checks one answer against the contract; returns a description of the violation, or undefined. */
function violation(app: TestApp, req: Request, res: Answer): string | undefined {
  const { status } = res
  if (status >= 500) return `${status} answered`
  // Node's HTTP parser answers an over-long request line or header block itself, before any app runs.
  if (status === 431) return undefined
  const json = () => JSON.parse(res.text)
  if (status >= 400) {
    if (req.method === 'HEAD') return undefined
    let body: any
    try {
      body = json()
    } catch {
      return 'a 4xx without a JSON body'
    }
    const keys = body && typeof body === 'object' ? Object.keys(body).sort().join(',') : ''
    if (keys !== 'code,message,payload,status_code') return `error body keys are '${keys}'`
    const builtin = (BUILTIN_ERROR_CODES as Record<string, { status: number }>)[body.code]
    if (builtin?.status !== status) return `code '${body.code}' is not a built-in code of status ${status}`
    if (body.status_code !== status) return `status_code ${body.status_code} differs from HTTP ${status}`
    if (typeof body.message !== 'string' || !body.payload || typeof body.payload !== 'object' || Array.isArray(body.payload)) return 'malformed error body'
    return undefined
  }
  if (status === 304) {
    if (!['GET', 'HEAD'].includes(req.method)) return `304 to a ${req.method}`
    if (!req.headers?.['If-None-Match']) return '304 without If-None-Match'
    return res.text === '' ? undefined : '304 with a body'
  }
  if (status === 301 || status === 302) {
    // The redirects of the console and the API reference: `/` to one of them, `/console` and
    // `<prefix>/docs` to the same with a trailing slash.
    const path = req.path.split('?')[0]
    const redirected = ['GET', 'HEAD'].includes(req.method) && ['/', '/console', `${app.engine.prefix}/docs`].includes(path)
    return redirected && typeof res.headers.location === 'string' ? undefined : `${status} to ${req.method} ${path}`
  }
  if (status < 200 || status >= 300) return `unexpected status ${status}`

  const prefix = app.engine.prefix
  const path = req.path.split('?')[0]
  if (req.method === 'OPTIONS') {
    // A CORS preflight of an allowed origin is answered 204 with the allowed methods instead of Allow.
    if (status === 204)
      return res.headers['access-control-allow-methods'] && req.headers?.Origin === FUZZ_ORIGIN ? undefined : '204 to an OPTIONS that is no preflight'
    return res.headers.allow ? undefined : 'OPTIONS answer without Allow'
  }
  if (res.headers['access-control-allow-origin'] !== undefined && req.headers?.Origin !== FUZZ_ORIGIN) return 'CORS headers for an origin not allowed'
  // Health and metrics answer outside the API prefix, and so do the console's files.
  if (['/healthz', '/readyz', '/metrics'].includes(path) && ['GET', 'HEAD'].includes(req.method)) return undefined
  if (path.startsWith('/console/') && ['GET', 'HEAD'].includes(req.method)) return undefined
  // The index answers at the prefix itself too (`GET /api/v1`).
  if (path !== prefix && !path.startsWith(`${prefix}/`)) return `${status} outside the API prefix`
  const segments = path.slice(prefix.length + 1).split('/')
  while (segments.length > 1 && segments.at(-1) === '') segments.pop()
  const [first, second, third] = segments
  const resource = [...app.engine.resources.values()].find((r) => r.plural === first)
  if (!resource) return ['GET', 'HEAD'].includes(req.method) ? undefined : `${req.method} ${status} on a path of no resource`
  if (req.method === 'HEAD') return res.text === '' ? undefined : 'HEAD answered a body'
  const listOf = (r: Resource) => {
    const body = json()
    if (Object.keys(body).sort().join(',') !== ['_meta', r.plural].sort().join(',')) return `list keys ${Object.keys(body)}`
    if (!Array.isArray(body[r.plural]) || body[r.plural].length > 200) return 'list is not an array of at most 200'
    const uncounted = /[?&]count=none(&|$)/.test(req.path)
    if (uncounted ? body._meta?.count !== undefined : !Number.isInteger(body._meta?.count) || body._meta.count < 0) return `_meta.count is ${body._meta?.count}`
    if (body[r.plural].some((row: ApiRow) => typeof row?.id !== 'string' || typeof row.etag !== 'string')) return 'a listed row without id or etag'
    if (body._meta.next !== undefined && !/^[A-Za-z0-9_-]+$/.test(body._meta.next)) return `_meta.next is ${body._meta.next}`
    return res.headers.etag ? undefined : 'list without ETag'
  }
  const rowOf = (expectedId?: string) => {
    const body = json()
    const row = body?.[resource.name]
    if (Object.keys(body).join(',') !== resource.name || !row || typeof row.id !== 'string') return `detail keys ${Object.keys(body)}`
    if (expectedId !== undefined && row.id !== expectedId.toLowerCase()) return `asked ${expectedId}, got ${row.id}`
    // A detail GET with embed answers a weak ETag digesting the row's ETag and each embedded row's at
    // every depth: each path after those it implies (`a.b` embeds `a`), once each.
    const embed = req.method === 'GET' ? new URLSearchParams(req.path.split('?')[1] ?? '').get('embed') : null
    if (embed) {
      const paths = [...new Set(embed.split(',').flatMap((p) => p.split('.').map((_, i, steps) => steps.slice(0, i + 1).join('.'))))]
      const at = (path: string) => path.split('.').reduce<any>((value, step) => (value !== null && typeof value === 'object' ? value[step] : undefined), row)
      const etagAt = (path: string) => {
        const value = at(path)
        return value !== null && typeof value === 'object' ? (value.etag ?? '-') : '-'
      }
      const digest = crypto
        .createHash('sha1')
        .update([row.etag, ...paths.map(etagAt)].join(':'))
        .digest('hex')
        .slice(0, 32)
      return res.headers.etag === `W/"${digest}"` ? undefined : 'ETag header is not the weak digest of the row and its embedded rows'
    }
    return res.headers.etag === `"${row.etag}"` ? undefined : 'ETag header is not the row etag'
  }
  const decodedId = second === undefined ? undefined : safeDecode(second)
  switch (req.method) {
    case 'GET':
      if (third !== undefined) {
        const nested = [...app.engine.resources.values()].find((r) => r.plural === third)
        return nested ? listOf(nested) : `GET ${status} on ${path}`
      }
      return second === undefined ? listOf(resource) : rowOf(decodedId)
    case 'POST': {
      if (second !== undefined || status !== 201) return `POST answered ${status} on ${path}`
      const problem = rowOf() ?? storedAsSent(resource, req.body, json()[resource.name])
      if (problem) return problem
      return res.headers.location === `${prefix}/${resource.plural}/${json()[resource.name].id}` ? undefined : 'POST without Location'
    }
    case 'PUT':
      if (status === 204) return res.text === '' && res.headers.etag ? undefined : '204 PUT with a body or without ETag'
      return status === 200 ? (rowOf(decodedId) ?? storedAsSent(resource, req.body, json()[resource.name])) : `PUT answered ${status}`
    case 'DELETE':
      return status === 204 && res.text === '' ? undefined : `DELETE answered ${status}`
    default:
      return `${req.method} answered ${status}`
  }
}

/** JSON text with object keys sorted at every level (a JSON column does not keep key order). */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`
  }
  return JSON.stringify(value) ?? 'undefined'
}

/**
 * After a successful create or update that answered the row: each field the body set must be stored as
 * sent (ids compare case-insensitively, dates as instants; strings of resources with hooks may be
 * rewritten by the hook, so they are not compared).
 */
function storedAsSent(resource: Resource, sentText: string | Buffer | undefined, row: Record<string, unknown>): string | undefined {
  let sent: Record<string, unknown>
  try {
    sent = JSON.parse(String(sentText))
  } catch {
    return undefined
  }
  if (!sent || typeof sent !== 'object' || Array.isArray(sent)) return undefined
  for (const field of resource.def.fields) {
    if (!Object.hasOwn(sent, field.name)) continue
    let given = sent[field.name]
    let stored = row[field.name]
    if (field.kind === 'string' && resource.hooked.length > 0) continue
    if (field.kind === 'uuid' && typeof given === 'string') given = given.toLowerCase()
    // Text is stored in Unicode NFC.
    if (field.kind === 'string' && typeof given === 'string') given = given.normalize('NFC')
    if (field.kind === 'datetime' && typeof given === 'string' && typeof stored === 'string') {
      given = new Date(given).getTime()
      stored = new Date(stored).getTime()
    }
    if (canonical(given) !== canonical(stored))
      return `${field.name} was sent as ${canonical(given).slice(0, 120)} but stored as ${canonical(stored).slice(0, 120)}`
  }
  return undefined
}

function safeDecode(s: string): string | undefined {
  try {
    return decodeURIComponent(s)
  } catch {
    return undefined
  }
}

describe(`fuzzing the HTTP API (${TOTAL_RUNS} cases, FUZZ_SEED=${SEED})`, function () {
  this.timeout(Math.max(120_000, TOTAL_RUNS * 100))
  let app: TestApp
  let server: http.Server
  let agent: http.Agent
  let port: number
  let tables: string[]
  let resources: Resource[]
  let ids: string[]
  /** Ids of the fixture rows, by resource name. */
  let idsOf: Map<string, string[]>
  let etags: string[]
  /** The row factory of the current test (its seeds continue, so its rows never collide). */
  let factory: RowFactory
  const logged: Array<Record<string, unknown>> = []
  const protoBefore = Object.getOwnPropertyNames(Object.prototype).sort()

  /** The Authorization surface: an engine on the same database with the identity plugin, JWTs of a loopback JWKS. */
  const auth = {} as { app: TestApp; server: http.Server; port: number; jwks: http.Server; key: CryptoKey; warnings: Array<Record<string, unknown>> }
  const JWT_ISSUER = 'https://idp.fuzz.test'

  before(async function () {
    this.timeout(180_000)
    // 5xx causes are kept to be shown with the failing request, not printed thousands of times.
    // With the HTTP edge on as server.ts has it: a Host check, a CORS origin, metrics.
    app = await testApp({
      logger: { error: (details: Record<string, unknown>) => void logged.push(details), info: () => {} } as never,
      allowedHosts: ['127.0.0.1', 'localhost'],
      corsOrigins: [FUZZ_ORIGIN],
      metrics: true,
    })
    tables = engineTables(app.engine)
    resources = [...app.engine.resources.values()]
    // As server.ts: a request without Host reaches the engine (its Host check answers), not Node's bare 400.
    server = http.createServer({ requireHostHeader: false }, app.engine.app().callback())
    port = await listen(server)
    agent = new http.Agent({ keepAlive: true, maxSockets: 4 })

    const pair = await generateKeyPair('ES256')
    auth.key = pair.privateKey
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'fuzz', alg: 'ES256' }
    auth.jwks = http.createServer((_req, res) => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ keys: [jwk] }))
    })
    const jwksUrl = `http://127.0.0.1:${await listen(auth.jwks)}/jwks.json`
    auth.warnings = []
    auth.app = await testApp({
      plugins: serverPlugins({ jwt: { jwksUrl, issuer: JWT_ISSUER, audience: 'dci' } }),
      logger: {
        error: (details: Record<string, unknown>) => void logged.push(details),
        warn: (details: Record<string, unknown>) => void auth.warnings.push(details),
        info: () => {},
      } as never,
    })
    auth.server = http.createServer(auth.app.engine.app().callback())
    auth.port = await listen(auth.server)
  })
  after(async () => {
    agent?.destroy()
    for (const s of [server, auth.server, auth.jwks]) {
      s?.closeAllConnections()
      await new Promise((resolve) => (s ? s.close(resolve) : resolve(undefined)))
    }
  })
  beforeEach(async () => {
    await resetTables(app.db, tables)
    const rows = (factory = new RowFactory(app))
    const made: ApiRow[] = []
    for (const r of resources) for (let i = 0; i < 3; i++) made.push({ ...(await rows.create(r.name)), created_by: r.name })
    checksum = undefined
    idsOf = new Map(resources.map((r) => [r.name, made.filter((row) => row.created_by === r.name).map((row) => row.id)]))
    ids = made.map((r) => r.id)
    etags = made.map((r) => r.etag)
  })

  /** Sends one request, checks the answer, and that a rejected or read-only request changed no row. */
  // The checksum after one request is the one before the next: nothing else writes meanwhile.
  let checksum: Record<string, string> | undefined
  async function exchange(req: Request): Promise<Answer> {
    const before = checksum ?? (await tableChecksums(app.db, tables))
    checksum = undefined
    const res = await send(port, agent, req).catch((err: Error) => {
      throw new Error(`${err.message}\n  request: ${JSON.stringify({ ...req, body: String(req.body ?? '').slice(0, 300) }).slice(0, 2000)}`)
    })
    const problem = violation(app, req, res)
    if (problem) {
      const cause = res.status >= 500 ? `\n  logged: ${String(logged.at(-1)?.err ?? '').slice(0, 1500)}` : ''
      throw new Error(`${problem}\n  request: ${JSON.stringify(req).slice(0, 2000)}\n  answer: ${res.status} ${res.text.slice(0, 500)}${cause}`)
    }
    const after = await tableChecksums(app.db, tables)
    const readOnly = ['GET', 'HEAD', 'OPTIONS'].includes(req.method)
    if ((res.status >= 300 || readOnly) && JSON.stringify(after) !== JSON.stringify(before)) {
      throw new Error(`a ${res.status} answer to ${req.method} changed rows\n  request: ${JSON.stringify(req).slice(0, 2000)}`)
    }
    checksum = after
    return res
  }

  // Tokens that broke parsers somewhere once: SQL, quoting, encodings, numbers, JSON, prototype keys.
  const NASTY = [
    "'",
    '"',
    "';--",
    "' OR '1'='1",
    '); DROP TABLE componenttypes; --',
    '%',
    '%25',
    '%00',
    '%zz',
    '%C3%28',
    '%FF',
    '\\',
    '\\\\',
    '\u0000',
    '\u0001',
    '\u007f',
    '😀',
    '\uD800',
    '\uDFFF',
    'é',
    '\u202e',
    '\ufeff',
    ',',
    ':',
    '::',
    '-',
    '--',
    '*',
    '',
    ' ',
    '\t',
    '\n',
    ...PROTO_KEYS,
    'hasOwnProperty',
    'toString',
    '1e309',
    '-1',
    '-0',
    '0',
    '1.5',
    '0x10',
    '1e3',
    '99999999999999999999',
    '9007199254740993',
    'NaN',
    'Infinity',
    'null',
    'true',
    'false',
    '[]',
    '{}',
    '[object Object]',
    'undefined',
    'W/"x"',
    '"',
    '$1',
    '?',
    '&',
    '=',
    '#',
    '+',
    '2024-01-01T00:00:00Z',
    '2024-13-45T99:99:99Z',
    '0000-01-01T00:00:00Z',
    '9999-12-31T23:59:60Z',
    '2024-01-01T00:00:00+23:59',
    '1970-01-01T00:00:00.1234567890123Z',
    '2024-01-01 00:00:00z',
    'a'.repeat(300),
    'x'.repeat(5000),
    // A number pattern that backtracks is quadratic on these; the where value cap refuses the longest.
    `${'1'.repeat(999)}x`,
    `${'1'.repeat(1200)}x`,
    `${'9'.repeat(500)}.${'9'.repeat(400)}e`,
    MISSING,
    MISSING.toUpperCase(),
  ]

  const nasty = fc.constantFrom(...NASTY)
  /** A resource name (names keep counterexamples short; the property looks the resource up). */
  const resourceArb = () => fc.constantFrom(...resources.map((r) => r.name))
  const text = fc.oneof(
    { weight: 3, arbitrary: nasty },
    { weight: 2, arbitrary: fc.string({ maxLength: 30 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
    { weight: 2, arbitrary: fc.array(nasty, { maxLength: 4 }).map((parts) => parts.join('')) },
  )

  const fieldName = () =>
    fc.oneof(
      {
        weight: 4,
        arbitrary: fc.constantFrom(...new Set(resources.flatMap((r) => ['id', 'created_at', 'updated_at', 'etag', ...r.def.fields.map((f) => f.name)]))),
      },
      { weight: 1, arbitrary: text },
    )
  // Embed paths: names, dotted paths of two to five steps (empty steps and a fourth relation
  // included), and the valid paths of every resource with random steps after them.
  const embedPath = () => {
    const valid = [...new Set(resources.flatMap((r) => r.query.embedPaths(100) ?? []))]
    return fc.oneof(
      { weight: 3, arbitrary: fieldName() },
      { weight: 2, arbitrary: fc.array(fieldName(), { minLength: 2, maxLength: 5 }).map((steps) => steps.join('.')) },
      { weight: 2, arbitrary: fc.constantFrom(...valid) },
      { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...valid), fc.constantFrom('', '.', '..'), fieldName()).map(([p, d, f]) => `${p}.${d}${f}`) },
    )
  }
  const value = () =>
    fc.oneof({ weight: 2, arbitrary: text }, { weight: 1, arbitrary: fc.constantFrom(...ids, ...etags) }, { weight: 1, arbitrary: fc.integer().map(String) })
  const clause = () => fc.tuple(fieldName(), fc.constantFrom(':', ':', ''), value()).map(([f, c, v]) => `${f}${c}${v}`)
  const where = () =>
    fc.oneof(
      { weight: 6, arbitrary: fc.array(clause(), { minLength: 1, maxLength: 4 }).map((c) => c.join(',')) },
      // One clause many times (duplicates; over the clause cap), and many distinct clauses.
      { weight: 1, arbitrary: fc.tuple(clause(), fc.integer({ min: 2, max: 40 })).map(([c, n]) => Array.from({ length: n }, () => c).join(',')) },
      { weight: 1, arbitrary: fc.array(clause(), { minLength: 30, maxLength: 40 }).map((c) => c.join(',')) },
    )
  const sort = () =>
    fc
      .array(
        fc.tuple(fc.constantFrom('', '-', '+', '--'), fieldName()).map(([d, f]) => d + f),
        { minLength: 1, maxLength: 4 },
      )
      .map((s) => s.join(','))
  const number = () => fc.oneof(fc.nat({ max: 300 }).map(String), fc.integer().map(String), fc.double().map(String), text)
  // The query language: expressions built from its operators over known fields and relations (one
  // or two hops), with nasty values bare and quoted, mixed with broken text, cut expressions, deep
  // nesting and too many comparisons.
  const OPERATOR_NAMES = ['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'like', 'ilike', 'contains', 'not_contains', 'in', 'null']
  const queryField = () =>
    fc.oneof(
      { weight: 4, arbitrary: fieldName() },
      {
        weight: 2,
        arbitrary: fc.constantFrom('componenttype.name', 'componenttype.id', 'team.name', 'team.state', 'componenttype_id.created_at', 'team.id.x'),
      },
      { weight: 1, arbitrary: fc.tuple(fieldName(), fieldName()).map(([a, b]) => `${a}.${b}`) },
    )
  const queryValue = () =>
    fc.oneof(
      { weight: 3, arbitrary: value() },
      { weight: 2, arbitrary: value().map((v) => `"${v.replace(/["\\]/g, (c) => `\\${c}`)}"`) },
      { weight: 1, arbitrary: text.map((v) => `"${v}`) },
    )
  const comparisonText = () =>
    fc
      .tuple(
        fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...OPERATOR_NAMES) }, { weight: 1, arbitrary: text }),
        queryField(),
        fc.array(queryValue(), { maxLength: 3 }),
      )
      .map(([op, field, values]) => `${op}(${[field, ...values].join(',')})`)
  const queryExpression = () =>
    fc.letrec<{ expr: string }>((tie) => ({
      expr: fc.oneof(
        { depthSize: 'small', maxDepth: 5 },
        comparisonText(),
        fc.tuple(fc.constantFrom('and', 'or', 'AND', 'nor'), fc.array(tie('expr'), { maxLength: 3 })).map(([op, args]) => `${op}(${args.join(',')})`),
        tie('expr').map((e) => `not(${e})`),
      ),
    })).expr
  const queryText = () => {
    const expr = queryExpression()
    return fc.oneof(
      { weight: 6, arbitrary: expr },
      { weight: 1, arbitrary: text },
      { weight: 1, arbitrary: expr.chain((e) => fc.nat({ max: e.length }).map((n) => e.slice(0, n))) },
      { weight: 1, arbitrary: fc.integer({ min: 1, max: 3_000 }).map((n) => `${'not('.repeat(n)}null(name)${')'.repeat(n)}`) },
      { weight: 1, arbitrary: fc.integer({ min: 45, max: 60 }).map((n) => `or(${Array.from({ length: n }, (_, i) => `like(name,"%${i}%")`).join(',')})`) },
    )
  }
  // Keyset cursors: broken text, base64url of any JSON, and cursors of the default list of a resource
  // (so the digest matches and the values reach their checks and the SQL) holding any values.
  const defaultList = (r: Resource) => listDigest([r.def.name, [], null, null, [['created_at', 'asc']], 20])
  const cursorValue = () => fc.oneof(fc.constantFrom(...ids, ...etags, null, true, '2024-01-01T00:00:00Z', 1e308, -0), fc.jsonValue({ maxDepth: 1 }), text)
  const cursor = () =>
    fc.oneof(
      { weight: 1, arbitrary: text },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v)).toString('base64url')) },
      {
        weight: 3,
        arbitrary: fc
          .tuple(fc.constantFrom(...resources), fc.oneof(fc.nat(), fc.integer(), fc.double()), fc.array(cursorValue(), { maxLength: 3 }))
          .map(([r, position, values]) => Buffer.from(JSON.stringify([defaultList(r), position, values])).toString('base64url')),
      },
    )
  // Full-text search: words, websearch_to_tsquery's syntax (phrases, `-`, `or`) and tsquery's own
  // operators it must not read as such, nasty text, and more words than allowed.
  const searchWord = () =>
    fc.oneof(
      { weight: 3, arbitrary: value() },
      { weight: 2, arbitrary: fc.constantFrom('or', 'OR', 'and', '-', '--', '"', '""', '!', '&', '|', '<->', ':*', '(', ')', "'", '\\', 'rhel', '8.4') },
      { weight: 1, arbitrary: value().map((v) => `"${v}"`) },
      { weight: 1, arbitrary: value().map((v) => `-${v}`) },
    )
  const searchText = () =>
    fc.oneof(
      { weight: 4, arbitrary: fc.array(searchWord(), { minLength: 1, maxLength: 6 }).map((w) => w.join(' ')) },
      { weight: 2, arbitrary: text },
      { weight: 1, arbitrary: fc.integer({ min: 30, max: 40 }).map((n) => Array.from({ length: n }, (_, i) => `w${i}`).join(' or ')) },
      { weight: 1, arbitrary: fc.integer({ min: 1, max: 3_000 }).map((n) => '"a -b or '.repeat(n)) },
    )
  const parameter = () =>
    fc.oneof(
      { weight: 3, arbitrary: fc.tuple(fc.constant('where'), where()) },
      { weight: 3, arbitrary: fc.tuple(fc.constant('q'), searchText()) },
      { weight: 2, arbitrary: fc.tuple(fc.constant('sort'), sort()) },
      { weight: 2, arbitrary: fc.tuple(fc.constantFrom('limit', 'offset'), number()) },
      { weight: 3, arbitrary: fc.tuple(fc.constant('query'), queryText()) },
      { weight: 1, arbitrary: fc.tuple(fc.constant('count'), fc.oneof(fc.constantFrom('none', 'exact', 'estimate'), text)) },
      { weight: 2, arbitrary: fc.tuple(fc.constant('after'), cursor()) },
      {
        weight: 2,
        arbitrary: fc.tuple(
          fc.constant('fields'),
          fc
            .array(
              fc.oneof(
                fieldName(),
                fc.tuple(fieldName(), fieldName()).map(([a, b]) => `${a}.${b}`),
                fc.array(fieldName(), { minLength: 3, maxLength: 5 }).map((steps) => steps.join('.')),
              ),
              { maxLength: 4 },
            )
            .map((f) => f.join(',')),
        ),
      },
      {
        weight: 2,
        arbitrary: fc.tuple(
          fc.constant('embed'),
          fc.array(embedPath(), { maxLength: 3 }).map((e) => e.join(',')),
        ),
      },
      { weight: 1, arbitrary: fc.tuple(fc.oneof(text, fc.constantFrom('where[]', 'where[id]', 'limit[]', ...PROTO_KEYS)), value()) },
    )
  /** A query string: encoded pairs, sometimes raw (undecodable `%` sequences reach the server as they are). */
  const queryString = () =>
    fc.tuple(fc.array(parameter(), { maxLength: 5 }), fc.boolean()).map(([pairs, raw]) => {
      if (pairs.length === 0) return ''
      const enc = (s: string) => (raw ? s.replace(/[^\x21-\x7e]/g, (c) => encode(c)).replace(/[&#]/g, encode) : encode(s))
      return `?${pairs.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&')}`
    })
  const idSegment = () =>
    fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(...ids) },
      { weight: 1, arbitrary: fc.constantFrom(...ids).map((id) => id.toUpperCase()) },
      { weight: 1, arbitrary: fc.uuid().map(String) },
      { weight: 2, arbitrary: text.map(encode) },
      { weight: 1, arbitrary: fc.constantFrom('%', '%zz', '%C3%28', '..', '.', '%2F', '%00', `${MISSING}%00`, `${MISSING}'`) },
    )
  const etagHeader = () =>
    fc.oneof(
      { weight: 2, arbitrary: fc.constantFrom(...etags).chain((e) => fc.constantFrom(e, `"${e}"`, `W/"${e}"`, `"x", "${e}"`, `${e},${e}`)) },
      { weight: 1, arbitrary: fc.constantFrom('*', '"*"', '*, *', 'W/', 'W/""', '""', ',', ',,,', '"unterminated', 'W/"x"') },
      { weight: 1, arbitrary: fc.constant(Array.from({ length: 2000 }, (_, i) => `"${i}"`).join(',')) },
      // 16 tags (the most a list may have) and 17, the current one last.
      {
        weight: 1,
        arbitrary: fc
          .tuple(fc.constantFrom(...etags), fc.constantFrom(15, 16))
          .map(([e, n]) => [...Array.from({ length: n }, (_, i) => `"${String(i).padStart(32, '0')}"`), `"${e}"`].join(', ')),
      },
      { weight: 2, arbitrary: text.map(headerSafe) },
    )
  const jsonValue = fc.jsonValue({ maxDepth: 4 })
  const bodyObject = () =>
    fc.dictionary(
      fc.oneof({ weight: 3, arbitrary: fieldName() }, { weight: 1, arbitrary: fc.constantFrom(...PROTO_KEYS) }),
      fc.oneof(jsonValue, text, value()),
      { maxKeys: 5 },
    )
  const deep = (depth: number, array: boolean) => (array ? '['.repeat(depth) + ']'.repeat(depth) : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`)
  /** A raw request body: valid and broken JSON, wrong shapes, deep nesting, huge strings, prototype keys. */
  const rawBody = (resource: Resource) =>
    fc.oneof(
      { weight: 6, arbitrary: oddBody(resource).map((o) => JSON.stringify(o)) },
      { weight: 2, arbitrary: validBody(resource).map((o) => JSON.stringify(o)) },
      { weight: 4, arbitrary: bodyObject().map((o) => JSON.stringify(o)) },
      { weight: 3, arbitrary: fc.tuple(validBody(resource), fieldName(), fc.oneof(jsonValue, text)).map(([b, k, v]) => JSON.stringify({ ...b, [k]: v })) },
      {
        weight: 2,
        arbitrary: fc
          .tuple(validBody(resource), fc.constantFrom(...PROTO_KEYS))
          .map(([b, k]) => JSON.stringify(b).replace(/^\{/, `{"${k}":{"polluted":"yes","prototype":{"polluted":"yes"}},`)),
      },
      { weight: 1, arbitrary: jsonValue.map((v) => JSON.stringify(v)) },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          '',
          'null',
          '[]',
          '"x"',
          '1',
          'true',
          '{',
          '{"a":',
          '{"name":"\\ud800"}',
          '{"name":"\\u0000"}',
          '\ufeff{}',
          '{}garbage',
          '{"a":1,"a":2}',
        ),
      },
      { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 20, max: 5000 }), fc.boolean()).map(([d, a]) => deep(d, a)) },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          JSON.stringify({ name: 'x'.repeat(1_100_000) }),
          JSON.stringify({ name: 'é'.repeat(300) }),
          JSON.stringify({ name: 'x'.repeat(70_000) }),
        ),
      },
      { weight: 1, arbitrary: text },
    )
  /** A body valid for the resource, with relation fields pointing at fixture rows. */
  const validBody = (resource: Resource) =>
    fc.record(
      Object.fromEntries(
        resource.def.fields.map((f) => {
          if (f.relation) return [f.name, fc.constantFrom(...(idsOf.get(f.relation.resource) ?? ids))]
          return [f.name, fc.nat({ max: 10_000_000 }).map((seed) => valueFromSchema(f.schema, seed))]
        }),
      ),
    )
  /** A body of the right shape whose strings and objects are random: most are stored, and must come back as sent. */
  const oddBody = (resource: Resource) =>
    fc
      .tuple(
        validBody(resource),
        fc.record(
          Object.fromEntries(
            resource.def.fields
              .filter((f) => !f.relation && (f.kind === 'string' || f.kind === 'json'))
              .map((f) => [
                f.name,
                f.kind === 'json'
                  ? fc.dictionary(fc.string({ maxLength: 8 }), jsonValue, { maxKeys: 4 })
                  : fc.oneof(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }), fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }), nasty),
              ]),
          ),
          { requiredKeys: [] },
        ),
      )
      .map(([valid, odd]) => ({ ...valid, ...odd }))
  /** Headers a client may send anyway (now and then): encodings the body does not have, odd preferences, request ids. */
  const extraHeaders = () => fc.oneof({ weight: 3, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: someHeaders() })
  const someHeaders = () =>
    fc.record(
      {
        'Content-Encoding': fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'gzip, gzip', 'x-unknown'),
        Prefer: fc.oneof(fc.constantFrom('return=representation', 'return=minimal', 'return=representation; foo', 'handling=strict'), text.map(headerSafe)),
        'X-Request-Id': fc.oneof(fc.constantFrom('abc', 'a'.repeat(200), '../../etc'), text.map(headerSafe)),
        Accept: fc.constantFrom('application/json', 'text/html', '*/*', 'application/xml;q=0.9', ''),
        ...edgeHeaderArbs(),
      },
      { requiredKeys: [] },
    )
  /** The HTTP edge's inputs: Host (allowed, refused, malformed), Origin (allowed or not), CORS preflight headers. */
  const edgeHeaderArbs = () => ({
    Host: fc.oneof(
      fc.constantFrom('127.0.0.1', 'localhost:1', 'LOCALHOST', 'evil.example', '[::1]', '[::1', '127.0.0.1:99999', 'a b', ':80', '', 'localhost.evil.example'),
      text.map(headerSafe),
    ),
    Origin: fc.oneof(
      fc.constantFrom(FUZZ_ORIGIN, 'https://evil.example', 'null', '', 'https://app.fuzz.test:443', 'HTTPS://APP.FUZZ.TEST'),
      text.map(headerSafe),
    ),
    'Access-Control-Request-Method': fc.oneof(fc.constantFrom('GET', 'PUT', 'POST', 'DELETE', 'FOO', ''), text.map(headerSafe)),
    'Access-Control-Request-Headers': fc.oneof(fc.constantFrom('if-match', 'content-type, authorization', 'x-evil', ',,,', ''), text.map(headerSafe)),
  })
  const edgeHeaders = () => fc.oneof({ weight: 1, arbitrary: fc.constant({}) }, { weight: 2, arbitrary: fc.record(edgeHeaderArbs(), { requiredKeys: [] }) })
  const contentType = () =>
    fc.oneof(
      { weight: 6, arbitrary: fc.constant('application/json') },
      {
        weight: 2,
        arbitrary: fc.constantFrom(
          'application/json; charset=utf-8',
          'application/json; charset=utf-16',
          'application/json; charset=latin1',
          'APPLICATION/JSON',
          'application/vnd.api+json',
          'application/merge-patch+json',
          'text/plain',
          'application/x-www-form-urlencoded',
          'multipart/form-data; boundary=x',
          'application/xml',
          '*/*',
          'application/',
          'json',
          ';;;',
          '',
        ),
      },
      { weight: 1, arbitrary: text.map(headerSafe) },
    )

  const runs = (share: number) => Math.max(10, Math.round(TOTAL_RUNS * share))
  const params = (share: number, offset: number) => ({ numRuns: runs(share), seed: SEED + offset })

  it('GET of any list query string answers 200 with the list shape or 4xx with the error body, and changes nothing', async () => {
    await fc.assert(
      fc.asyncProperty(resourceArb(), queryString(), fc.option(etagHeader(), { nil: undefined }), async (name, qs, inm) => {
        const resource = app.engine.resource(name)
        await exchange({ method: 'GET', path: `${app.engine.prefix}/${resource.plural}${qs}`, headers: inm === undefined ? {} : { 'If-None-Match': inm } })
      }),
      params(0.3, 1),
    )
  })

  it('GET, PUT and DELETE of any id with any If-Match and If-None-Match answer 2xx or 4xx, and a 4xx changes nothing', async () => {
    const method = fc.constantFrom('GET', 'PUT', 'DELETE', 'HEAD')
    await fc.assert(
      fc.asyncProperty(
        resourceArb(),
        method,
        idSegment(),
        fc.option(queryString(), { nil: '' }),
        fc.option(etagHeader(), { nil: undefined }),
        fc.option(etagHeader(), { nil: undefined, freq: 3 }),
        fc.boolean(),
        async (name, m, id, qs, ifMatch, ifNoneMatch, prefer) => {
          const resource = app.engine.resource(name)
          const headers: Record<string, string> = { 'Content-Type': 'application/json' }
          if (ifMatch !== undefined) headers[m === 'GET' || m === 'HEAD' ? 'If-None-Match' : 'If-Match'] = ifMatch
          // On a write, If-None-Match is a precondition too.
          if (ifNoneMatch !== undefined && (m === 'PUT' || m === 'DELETE')) headers['If-None-Match'] = ifNoneMatch
          if (prefer) headers.Prefer = 'return=representation'
          await exchange({ method: m, path: `${app.engine.prefix}/${resource.plural}/${id}${qs}`, headers, body: m === 'PUT' ? '{}' : undefined })
        },
      ),
      params(0.25, 2),
    )
  })

  it('POST and PUT of any body with any content type answer 2xx or 4xx with the error body, and a 4xx changes nothing', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...resources.map((r) => r.name)).chain((name) => fc.tuple(fc.constant(name), rawBody(app.engine.resource(name)))),
        fc.constantFrom('POST', 'PUT'),
        contentType(),
        fc.oneof({ weight: 2, arbitrary: fc.constant('*') }, { weight: 2, arbitrary: etagHeader() }, { weight: 1, arbitrary: fc.constant(undefined) }),
        fc.nat(),
        extraHeaders(),
        async ([name, body], m, type, ifMatch, pick, extra) => {
          const resource = app.engine.resource(name)
          const own = idsOf.get(name)!
          const id = own[pick % own.length]
          const headers: Record<string, string> = { ...extra }
          if (type !== '') headers['Content-Type'] = type
          if (ifMatch !== undefined) headers['If-Match'] = ifMatch
          const target = m === 'POST' ? '' : `/${id}`
          await exchange({ method: m, path: `${app.engine.prefix}/${resource.plural}${target}`, headers, body })
        },
      ),
      params(0.35, 3),
    )
  })

  it('any method on any path, with any Host, Origin and CORS preflight headers, answers 2xx/304 or 4xx with the error body, never 5xx', async () => {
    const segment = fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(...resources.map((r) => r.plural), ...resources.map((r) => r.name), ...ids) },
      { weight: 2, arbitrary: text.map(encode) },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          '',
          '.',
          '..',
          '%',
          '%2e%2e',
          'openapi.json',
          'api',
          'v1',
          'healthz',
          'readyz',
          'metrics',
          'docs',
          'init.js',
          'docs.css',
          'swagger-ui.css',
          'favicon-32x32.png',
        ),
      },
    )
    const path = fc
      .tuple(fc.constantFrom(app.engine.prefix, app.engine.prefix, '/api', '', '/console'), fc.array(segment, { maxLength: 4 }), fc.constantFrom('', '/'))
      .map(([p, segments, slash]) => `${p}/${segments.join('/')}${slash}`)
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE', 'PROPFIND', 'MKCOL'),
        path,
        fc.option(rawBody(resources[0]), { nil: undefined }),
        edgeHeaders(),
        async (m, p, body, edge) => {
          await exchange({
            method: m,
            path: p,
            headers: body === undefined ? edge : { ...edge, 'Content-Type': 'application/json' },
            body: m === 'HEAD' || m === 'GET' ? undefined : body,
          })
        },
      ),
      params(0.1, 4),
    )
  })

  it('any Authorization header, against an engine with the identity plugin, answers 401 JSON with both challenges or the success its credential earns; never a 5xx, and changes nothing', async () => {
    const engine = auth.app.engine
    const db = auth.app.db
    const authTables = engineTables(engine)
    const PASSWORD = { 'fuzz-root': 'fuzz root password', 'fuzz-user': 'fuzz user password' }
    const team = await engine.service('team').create({ name: `fuzz-team-${SEED}` })
    const root = await engine.service('user').create({ name: 'fuzz-root', role: 'super_admin', team: team.id, password: PASSWORD['fuzz-root'] })
    await engine.service('user').create({ name: 'fuzz-user', email: 'fuzz@example.com', role: 'user', team: team.id, password: PASSWORD['fuzz-user'] })
    const remoteci = await engine.service('remoteci').get(idsOf.get('remoteci')![0])
    const basicOf = (login: string, password: string) => `Basic ${Buffer.from(`${login}:${password}`).toString('base64')}`
    const newKey = async (path: string) => {
      const res = await send(auth.port, agent, {
        method: 'POST',
        path: `/api/v1/${path}/apikeys`,
        headers: { Authorization: basicOf('fuzz-root', PASSWORD['fuzz-root']) },
      })
      expect(res.status, res.text).to.equal(201)
      return JSON.parse(res.text).apikey.token as string
    }
    const keys = [await newKey(`users/${root.id}`), await newKey(`remotecis/${remoteci.id}`)]
    const now = Math.floor(Date.now() / 1000)
    const jwtOf = (claims: Record<string, unknown>, header: Record<string, unknown> = {}) =>
      new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'fuzz', ...header }).sign(auth.key)
    const userJwt = await jwtOf({ sub: 'fuzz-user', iss: JWT_ISSUER, aud: 'dci', exp: now + 3600 })

    /** Credentials that must work, with whom they identify. */
    const valid = [
      { header: basicOf('fuzz-root', PASSWORD['fuzz-root']), name: 'fuzz-root', role: 'super_admin' },
      { header: basicOf('fuzz@example.com', PASSWORD['fuzz-user']), name: 'fuzz-user', role: 'user' },
      { header: `bearer ${keys[0]}`, name: 'fuzz-root', role: 'super_admin' },
      { header: `Bearer ${keys[1]}`, name: String(remoteci.name), role: 'remoteci' },
      { header: `Bearer ${userJwt}`, name: 'fuzz-user', role: 'user' },
    ]
    const b64 = (value: string | Uint8Array) => Buffer.from(value).toString('base64')
    const b64url = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
    /**
     * One character of `token` at or after `from` changed; never the last of a dot-separated part,
     * whose low bits base64url decoding drops (it could decode to the same bytes).
     */
    const mutate = (token: string, at: number, from: number) => {
      let i = from + (at % (token.length - from))
      if (i === token.length - 1 || token[i + 1] === '.') i--
      if (token[i] === '.') i--
      return token.slice(0, i) + (token[i] === 'A' ? 'B' : 'A') + token.slice(i + 1)
    }
    const password = fc.oneof(fc.string({ maxLength: 40 }), text)
    const segment = fc.stringMatching(/^[A-Za-z0-9_-]{1,80}$/)
    interface Case {
      header?: string
      /** A Basic password sent: no log line may show it. */
      password?: string
      login?: string
      /** The claims of a JWT the issuer signed: it must work when they are right. */
      claims?: Record<string, unknown>
      jwtHeader?: Record<string, unknown>
    }
    const credential: fc.Arbitrary<Case> = fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(...valid).map((v): Case => ({ header: v.header })) },
      {
        weight: 2,
        arbitrary: fc
          .tuple(fc.constantFrom('fuzz-root', 'fuzz-user', 'fuzz@example.com'), password)
          .map(([login, p]): Case => ({ header: `Basic ${b64(`${login}:${p}`)}`, login, password: p })),
      },
      {
        weight: 1,
        arbitrary: fc.tuple(password, password).map(([login, p]): Case => ({ header: `Basic ${b64(`${login}:${p}`)}`, login, password: p })),
      },
      {
        weight: 1,
        arbitrary: fc
          .tuple(
            fc.constantFrom('Basic', 'basic', 'BASIC', 'Basic  '),
            fc.oneof(fc.base64String({ maxLength: 80 }), fc.uint8Array({ maxLength: 60 }).map(b64), text),
          )
          .map(([scheme, value]): Case => ({ header: `${scheme} ${value}` })),
      },
      {
        weight: 2,
        arbitrary: fc
          .oneof(
            fc.uint8Array({ maxLength: 48 }).map((bytes) => `dci_${Buffer.from(bytes).toString('base64url')}`),
            fc.tuple(fc.constantFrom(...keys), fc.nat()).map(([key, at]) => mutate(key, at, 4)),
            // Not only spaces: the header's trailing whitespace is no part of it.
            fc
              .tuple(
                fc.constantFrom(...keys),
                text.map(headerSafe).filter((extra) => extra.trim() !== ''),
              )
              .map(([key, extra]) => key + extra),
            fc.constantFrom(...keys).map((key) => key.slice(0, -1)),
          )
          .map((token): Case => ({ header: `Bearer ${token}` })),
      },
      {
        weight: 2,
        arbitrary: fc
          .oneof(
            fc.tuple(segment, segment, segment).map(([a, b, c]) => `${a}.${b}.${c}`),
            fc.tuple(fc.jsonValue({ maxDepth: 2 }), fc.jsonValue({ maxDepth: 2 }), segment).map(([h, p, sig]) => `${b64url(h)}.${b64url(p)}.${sig}`),
            fc
              .tuple(fc.constantFrom('none', 'HS256', 'RS256', 'ES256', 'ES384', 'EdDSA', ''), fc.constantFrom('fuzz', 'other', undefined))
              .map(([alg, kid]) => `${b64url({ alg, kid })}.${userJwt.split('.')[1]}.${userJwt.split('.')[2]}`),
            fc.nat().map((at) => mutate(userJwt, at, 0)),
          )
          .map((token): Case => ({ header: `Bearer ${token}` })),
      },
      {
        // Signed by the issuer's key: right only when every claim is.
        weight: 2,
        arbitrary: fc
          .record(
            {
              sub: fc.oneof(fc.constantFrom('fuzz-user', 'fuzz-root', 'nobody', ''), fc.string({ maxLength: 20 }), fc.integer()),
              iss: fc.constantFrom(JWT_ISSUER, 'https://evil.test', `${JWT_ISSUER}/`),
              aud: fc.constantFrom('dci', ['dci', 'other'], 'other', ['other']),
              exp: fc.constantFrom(now + 3600, now - 3600),
              nbf: fc.constantFrom(now - 60, now + 3600),
            },
            { requiredKeys: [] },
          )
          .chain((claims) => fc.constantFrom<Record<string, unknown>>({}, { typ: 'JWT' }, { kid: 'other' }).map((jwtHeader): Case => ({ claims, jwtHeader }))),
      },
      {
        weight: 2,
        arbitrary: fc
          .tuple(fc.constantFrom('Bearer', 'Digest', 'Negotiate', 'Token', 'bearer', 'Basic', '', 'OAuth', 'dci_', 'Bearer  '), text)
          .map(([scheme, rest]): Case => ({ header: headerSafe(`${scheme} ${rest}`) })),
      },
      { weight: 1, arbitrary: text.map((value): Case => ({ header: headerSafe(value) })) },
      {
        weight: 1,
        arbitrary: fc
          .constantFrom(
            undefined,
            '',
            ' ',
            'Basic',
            'Bearer',
            'Bearer ',
            `Basic ${'QUFB'.repeat(2000)}`,
            `Bearer dci_${'a'.repeat(12_000)}`,
            'x'.repeat(15_000),
          )
          .map((header): Case => ({ header })),
      },
    )
    const target = fc.constantFrom(
      { method: 'GET', path: '/api/v1/identity' },
      { method: 'GET', path: '/api/v1/teams?limit=1' },
      { method: 'POST', path: '/api/v1/componenttypes', body: '{"name": 3}' },
    )
    const keysDigest = async () =>
      JSON.stringify(await db('apikeys').select('id', 'holder_kind', 'holder_id', 'token_hash', 'name', 'created_at').orderBy('id'))

    const seen = { accepted: 0, refused: 0 }
    const keysBefore = await keysDigest()
    let before = await tableChecksums(db, authTables)
    await fc.assert(
      fc.asyncProperty(credential, target, async (c, t) => {
        // Node refuses control characters in a header value before sending anything.
        let header = c.header === undefined ? undefined : headerSafe(c.header)
        let expected = header !== undefined ? valid.find((v) => v.header === header) : undefined
        if (c.claims) {
          header = `Bearer ${await jwtOf(c.claims, c.jwtHeader)}`
          const { sub, iss, aud, exp, nbf } = c.claims
          const right =
            c.jwtHeader!.kid === undefined &&
            iss === JWT_ISSUER &&
            (aud === 'dci' || (Array.isArray(aud) && aud.includes('dci'))) &&
            exp !== now - 3600 &&
            nbf !== now + 3600 &&
            (sub === 'fuzz-user' || sub === 'fuzz-root')
          if (right) expected = { header, name: String(sub), role: sub === 'fuzz-root' ? 'super_admin' : 'user' }
        }
        const warned = auth.warnings.length
        const req: Request = { method: t.method, path: t.path, headers: header === undefined ? {} : { Authorization: header } }
        if (t.body) {
          req.body = t.body
          req.headers!['Content-Type'] = 'application/json'
        }
        const res = await send(auth.port, agent, req)
        const where = `\n  header: ${JSON.stringify(header)?.slice(0, 300)}\n  request: ${t.method} ${t.path}\n  answer: ${res.status} ${res.text.slice(0, 300)}`
        if (res.status >= 500) throw new Error(`${res.status} answered${where}\n  logged: ${String(logged.at(-1)?.err ?? '').slice(0, 1500)}`)
        const problem = violation(auth.app, req, res)
        if (problem) throw new Error(`${problem}${where}`)
        // Node's parser refuses a header block over 16 KB itself (431): no credential was looked at.
        if (res.status !== 431) {
          seen[expected ? 'accepted' : 'refused']++
          if (expected) {
            const ok = t.method === 'POST' ? [400, 403] : [200]
            expect(ok, `the credential of ${expected.name} was refused${where}`).to.include(res.status)
            if (t.path === '/api/v1/identity') expect(JSON.parse(res.text).identity, where).to.include({ name: expected.name, role: expected.role })
          } else {
            expect(res.status, `not a 401${where}`).to.equal(401)
            expect(JSON.parse(res.text).code, where).to.equal('unauthorized')
            expect(res.headers['www-authenticate'], where).to.equal('Basic realm="dci", Bearer realm="dci"')
          }
        }
        // Failed logins are logged without the password.
        if (c.password && c.password.length >= 6 && !c.login?.includes(c.password)) {
          const lines = JSON.stringify(auth.warnings.slice(warned))
          expect(lines.includes(JSON.stringify(c.password).slice(1, -1)), `the password was logged${where}`).to.equal(false)
        }
        const after = await tableChecksums(db, authTables)
        expect(after, `rows changed${where}`).to.deep.equal(before)
        before = after
      }),
      params(0.05, 5),
    )
    expect(await keysDigest()).to.equal(keysBefore)
    // Both sides of the property were exercised.
    expect(seen.accepted, JSON.stringify(seen)).to.be.greaterThan(0)
    expect(seen.refused, JSON.stringify(seen)).to.be.greaterThan(0)
  })

  describe('inputs the fuzzer found, kept as regressions', () => {
    it('a POST body whose first key is "__proto__" answers 400 with the error body, not 500, and creates nothing', async () => {
      const component = app.engine.resource('component')
      const parent = ids[resources.findIndex((r) => r.name === 'componenttype') * 3]
      const body = `{"__proto__":{"polluted":"yes","prototype":{"polluted":"yes"}},"name":"aaaaaaaa","componenttype":"${parent}"}`
      const res = await exchange({ method: 'POST', path: `${app.engine.prefix}/${component.plural}`, headers: { 'Content-Type': 'application/json' }, body })
      expect(res.status).to.equal(400)
      expect(({} as Record<string, unknown>).polluted).to.equal(undefined)
    })

    it('a body sent with Content-Encoding: br that is not brotli answers 400, not 500', async () => {
      const res = await exchange({
        method: 'POST',
        path: `${app.engine.prefix}/${resources[0].plural}`,
        headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'br' },
        body: '{"name":"x"}',
      })
      expect(res.status).to.equal(400)
      expect(JSON.parse(res.text).message).to.equal('Request body cannot be decoded with its Content-Encoding')
    })

    it('a large body that fails to decompress answers 400 with Connection: close, so the next request on a kept-alive connection is answered', async () => {
      const one = new http.Agent({ keepAlive: true, maxSockets: 1 })
      try {
        const body = JSON.stringify({ name: 'x'.repeat(1_100_000) })
        const path = `${app.engine.prefix}/${resources[0].plural}`
        const res = await send(port, one, { method: 'POST', path, headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' }, body })
        expect(res.status).to.equal(400)
        expect(res.headers.connection).to.equal('close')
        const next = await send(port, one, { method: 'GET', path })
        expect(next.status).to.equal(200)
      } finally {
        one.destroy()
      }
    })

    it('a lone UTF-16 surrogate in a text field answers 400 instead of being stored as U+FFFD', async () => {
      const resource = resources.find((r) => r.def.fields.some((f) => f.kind === 'string' && f.required))!
      const field = resource.def.fields.find((f) => f.kind === 'string' && f.required)!.name
      const valid = await factory.body(resource.name)
      const body = JSON.stringify({ ...valid, [field]: 'a' }).replace('"a"', '"a\\ud800b"')
      const res = await exchange({ method: 'POST', path: `${app.engine.prefix}/${resource.plural}`, headers: { 'Content-Type': 'application/json' }, body })
      expect(res.status).to.equal(400)
      expect(JSON.parse(res.text).message).to.equal('Invalid value: a string holds a lone UTF-16 surrogate')
    })

    it('a text field that starts with U+FEFF answers 400 instead of reading back without it', async () => {
      const resource = resources.find((r) => r.def.fields.some((f) => f.kind === 'string' && f.required))!
      const field = resource.def.fields.find((f) => f.kind === 'string' && f.required)!.name
      const valid = await factory.body(resource.name)
      const before = await tableChecksums(app.db, tables)
      const res = await exchange({
        method: 'POST',
        path: `${app.engine.prefix}/${resource.plural}`,
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ ...valid, [field]: '\uFEFFname' }),
      })
      expect(res.status).to.equal(400)
      expect(JSON.parse(res.text).message).to.equal('Invalid value: a text value starts with U+FEFF (a byte order mark)')
      expect(await tableChecksums(app.db, tables)).to.deep.equal(before)
    })

    it('TRACE on the API prefix (the index, a GET route) answers a JSON 405, not a bare 501', async () => {
      const res = await exchange({ method: 'TRACE', path: `${app.engine.prefix}/` })
      expect(res.status).to.equal(405)
      expect(JSON.parse(res.text)).to.include({ message: 'Method TRACE is not allowed here', code: 'method_not_allowed' })
    })

    it('TRACE on an unknown path under the API prefix answers a JSON 404, not a bare 501', async () => {
      const res = await exchange({ method: 'TRACE', path: `${app.engine.prefix}/nothing` })
      expect(res.status).to.equal(404)
      expect(JSON.parse(res.text).message).to.equal(`No route for TRACE ${app.engine.prefix}/nothing`)
    })

    it('a number too large for a double (1e400) inside an object field answers 400 instead of being stored as null', async () => {
      const resource = resources.find((r) => r.def.fields.some((f) => f.kind === 'json' && f.schema.type === 'object'))
      expect(resource, 'a resource with an object field').to.not.equal(undefined)
      const field = resource!.def.fields.find((f) => f.kind === 'json')!.name
      const valid = await factory.body(resource!.name)
      const body = JSON.stringify({ ...valid, [field]: { x: 1 } }).replace('{"x":1}', '{"x":1e400}')
      const res = await exchange({ method: 'POST', path: `${app.engine.prefix}/${resource!.plural}`, headers: { 'Content-Type': 'application/json' }, body })
      expect(res.status).to.equal(400)
      expect(JSON.parse(res.text).message).to.equal('Invalid value: a number is too large to be stored')
    })
  })

  it('no request polluted Object.prototype', () => {
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).to.deep.equal(protoBefore)
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined)
    expect((Object.prototype as Record<string, unknown>).polluted).to.equal(undefined)
  })
})
