// What a page costs by its depth, by offset and by cursor, on the scale data set (`npm run bench:seed`:
// 1,000,000 components, created_at 1 ms apart) on PostgreSQL: the engine as a library (no identity),
// served over HTTP on loopback, each page asked ROUNDS times one after the other; p50 and p99 in ms
// of the whole request as the client sees it. The cursor of a depth is the `_meta.next` of the page
// just before it. Then `query` filters of 3 comparisons on indexed fields (componenttype and created_at,
// which one composite index serves; name and sha, OR-ed). PARTS=depth,query chooses the parts.
// Run: npx tsx bench/results/issue12/keyset-depth.ts (DATABASE_URL, default dci_bench_1m).
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { createEngine, openDatabase } from '../../../core'
import { resourcePlugins } from '../../../resources'

const URL_ = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/dci_bench_1m'
const ROUNDS = Number(process.env.ROUNDS ?? 40)
const root = path.resolve(__dirname, '..', '..', '..')

async function main() {
  const db = openDatabase({ url: URL_, statementTimeout: 60_000 })
  const engine = await createEngine({ db, schemasDir: path.join(root, 'schemas'), plugins: resourcePlugins })
  const server = http.createServer(engine.app().callback())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/components`
  const get = async (query: string, rows = 20) => {
    const res = await fetch(`${origin}?${query}`)
    const body = (await res.json()) as { components: Array<Record<string, string>>; _meta: { next?: string } }
    if (res.status !== 200 || body.components.length !== rows) throw new Error(`${query}: ${res.status} ${JSON.stringify(body).slice(0, 200)}`)
    return body
  }
  const time = async (label: string, query: string, rows = 20) => {
    await get(query, rows)
    const ms: number[] = []
    for (let i = 0; i < ROUNDS; i++) {
      const start = process.hrtime.bigint()
      await get(query, rows)
      ms.push(Number(process.hrtime.bigint() - start) / 1e6)
    }
    ms.sort((a, b) => a - b)
    const at = (q: number) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))].toFixed(1)
    console.log(`${label.padEnd(58)} p50 ${at(0.5).padStart(7)}  p99 ${at(0.99).padStart(7)}`)
  }
  const parts = (process.env.PARTS ?? 'depth,query').split(',')
  try {
    if (parts.includes('query')) {
      const sample = (await get('sort=name&limit=20&offset=500000')).components[0]
      const type = sample.componenttype
      const at = Date.parse(sample.created_at)
      const iso = (ms: number) => new Date(ms).toISOString()
      console.log(`-- query: 3 comparisons on indexed fields`)
      const range = `and(eq(componenttype,${type}),ge(created_at,${iso(at - 3_600_000)}),lt(created_at,${iso(at + 3_600_000)}))`
      await time(`query=${range.slice(0, 40)}... (count=none)`, `query=${encodeURIComponent(range)}&count=none`)
      await time(`same, count estimated`, `query=${encodeURIComponent(range)}`)
      const names = `or(eq(name,component-0000001),eq(name,${sample.name}),eq(sha,none))`
      await time(`query=${names} (count=none)`, `query=${encodeURIComponent(names)}&count=none`, 2)
      await time(`same, count estimated`, `query=${encodeURIComponent(names)}`, 2)
    }
    if (parts.includes('depth'))
    for (const [sort, extra] of [
      ['created_at', '&count=none'],
      ['-name', '&count=none'],
      ['created_at', ''],
    ] as const) {
      const common = `sort=${sort}&limit=20${extra}`
      console.log(`-- sort=${sort}${extra || ' (count estimated)'}`)
      await time('first page', common)
      for (const depth of [10_000, 100_000, 500_000, 999_960]) {
        await time(`offset=${depth}`, `${common}&offset=${depth}`)
        const before = await get(`${common}&offset=${depth - 20}`)
        await time(`after=<cursor of row ${depth}>`, `${common}&after=${before._meta.next}`)
      }
    }
  } finally {
    server.close()
    await db.destroy()
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
