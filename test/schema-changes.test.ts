import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'chai'
import type { Knex } from 'knex'
import supertest from 'supertest'
import { createEngine, migrateLatest, MissingMigrationFilesError, rollbackMigrations } from '../core'
import { readCatalog } from '../tooling/catalog'
import { generateMigration, RenameProposalError, type GenerateOptions } from '../tooling/migration-generator'
import { RiskyMigrationError } from '../tooling/migration-risks'
import { DATABASE, freshDatabase, ROOT, SCHEMAS } from './support'
import { scratchFolders } from './helpers/scratch'

const WIDGET = path.join(ROOT, 'test', 'fixtures', 'schemas', 'widget.json')

const { tmpDir, schemasDir, remove: removeScratch } = scratchFolders()

/** The test widget, its team relation `restrict` as the issue's: a widget keeps its team from being deleted. */
function widget(): Record<string, any> {
  const schema = JSON.parse(fs.readFileSync(WIDGET, 'utf8'))
  schema.properties.team['x-relation'].onDelete = 'restrict'
  return schema
}

type Fresh = Awaited<ReturnType<typeof freshDatabase>>

/** A fresh database migrated to the project's schemas plus `extra` by migrations generated into a temp folder. */
async function generatedDatabase(extra: Record<string, unknown>): Promise<{ fresh: Fresh; migrations: string; schemas: string }> {
  const fresh = await freshDatabase()
  const migrations = tmpDir('dci-migrations-')
  const schemas = schemasDir(extra)
  await generateMigration({ db: fresh.db, schemasDir: schemas, migrationsDir: migrations })
  await migrateLatest(fresh.db, migrations)
  return { fresh, migrations, schemas }
}

/** A team and widgets rows written directly (the engine is not what is tested). */
async function seed(db: Knex, widgets: Array<Record<string, unknown>>): Promise<Record<string, any>> {
  const [team] = await db('teams').insert({ name: 'ops', etag: 'e1' }).returning('*')
  for (const w of widgets) await db('widgets').insert({ team: team.id, etag: 'e1', ...w })
  return team
}

const files = (dir: string) => fs.readdirSync(dir).sort()

/** The rejection of `promise`, failing the test when it resolves. */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => expect.fail('expected a rejection'),
    (err: Error) => err,
  )
}

