/**
 * `npm run db:generate [-- resource...]`: writes the knex migration that brings the database in line
 * with schemas/ (all resources, or the ones named), or prints "nothing to do".
 * Database: DATABASE_URL when set, else the embedded one under DATA_DIR (default `data`).
 */
import path from 'node:path'
import { openDatabase } from '../core/data/db'
import { generateMigration } from '../tooling/migration-generator'
import { projectContributions } from '../tooling/project'

const root = path.resolve(__dirname, '..')

async function main(): Promise<void> {
  const url = process.env.DATABASE_URL || undefined
  const db = openDatabase({ url, dataDir: url ? undefined : path.resolve(process.env.DATA_DIR ?? 'data') })
  const { keywords, schemaFiles } = projectContributions()
  try {
    const result = await generateMigration({
      db,
      schemasDir: path.join(root, 'schemas'),
      migrationsDir: path.join(root, 'migrations'),
      resources: process.argv.slice(2),
      // Schema files and keywords the server's plugins bring.
      keywords,
      schemaFiles,
    })
    if (result.applied.length) console.log(`applied pending migrations first: ${result.applied.join(', ')}`)
    if (!result.file) {
      console.log('nothing to do: the database matches the schemas')
      return
    }
    console.log(`wrote ${path.relative(process.cwd(), result.file)}:`)
    for (const line of result.summary) console.log(`  ${line}`)
    console.log('Review it, commit it; the server applies it at start-up.')
  } finally {
    await db.destroy()
  }
}

main().catch((err) => {
  console.error(`db:generate failed: ${err?.message ?? err}`)
  process.exitCode = 1
})
