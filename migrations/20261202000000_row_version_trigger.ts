// Written by hand: every change to a row gives it a new ETag and updated_at, the database's own
// changes included (ON DELETE SET NULL, SQL by hand), not only the API's (issue 10). The trigger
// row_version, BEFORE UPDATE on each resource table, sets a new etag (32 hex digits) and updated_at
// when the statement left the etag as it was; the engine's own UPDATE sets the etag it answers and is
// left alone. The drift check asks for it on every resource table (core/schema/derive.ts,
// ROW_VERSION_TRIGGER), and `npm run db:generate` adds it to every table it creates. apikeys is no
// resource and has no etag: it gets none (its last_used_at changes nothing a client caches).
import type { Knex } from 'knex'

const RESOURCE_TABLES = ['componenttypes', 'components', 'teams', 'remotecis', 'users', 'audits']

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
CREATE OR REPLACE FUNCTION row_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.etag IS NOT DISTINCT FROM OLD.etag THEN
    NEW.etag := md5(gen_random_uuid()::text);
    NEW.updated_at := now();
  END IF;
  RETURN NEW;
END
$$
`)
  for (const table of RESOURCE_TABLES) {
    await knex.raw(`CREATE TRIGGER row_version BEFORE UPDATE ON "${table}" FOR EACH ROW EXECUTE FUNCTION row_version()`)
  }
}

export async function down(knex: Knex): Promise<void> {
  for (const table of RESOURCE_TABLES) await knex.raw(`DROP TRIGGER IF EXISTS row_version ON "${table}"`)
  await knex.raw('DROP FUNCTION IF EXISTS row_version()')
}
