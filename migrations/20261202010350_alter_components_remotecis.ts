// Written by `npm run db:generate` from schemas/component.json, schemas/remoteci.json; review it before committing.
//   component (components): column 'canonical_project_name' is missing
//   component (components): column 'data' is missing
//   component (components): column 'sha' is missing
//   component (components): column 'title' is missing
//   component (components): column 'message' is missing
//   component (components): column 'url' is missing
//   component (components): column 'git' is missing
//   component (components): column 'ref' is missing
//   component (components): index on (canonical_project_name) is missing
//   component (components): index on (sha) is missing
//   remoteci (remotecis): column 'data' has default none in the database, the schema wants {}
import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('components', (t) => {
    t.text('canonical_project_name')
    t.jsonb('data').defaultTo({})
    t.text('sha')
    t.text('title')
    t.text('message')
    t.text('url')
    t.text('git')
    t.text('ref')
  })
  await knex.schema.alterTable('remotecis', (t) => {
    t.jsonb('data').defaultTo({}).alter()
  })
  // Added by hand: remotecis created without data answered null where the original server answered {};
  // they get the default too (the new components column is {} on every existing row already).
  await knex('remotecis').whereNull('data').update({ data: {} })
  await knex.schema.alterTable('components', (t) => {
    t.index(['canonical_project_name'])
    t.index(['sha'])
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('components', (t) => {
    t.dropIndex(['canonical_project_name'])
    t.dropIndex(['sha'])
  })
  // The remotecis whose null data up() made {} keep {}: nothing tells them from the ones sent as {}.
  await knex.schema.alterTable('remotecis', (t) => {
    t.jsonb('data').alter()
  })
  await knex.schema.alterTable('components', (t) => {
    t.dropColumn('canonical_project_name')
    t.dropColumn('data')
    t.dropColumn('sha')
    t.dropColumn('title')
    t.dropColumn('message')
    t.dropColumn('url')
    t.dropColumn('git')
    t.dropColumn('ref')
  })
}
