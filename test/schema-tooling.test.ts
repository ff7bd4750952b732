import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'chai'
import type { Knex } from 'knex'
import supertest from 'supertest'
import { createEngine, loadSchemas, migrateLatest, FolderMigrationSource } from '../core'
import { generateMigration } from '../tooling/migration-generator'
import { SchemaDriftError } from '../tooling/schema-drift'
import { planMigration } from '../tooling/migration-generator'
// Without the identity plugin: its tables are not in these databases, and the widget is what is tested.
import { resourcePlugins as plugins } from '../resources'
import { freshDatabase, MIGRATIONS, ROOT, SCHEMAS } from './support'
import { scratchFolders } from './helpers/scratch'

const WIDGET = path.join(ROOT, 'test', 'fixtures', 'schemas', 'widget.json')

const { tmpDir, schemasDir, remove: removeScratch } = scratchFolders()

const widget = () => JSON.parse(fs.readFileSync(WIDGET, 'utf8'))

describe('schema tooling', () => {
  after(() => {
    removeScratch()
  })

  describe('a schema file dropped in is a working resource after npm run db:generate', () => {
    let fresh: Awaited<ReturnType<typeof freshDatabase>>
    let http: ReturnType<typeof supertest>
    let migration: string
    before(async function () {
      this.timeout(120_000)
      fresh = await freshDatabase()
      const migrations = tmpDir('dci-migrations-')
      const result = await generateMigration({ db: fresh.db, schemasDir: schemasDir({ 'widget.json': widget() }), migrationsDir: migrations })
      migration = fs.readFileSync(result.file!, 'utf8')
      await migrateLatest(fresh.db, migrations)
      const engine = await createEngine({ db: fresh.db, schemasDir: schemasDir({ 'widget.json': widget() }), plugins })
      http = supertest(engine.app().callback())
    })
    after(async () => fresh?.drop())

    it('the migration is explicit knex calls for every table, with types, defaults, keys and indexes', () => {
      for (const line of [
        "await knex.schema.createTable('widgets', (t) => {",
        "t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'))",
        "t.text('name').notNullable()",
        "t.integer('size').defaultTo(1)",
        "t.double('weight')",
        "t.boolean('active').defaultTo(true)",
        "t.text('color')",
        "t.timestamp('released_at', { useTz: true, precision: 3 })",
        "t.jsonb('tags')",
        "t.uuid('team').notNullable().references('id').inTable('teams').onDelete('CASCADE')",
        "t.unique(['team', 'name'])",
        "t.index(['color'])",
        "t.index(['created_at'])",
        "await knex.schema.dropTable('widgets')",
      ])
        expect(migration).to.include(line)
      expect(migration).not.to.match(/readFile|require\(|schemas\/.*\.json'/)
      expect(migration.indexOf("createTable('teams'")).to.be.lessThan(migration.indexOf("createTable('widgets'"))
    })

    it('creates a widget with column defaults, lists it with where, sort and embed, and guards writes with its ETag', async () => {
      const team = (await http.post('/api/v1/teams').send({ name: 'ops' }).expect(201)).body.team
      const body = { name: 'w1', team: team.id, weight: 2.5, color: 'red', released_at: '2026-01-02T03:04:05.678Z', tags: ['a', 'b'] }
      const w1 = (await http.post('/api/v1/widgets').send(body).expect(201)).body.widget
      expect(w1).to.include({ name: 'w1', size: 1, active: true, weight: 2.5, color: 'red', released_at: '2026-01-02T03:04:05.678Z', team: team.id })
      expect(w1.tags).to.deep.equal(['a', 'b'])
      await http.post('/api/v1/widgets').send({ name: 'w2', team: team.id, size: 5, color: 'blue' }).expect(201)
      await http.post('/api/v1/widgets').send({ name: 'w1', team: team.id }).expect(409)

      const red = (await http.get('/api/v1/widgets?where=color:red').expect(200)).body
      expect(red._meta.count).to.equal(1)
      expect(red.widgets[0].id).to.equal(w1.id)
      const sorted = (await http.get('/api/v1/widgets?sort=-size&embed=team').expect(200)).body.widgets
      expect(sorted.map((w: any) => w.name)).to.deep.equal(['w2', 'w1'])
      expect(sorted[0].team).to.include({ id: team.id, name: 'ops' })

      await http.put(`/api/v1/widgets/${w1.id}`).set('If-Match', w1.etag).send({ size: 7 }).expect(204)
      await http.put(`/api/v1/widgets/${w1.id}`).set('If-Match', w1.etag).send({ size: 8 }).expect(412)
      expect((await http.get(`/api/v1/widgets/${w1.id}`).expect(200)).body.widget.size).to.equal(7)
    })
  })

  describe('start-up refuses a database that does not match the schemas', () => {
    let fresh: Awaited<ReturnType<typeof freshDatabase>>
    before(async function () {
      this.timeout(120_000)
      fresh = await freshDatabase()
      await migrateLatest(fresh.db, MIGRATIONS)
    })
    after(async () => fresh?.drop())

    /** The error createEngine throws after `change` ran in a transaction that is then rolled back. */
    async function refusal(changes: string[], schemas = SCHEMAS): Promise<Error | undefined> {
      const trx = await fresh.db.transaction()
      try {
        for (const change of changes) await trx.raw(change)
        return await createEngine({ db: trx as unknown as Knex, schemasDir: schemas }).then(
          () => undefined,
          (err: Error) => err,
        )
      } finally {
        await trx.rollback()
      }
    }

    function expectDrift(err: Error | undefined, line: string): void {
      expect(err).to.be.instanceOf(SchemaDriftError)
      expect(err!.message).to.include(`- ${line}`)
      expect(err!.message).to.include('npm run db:generate')
    }

    it('the migrated project database starts: the checks below fail for their one change only', async () => {
      expect(await refusal([])).to.equal(undefined)
    })

    it('a dropped column stops start-up, naming the resource, the column and the command', async () => {
      expectDrift(await refusal(['ALTER TABLE remotecis DROP COLUMN data']), "remoteci (table remotecis): column 'data' is missing")
    })

    it('a schema field added without a migration stops start-up', async () => {
      const team = JSON.parse(fs.readFileSync(path.join(SCHEMAS, 'team.json'), 'utf8'))
      team.properties.motto = { type: 'string' }
      expectDrift(await refusal([], schemasDir({ 'team.json': team })), "team (table teams): column 'motto' is missing")
    })

    it('a schema file added without a migration stops start-up: missing table', async () => {
      expectDrift(await refusal([], schemasDir({ 'widget.json': widget() })), 'widget (table widgets): the table does not exist')
    })

    it('a column of another type, a column in no schema, a nullable required column: one line each', async () => {
      const err = await refusal([
        'ALTER TABLE teams ADD COLUMN legacy int',
        'ALTER TABLE components ALTER COLUMN sha TYPE varchar(20), ALTER COLUMN name DROP NOT NULL',
      ])
      expectDrift(err, "component (table components): column 'sha' is character varying(20) in the database, the schema wants text")
      expectDrift(err, "team (table teams): column 'legacy' is in the database but not in the schema")
      expectDrift(err, "component (table components): column 'name' is nullable in the database, the schema wants NOT NULL (required)")
    })

    it('a missing or different full-text search stops start-up: q would read a column that is not there, or answer by other fields', async () => {
      expectDrift(await refusal(['ALTER TABLE teams DROP COLUMN _search']), 'team (table teams): full-text index teams_search on (name), for q, is missing')
    })

    it('a missing unique key and a missing foreign key stop start-up', async () => {
      const err = await refusal(['ALTER TABLE remotecis DROP CONSTRAINT remotecis_team_name_unique, DROP CONSTRAINT remotecis_team_foreign'])
      expectDrift(err, 'remoteci (table remotecis): unique key (team, name) is missing')
      expectDrift(err, 'remoteci (table remotecis): foreign key team -> teams.id (on delete restrict) is missing')
    })

    it("a resource table without the row-version trigger stops start-up: its ETags would miss the database's own changes", async () => {
      expectDrift(
        await refusal(['DROP TRIGGER row_version ON components']),
        "component (table components): trigger row_version (a new ETag and updated_at on every UPDATE, the database's own included) is missing",
      )
    })

    it('a composite key that became NULLS NOT DISTINCT, or case-insensitive, in the schema stops start-up until migrated', async () => {
      const remoteci = JSON.parse(fs.readFileSync(path.join(SCHEMAS, 'remoteci.json'), 'utf8'))
      remoteci.required = ['name']
      remoteci.properties.team['x-relation'].onDelete = 'set null'
      remoteci.properties.name['x-case-insensitive'] = true
      const err = await refusal(['ALTER TABLE remotecis ALTER COLUMN team DROP NOT NULL'], schemasDir({ 'remoteci.json': remoteci }))
      expectDrift(err, 'remoteci (table remotecis): unique key (team, lower(name)) NULLS NOT DISTINCT is missing')
      expectDrift(err, "remoteci (table remotecis): unique key remotecis_team_name_unique (team, name) is not in the schema's x-unique")
    })

    it('checkSchema: false starts on a drifted database', async () => {
      const trx = await fresh.db.transaction()
      try {
        await trx.raw('ALTER TABLE remotecis DROP COLUMN data')
        const engine = await createEngine({ db: trx as unknown as Knex, schemasDir: SCHEMAS, checkSchema: false })
        expect(engine.resources.has('remoteci')).to.equal(true)
      } finally {
        await trx.rollback()
      }
    })
  })

  describe('npm run db:generate on a changed schema', () => {
    let fresh: Awaited<ReturnType<typeof freshDatabase>>
    let migrations: string
    before(async function () {
      this.timeout(120_000)
      fresh = await freshDatabase()
      migrations = tmpDir('dci-migrations-')
    })
    after(async () => fresh?.drop())

    it('a second run writes nothing; a changed schema gives drops, adds, type changes and keys, and down() undoes them', async function () {
      this.timeout(120_000)
      const original = schemasDir({ 'widget.json': widget() })
      const first = await generateMigration({ db: fresh.db, schemasDir: original, migrationsDir: migrations })
      expect(first.file).to.be.a('string')
      const again = await generateMigration({ db: fresh.db, schemasDir: original, migrationsDir: migrations })
      expect(again.file).to.equal(undefined)
      expect(again.applied).to.deep.equal([path.basename(first.file!, '.ts')])
      const team = (await fresh.db('teams').insert({ name: 'ops', etag: 'e' }).returning('id'))[0].id
      await fresh.db('widgets').insert({ name: 'kept', team, size: 3, weight: 1.5, etag: 'e' })

      const changed = widget()
      delete changed.properties.weight
      changed.properties.note = { type: 'string', default: "it's new" }
      changed.properties.size = { type: 'number' }
      changed.properties.active.default = false
      changed.required.push('color')
      delete changed.properties.color['x-index']
      changed['x-unique'] = [['name']]
      changed.properties.team['x-relation'].onDelete = 'restrict'
      const next = schemasDir({ 'widget.json': changed })
      // color becomes required: the row needs one first, or no migration is written (tested below).
      await fresh.db('widgets').update({ color: 'red' })
      const second = await generateMigration({ db: fresh.db, schemasDir: next, migrationsDir: migrations, resources: ['widget'] })
      const text = fs.readFileSync(second.file!, 'utf8')
      if (process.env.SHOW_MIGRATION) console.log(text)
      for (const line of [
        "t.dropColumn('weight')",
        "t.text('note').defaultTo('it\\'s new')",
        "t.double('size').alter()",
        "t.boolean('active').defaultTo(false).alter()",
        "t.text('color').notNullable().alter()",
        "t.dropIndex(['color'], 'widgets_color_index')",
        "t.dropUnique(['team', 'name'], 'widgets_team_name_unique')",
        "t.unique(['name'])",
        "t.dropForeign(['team'], 'widgets_team_foreign')",
        "t.foreign(['team'], 'widgets_team_foreign').references('id').inTable('teams').onDelete('RESTRICT')",
        "t.index(['team'])",
      ])
        expect(text).to.include(line)
      expect(text.slice(text.indexOf('async function down'))).to.include("t.double('weight')")
      expect(second.file! > first.file!).to.equal(true)

      await migrateLatest(fresh.db, migrations)
      expect((await generateMigration({ db: fresh.db, schemasDir: next, migrationsDir: migrations })).file).to.equal(undefined)
      await createEngine({ db: fresh.db, schemasDir: next })
      expect(await fresh.db('widgets').first('name', 'size', 'note')).to.deep.equal({ name: 'kept', size: 3, note: "it's new" })

      await fresh.db.migrate.down({ migrationSource: new FolderMigrationSource(migrations) })
      fs.rmSync(second.file!)
      const undone = await generateMigration({ db: fresh.db, schemasDir: original, migrationsDir: migrations })
      expect(undone.summary, 'differences after down()').to.deep.equal([])
    })

    it('a key becoming NULLS NOT DISTINCT and case-insensitive, and a table missing its trigger: SQL in up(), undone by down()', async function () {
      this.timeout(120_000)
      // A database of its own: the test before leaves its widget changed.
      const own = await freshDatabase()
      const dir = tmpDir('dci-migrations-')
      try {
        const original = schemasDir({ 'widget.json': widget() })
        await generateMigration({ db: own.db, schemasDir: original, migrationsDir: dir })
        await migrateLatest(own.db, dir)
        await own.db.raw('DROP TRIGGER row_version ON widgets')
        const changed = widget()
        changed.required = ['name']
        changed.properties.team['x-relation'].onDelete = 'set null'
        changed.properties.name['x-case-insensitive'] = true
        changed['x-unique'] = [['team', 'name'], ['color']]
        const next = schemasDir({ 'widget.json': changed })
        const result = await generateMigration({ db: own.db, schemasDir: next, migrationsDir: dir, resources: ['widget'] })
        const [up, down] = fs.readFileSync(result.file!, 'utf8').split('async function down')
        for (const line of [
          "t.dropUnique(['team', 'name'], 'widgets_team_name_unique')",
          'CREATE OR REPLACE FUNCTION row_version() RETURNS trigger',
          'await knex.raw(\'CREATE UNIQUE INDEX "widgets_team_name_unique" ON "widgets" ("team", lower("name")) NULLS NOT DISTINCT\')',
          "t.unique(['color'])",
          'await knex.raw(\'CREATE TRIGGER row_version BEFORE UPDATE ON "widgets" FOR EACH ROW EXECUTE FUNCTION row_version()\')',
        ])
          expect(up).to.include(line)
        expect(down).to.include('await knex.raw(\'DROP TRIGGER IF EXISTS row_version ON "widgets"\')')
        expect(down).to.include('await knex.raw(\'DROP INDEX IF EXISTS "widgets_team_name_unique"\')')
        await migrateLatest(own.db, dir)
        expect((await generateMigration({ db: own.db, schemasDir: next, migrationsDir: dir })).summary).to.deep.equal([])
        await createEngine({ db: own.db, schemasDir: next })

        await own.db.migrate.down({ migrationSource: new FolderMigrationSource(dir) })
        fs.rmSync(result.file!)
        expect((await generateMigration({ db: own.db, schemasDir: original, migrationsDir: dir, resources: ['widget'] })).summary).to.deep.equal([
          "widget (widgets): trigger row_version (a new ETag and updated_at on every UPDATE, the database's own included) is missing",
        ])
      } finally {
        await own.drop()
      }
    })

    it('two new tables that reference each other: the second foreign key is added once both exist, and down() drops it first', async () => {
      const dir = tmpDir('dci-schemas-')
      const relation = (resource: string) => ({ type: 'string', format: 'uuid', 'x-relation': { resource, onDelete: 'set null' } })
      fs.writeFileSync(path.join(dir, 'alpha.json'), JSON.stringify({ type: 'object', properties: { beta: relation('beta') }, additionalProperties: false }))
      fs.writeFileSync(path.join(dir, 'beta.json'), JSON.stringify({ type: 'object', properties: { alpha: relation('alpha') }, additionalProperties: false }))
      const result = await generateMigration({ db: fresh.db, schemasDir: dir, migrationsDir: migrations })
      const text = fs.readFileSync(result.file!, 'utf8')
      expect(text).to.include("t.uuid('beta').references('id').inTable('betas').onDelete('SET NULL')")
      expect(text).to.include("t.foreign(['alpha'], 'betas_alpha_foreign').references('id').inTable('alphas').onDelete('SET NULL')")
      expect(text.indexOf("t.foreign(['alpha']")).to.be.greaterThan(text.indexOf("createTable('alphas'"))
      expect((await generateMigration({ db: fresh.db, schemasDir: dir, migrationsDir: migrations })).file).to.equal(undefined)
      await fresh.db.migrate.down({ migrationSource: new FolderMigrationSource(migrations) })
      expect(await fresh.db.schema.hasTable('alphas')).to.equal(false)
    })

    it('a default of every kind is written once: the next run finds it in the database and writes nothing', async () => {
      const dir = tmpDir('dci-schemas-')
      const properties = {
        label: { type: 'string', default: 'it\'s "quoted"\nand two lines' },
        shade: { type: 'string', enum: ['light', 'dark'], default: 'dark' },
        owner: { type: 'string', format: 'uuid', default: '00000000-0000-4000-8000-000000000001' },
        due: { type: 'string', format: 'date-time', default: '2026-01-02T03:04:05.678Z' },
        count: { type: 'integer', default: -3 },
        ratio: { type: 'number', default: 0.25 },
        whole: { type: 'number', default: 2 },
        on: { type: 'boolean', default: false },
        meta: { type: 'object', default: { a: [1, 'x'], b: null } },
        list: { type: 'array', default: [] },
      }
      fs.writeFileSync(path.join(dir, 'gadget.json'), JSON.stringify({ type: 'object', properties, additionalProperties: false }))
      expect((await generateMigration({ db: fresh.db, schemasDir: dir, migrationsDir: migrations })).file).to.be.a('string')
      const again = await generateMigration({ db: fresh.db, schemasDir: dir, migrationsDir: migrations })
      expect(again.summary).to.deep.equal([])
      const row = (await fresh.db('gadgets').insert({ etag: 'e' }).returning('*'))[0]
      expect(row).to.deep.include({
        label: properties.label.default,
        shade: 'dark',
        owner: properties.owner.default,
        count: -3,
        ratio: 0.25,
        whole: 2,
        on: false,
        meta: properties.meta.default,
        list: [],
      })
      expect(new Date(row.due).toISOString()).to.equal(properties.due.default)
    })

    it('generating one resource whose related table does not exist yet is refused, naming that table', () => {
      const defs = loadSchemas(schemasDir({ 'widget.json': widget() }))
      expect(() => planMigration(defs, new Map(), ['widget'])).to.throw(
        'widget relates to table teams, which does not exist and is not being generated: name its resource too',
      )
      expect(planMigration(defs, new Map(), ['widget', 'team'])?.tables).to.deep.equal(['teams', 'widgets'])
    })
  })
})
