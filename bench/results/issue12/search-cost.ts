// What `q` costs at its worst on 200,000 rows whose searchable text is as long as components allow
// (name, canonical_project_name and title of 255 characters each, 60 words of 10 stems x 50 numbers),
// on the embedded database and on PostgreSQL (DATABASE_URL): the stored `_search` column and its GIN
// index as db:generate writes them, and the statements the engine writes for a page and a capped count
// (core/data/search-sql.ts). The searches: a word a tenth of the rows hold, ranked; three such words
// OR-ed, ranked; a phrase of two words a tenth of the rows hold (its recheck reads the stored vector); a word no
// row holds, sorted by created_at (the planner may walk the created_at index and test each row);
// `-word` alone (every row but a tenth). Run: npx tsx bench/results/issue12/search-cost.ts
import { openDatabase } from '../../../core'
import { SEARCH_COLUMN, searchIndex, searchIndexSql } from '../../../core/schema/derive'
import type { ResourceDefinition } from '../../../core/schema/types'
import { searchSql } from '../../../core/data/search-sql'

async function main() {
  const url = process.env.DATABASE_URL
  const db = openDatabase(url ? { url, statementTimeout: 600_000 } : { statementTimeout: 600_000 })
  const def = {
    name: 'costly',
    plural: 'costly',
    fields: ['name', 'canonical_project_name', 'title'].map((name) => ({ name, search: true })),
  } as unknown as ResourceDefinition
  const index = searchIndex(def)!
  const { matches, rank } = searchSql(index)
  try {
    await db.raw('DROP TABLE IF EXISTS costly')
    await db.raw(`CREATE TABLE costly (id uuid PRIMARY KEY, created_at timestamptz(3) NOT NULL, name text, canonical_project_name text, title text)`)
    // The column and its index first, so each batch of rows fills them (one ALTER over 200,000 rows of
    // text took longer than the statement timeout on the embedded database).
    for (const sql of searchIndexSql(index)) await db.raw(sql)
    const started = Date.now()
    for (let from = 1; from <= 200_000; from += 20_000) {
      await db.raw(
        `INSERT INTO costly
         SELECT gen_random_uuid(), timestamptz '2026-01-01' + i * interval '1 ms', t, t, t
           FROM generate_series(?::int, ?::int) i,
                LATERAL (SELECT left(string_agg((ARRAY['alpha','beta','gamma','delta','kernel','rhel','tools','build','release','update'])[1 + ((i * 7 + g * 13) % 10)] || (g % 50)::text, ' '), 255) AS t
                           FROM generate_series(1, 60) g) w`,
        [from, from + 19_999],
      )
    }
    await db.raw('CREATE INDEX ON costly (created_at)')
    await db.raw('ANALYZE costly')
    console.log(`${url ? 'PostgreSQL' : 'embedded  '} 200,000 rows inserted, with ${SEARCH_COLUMN} and its index, in ${((Date.now() - started) / 1000).toFixed(1)} s`)
    for (const [label, words, order] of [
      ['one word a tenth of the rows hold, ranked', 'alpha1', 'rank'],
      ['three such words OR-ed, ranked', 'alpha1 or beta2 or gamma3', 'rank'],
      ['a phrase of two words (a tenth of the rows), ranked', '"alpha1 delta2"', 'rank'],
      ['a word no row holds, sorted by created_at', 'zzz', 'created_at'],
      ['-alpha1 (nine rows in ten), ranked', '-alpha1', 'rank'],
      ['-alpha1, sorted by created_at', '-alpha1', 'created_at'],
    ] as const) {
      const orderBy = order === 'rank' ? `ORDER BY ${rank} DESC, id` : 'ORDER BY created_at, id'
      const bindings = order === 'rank' ? [words, words] : [words]
      for (const [kind, sql, b] of [
        ['page (limit 21)', `SELECT id, name, canonical_project_name, title, created_at FROM costly WHERE ${matches} ${orderBy} LIMIT 21`, bindings],
        ['capped count', `SELECT count(*) FROM (SELECT 1 FROM costly WHERE ${matches} LIMIT 10001) c`, [words]],
      ] as const) {
        const start = Date.now()
        const result = await db.raw(sql, b as string[])
        const n = Array.isArray(result) ? result.length : (result.rows?.length ?? 0)
        console.log(`${url ? 'PostgreSQL' : 'embedded  '} ${label}: ${kind} ${Date.now() - start} ms (${n} rows)`)
      }
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
