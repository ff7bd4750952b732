// Written by `npm run db:generate` from schemas/component.json, schemas/componenttype.json, schemas/remoteci.json, schemas/team.json; review it before committing.
//   component (components): full-text index components_search on (name, canonical_project_name, title), for q, is missing
//   componenttype (componenttypes): full-text index componenttypes_search on (name), for q, is missing
//   remoteci (remotecis): full-text index remotecis_search on (name), for q, is missing
//   team (teams): full-text index teams_search on (name), for q, is missing
import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  await knex.raw(
    "ALTER TABLE \"components\" ADD COLUMN \"_search\" tsvector GENERATED ALWAYS AS (to_tsvector('simple', coalesce(\"name\", '') || ' ' || coalesce(\"canonical_project_name\", '') || ' ' || coalesce(\"title\", ''))) STORED",
  )
  await knex.raw('CREATE INDEX "components_search" ON "components" USING gin ("_search")')
  await knex.raw('ALTER TABLE "componenttypes" ADD COLUMN "_search" tsvector GENERATED ALWAYS AS (to_tsvector(\'simple\', coalesce("name", \'\'))) STORED')
  await knex.raw('CREATE INDEX "componenttypes_search" ON "componenttypes" USING gin ("_search")')
  await knex.raw('ALTER TABLE "remotecis" ADD COLUMN "_search" tsvector GENERATED ALWAYS AS (to_tsvector(\'simple\', coalesce("name", \'\'))) STORED')
  await knex.raw('CREATE INDEX "remotecis_search" ON "remotecis" USING gin ("_search")')
  await knex.raw('ALTER TABLE "teams" ADD COLUMN "_search" tsvector GENERATED ALWAYS AS (to_tsvector(\'simple\', coalesce("name", \'\'))) STORED')
  await knex.raw('CREATE INDEX "teams_search" ON "teams" USING gin ("_search")')
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS "teams_search"')
  await knex.raw('ALTER TABLE "teams" DROP COLUMN IF EXISTS "_search"')
  await knex.raw('DROP INDEX IF EXISTS "remotecis_search"')
  await knex.raw('ALTER TABLE "remotecis" DROP COLUMN IF EXISTS "_search"')
  await knex.raw('DROP INDEX IF EXISTS "componenttypes_search"')
  await knex.raw('ALTER TABLE "componenttypes" DROP COLUMN IF EXISTS "_search"')
  await knex.raw('DROP INDEX IF EXISTS "components_search"')
  await knex.raw('ALTER TABLE "components" DROP COLUMN IF EXISTS "_search"')
}
