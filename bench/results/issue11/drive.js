// The load of the profiles in profile-detail.txt: node drive.js detail|create|list-where SECONDS, against a server on port 5301
// (dist/bench/anonymous-server.js of a build, on the dci_bench_b database of seed-ab.js); autocannon and pg from /tmp/ab-after.
const autocannon = require('/tmp/ab-after/node_modules/autocannon'); const { Client } = require('/tmp/ab-after/node_modules/pg')
async function main() {
  const c = new Client('postgres://postgres@127.0.0.1:5432/dci_bench_b'); await c.connect()
  const ids = (await c.query("select id from components order by random() limit 1000")).rows.map((r) => r.id)
  const types = (await c.query('select id from componenttypes limit 100')).rows.map((r) => r.id)
  const names = (await c.query('select name from components order by random() limit 1000')).rows.map((r) => r.name)
  await c.end()
  const pick = (l) => l[Math.floor(Math.random() * l.length)]
  let n = 0
  const kind = process.argv[2]
  const req = kind === 'create' ? () => ({ method: 'POST', path: '/api/v1/components', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: `prof-${process.pid}-${n++}`, componenttype: pick(types) }) })
    : kind === 'list-where' ? () => ({ method: 'GET', path: `/api/v1/components?where=name:${pick(names)}` })
    : () => ({ method: 'GET', path: `/api/v1/components/${pick(ids)}` })
  const r = await autocannon({ url: 'http://127.0.0.1:5301', connections: 10, duration: Number(process.argv[3] || 15), requests: [{ setupRequest: (q) => ({ ...q, ...req() }) }] })
  console.log(kind, Math.round(r.requests.average), 'req/s', r.non2xx, 'non2xx')
}
main()
