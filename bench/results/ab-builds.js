// A/B of two engine builds, interleaved (bench/RESULTS.md: the per-request overhead pass, the service
// layer, the body checks, the text rules, the ETag changes were measured with it).
// Usage: node bench/results/ab-builds.js BEFORE_DIR,AFTER_DIR ROUNDS SECONDS [scenarios]
// Each directory is a `git archive` of one commit with its node_modules (`npm ci`) and `npx tsc -p tsconfig.build.json`
// run in it; autocannon and pg come from the first one's node_modules. The servers listen on AB_PORT (default 5192) and
// the next port, on the `dci_bench` database of `npm run bench`. Per round (order alternating):
// req/s and CPU us/req of each build, the load average; at the end, medians and the paired per-round ratios.
const { spawn } = require('child_process'); const fs = require('fs'); const http = require('http')
const autocannon = require(`${process.argv[2].split(',')[0]}/node_modules/autocannon`); const { Client } = require(`${process.argv[2].split(',')[0]}/node_modules/pg`)
const builds = process.argv[2].split(',') // dirs with dist/server.js
// AB_URLS: one database per build, comma-separated, when the builds' migrations differ (a build refuses a
// database holding a migration it lacks); AB_SERVER: the server each build runs (default dist/server.js;
// dist/bench/anonymous-server.js is the engine without identity, which needs no credentials).
const URLS = (process.env.AB_URLS || 'postgres://postgres@127.0.0.1:5432/dci_bench').split(',')
const URL = URLS[0]
const SERVER = process.env.AB_SERVER || 'dist/server.js'
const ROUNDS = Number(process.argv[3] || 4), DUR = Number(process.argv[4] || 4)
const only = (process.argv[5] || 'detail,list-sorted,list-where,create,update').split(',')
const cpu = (pid) => { const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) * 1e4 }
const pick = (l) => l[Math.floor(Math.random() * l.length)]
async function start(dir, port) {
  const proc = spawn(process.execPath, [`${dir}/${SERVER}`], { cwd: dir, env: { ...process.env, DATABASE_URL: URLS[builds.indexOf(dir)] ?? URL, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' }, stdio: ['ignore', 'inherit', 'inherit'] })
  for (;;) { await new Promise((r) => setTimeout(r, 300)); const ok = await new Promise((r) => http.get({ host: '127.0.0.1', port, path: '/api/v1/none' }, (res) => { res.resume(); r(true) }).on('error', () => r(false))); if (ok) return { dir, port, proc } }
}
async function main() {
  const c = new Client(URL); await c.connect()
  // Seeded rows only (created before 2026-06), which every build's database holds when one is a copy of the other.
  const ids = (await c.query("select id from components where created_at < '2026-06-01' order by random() limit 1000")).rows.map((r) => r.id)
  const names = (await c.query('select name from components order by random() limit 1000')).rows.map((r) => r.name)
  const types = (await c.query('select id from componenttypes limit 100')).rows.map((r) => r.id)
  await c.end()
  let n = 0; const json = { 'content-type': 'application/json' }
  const sc = {
    detail: () => ({ method: 'GET', path: `/api/v1/components/${pick(ids)}` }),
    'list-where': () => ({ method: 'GET', path: `/api/v1/components?where=name:${pick(names)}` }),
    'list-sorted': () => ({ method: 'GET', path: `/api/v1/components?sort=-name&limit=20&offset=${Math.floor(Math.random() * 1000)}` }),
    create: () => ({ method: 'POST', path: '/api/v1/components', headers: json, body: JSON.stringify({ name: `ab-${process.pid}-${n++}`, componenttype: pick(types) }) }),
    update: () => ({ method: 'PUT', path: `/api/v1/components/${pick(ids)}`, headers: { ...json, 'if-match': '*' }, body: JSON.stringify({ name: `ab-renamed-${n++}` }) }),
  }
  const servers = []; for (let i = 0; i < builds.length; i++) servers.push(await start(builds[i], Number(process.env.AB_PORT || 5192) + i))
  const run = (s, name, d) => new Promise((resolve) => { const c0 = cpu(s.proc.pid); autocannon({ url: `http://127.0.0.1:${s.port}`, connections: 10, duration: d, requests: [{ setupRequest: (r) => ({ ...r, ...sc[name]() }) }] }, (e, res) => resolve({ rps: res.requests.average, cpu: (cpu(s.proc.pid) - c0) / (res.requests.total || 1), bad: res.non2xx + res.errors })) })
  for (const name of only) for (const s of servers) await run(s, name, 2)
  const res = {}
  for (let r = 0; r < ROUNDS; r++) { const order = r % 2 ? [...servers].reverse() : servers; console.log('round', r, 'loadavg', require('os').loadavg().map((x) => x.toFixed(2)).join(' '), new Date().toISOString())
    for (const name of only) for (const s of order) { const m = await run(s, name, DUR); (res[`${name} ${s.dir}`] ??= []).push(m); console.log(r, name, s.dir, m.rps.toFixed(0), 'req/s', m.cpu.toFixed(0), 'us/req', 'bad', m.bad) } }
  const med = (a) => { a = [...a].sort((x, y) => x - y); return a.length % 2 ? a[(a.length - 1) / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2 }
  for (const name of only) console.log(name.padEnd(12), servers.map((s) => `${s.dir}: ${med(res[`${name} ${s.dir}`].map((m) => m.cpu)).toFixed(0)} us/req ${med(res[`${name} ${s.dir}`].map((m) => m.rps)).toFixed(0)} req/s`).join(' | '))
  for (const name of only) { const a = res[`${name} ${servers[0].dir}`], b = res[`${name} ${servers[1].dir}`]; const c = b.map((m, i) => m.cpu / a[i].cpu), q = b.map((m, i) => m.rps / a[i].rps)
    console.log(name.padEnd(12), 'n', c.length, 'cpu after/before per round', c.map((x) => x.toFixed(2)).join(' '), 'median', med(c).toFixed(3), '| req/s median', med(q).toFixed(3)) }
  console.log('end loadavg', require('os').loadavg().map((x) => x.toFixed(2)).join(' '), new Date().toISOString())
  for (const s of servers) s.proc.kill('SIGTERM')
}
main().catch((e) => { console.error(e); process.exit(1) })
