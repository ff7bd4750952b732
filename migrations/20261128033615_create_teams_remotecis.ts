// Written by `npm run db:generate` from schemas/remoteci.json, schemas/team.json; review it before committing.
//   remoteci (remotecis): the table does not exist
//   team (teams): the table does not exist
import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('teams', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'))
    t.text('name').notNullable()
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now())
    t.timestamp('updated_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now())
    t.text('etag').notNullable()
    t.unique(['name'])
    t.index(['created_at'])
  })
  await knex.schema.createTable('remotecis', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'))
    t.text('name').notNullable()
    t.jsonb('data')
    t.uuid('team').notNullable().references('id').inTable('teams').onDelete('RESTRICT')
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now())
    t.timestamp('updated_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now())
    t.text('etag').notNullable()
    t.unique(['team', 'name'])
    t.index(['created_at'])
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('remotecis')
  await knex.schema.dropTable('teams')
}
