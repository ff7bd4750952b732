// What one AbortSignal costs in Node 20 (bench/RESULTS.md, issue 11): node abortsignal-cost.js ac|sig|obj
// ac: new AbortController() only; sig: and its signal read (which makes it); obj: a plain object of similar size.
const { performance, PerformanceObserver } = require('perf_hooks')
let gcTime = 0, gcs = 0
new PerformanceObserver((l) => { for (const e of l.getEntries()) { gcTime += e.duration; gcs++ } }).observe({ entryTypes: ['gc'] })
const kind = process.argv[2]
const live = []
const t0 = performance.now()
for (let i = 0; i < 300000; i++) {
  let x
  if (kind === 'ac') x = new AbortController()
  else if (kind === 'sig') { x = new AbortController(); x.signal }
  else if (kind === 'obj') x = { a: 1, b: [], c: new Map() }
  // keep 10 in flight, like 10 connections
  live.push(x); if (live.length > 10) live.shift()
}
setTimeout(() => console.log(kind, (performance.now() - t0).toFixed(0), 'ms', 'gc', gcs, gcTime.toFixed(0), 'ms'), 100)
