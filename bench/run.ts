/**
 * The load benchmark: the engine as users run it (compiled, `node dist/server.js`: identity on, the
 * admin bootstrapped from ADMIN_PASSWORD), called with HTTP Basic (`basic`) and with an API key
 * (`bearer`, a key the harness creates through the API), against the unauthenticated engine
 * (`engine`: `dist/bench/anonymous-server.js`, server.ts's set-up with `resourcePlugins` only) and the
 * floor (`dist/bench/floor-server.js`, node:http + pg). All on the same database, each server in its
 * own process, run interleaved scenario by scenario for a few rounds (the order alternates each
 * round). Prints, per scenario, the median requests/s, p50/p99 latency, CPU per request and non-2xx
 * count of each, the ratios to the floor, and the authenticated ratios against the unauthenticated
 * engine's (round by round). Run through `npm run bench` (builds first). Options:
 *   --scale               the scale scenarios, on the 1M-row database of `npm run bench:seed`
 *                         (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/dci_bench_1m)
 *   --embedded            the engine alone on PGlite (DATABASE_URL unset, DATA_DIR in a temp folder)
 *   --components N        rows seeded for the base and embedded runs (default 10,000 over 100 types)
 *   --rounds N            measured rounds (default 3)   --duration S   seconds per measurement (default 5)
 *   --connections N       concurrent connections (default 10; 1 with --scale, to read single-request latency)
 *   --only a,b            run only these scenarios       --profile      run the engines under --cpu-prof
 *   --targets a,b         measure only these of floor, engine, basic, bearer (default all; no floor with --embedded)
 *   --port N              the floor listens on N, the unauthenticated engine on N + 1, the engine with
 *                         identity on N + 2 (default 5130)
 * Every load loop is bounded in time (--duration) and in count (--max-requests, default 200,000),
 * and only targets 127.0.0.1.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import autocannon from 'autocannon'
import type { Knex } from 'knex'
import { DEFAULT_URL, openBenchDatabase, resetIdentity, sample, seed, tableSizes } from './database'
import { SCALE_URL } from './seed'

const DIST = path.resolve(__dirname, '..')
const SOURCE = path.resolve(DIST, '..')
const HOST = '127.0.0.1'

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback
}
const flag = (name: string) => process.argv.includes(`--${name}`)

const SCALE = flag('scale')
const EMBEDDED = flag('embedded')
const PROFILE = flag('profile')
const ROUNDS = Number(option('rounds', '3'))
const DURATION = Number(option('duration', '5'))
const CONNECTIONS = Number(option('connections', SCALE ? '1' : '10'))
const MAX_REQUESTS = Number(option('max-requests', '200000'))
const ONLY = option('only', '').split(',').filter(Boolean)
/** The floor listens on this port, the unauthenticated engine on the next one, the engine with identity on the one after. */
const PORT = Number(option('port', '5130'))

/** What is measured: the floor, the unauthenticated engine, the engine with identity called with Basic, and with an API key. */
const TARGETS = ['floor', 'engine', 'basic', 'bearer'] as const
type TargetName = (typeof TARGETS)[number]
const CHOSEN = option('targets', '').split(',').filter(Boolean)
for (const t of CHOSEN) if (!(TARGETS as readonly string[]).includes(t)) throw new Error(`--targets: unknown '${t}' (${TARGETS.join(', ')})`)
const wanted = (t: TargetName) => (CHOSEN.length === 0 || CHOSEN.includes(t)) && !(EMBEDDED && t === 'floor')

/** The password of the identity engine's bootstrapped admin (its database's users are emptied first). */
const ADMIN_PASSWORD = randomBytes(18).toString('base64url')

interface Server {
  name: 'floor' | 'engine' | 'identity'
  port: number
  proc: ChildProcess
  idleRss?: number
}

/** One server called one way: the identity engine is two targets, one per kind of credentials. */
interface Target {
  name: TargetName
  server: Server
  headers: Record<string, string>
}

interface Request {
  method: 'GET' | 'POST' | 'PUT'
  path: string
  headers?: Record<string, string>
  body?: string
}

interface Scenario {
  name: string
  kind: 'read' | 'write'
  describe: string
  next(): Request
}

interface Measure {
  rps: number
  p50: number
  p99: number
  non2xx: number
  errors: number
  /** CPU time (user + system) the server process spent per answered request, in microseconds. */
  cpuUs: number
}

