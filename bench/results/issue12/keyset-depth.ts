// What a page costs by its depth, by offset and by cursor, on the scale data set (`npm run bench:seed`:
// 1,000,000 components, created_at 1 ms apart) on PostgreSQL: the engine as a library (no identity),
// served over HTTP on loopback, each page asked ROUNDS times one after the other; p50 and p99 in ms
// of the whole request as the client sees it. The cursor of a depth is the `_meta.next` of the page
// just before it. Run: npx tsx bench/results/issue12/keyset-depth.ts (DATABASE_URL, default dci_bench_1m).
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
  const get = async (query: string) => {
    const res = await fetch(`${origin}?${query}`)
    const body = (await res.json()) as { components: unknown[]; _meta: { next?: string } }
    if (res.status !== 200 || body.components.length !== 20) throw new Error(`${query}: ${res.status} ${JSON.stringify(body).slice(0, 200)}`)
    return body
  }
  const time = async (label: string, query: string) => {
    await get(query)
    const ms: number[] = []
    for (let i = 0; i < ROUNDS; i++) {
      const start = process.hrtime.bigint()
      await get(query)
      ms.push(Number(process.hrtime.bigint() - start) / 1e6)
    }
    ms.sort((a, b) => a - b)
    const at = (q: number) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))].toFixed(1)
    console.log(`${label.padEnd(58)} p50 ${at(0.5).padStart(7)}  p99 ${at(0.99).padStart(7)}`)
  }
  try {
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
