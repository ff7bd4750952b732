// Usage: node pairs.js ab.txt -- per-round after/before ratios (the two builds of one round run back to back) and their medians.
// paired per-round ratios after/before from ab.js output
const lines = require('fs').readFileSync(process.argv[2], 'utf8').split('\n')
const d = {}
for (const l of lines) { const m = l.match(/^(\d+) (\S+) \/tmp\/ab-(before|after) (\d+) req\/s (\d+) us\/req/); if (m) ((d[m[2]] ??= {})[m[1]] ??= {})[m[3]] = { rps: +m[4], cpu: +m[5] } }
const med = (a) => { a = [...a].sort((x, y) => x - y); return a.length % 2 ? a[(a.length - 1) / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2 }
for (const [s, rounds] of Object.entries(d)) { const r = Object.values(rounds).filter((x) => x.before && x.after)
  const c = r.map((x) => x.after.cpu / x.before.cpu), q = r.map((x) => x.after.rps / x.before.rps)
  console.log(s.padEnd(12), 'n', r.length, 'cpu after/before per round', c.map((x) => x.toFixed(2)).join(' '), 'median', med(c).toFixed(3), '| req/s median', med(q).toFixed(3)) }
