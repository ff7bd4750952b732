/**
 * Loads the scale data set: `npm run bench:seed` fills DATABASE_URL (default
 * postgres://postgres@127.0.0.1:5432/dci_bench_1m, created if missing) with 1,000,000 components over
 * 1,000 componenttypes. Options: --components N, --types N, --data-dir DIR (seed an embedded PGlite
 * folder instead). Only databases named dci_bench* are touched; their tables are emptied first.
 */
import { benchDatabaseName, openBenchDatabase, seed, tableSizes } from './database'

export const SCALE_URL = 'postgres://postgres@127.0.0.1:5432/dci_bench_1m'

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback
}

async function main(): Promise<void> {
  const dataDir = option('data-dir', '')
  const url = dataDir ? undefined : process.env.DATABASE_URL || SCALE_URL
  if (url) benchDatabaseName(url)
  const size = { components: Number(option('components', '1000000')), types: Number(option('types', '1000')) }
  const started = Date.now()
  const db = await openBenchDatabase({ url, dataDir: dataDir || undefined })
  try {
    await seed(db, size, (done) => console.log(`${done} components (${((Date.now() - started) / 1000).toFixed(1)} s)`))
    const sizes = await tableSizes(db)
    console.log(`seeded ${url ?? dataDir}: ${sizes.types} componenttypes, ${sizes.components} components in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  } finally {
    await db.destroy()
  }
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}
