const { openBenchDatabase, seed } = require('/tmp/ab-before/dist/bench/database.js')
const { Client } = require('/tmp/ab-before/node_modules/pg')
async function main() {
  const admin = new Client('postgres://postgres@127.0.0.1:5432/postgres'); await admin.connect()
  for (const d of ['dci_bench_a', 'dci_bench_b']) await admin.query(`DROP DATABASE IF EXISTS ${d}`)
  const db = await openBenchDatabase({ url: 'postgres://postgres@127.0.0.1:5432/dci_bench_a' })
  await seed(db, { types: 100, components: 10000 })
  await db.destroy()
  await admin.query('CREATE DATABASE dci_bench_b TEMPLATE dci_bench_a')
  await admin.end()
  console.log('seeded')
}
main().catch((e) => { console.error(e); process.exit(1) })
