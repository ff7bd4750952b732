// Written by `npm run db:generate` from core/identity/schemas/user.json and audit.json (the identity
// plugin's resources); the apikeys table, which is no resource, was added by hand.
//   user (users): the table does not exist
//   audit (audits): the table does not exist
import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('users', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'))
    t.text('name').notNullable()
    t.text('email')
    t.text('password').notNullable()
    t.text('role').notNullable().defaultTo('user')
    t.uuid('team').notNullable().references('id').inTable('teams').onDelete('RESTRICT')
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now())
    t.timestamp('updated_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now())
    t.text('etag').notNullable()
    t.unique(['name'])
    t.unique(['email'])
    t.index(['team'])
    t.index(['created_at'])
  })
  await knex.schema.createTable('audits', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'))
    t.uuid('identity_id')
    t.text('identity_kind').notNullable()
    t.text('identity_name')
    t.text('action').notNullable()
    t.text('resource')
    t.uuid('row_id')
    t.text('row_etag')
    t.text('request_id')
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now())
    t.timestamp('updated_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now())
    t.text('etag').notNullable()
    t.index(['identity_id'])
    t.index(['resource'])
    t.index(['row_id'])
    t.index(['created_at'])
  })
  // API keys of users and remotecis (core/identity/apikeys.ts): the token only as a SHA-256 digest.
  // No foreign key: the holder is a row of one of several tables; the identity plugin deletes a
  // holder's keys with it, and a lookup joins the holder's table.
  await knex.schema.createTable('apikeys', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'))
    t.text('holder_kind').notNullable()
    t.uuid('holder_id').notNullable()
    t.text('token_hash').notNullable().unique()
    t.text('name')
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now())
    t.timestamp('last_used_at', { useTz: true, precision: 3 })
    t.index(['holder_kind', 'holder_id'])
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('apikeys')
  await knex.schema.dropTable('audits')
  await knex.schema.dropTable('users')
}