const pick = <T>(list: T[]) => list[Math.floor(Math.random() * list.length)]

function baseScenarios(s: { ids: string[]; names: string[]; types: string[] }): Scenario[] {
  let n = 0
  const json = { 'content-type': 'application/json' }
  return [
    {
      name: 'detail',
      kind: 'read',
      describe: 'GET /components/:id (1,000 random ids)',
      next: () => ({ method: 'GET', path: `/api/v1/components/${pick(s.ids)}` }),
    },
    {
      name: 'list-sorted',
      kind: 'read',
      describe: 'GET /components?sort=-name&limit=20&offset=k (k random in 0..999)',
      next: () => ({ method: 'GET', path: `/api/v1/components?sort=-name&limit=20&offset=${Math.floor(Math.random() * 1000)}` }),
    },
    {
      name: 'list-where',
      kind: 'read',
      describe: 'GET /components?where=name:X (X a random existing name)',
      next: () => ({ method: 'GET', path: `/api/v1/components?where=name:${pick(s.names)}` }),
    },
    {
      name: 'create',
      kind: 'write',
      describe: 'POST /components {name, componenttype}',
      next: () => ({
        method: 'POST',
        path: '/api/v1/components',
        headers: json,
        body: JSON.stringify({ name: `bench-${process.pid}-${n++}`, componenttype: pick(s.types) }),
      }),
    },
    {
      name: 'update',
      kind: 'write',
      describe: 'PUT /components/:id {name} with If-Match: * (1,000 random ids)',
      next: () => ({
        method: 'PUT',
        path: `/api/v1/components/${pick(s.ids)}`,
        headers: { ...json, 'if-match': '*' },
        body: JSON.stringify({ name: `renamed-${n++}` }),
      }),
    },
  ]
}

function scaleScenarios(s: { ids: string[]; names: string[]; types: string[] }): Scenario[] {
  const get = (name: string, describe: string, path: () => string): Scenario => ({
    name,
    kind: 'read',
    describe,
    next: () => ({ method: 'GET', path: path() }),
  })
  return [
    get('detail', 'GET /components/:id', () => `/api/v1/components/${pick(s.ids)}`),
    get(
      'type-sorted-0',
      'where=componenttype:X&sort=-created_at&limit=20 (offset 0)',
      () => `/api/v1/components?where=componenttype:${pick(s.types)}&sort=-created_at&limit=20`,
    ),
    get(
      'type-sorted-900',
      'where=componenttype:X&sort=-created_at&limit=20&offset=900 (end of the type)',
      () => `/api/v1/components?where=componenttype:${pick(s.types)}&sort=-created_at&limit=20&offset=900`,
    ),
    get('all-sorted-0', 'sort=-name&limit=20 (offset 0, whole table, count of the whole table)', () => '/api/v1/components?sort=-name&limit=20'),
    get('all-sorted-100k', 'sort=-name&limit=20&offset=100000 (whole table)', () => '/api/v1/components?sort=-name&limit=20&offset=100000'),
    get('all-default-0', 'no parameters (sort=created_at, limit 20, count of the whole table)', () => '/api/v1/components'),
    get(
      'count-exact-type',
      'where=componenttype:X&limit=0&count=exact (exact count of a subset)',
      () => `/api/v1/components?where=componenttype:${pick(s.types)}&limit=0&count=exact`,
    ),
    get('count-exact-all', 'limit=0&count=exact (exact count of the whole table)', () => '/api/v1/components?limit=0&count=exact'),
  ]
}

/** CPU time a process has used so far, in microseconds (utime + stime of /proc/<pid>/stat). */
function cpuUs(pid: number | undefined): number {
  if (!pid) return NaN
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS
}
const CLOCK_TICKS = 100

/** Resident memory of a process in MB (VmRSS of /proc/<pid>/status). */
function rssMb(pid: number | undefined): number {
  if (!pid) return NaN
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1])
  return Math.round(kb / 1024)
}

/** True when something already listens on the port (a server left over from an interrupted run). */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: HOST, port }, () => {
      socket.destroy()
      resolve(true)
    })
    socket.on('error', () => resolve(false))
  })
}

const SCRIPTS: Record<Server['name'], string> = {
  floor: path.join(DIST, 'bench', 'floor-server.js'),
  engine: path.join(DIST, 'bench', 'anonymous-server.js'),
  identity: path.join(DIST, 'server.js'),
}

