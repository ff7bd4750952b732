import fs from 'node:fs'
import { expect } from 'chai'
import type { Knex } from 'knex'
import { ensureMigrationLock, isTransientStartupError, migrateLatest, openDatabase } from '../core'
import { freshDatabase, MIGRATIONS } from './support'

/** Migrates as server.ts does at start-up: errors of a concurrent start are retried. */
async function migrateAsAServer(db: Knex): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await migrateLatest(db, MIGRATIONS)
      return
    } catch (err) {
      if (attempt >= 50 || !isTransientStartupError(err)) throw err
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}

describe('migrations started by several processes at once', function () {
  this.timeout(120_000)

  it("knex's lock table gets exactly one row however many start at once, so its lock never sticks", async () => {
    const fresh = await freshDatabase()
    // On PostgreSQL, separate pools stand for separate processes; the embedded database has one connection.
    const url = process.env.DATABASE_URL ? (fresh.db.client.config.connection as { connectionString: string }).connectionString : undefined
    const others = url ? [1, 2, 3].map(() => openDatabase({ url, poolSize: 2 })) : []
    try {
      const all = [fresh.db, ...others]
      await Promise.all([...all, ...all].map((db) => ensureMigrationLock(db)))
      expect((await fresh.db('knex_migrations_lock').select('index', 'is_locked')).map((r) => ({ ...r }))).to.deep.equal([{ index: 1, is_locked: 0 }])
      // Then migrating from all of them at once applies each migration once, and frees the lock.
      await Promise.all(all.map((db) => migrateAsAServer(db)))
      const names = await fresh.db('knex_migrations').pluck('name')
      expect(names).to.have.length(fs.readdirSync(MIGRATIONS).filter((f) => f.endsWith('.ts')).length)
      expect(new Set(names).size).to.equal(names.length)
      expect((await fresh.db('knex_migrations_lock').select('is_locked')).map((r) => r.is_locked)).to.deep.equal([0])
    } finally {
      await Promise.all(others.map((db) => db.destroy()))
      await fresh.drop()
    }
  })
})
