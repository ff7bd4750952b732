// The costliest `query` filter the limits allow, on 200,000 rows whose text is as long as the schema
// lets it be (255 characters), on the embedded database and on PostgreSQL (DATABASE_URL). It runs the
// SQL the engine writes for it: 4 text-matching comparisons (MAX_PATTERN_COMPARISONS) with patterns
// of 500 characters in all (MAX_PATTERN_CHARACTERS) that match nothing (so every row is tried on every
// pattern), OR-ed, plus 46 more comparisons. Run: npx tsx bench/results/issue12/costliest-query.ts
import { openDatabase } from '../../../core'

async function main() {
  const url = process.env.DATABASE_URL
  const db = openDatabase(url ? { url, statementTimeout: 120_000 } : { statementTimeout: 120_000 })
  try {
    await db.raw('DROP TABLE IF EXISTS costly')
    await db.raw("CREATE TABLE costly AS SELECT i, repeat('a', 254) || chr(97 + i % 20) AS name, repeat('a', 255) AS sha FROM generate_series(1, 200000) i")
    // MAX_PATTERN_COMPARISONS (4) patterns of 125 characters: MAX_PATTERN_CHARACTERS (500) in all, half of them ILIKE.
    const pattern = (c: string) => `${'%a'.repeat(61)}%${c}x`
    const likes = ['b', 'c'].flatMap((c) => [`name LIKE '${pattern(c)}'`, `sha ILIKE '${pattern(c)}'`])
    const eqs = Array.from({ length: 46 }, (_, i) => `name = 'x${i}'`)
    const where = [...likes, ...eqs].join(' OR ')
    for (const [label, sql] of [
      ['page (limit 21, sorted)', `SELECT * FROM costly WHERE ${where} ORDER BY name, i LIMIT 21`],
      ['capped count', `SELECT count(*) FROM (SELECT 1 FROM costly WHERE ${where} LIMIT 10001) c`],
    ]) {
      const start = Date.now()
      const rows = await db.raw(sql)
      const n = Array.isArray(rows) ? rows.length : (rows.rows?.length ?? 0)
      console.log(`${url ? 'PostgreSQL' : 'embedded  '} ${label}: ${Date.now() - start} ms (${n} rows)`)
    }
    await db.raw('DROP TABLE costly')
  } finally {
    await db.destroy()
  }
}
main().catch((err) => {
  console.error(err)
  process.exit(1)
})