describe(`schema changes: removed and renamed schemas, risky changes, rollback (${DATABASE})`, function () {
  this.timeout(120_000)
  after(() => {
    removeScratch()
  })

  describe('a schema file removed: its table is named, and dropped only when asked', () => {
    let fresh: Fresh
    let migrations: string
    let withWidget: string
    let without: string
    let team: Record<string, any>
    const generate = (options: Partial<GenerateOptions> = {}) => generateMigration({ db: fresh.db, schemasDir: without, migrationsDir: migrations, ...options })
    before(async () => {
      ;({ fresh, migrations, schemas: withWidget } = await generatedDatabase({ 'widget.json': widget() }))
      without = schemasDir()
      team = await seed(fresh.db, [{ name: 'w1' }])
    })
    after(async () => fresh?.drop())

    it('db:generate names the table no schema owns and writes nothing without a flag', async () => {
      const before = files(migrations)
      const result = await generate()
      expect(result.file).to.equal(undefined)
      expect(result.orphans).to.deep.equal(['widgets'])
      expect(files(migrations)).to.deep.equal(before)
    })

    it("start-up names it in a warning, and the team its rows reference can't be deleted (409)", async () => {
      const warnings: Array<{ details: Record<string, unknown>; message: string }> = []
      const logger = { error() {}, warn: (details: Record<string, unknown>, message: string) => warnings.push({ details, message }) }
      const engine = await createEngine({ db: fresh.db, schemasDir: without, logger })
      expect(warnings).to.have.length(1)
      expect(warnings[0].details.tables).to.deep.equal(['widgets'])
      expect(warnings[0].message).to.include('no schema owns table widgets').and.include('npm run db:generate -- --drop <table>')
      await supertest(engine.app().callback()).delete(`/api/v1/teams/${team.id}`).set('If-Match', `"${team.etag}"`).expect(409)
    })

    it('start-up with every table owned warns of nothing; tables without the engine columns are never named', async () => {
      const warnings: string[] = []
      await fresh.db.raw('CREATE TABLE handmade (id uuid PRIMARY KEY, note text)')
      try {
        await createEngine({ db: fresh.db, schemasDir: withWidget, logger: { error() {}, warn: (_d, message) => warnings.push(message) } })
        expect(warnings).to.deep.equal([])
        expect((await generate()).orphans).to.deep.equal(['widgets'])
      } finally {
        await fresh.db.raw('DROP TABLE handmade')
      }
    })

    it('--drop of a table a schema owns, or of a table with no engine columns, is refused and writes nothing', async () => {
      const before = files(migrations)
      expect((await rejection(generate({ drop: ['teams'] }))).message).to.equal('--drop teams: table teams belongs to resource team')
      expect((await rejection(generate({ drop: ['knex_migrations'] }))).message).to.equal(
        "--drop knex_migrations: there is no table knex_migrations with the engine's columns",
      )
      expect(files(migrations)).to.deep.equal(before)
    })

    it('--drop writes a migration that drops it with its foreign keys; applied, the team is deletable', async () => {
      const result = await generate({ drop: ['widgets'] })
      const text = fs.readFileSync(result.file!, 'utf8')
      expect(text).to.include("await knex.schema.dropTable('widgets')")
      expect(text).to.include('await knex.raw(\'CREATE TABLE "widgets" (')
      // PostgreSQL 18 (PGlite) lists NOT NULL as constraints: the columns carry them, older servers have no such syntax.
      expect(text).not.to.include('_not_null')
      expect(result.summary).to.deep.equal(['widgets: dropped, no schema owns it (1 row here; down() recreates the table empty)'])
      expect(result.warnings).to.deep.equal(['widgets is dropped with its 1 row; down() recreates the table, not the rows'])
      expect(result.orphans).to.deep.equal([])
      await migrateLatest(fresh.db, migrations)
      expect(await fresh.db.schema.hasTable('widgets')).to.equal(false)
      const engine = await createEngine({ db: fresh.db, schemasDir: without })
      await supertest(engine.app().callback()).delete(`/api/v1/teams/${team.id}`).set('If-Match', `"${team.etag}"`).expect(204)
      const again = await generate()
      expect([again.file, again.orphans]).to.deep.equal([undefined, []])
    })

    it('rolling the drop back recreates the table as its schema asks (keys, foreign keys, indexes), without its rows', async () => {
      const undone = await rollbackMigrations(fresh.db, migrations)
      expect(undone).to.have.length(1)
      expect(undone[0]).to.match(/_drop_widgets$/)
      expect(await fresh.db('widgets').count({ n: '*' })).to.deep.equal([{ n: '0' }])
      await createEngine({ db: fresh.db, schemasDir: withWidget })
      const live = (await readCatalog(fresh.db, ['widgets'])).get('widgets')!
      expect(live.constraints.map((c) => `${c.kind} ${c.name}`).sort()).to.deep.equal([
        'foreign widgets_team_foreign',
        'index widgets_color_index',
        'index widgets_created_at_index',
        'primary widgets_pkey',
        'unique widgets_team_name_unique',
      ])
    })
  })

  it('--drop-orphans drops every table no schema owns, those that reference each other and the foreign keys of other tables to them', async () => {
    const relation = (resource: string) => ({ type: 'string', format: 'uuid', 'x-relation': { resource, onDelete: 'set null' } })
    const pair = {
      'alpha.json': { type: 'object', properties: { beta: relation('beta') }, additionalProperties: false },
      'beta.json': { type: 'object', properties: { alpha: relation('alpha') }, additionalProperties: false },
    }
    const { fresh, migrations } = await generatedDatabase(pair)
    try {
      await fresh.db.raw('CREATE TABLE alpha_notes (alpha uuid CONSTRAINT alpha_notes_alpha_fk REFERENCES alphas(id), note text)')
      const result = await generateMigration({ db: fresh.db, schemasDir: schemasDir(), migrationsDir: migrations, drop: 'orphans' })
      expect(result.summary.map((s) => s.split(':')[0])).to.deep.equal(['alphas', 'betas'])
      await migrateLatest(fresh.db, migrations)
      expect([await fresh.db.schema.hasTable('alphas'), await fresh.db.schema.hasTable('betas')]).to.deep.equal([false, false])
      await rollbackMigrations(fresh.db, migrations)
      await createEngine({ db: fresh.db, schemasDir: schemasDir(pair) })
      const notes = await fresh.db.raw("select pg_get_constraintdef(oid) as def from pg_constraint where conname = 'alpha_notes_alpha_fk'")
      expect(notes.rows).to.deep.equal([{ def: 'FOREIGN KEY (alpha) REFERENCES alphas(id)' }])
    } finally {
      await fresh.drop()
    }
  })

  describe('a plural changed: the table is renamed with its rows when asked', () => {
    let fresh: Fresh
    let migrations: string
    let renamed: string
    const gadget = (): Record<string, any> => ({ ...widget(), title: 'gadget' })
    before(async () => {
      ;({ fresh, migrations } = await generatedDatabase({ 'widget.json': widget() }))
      renamed = schemasDir({ 'gadget.json': gadget() })
      await seed(fresh.db, [{ name: 'w1', color: 'red' }, { name: 'w2' }])
    })
    after(async () => fresh?.drop())

    it('db:generate proposes the rename and writes nothing', async () => {
      const before = files(migrations)
      const err = await rejection(generateMigration({ db: fresh.db, schemasDir: renamed, migrationsDir: migrations }))
      expect(err).to.be.instanceOf(RenameProposalError)
      expect(err.message).to.include('table widgets, which no schema owns, has the columns of the new table gadgets')
      expect(err.message).to.include('pass --rename widgets=gadgets to rename it and keep its rows')
      expect(files(migrations)).to.deep.equal(before)
    })

    it('--rename old=new to a table no schema asks for, or from a table a schema owns, is refused', async () => {
      const rename = (from: string, to: string) =>
        rejection(generateMigration({ db: fresh.db, schemasDir: renamed, migrationsDir: migrations, rename: { [from]: to } }))
      expect((await rename('widgets', 'gizmos')).message).to.include('--rename widgets=gizmos: no schema has the plural gizmos')
      expect((await rename('teams', 'gadgets')).message).to.include('--rename teams=gadgets: table teams belongs to resource team')
    })

    it('a rename and a risky change in one migration: the change is checked against the rows under the old name', async () => {
      const schema = gadget()
      schema.required.push('color')
      const err = await rejection(
        generateMigration({ db: fresh.db, schemasDir: schemasDir({ 'gadget.json': schema }), migrationsDir: migrations, rename: { widgets: 'gadgets' } }),
      )
      expect(err.message).to.include('- widgets.color becomes required (NOT NULL) but 1 row here has no value: the migration would fail.')
    })

    it('--rename renames the table, its keys and indexes, keeping the rows; start-up accepts it', async () => {
      const result = await generateMigration({ db: fresh.db, schemasDir: renamed, migrationsDir: migrations, rename: { widgets: 'gadgets' } })
      const text = fs.readFileSync(result.file!, 'utf8')
      expect(text).to.include("await knex.schema.renameTable('widgets', 'gadgets')")
      expect(text).to.include('ALTER TABLE "gadgets" RENAME CONSTRAINT "widgets_team_name_unique" TO "gadgets_team_name_unique"')
      expect(result.summary).to.deep.equal(['widgets: renamed to gadgets, keeping its 2 rows'])
      await migrateLatest(fresh.db, migrations)
      expect((await fresh.db('gadgets').orderBy('name').select('name', 'color')).map((r) => [r.name, r.color])).to.deep.equal([
        ['w1', 'red'],
        ['w2', null],
      ])
      await createEngine({ db: fresh.db, schemasDir: renamed })
      const live = (await readCatalog(fresh.db, ['gadgets'])).get('gadgets')!
      expect(live.constraints.map((c) => c.name).filter((n) => !n.startsWith('gadgets_'))).to.deep.equal([])
      const again = await generateMigration({ db: fresh.db, schemasDir: renamed, migrationsDir: migrations })
      expect([again.file, again.orphans]).to.deep.equal([undefined, []])
    })

    it('rolling the rename back gives the table, its keys and indexes their old names, with the rows', async () => {
      await rollbackMigrations(fresh.db, migrations)
      expect(await fresh.db('widgets').count({ n: '*' })).to.deep.equal([{ n: '2' }])
      await createEngine({ db: fresh.db, schemasDir: schemasDir({ 'widget.json': widget() }) })
      const live = (await readCatalog(fresh.db, ['widgets'])).get('widgets')!
      expect(live.constraints.map((c) => c.name).filter((n) => !n.startsWith('widgets_'))).to.deep.equal([])
    })
  })

  describe('risky changes are checked against the rows before a migration is written', () => {
    let fresh: Fresh
    let migrations: string
    const change = (edit: (schema: Record<string, any>) => void, options: Partial<GenerateOptions> = {}) => {
      const schema = widget()
      edit(schema)
      return generateMigration({
        db: fresh.db,
        schemasDir: schemasDir({ 'widget.json': schema }),
        migrationsDir: migrations,
        resources: ['widget'],
        ...options,
      })
    }
    before(async () => {
      ;({ fresh, migrations } = await generatedDatabase({ 'widget.json': widget() }))
      await seed(fresh.db, [
        { name: 'w1', color: 'red', weight: 1.5, size: 3, tags: JSON.stringify(['a']) },
        { name: 'w2', size: 4 },
      ])
    })
    after(async () => fresh?.drop())

    it('a type change whose values do not convert is refused, naming the count and an example; --force writes it', async () => {
      const before = files(migrations)
      const err = await rejection(change((s) => (s.properties.color = { type: 'integer' })))
      expect(err).to.be.instanceOf(RiskyMigrationError)
      expect(err.message).to.include('- widgets.color changes from text to integer but 1 of 1 values here do not convert (e.g. red): the migration would fail.')
      expect(err.message).to.include('pass --force')
      expect(files(migrations)).to.deep.equal(before)
      const forced = await change((s) => (s.properties.color = { type: 'integer' }), { force: true })
      expect(fs.readFileSync(forced.file!, 'utf8')).to.include("t.integer('color').alter()")
      fs.rmSync(forced.file!)
    })

    it('a field made required over rows that lack it is refused; with a default, the migration fills them first', async () => {
      const err = await rejection(change((s) => s.required.push('weight')))
      expect(err.message).to.include('- widgets.weight becomes required (NOT NULL) but 1 row here has no value: the migration would fail.')
      const result = await change((s) => {
        s.required.push('weight')
        s.properties.weight.default = 0.25
      })
      expect(result.warnings).to.deep.equal([
        "widgets.weight becomes required (NOT NULL): the migration first gives the schema's default to the rows where it is null (1 row here)",
      ])
      await migrateLatest(fresh.db, migrations)
      expect((await fresh.db('widgets').orderBy('name').select('weight')).map((r) => r.weight)).to.deep.equal([1.5, 0.25])
      await rollbackMigrations(fresh.db, migrations)
      fs.rmSync(result.file!)
      await fresh.db('widgets').where({ name: 'w2' }).update({ weight: null })
    })

    it('a new required field without a default, on a table with rows, is refused', async () => {
      const err = await rejection(
        change((s) => {
          s.properties.serial = { type: 'string' }
          s.required.push('serial')
        }),
      )
      expect(err.message).to.include(
        '- widgets.serial is added as required (NOT NULL) without a default, and widgets has 2 rows here: the migration would fail.',
      )
    })

    it('a unique key over values several rows share is refused, naming the count and an example; over distinct values it is written with a warning', async () => {
      const team = (await fresh.db('teams').first('id')).id as string
      const err = await rejection(change((s) => s['x-unique'].push(['team'])))
      expect(err).to.be.instanceOf(RiskyMigrationError)
      expect(err.message).to.include(
        `- widgets gets the unique key (team) but 1 value here is shared by several rows (e.g. ${team}): the migration would fail.`,
      )
      // Case-insensitive: W1 and w1 would collide, once a row is named so.
      await fresh.db('widgets').where({ name: 'w2' }).update({ name: 'W1' })
      const folded = await rejection(
        change((s) => {
          s['x-unique'].push(['name'])
          s.properties.name['x-case-insensitive'] = true
        }),
      )
      expect(folded.message).to.include('- widgets gets the unique key (name) but 1 value here is shared by several rows (e.g. w1): the migration would fail.')
      await fresh.db('widgets').where({ name: 'W1' }).update({ name: 'w2' })
      const result = await change((s) => s['x-unique'].push(['size']))
      expect(result.warnings).to.deep.equal([
        'widgets gets the unique key (size): no two rows here share a value; the migration fails on a database where two do',
      ])
      fs.rmSync(result.file!)
    })

    it('a relation over ids of no row of the related resource is refused, naming the count and an example', async () => {
      const team = (await fresh.db('teams').first('id')).id as string
      const err = await rejection(change((s) => (s.properties.team['x-relation'].resource = 'componenttype')))
      expect(err).to.be.instanceOf(RiskyMigrationError)
      expect(err.message).to.include(
        `- widgets.team becomes a relation to componenttypes but 2 rows here hold ids of no componenttypes row (e.g. ${team}): the migration would fail.`,
      )
    })

    it('type changes that convert and dropped columns are written, with a warning of what becomes of the values', async () => {
      const result = await change((s) => {
        s.properties.size = { type: 'number' }
        s.properties.weight = { type: 'integer' }
        delete s.properties.tags
      })
      expect(result.warnings).to.have.members([
        'widgets.tags is dropped with its values (1 row here holds one); down() brings back the column, not the values',
        'widgets.size changes from integer to double precision: all 2 values here convert unchanged; on a database where one does not convert, the migration fails',
        'widgets.weight changes from double precision to integer: 1 of 1 values here read differently afterwards (e.g. 1.5 becomes 2)',
      ])
      fs.rmSync(result.file!)
    })
  })

  describe('db:rollback and deleted migration files', () => {
    let fresh: Fresh
    let migrations: string
    before(async () => {
      fresh = await freshDatabase()
      migrations = tmpDir('dci-migrations-')
    })
    after(async () => fresh?.drop())

    it('rollback undoes the last batch only, then the one before; --one undoes the last migration of a batch', async () => {
      const base = await generateMigration({ db: fresh.db, schemasDir: SCHEMAS, migrationsDir: migrations })
      const first = path.basename(base.file!, '.ts')
      expect(await migrateLatest(fresh.db, migrations)).to.deep.equal([first])
      const added = await generateMigration({ db: fresh.db, schemasDir: schemasDir({ 'widget.json': widget() }), migrationsDir: migrations })
      const second = path.basename(added.file!, '.ts')
      expect(await migrateLatest(fresh.db, migrations)).to.deep.equal([second])

      expect(await rollbackMigrations(fresh.db, migrations)).to.deep.equal([second])
      expect([await fresh.db.schema.hasTable('widgets'), await fresh.db.schema.hasTable('teams')]).to.deep.equal([false, true])
      expect(await rollbackMigrations(fresh.db, migrations)).to.deep.equal([first])
      expect(await fresh.db.schema.hasTable('teams')).to.equal(false)
      expect(await rollbackMigrations(fresh.db, migrations)).to.deep.equal([])

      expect(await migrateLatest(fresh.db, migrations)).to.deep.equal([first, second])
      expect(await rollbackMigrations(fresh.db, migrations, { one: true })).to.deep.equal([second])
      expect([await fresh.db.schema.hasTable('widgets'), await fresh.db.schema.hasTable('teams')]).to.deep.equal([false, true])
      fs.rmSync(added.file!)
    })

    it('the iterating loop: generate, apply, roll back, delete the file, generate again from the changed schema', async () => {
      const draft = await generateMigration({ db: fresh.db, schemasDir: schemasDir({ 'widget.json': widget() }), migrationsDir: migrations })
      await migrateLatest(fresh.db, migrations)
      await rollbackMigrations(fresh.db, migrations)
      fs.rmSync(draft.file!)
      const changed = widget()
      changed.properties.note = { type: 'string' }
      const next = await generateMigration({ db: fresh.db, schemasDir: schemasDir({ 'widget.json': changed }), migrationsDir: migrations })
      expect(next.applied).to.deep.equal([])
      expect(fs.readFileSync(next.file!, 'utf8')).to.include("t.text('note')")
      expect(await migrateLatest(fresh.db, migrations)).to.deep.equal([path.basename(next.file!, '.ts')])
      expect(await fresh.db.schema.hasColumn('widgets', 'note')).to.equal(true)
    })

    it('an applied migration whose file was deleted: migrate, generate and rollback each say how to recover', async () => {
      const last = files(migrations).pop()!
      const name = path.basename(last, '.ts')
      const text = fs.readFileSync(path.join(migrations, last), 'utf8')
      fs.rmSync(path.join(migrations, last))
      const folder = path.relative(process.cwd(), migrations)
      for (const attempt of [
        () => migrateLatest(fresh.db, migrations),
        () => generateMigration({ db: fresh.db, schemasDir: SCHEMAS, migrationsDir: migrations }),
        () => rollbackMigrations(fresh.db, migrations),
      ]) {
        const err = await rejection(attempt())
        expect(err).to.be.instanceOf(MissingMigrationFilesError)
        expect(err.message).to.include(`the database has applied migration ${name} (rows of knex_migrations) but ${folder}/ has no such file`)
        expect(err.message).to.include(`restore the file: git checkout HEAD -- ${folder}/${name}.ts`)
        expect(err.message).to.include(`DELETE FROM knex_migrations WHERE name IN ('${name}');`)
        expect(err.message).to.include('undo a migration with `npm run db:rollback` before deleting its file')
      }
      // The first way out: the file restored, everything works again.
      fs.writeFileSync(path.join(migrations, last), text)
      expect(await rollbackMigrations(fresh.db, migrations)).to.deep.equal([name])
    })
  })
})
