/**
 * The floor: what a hand-written server costs for the requests the benchmark sends. Plain `node:http`
 * and a `pg.Pool`, no framework, the SQL a careful person would write, and the same answers as the
 * engine (bodies, status codes, ETag, X-Request-Id, security headers). It serves only components:
 *   GET  /api/v1/components/:id
 *   GET  /api/v1/components?sort=-name&limit=20&offset=k   (and ?where=name:X), with `_meta.count`
 *   POST /api/v1/components
 *   PUT  /api/v1/components/:id with If-Match (one atomic UPDATE ... WHERE id AND etag RETURNING *)
 * Configuration: DATABASE_URL, PORT, HOST (default 127.0.0.1).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import http from 'node:http'
import pg from 'pg'

const PREFIX = '/api/v1/components'
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const REQUEST_ID = /^[\w.:-]{1,128}$/
const SORTABLE = new Set(['id', 'name', 'componenttype', 'created_at', 'updated_at'])
const FIELDS = new Set(['name', 'componenttype'])

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 10 })

function send(req: http.IncomingMessage, res: http.ServerResponse, status: number, body?: string, headers: Record<string, string> = {}): void {
  const given = req.headers['x-request-id']
  res.setHeader('X-Request-Id', typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID())
  res.setHeader('X-Content-Type-Options', 'nosniff')
  res.setHeader('Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'")
  res.setHeader('X-Frame-Options', 'DENY')
  res.setHeader('Referrer-Policy', 'no-referrer')
  res.setHeader('Cache-Control', 'no-cache')
  for (const name in headers) res.setHeader(name, headers[name])
  res.statusCode = status
  if (body === undefined) return void res.end()
  res.setHeader('Content-Type', 'application/json; charset=utf-8')
  res.setHeader('Content-Length', Buffer.byteLength(body))
  res.end(body)
}

function fail(req: http.IncomingMessage, res: http.ServerResponse, status: number, message: string): void {
  send(req, res, status, JSON.stringify({ message, payload: {}, status_code: status }))
}

/** The etags listed by If-Match / If-None-Match, or '*' ; undefined when absent. */
function etagList(header: string | undefined): string[] | '*' | undefined {
  if (!header?.trim()) return undefined
  if (header.trim() === '*') return '*'
  return header
    .split(',')
    .map((p) =>
      p
        .trim()
        .replace(/^W\//i, '')
        .replace(/^"(.*)"$/, '$1'),
    )
    .filter(Boolean)
    .slice(0, 16)
}

function notModified(req: http.IncomingMessage, etag: string): boolean {
  const cached = etagList(req.headers['if-none-match'])
  return cached === '*' || cached?.includes(etag) === true
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => {
      data += chunk
      if (data.length > 1 << 20) reject(new Error('too large'))
    })
    req.on('end', () => resolve(data))
    req.on('error', reject)
  })
}

/** Checks a component body by hand; returns the fields to write or an error message. */
function checkBody(text: string, creating: boolean): Record<string, string> | string {
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    return 'Request body is not valid JSON'
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) return 'Request body must be a JSON object'
  const data = body as Record<string, unknown>
  for (const key in data) if (!FIELDS.has(key)) return 'Request body does not match the schema'
  const { name, componenttype } = data
  if (creating && (name === undefined || componenttype === undefined)) return 'Request body does not match the schema'
  if (name !== undefined && (typeof name !== 'string' || name.length < 1 || name.length > 255)) return 'Request body does not match the schema'
  if (componenttype !== undefined && (typeof componenttype !== 'string' || !UUID.test(componenttype))) return 'Request body does not match the schema'
  return data as Record<string, string>
}

async function detail(req: http.IncomingMessage, res: http.ServerResponse, id: string): Promise<void> {
  if (!UUID.test(id)) return fail(req, res, 404, 'component not found')
  const { rows } = await pool.query('SELECT * FROM components WHERE id = $1', [id])
  if (rows.length === 0) return fail(req, res, 404, 'component not found')
  const etag = rows[0].etag as string
  if (notModified(req, etag)) return send(req, res, 304, undefined, { ETag: `"${etag}"` })
  send(req, res, 200, JSON.stringify({ component: rows[0] }), { ETag: `"${etag}"` })
}

