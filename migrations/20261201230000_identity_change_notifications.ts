// Written by hand: the identity plugin remembers verified credentials between requests
// (core/identity/changes.ts) and must hear of every change to the rows callers are read from,
// whoever makes it (the API, `npm run user`, SQL by hand, TRUNCATE), on every server process. Each
// of these tables notifies the channel `identity_changed` at the commit of any change: users and the
// key holders (remotecis) on any write, apikeys when a key is removed or moved (not for `last_used_at`
// nor for a new key, which no process remembers yet).
import type { Knex } from 'knex'

const CALLER_TABLES = ['users', 'remotecis']

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE FUNCTION notify_identity_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('identity_changed', TG_TABLE_NAME);
      RETURN NULL;
    END
    $$`)
  for (const table of CALLER_TABLES) {
    await knex.raw(
      `CREATE TRIGGER identity_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "${table}" FOR EACH STATEMENT EXECUTE FUNCTION notify_identity_changed()`,
    )
  }
  await knex.raw(
    'CREATE TRIGGER identity_changed AFTER DELETE OR TRUNCATE OR UPDATE OF token_hash, holder_kind, holder_id ON apikeys FOR EACH STATEMENT EXECUTE FUNCTION notify_identity_changed()',
  )
}

export async function down(knex: Knex): Promise<void> {
  for (const table of [...CALLER_TABLES, 'apikeys']) await knex.raw(`DROP TRIGGER IF EXISTS identity_changed ON "${table}"`)
  await knex.raw('DROP FUNCTION IF EXISTS notify_identity_changed()')
}
