/**
 * `npm run db:generate [-- resource...] [--drop <table>]... [--drop-orphans] [--rename <old>=<new>]...
 * [--keep <table>]... [--force]`: writes the knex migration that brings the database in line with
 * schemas/ (all resources, or the ones named), or prints "nothing to do". Names the tables no schema
 * owns; drops or renames them only when told. Warns about what the migration does to the data, and
 * writes none that would fail on this database's data unless `--force`.
 * Database: DATABASE_URL when set, else the embedded one under DATA_DIR (default `data`).
 */
import path from 'node:path'
import { parseArgs } from 'node:util'
import { openDatabase } from '../core/data/db'
import { generateMigration } from '../tooling/migration-generator'
import { projectContributions } from '../tooling/project'
import { orphanMessage } from '../tooling/schema-drift'

const root = path.resolve(__dirname, '..')

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      drop: { type: 'string', multiple: true },
      'drop-orphans': { type: 'boolean' },
      rename: { type: 'string', multiple: true },
      keep: { type: 'string', multiple: true },
      force: { type: 'boolean' },
    },
  })
  const rename: Record<string, string> = {}
  for (const pair of values.rename ?? []) {
    const [from, to, ...rest] = pair.split('=')
    if (!from || !to || rest.length) throw new Error(`--rename takes <old table>=<new table>, not ${pair}`)
    rename[from] = to
  }
  if (values['drop-orphans'] && values.drop) throw new Error('--drop-orphans drops every table no schema owns: give it or --drop, not both')
  const url = process.env.DATABASE_URL || undefined
  const db = openDatabase({ url, dataDir: url ? undefined : path.resolve(process.env.DATA_DIR ?? 'data') })
  const { keywords, schemaFiles } = projectContributions()
  try {
    const result = await generateMigration({
      db,
      schemasDir: path.join(root, 'schemas'),
      migrationsDir: path.join(root, 'migrations'),
      resources: positionals,
      // Schema files and keywords the server's plugins bring.
      keywords,
      schemaFiles,
      drop: values['drop-orphans'] ? 'orphans' : values.drop,
      rename,
      keep: values.keep,
      force: values.force,
    })
    if (result.applied.length) console.log(`applied pending migrations first: ${result.applied.join(', ')}`)
    if (result.orphans.length) console.warn(`warning: ${orphanMessage(result.orphans)}`)
    if (!result.file) {
      console.log('nothing to do: the database matches the schemas')
      return
    }
    for (const line of result.warnings) console.warn(`warning: ${line}`)
    console.log(`wrote ${path.relative(process.cwd(), result.file)}:`)
    for (const line of result.summary) console.log(`  ${line}`)
    console.log('Review it, commit it; the server applies it at start-up (`npm run db:rollback` undoes it once applied).')
  } finally {
    await db.destroy()
  }
}

main().catch((err) => {
  console.error(`db:generate failed: ${err?.message ?? err}`)
  process.exitCode = 1
})
