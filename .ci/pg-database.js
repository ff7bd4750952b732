// Creates or drops one PostgreSQL database for a CI run: node .ci/pg-database.js create|drop NAME
// Uses the admin connection in PG_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres).
const { Client } = require('pg')

async function main() {
  const [action, name] = process.argv.slice(2)
  if (!['create', 'drop'].includes(action) || !/^[a-z_][a-z0-9_]*$/.test(name ?? '')) {
    throw new Error('usage: pg-database.js create|drop NAME')
  }
  const url = process.env.PG_ADMIN_URL || 'postgres://postgres@127.0.0.1:5432/postgres'
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 5000 })
  try {
    await client.connect()
  } catch (err) {
    throw new Error(`PostgreSQL is not reachable at ${url}: ${err.message}`)
  }
  try {
    if (action === 'create') await client.query(`CREATE DATABASE "${name}"`)
    else await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
  } finally {
    await client.end()
  }
}

main().catch((err) => {
  console.error(`pg-database: ${err.message}`)
  process.exit(1)
})
