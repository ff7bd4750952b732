/**
 * `npm run db:rollback [-- --one]`: undoes the last batch of migrations (those one start-up or one
 * `npm run db:generate` applied together), or only the last migration with `--one`, running their
 * `down()`, and prints what it undid. The files stay: delete or change one only after undoing it.
 * Database: DATABASE_URL when set, else the embedded one under DATA_DIR (default `data`).
 */
import path from 'node:path'
import { parseArgs } from 'node:util'
import { openDatabase, rollbackMigrations } from '../core/data/db'

const root = path.resolve(__dirname, '..')

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { one: { type: 'boolean' } } })
  const url = process.env.DATABASE_URL || undefined
  const db = openDatabase({ url, dataDir: url ? undefined : path.resolve(process.env.DATA_DIR ?? 'data') })
  try {
    const undone = await rollbackMigrations(db, path.join(root, 'migrations'), { one: values.one })
    if (undone.length === 0) console.log('nothing to undo: no migration is applied')
    else console.log(`undid ${undone.length} migration${undone.length > 1 ? 's' : ''}, last applied first:\n${undone.map((n) => `  ${n}`).join('\n')}`)
  } finally {
    await db.destroy()
  }
}

main().catch((err) => {
  console.error(`db:rollback failed: ${err?.message ?? err}`)
  process.exitCode = 1
})