async function start(name: Server['name'], port: number, env: Record<string, string>): Promise<Server> {
  if (await listening(port)) throw new Error(`port ${port} is already in use: stop what listens there first`)
  const script = SCRIPTS[name]
  const args = name !== 'floor' && PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${path.join(SOURCE, 'bench', 'profiles')}`, script] : [script]
  const proc = spawn(process.execPath, args, { cwd: SOURCE, env: { ...process.env, ...env, PORT: String(port), HOST }, stdio: ['ignore', 'pipe', 'pipe'] })
  proc.stderr!.on('data', (d) => process.stderr.write(`[${name}] ${d}`))
  // Request logs (LOG_LEVEL=info) are dropped; warnings and errors are shown.
  proc.stdout!.on('data', (d) => {
    for (const line of String(d).split('\n')) if (line && !line.includes('"msg":"request"')) process.stderr.write(`[${name}] ${line}\n`)
  })
  // Ready when it answers HTTP (the engine logs nothing at LOG_LEVEL=warn).
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 120_000
    proc.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)))
    const poll = () => {
      if (proc.exitCode !== null) return
      const req = http.get({ host: HOST, port, path: '/api/v1/none' }, (res) => {
        res.resume()
        resolve({ name, port, proc })
      })
      req.on('error', () => {
        if (Date.now() < deadline) return void setTimeout(poll, 200)
        proc.kill('SIGKILL')
        reject(new Error(`${name} did not start within 120 s`))
      })
    }
    poll()
  })
}

function stop(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (server.proc.exitCode !== null) return resolve()
    const timer = setTimeout(() => server.proc.kill('SIGKILL'), 15_000)
    server.proc.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    server.proc.kill('SIGTERM')
  })
}

/** `Authorization` values of the admin the identity engine bootstrapped: Basic, and an API key made through the API. */
async function credentials(server: Server): Promise<{ basic: string; bearer: string }> {
  const basic = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`
  const base = `http://${HOST}:${server.port}/api/v1`
  const call = async (method: string, route: string, body?: unknown) => {
    const res = await fetch(`${base}${route}`, {
      method,
      headers: { authorization: basic, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    })
    if (!res.ok) throw new Error(`${method} ${route} answered ${res.status}: ${await res.text()}`)
    return (await res.json()) as Record<string, any>
  }
  const { identity } = await call('GET', '/identity')
  if (identity.role !== 'super_admin') throw new Error(`the bench's admin is ${JSON.stringify(identity)}`)
  const { apikey } = await call('POST', `/users/${identity.id}/apikeys`, { name: 'bench' })
  return { basic, bearer: `Bearer ${apikey.token}` }
}

async function measure(target: Target, scenario: Scenario, seconds: number, connections = CONNECTIONS): Promise<Measure> {
  let sent = 0
  const server = target.server
  const cpuBefore = cpuUs(server.proc.pid)
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: `http://${HOST}:${server.port}`,
        connections,
        duration: seconds,
        timeout: 10,
        requests: [
          {
            setupRequest: (req: any) => {
              if (++sent > MAX_REQUESTS) instance.stop()
              const next = scenario.next()
              return { ...req, ...next, headers: { ...target.headers, ...next.headers } }
            },
          },
        ],
      } as autocannon.Options,
      (err, res) => (err ? reject(err) : resolve(res)),
    )
  })
  const answered = result.requests.total
  return {
    cpuUs: answered ? (cpuUs(server.proc.pid) - cpuBefore) / answered : NaN,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  }
}

