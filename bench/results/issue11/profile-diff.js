// Per-request self time of two .cpuprofile files (node --cpu-prof): node profile-diff.js A.cpuprofile REQUESTS_A B.cpuprofile REQUESTS_B
const fs = require('fs')
function load(f) { const p = JSON.parse(fs.readFileSync(f)); const byId = new Map(p.nodes.map((n) => [n.id, n])); const self = new Map()
  for (let i = 0; i < p.samples.length; i++) { const n = byId.get(p.samples[i]); const cf = n.callFrame; const u = cf.url.replace(/.*node_modules\//, '').replace(/.*\/dist\//, 'dist/'); const k = `${cf.functionName || '(anon)'} ${u}:${cf.lineNumber}`; self.set(k, (self.get(k) || 0) + (p.timeDeltas[i] || 0) / 1000) }
  return self }
const [fa, ra, fb, rb] = process.argv.slice(2); const a = load(fa), b = load(fb); const na = Number(ra), nb = Number(rb)
const keys = new Set([...a.keys(), ...b.keys()]); const rows = []
for (const k of keys) { if (/\(idle\)/.test(k)) continue; const x = (a.get(k) || 0) * 1000 / na, y = (b.get(k) || 0) * 1000 / nb; rows.push([y - x, x, y, k]) }
rows.sort((p, q) => q[0] - p[0]); let tot = 0; for (const r of rows) tot += r[0]
console.log('total busy delta us/req', tot.toFixed(1))
for (const r of rows.slice(0, 25)) console.log(r[0].toFixed(2).padStart(7), r[1].toFixed(2).padStart(7), r[2].toFixed(2).padStart(7), r[3])
console.log('...most reduced'); for (const r of rows.slice(-8)) console.log(r[0].toFixed(2).padStart(7), r[1].toFixed(2).padStart(7), r[2].toFixed(2).padStart(7), r[3])