async function list(req: http.IncomingMessage, res: http.ServerResponse, search: string): Promise<void> {
  const params = new URLSearchParams(search)
  const values: unknown[] = []
  const where: string[] = []
  const whereParam = params.get('where')
  if (whereParam) {
    for (const clause of whereParam.split(',')) {
      const colon = clause.indexOf(':')
      const field = clause.slice(0, colon)
      if (colon <= 0 || !SORTABLE.has(field)) return fail(req, res, 400, "Invalid 'where' parameter")
      values.push(clause.slice(colon + 1))
      where.push(`${field} = $${values.length}`)
    }
  }
  const order: string[] = []
  for (const item of (params.get('sort') || 'created_at').split(',')) {
    const field = item.startsWith('-') ? item.slice(1) : item
    if (!SORTABLE.has(field)) return fail(req, res, 400, "Invalid 'sort' parameter")
    order.push(`${field} ${item.startsWith('-') ? 'DESC' : 'ASC'}`)
  }
  if (!order.some((o) => o.startsWith('id '))) order.push('id ASC')
  const limit = Math.min(Number(params.get('limit') ?? 20) || 0, 200)
  const offset = Number(params.get('offset') ?? 0) || 0
  const filter = where.length ? ` WHERE ${where.join(' AND ')}` : ''
  const [page, count] = await Promise.all([
    pool.query(`SELECT * FROM components${filter} ORDER BY ${order.join(', ')} LIMIT ${limit} OFFSET ${offset}`, values),
    pool.query(`SELECT count(*)::int AS count FROM components${filter}`, values),
  ])
  const body = JSON.stringify({ components: page.rows, _meta: { count: count.rows[0].count } })
  const etag = createHash('sha1').update(body).digest('hex').slice(0, 32)
  if (notModified(req, etag)) return send(req, res, 304, undefined, { ETag: `"${etag}"` })
  send(req, res, 200, body, { ETag: `"${etag}"` })
}

async function create(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const data = checkBody(await readBody(req), true)
  if (typeof data === 'string') return fail(req, res, 400, data)
  try {
    const { rows } = await pool.query('INSERT INTO components (name, componenttype, etag) VALUES ($1, $2, $3) RETURNING *', [
      data.name,
      data.componenttype,
      randomBytes(16).toString('hex'),
    ])
    const row = rows[0]
    send(req, res, 201, JSON.stringify({ component: row }), { Location: `${PREFIX}/${row.id}`, ETag: `"${row.etag}"` })
  } catch (err) {
    if ((err as { code?: string }).code === '23503') return fail(req, res, 422, 'A related componenttype does not exist')
    throw err
  }
}

async function update(req: http.IncomingMessage, res: http.ServerResponse, id: string): Promise<void> {
  const condition = etagList(req.headers['if-match'])
  if (!condition) return fail(req, res, 412, "'If-match' header must be provided")
  const data = checkBody(await readBody(req), false)
  if (typeof data === 'string') return fail(req, res, 400, data)
  if (!UUID.test(id)) return fail(req, res, 404, 'component not found')
  const values: unknown[] = [id, randomBytes(16).toString('hex')]
  const set = ['etag = $2', 'updated_at = now()']
  for (const field of ['name', 'componenttype']) {
    if (data[field] !== undefined) {
      values.push(data[field])
      set.push(`${field} = $${values.length}`)
    }
  }
  let sql = `UPDATE components SET ${set.join(', ')} WHERE id = $1`
  if (condition !== '*') {
    values.push(condition)
    sql += ` AND etag = ANY($${values.length})`
  }
  const { rows } = await pool.query(`${sql} RETURNING *`, values)
  if (rows.length === 0) {
    const found = await pool.query('SELECT id FROM components WHERE id = $1', [id])
    return found.rows.length ? fail(req, res, 412, "'If-match' header does not match the current ETag") : fail(req, res, 404, 'component not found')
  }
  send(req, res, 204, undefined, { ETag: `"${rows[0].etag}"` })
}

async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = req.url ?? '/'
  const q = url.indexOf('?')
  const path = q === -1 ? url : url.slice(0, q)
  if (path === PREFIX) {
    if (req.method === 'GET') return list(req, res, q === -1 ? '' : url.slice(q + 1))
    if (req.method === 'POST') return create(req, res)
  } else if (path.startsWith(`${PREFIX}/`) && path.indexOf('/', PREFIX.length + 1) === -1) {
    const id = path.slice(PREFIX.length + 1)
    if (req.method === 'GET') return detail(req, res, id)
    if (req.method === 'PUT') return update(req, res, id)
  }
  fail(req, res, 404, `No route for ${req.method} ${path}`)
}

const server = http.createServer((req, res) => {
  route(req, res).catch((err) => {
    console.error(JSON.stringify({ level: 'error', msg: 'unhandled error', err: String(err?.stack ?? err) }))
    if (!res.headersSent) fail(req, res, 500, 'Internal server error')
  })
})
const port = Number(process.env.PORT ?? 5130)
const host = process.env.HOST ?? '127.0.0.1'
server.listen(port, host, () => console.log(JSON.stringify({ level: 'info', msg: 'listening', url: `http://${host}:${port}/api/v1`, server: 'floor' })))
const stop = () => server.close(() => pool.end().finally(() => process.exit(0)))
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
