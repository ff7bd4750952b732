/**
 * The load benchmark: the engine (compiled, `node dist/server.js`) against the floor
 * (`dist/bench/floor-server.js`, node:http + pg), both on the same database, each in its own process,
 * run interleaved scenario by scenario for a few rounds (the order alternates each round). Prints, per
 * scenario, the median requests/s, p50/p99 latency and non-2xx count of each server and the ratio
 * engine/floor. Run through `npm run bench` (builds first). Options:
 *   --scale               the scale scenarios, on the 1M-row database of `npm run bench:seed`
 *                         (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/dci_bench_1m)
 *   --embedded            the engine alone on PGlite (DATABASE_URL unset, DATA_DIR in a temp folder)
 *   --components N        rows seeded for the base and embedded runs (default 10,000 over 100 types)
 *   --rounds N            measured rounds (default 3)   --duration S   seconds per measurement (default 5)
 *   --connections N       concurrent connections (default 10; 1 with --scale, to read single-request latency)
 *   --only a,b            run only these scenarios       --profile      run the engine under --cpu-prof
 *   --port N              the floor listens on N, the engine on N + 1 (default 5130)
 * Every load loop is bounded in time (--duration) and in count (--max-requests, default 200,000),
 * and only targets 127.0.0.1.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import autocannon from 'autocannon'
import type { Knex } from 'knex'
import { DEFAULT_URL, openBenchDatabase, sample, seed, tableSizes } from './database'
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
/** The floor listens on this port, the engine on the next one. */
const PORT = Number(option('port', '5130'))

interface Server {
  name: 'floor' | 'engine'
  port: number
  proc: ChildProcess
  idleRss?: number
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

async function start(name: Server['name'], port: number, env: Record<string, string>): Promise<Server> {
  if (await listening(port)) throw new Error(`port ${port} is already in use: stop what listens there first`)
  const script = name === 'engine' ? path.join(DIST, 'server.js') : path.join(DIST, 'bench', 'floor-server.js')
  const args = name === 'engine' && PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${path.join(SOURCE, 'bench', 'profiles')}`, script] : [script]
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

async function measure(server: Server, scenario: Scenario, seconds: number, connections = CONNECTIONS): Promise<Measure> {
  let sent = 0
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
              return { ...req, ...scenario.next() }
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
  const sizes = await tableSizes(db)
  if (SCALE && !EMBEDDED && sizes.components < 1000) throw new Error(`${url} holds ${sizes.components} components: run npm run bench:seed first`)
  const rows = await sample(db)
  await db.destroy() // PGlite allows one process at a time: the engine opens it next

  const all = SCALE ? scaleScenarios(rows) : baseScenarios(rows)
  const scenarios = ONLY.length ? all.filter((s) => ONLY.includes(s.name)) : all
  const servers: Server[] = []
  try {
    if (!EMBEDDED) servers.push(await start('floor', PORT, { DATABASE_URL: url! }))
    // Request logs are off (LOG_LEVEL=warn) unless asked: the floor writes none either.
    const logLevel = process.env.LOG_LEVEL ?? 'warn'
    servers.push(await start('engine', PORT + 1, { LOG_LEVEL: logLevel, ...(EMBEDDED ? { DATABASE_URL: '', DATA_DIR: dataDir! } : { DATABASE_URL: url! }) }))
    for (const s of servers) s.idleRss = rssMb(s.proc.pid)
    console.log(`database: ${EMBEDDED ? `PGlite (${dataDir})` : url}, ${sizes.components} components / ${sizes.types} componenttypes`)
    console.log(
      `${ROUNDS} rounds x ${DURATION} s, ${CONNECTIONS} connections, engine LOG_LEVEL=${logLevel}, node ${process.version}, ${os.cpus().length} cores`,
    )

    for (const scenario of scenarios) for (const server of servers) await measure(server, scenario, 2) // warm-up (JIT, pools)

    const results = new Map<string, Measure[]>()
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 ? [...servers].reverse() : servers
      for (const scenario of scenarios) {
        for (const server of order) {
          const m = await measure(server, scenario, DURATION)
          const key = `${scenario.name}/${server.name}`
          results.set(key, [...(results.get(key) ?? []), m])
          console.log(
            `round ${round + 1} ${key}: ${m.rps.toFixed(0)} req/s p50 ${m.p50} ms p99 ${m.p99} ms non-2xx ${m.non2xx} errors ${m.errors} cpu ${m.cpuUs.toFixed(0)} us/req`,
          )
        }
      }
    }

    const lines = [
      '| scenario | kind | floor req/s | engine req/s | engine/floor | floor p50/p99 ms | engine p50/p99 ms | CPU us/req floor/engine | CPU floor/engine | non-2xx floor/engine |',
      '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ]
    const summary: Record<string, unknown> = {}
    for (const scenario of scenarios) {
      const of = (name: string) => results.get(`${scenario.name}/${name}`) ?? []
      const med = (name: string, key: keyof Measure) => median(of(name).map((m) => m[key]))
      const sum = (name: string) => of(name).reduce((a, m) => a + m.non2xx + m.errors, 0)
      // Ratios are taken round by round (floor and engine ran back to back), then their median.
      const rounds = of('engine')
        .map((m, i) => [m, of('floor')[i]] as const)
        .filter(([, f]) => f)
      const ratio = median(rounds.map(([e, f]) => e.rps / f.rps))
      const cpuRatio = median(rounds.map(([e, f]) => f.cpuUs / e.cpuUs))
      summary[scenario.name] = { describe: scenario.describe, floor: of('floor'), engine: of('engine'), ratio, cpuRatio }
      const cpu = `${of('floor').length ? med('floor', 'cpuUs').toFixed(0) : '-'} / ${med('engine', 'cpuUs').toFixed(0)}`
      const cell = (name: string) => (of(name).length ? `${med(name, 'p50')} / ${med(name, 'p99')}` : '-')
      lines.push(
        `| ${scenario.name} | ${scenario.kind} | ${of('floor').length ? med('floor', 'rps').toFixed(0) : '-'} | ${med('engine', 'rps').toFixed(0)} | ` +
          `${Number.isNaN(ratio) ? '-' : ratio.toFixed(2)} | ${cell('floor')} | ${cell('engine')} | ${cpu} | ${Number.isNaN(cpuRatio) ? '-' : cpuRatio.toFixed(2)} | ${of('floor').length ? sum('floor') : '-'} / ${sum('engine')} |`,
      )
    }
    const memory = servers.map((s) => `${s.name}: idle ${s.idleRss} MB, after the runs ${rssMb(s.proc.pid)} MB`).join('; ')
    console.log(`\n${scenarios.map((s) => `- ${s.name}: ${s.describe}`).join('\n')}\n\n${lines.join('\n')}\n\nRSS (VmRSS) ${memory}`)
    const out = path.join(SOURCE, 'bench', 'results')
    fs.mkdirSync(out, { recursive: true })
    const label = `${SCALE ? 'scale' : 'base'}${EMBEDDED ? '-pglite' : ''}`
    fs.writeFileSync(
      path.join(out, `${label}.json`),
      JSON.stringify({ date: new Date().toISOString(), sizes, rounds: ROUNDS, duration: DURATION, connections: CONNECTIONS, memory, summary }, null, 2),
    )
  } finally {
    for (const s of servers) await stop(s)
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