const median = (xs: number[]) => {
  const s = [...xs].filter((x) => !Number.isNaN(x)).sort((a, b) => a - b)
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

const fmt = (x: number, digits = 0) => (Number.isNaN(x) ? '-' : x.toFixed(digits))

async function main(): Promise<void> {
  let dataDir: string | undefined
  let url: string | undefined
  let db: Knex
  const seeded = { components: Number(option('components', EMBEDDED && SCALE ? '100000' : '10000')), types: Number(option('types', SCALE ? '1000' : '100')) }
  if (EMBEDDED) {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dci-bench-pglite-'))
    db = await openBenchDatabase({ dataDir })
    const t = Date.now()
    await seed(db, seeded)
    console.log(`seeded PGlite in ${dataDir}: ${seeded.components} components in ${((Date.now() - t) / 1000).toFixed(1)} s`)
  } else {
    url = process.env.DATABASE_URL || (SCALE ? SCALE_URL : DEFAULT_URL)
    db = await openBenchDatabase({ url })
    if (!SCALE) await seed(db, seeded)
  }
  // No users: the identity engine bootstraps its admin with ADMIN_PASSWORD.
  await resetIdentity(db)
  const sizes = await tableSizes(db)
  if (SCALE && !EMBEDDED && sizes.components < 1000) throw new Error(`${url} holds ${sizes.components} components: run npm run bench:seed first`)
  const rows = await sample(db)
  await db.destroy() // PGlite allows one process at a time: the engine opens it next
  // PGlite: each engine process gets its own copy of the seeded folder.
  const dataDirs = { engine: dataDir, identity: dataDir && `${dataDir}-identity` }
  if (dataDir && wanted('engine') && (wanted('basic') || wanted('bearer'))) fs.cpSync(dataDir, dataDirs.identity!, { recursive: true })
  else if (dataDir) dataDirs.identity = dataDir
  const dbEnv = (name: 'engine' | 'identity'): Record<string, string> => (EMBEDDED ? { DATABASE_URL: '', DATA_DIR: dataDirs[name]! } : { DATABASE_URL: url! })

  const all = SCALE ? scaleScenarios(rows) : baseScenarios(rows)
  const scenarios = ONLY.length ? all.filter((s) => ONLY.includes(s.name)) : all
  const servers: Server[] = []
  const targets: Target[] = []
  try {
    // Request logs are off (LOG_LEVEL=warn) unless asked: the floor writes none either.
    const logLevel = process.env.LOG_LEVEL ?? 'warn'
    if (wanted('floor')) {
      const floor = await start('floor', PORT, { DATABASE_URL: url! })
      servers.push(floor)
      targets.push({ name: 'floor', server: floor, headers: {} })
    }
    if (wanted('engine')) {
      const engine = await start('engine', PORT + 1, { LOG_LEVEL: logLevel, ...dbEnv('engine') })
      servers.push(engine)
      targets.push({ name: 'engine', server: engine, headers: {} })
    }
    if (wanted('basic') || wanted('bearer')) {
      // server.ts as users run it: identity on, the admin bootstrapped from ADMIN_PASSWORD.
      const identity = await start('identity', PORT + 2, { LOG_LEVEL: logLevel, ADMIN_PASSWORD, ...dbEnv('identity') })
      servers.push(identity)
      const headers = await credentials(identity)
      if (wanted('basic')) targets.push({ name: 'basic', server: identity, headers: { authorization: headers.basic } })
      if (wanted('bearer')) targets.push({ name: 'bearer', server: identity, headers: { authorization: headers.bearer } })
    }
    for (const s of servers) s.idleRss = rssMb(s.proc.pid)
    console.log(`database: ${EMBEDDED ? `PGlite (${dataDir}, a copy per engine)` : url}, ${sizes.components} components / ${sizes.types} componenttypes`)
    console.log(
      `${ROUNDS} rounds x ${DURATION} s, ${CONNECTIONS} connections, engines' LOG_LEVEL=${logLevel}, node ${process.version}, ${os.cpus().length} cores, ` +
        `targets ${targets.map((t) => t.name).join(', ')}, load average ${os
          .loadavg()
          .map((x) => x.toFixed(2))
          .join(' ')}`,
    )

    for (const scenario of scenarios) for (const target of targets) await measure(target, scenario, 2) // warm-up (JIT, pools, the Basic cache)

    const results = new Map<string, Measure[]>()
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 ? [...targets].reverse() : targets
      for (const scenario of scenarios) {
        for (const target of order) {
          const m = await measure(target, scenario, DURATION)
          const key = `${scenario.name}/${target.name}`
          results.set(key, [...(results.get(key) ?? []), m])
          console.log(
            `round ${round + 1} ${key}: ${m.rps.toFixed(0)} req/s p50 ${m.p50} ms p99 ${m.p99} ms non-2xx ${m.non2xx} errors ${m.errors} cpu ${m.cpuUs.toFixed(0)} us/req`,
          )
        }
      }
      console.log(`round ${round + 1} done, load average ${os.loadavg()[0].toFixed(2)}`)
    }

    const names = targets.map((t) => t.name)
    const authed = names.filter((n) => n === 'basic' || n === 'bearer')
    const base = names.includes('floor') ? 'floor' : undefined
    const toFloorNames = base ? names.filter((n) => n !== base) : []
    const vsEngineNames = names.includes('engine') ? authed : []
    const header = [
      'scenario',
      'kind',
      ...names.map((n) => `${n} req/s`),
      ...toFloorNames.map((n) => `${n}/floor`),
      ...vsEngineNames.map((n) => `${n} vs engine`),
    ]
    const lines = [`| ${header.join(' | ')} |`]
    const cpuLines = [
      `| scenario | ${names.map((n) => `${n} CPU us/req`).join(' | ')} | ${names.map((n) => `${n} p50/p99 ms`).join(' | ')} | non-2xx ${names.join('/')} |`,
    ]
    const summary: Record<string, unknown> = {}
    for (const scenario of scenarios) {
      const of = (name: TargetName) => results.get(`${scenario.name}/${name}`) ?? []
      const med = (name: TargetName, key: keyof Measure) => median(of(name).map((m) => m[key]))
      // Ratios are taken round by round (the targets ran back to back), then their median.
      const perRound = (a: TargetName, b: TargetName, key: 'rps' | 'cpuUs' = 'rps') => median(of(a).map((m, i) => (of(b)[i] ? m[key] / of(b)[i][key] : NaN)))
      const toFloor = Object.fromEntries(toFloorNames.map((n) => [n, perRound(n, base!)]))
      // An authenticated ratio to the floor over the unauthenticated engine's, in the same round: rps / rps of the engine.
      const vsEngine = Object.fromEntries(vsEngineNames.map((n) => [n, perRound(n, 'engine')]))
      const cpuVsEngine = Object.fromEntries(vsEngineNames.map((n) => [n, perRound(n, 'engine', 'cpuUs')]))
      summary[scenario.name] = { describe: scenario.describe, ...Object.fromEntries(names.map((n) => [n, of(n)])), toFloor, vsEngine, cpuVsEngine }
      const cells = [
        ...names.map((n) => fmt(med(n, 'rps'))),
        ...Object.values(toFloor).map((r) => `**${fmt(r, 2)}**`),
        ...Object.values(vsEngine).map((r) => `**${fmt(r, 2)}**`),
      ]
      lines.push(`| ${scenario.name} | ${scenario.kind} | ${cells.join(' | ')} |`)
      cpuLines.push(
        `| ${scenario.name} | ${names.map((n) => fmt(med(n, 'cpuUs'))).join(' | ')} | ${names.map((n) => `${med(n, 'p50')} / ${med(n, 'p99')}`).join(' | ')} | ${names
          .map((n) => of(n).reduce((a, m) => a + m.non2xx + m.errors, 0))
          .join(' / ')} |`,
      )
    }
    // The markdown rule under each header: one cell per column.
    for (const table of [lines, cpuLines])
      table.splice(
        1,
        0,
        `|${table[0]
          .split('|')
          .slice(1, -1)
          .map(() => '---')
          .join('|')}|`,
      )
    const memory = servers.map((s) => `${s.name}: idle ${s.idleRss} MB, after the runs ${rssMb(s.proc.pid)} MB`).join('; ')
    console.log(
      `\n${scenarios.map((s) => `- ${s.name}: ${s.describe}`).join('\n')}\n\n` +
        `"X vs engine" is the median over rounds of (X/floor) / (engine/floor) = X req/s / engine req/s in the same round; the issue asks >= 0.90.\n\n` +
        `${lines.join('\n')}\n\n${cpuLines.join('\n')}\n\nRSS (VmRSS) ${memory}\nend load average ${os
          .loadavg()
          .map((x) => x.toFixed(2))
          .join(' ')}`,
    )
    const out = path.join(SOURCE, 'bench', 'results')
    fs.mkdirSync(out, { recursive: true })
    const label = `${SCALE ? 'scale' : 'base'}${EMBEDDED ? '-pglite' : ''}`
    fs.writeFileSync(
      path.join(out, `${label}.json`),
      JSON.stringify({ date: new Date().toISOString(), sizes, rounds: ROUNDS, duration: DURATION, connections: CONNECTIONS, memory, summary }, null, 2),
    )
  } finally {
    for (const s of servers) await stop(s)
    for (const dir of new Set([dataDirs.engine, dataDirs.identity])) if (dir) fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
