// The components of one type, newest or oldest first (`where=componenttype:X&sort=-created_at`, and
// GET /componenttypes/:id/components) read 20 index entries with this index; with the single-column
// indexes PostgreSQL walks created_at and filters, about 13 ms at a million rows (bench/RESULTS.md).
// Named by hand: the drift check leaves hand-made indexes alone.
import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('components', (t) => {
    t.index(['componenttype', 'created_at'], 'components_componenttype_created_at_idx')
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('components', (t) => {
    t.dropIndex(['componenttype', 'created_at'], 'components_componenttype_created_at_idx')
  })
}
