import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'chai'
import type { Knex } from 'knex'
import { ApiError, migrateLatest, rollbackMigrations } from '../core'
import { type FindQuery, MAX_PARAMETER_LENGTH, MAX_SEARCH_WORDS, type RawQuery } from '../core/query/list-query'
import { generateMigration } from '../tooling/migration-generator'
import { expectError } from './helpers/errors'
import { scratchFolders } from './helpers/scratch'
import { ADMIN_AUTH, createType, DATABASE, freshDatabase, resetTables, type ServerApp, serverApp, statementsOf, testApp, type TestApp } from './support'

type Row = Record<string, any>

/**
 * The rows of the search tests, by key: `name` and `title` are searchable (`x-search`), `sha` is not.
 * alpha3 holds three words of `alpha or beta or gamma`, alpha2 two, alpha1 one; delta3 holds `delta`
 * three times, delta1 once; eps1 and eps2 hold `epsilon` once each (equal ranks: ties go by id).
 */
const ROWS: Record<string, { name: string; title?: string; sha?: string; canonical_project_name?: string }> = {
  alpha3: { name: 'alpha beta gamma', sha: 'one' },
  alpha2: { name: 'alpha', title: 'beta', sha: 'two' },
  alpha1: { name: 'alpha', sha: 'one' },
  swapped: { name: 'zeta beta', title: 'alpha' },
  delta3: { name: 'delta', title: 'delta delta' },
  delta1: { name: 'delta', title: 'omega' },
  eps1: { name: 'epsilon' },
  eps2: { name: 'epsilon', canonical_project_name: 'Kernel-Tools' },
  hidden: { name: 'nothing', sha: 'alpha' },
}

describe(`search: the q parameter, full-text search of x-search fields (${DATABASE})`, function () {
  this.timeout(120_000)
  let app: TestApp
  const rows: Record<string, Row> = {}
  const keyOf = (id: string) => Object.keys(rows).find((k) => rows[k].id === id) ?? id
  const typeIds: string[] = []

  before(async () => {
    app = await testApp()
    await resetTables(app.db)
    const first = await createType(app, 'first')
    const second = await createType(app, 'second')
    typeIds.push(first.id, second.id)
    for (const [key, row] of Object.entries(ROWS)) {
      const type = key === 'alpha1' ? second.id : first.id
      const res = await app.http
        .post('/api/v1/components')
        .send({ componenttype: type, ...row })
        .expect(201)
      rows[key] = res.body.component
    }
  })

  /** The keys of the rows a list answers, in order, over HTTP; the answer too. */
  async function listed(query: string): Promise<{ keys: string[]; body: Row; headers: Record<string, string> }> {
    const res = await app.http.get(`/api/v1/components?${query}`)
    expect(res.status, res.text).to.equal(200)
    return { keys: res.body.components.map((c: Row) => keyOf(c.id)), body: res.body, headers: res.headers }
  }
  const q = (text: string, more = '') => listed(`q=${encodeURIComponent(text)}${more ? `&${more}` : ''}`)
  /** The same through the in-process service. */
  async function found(query: FindQuery): Promise<string[]> {
    const page = await app.engine.service('component').find({ query })
    return page.items.map((c) => keyOf(c.id as string))
  }
  const byId = (...keys: string[]) => [...keys].sort((a, b) => (rows[a].id < rows[b].id ? -1 : 1))

  it('finds the rows whose searchable fields hold every word, case-insensitively, not those holding it in another field', async () => {
    expect((await q('ALPHA')).keys).to.have.members(['alpha3', 'alpha2', 'alpha1', 'swapped'])
    expect((await q('alpha beta')).keys).to.have.members(['alpha3', 'alpha2', 'swapped'])
    expect((await q('omega')).keys).to.deep.equal(['delta1'])
    // A word of canonical_project_name (searchable), split as PostgreSQL splits it.
    expect((await q('kernel')).keys).to.deep.equal(['eps2'])
    expect((await q('kernel-tools')).keys).to.deep.equal(['eps2'])
    // `sha` is not searchable: its `alpha` is not found, and a word nowhere matches nothing.
    expect((await q('nothing alpha')).keys).to.deep.equal([])
    expect((await q('nowhere')).body).to.deep.equal({ components: [], _meta: { count: 0 } })
  })

  it('without sort, ranks the rows holding more of the words, or a word more often, first; equal ranks by id', async () => {
    expect((await q('alpha or beta or gamma')).keys.slice(0, 1)).to.deep.equal(['alpha3'])
    expect((await q('gamma or alpha')).keys).to.deep.equal(['alpha3', ...byId('alpha2', 'alpha1', 'swapped')])
    expect((await q('delta')).keys).to.deep.equal(['delta3', 'delta1'])
    expect((await q('epsilon')).keys).to.deep.equal(byId('eps1', 'eps2'))
    // The service answers the same order.
    expect(await found({ q: 'delta' })).to.deep.equal(['delta3', 'delta1'])
    expect(await found({ q: 'gamma or alpha' })).to.deep.equal(['alpha3', ...byId('alpha2', 'alpha1', 'swapped')])
  })

  it('with sort, the sort wins over the rank', async () => {
    expect((await q('delta', 'sort=-title')).keys).to.deep.equal(['delta1', 'delta3'])
    expect((await q('delta', 'sort=title')).keys).to.deep.equal(['delta3', 'delta1'])
    expect(await found({ q: 'alpha', sort: ['sha', '-name'] })).to.deep.equal(['alpha3', 'alpha1', 'alpha2', 'swapped'])
  })

  it('websearch syntax: a quoted phrase keeps the words in order, -word excludes, or joins alternatives', async () => {
    expect((await q('"alpha beta"')).keys).to.have.members(['alpha3', 'alpha2'])
    expect((await q('"beta alpha"')).keys).to.have.members(['swapped'])
    expect((await q('alpha -beta')).keys).to.deep.equal(['alpha1'])
    expect((await q('zeta or omega')).keys).to.have.members(['swapped', 'delta1'])
    // tsquery's own operators are plain punctuation here: `&`, `!`, `|`, `:*` and `<->` separate words.
    expect((await q('alpha & !beta')).keys).to.have.members(['alpha3', 'alpha2', 'swapped'])
    expect((await q('alph:*')).keys).to.deep.equal([])
  })

  it('hostile words never answer 5xx: quotes, operators, SQL, backslashes, unbalanced parentheses', async () => {
    for (const text of [
      '"a b"',
      '-x',
      'or',
      'OR or or',
      '"',
      '"unclosed',
      "'",
      "alpha' OR '1'='1",
      '\\',
      'a\\',
      '(alpha',
      'alpha)',
      '!!alpha',
      '<->alpha',
      'a:*',
      '--alpha',
      '- -',
      'é😀',
      '% _',
    ]) {
      const res = await app.http.get(`/api/v1/components?q=${encodeURIComponent(text)}`)
      expect(res.status, `${text}: ${res.text}`).to.be.oneOf([200, 400])
      if (res.status === 400) expectError(res, 400, undefined, 'invalid_parameter')
    }
    // Quotes are no SQL here: `OR` is websearch's own, between the words alpha and 1 (held by no row).
    expect((await q("alpha' OR '1'='1")).keys).to.have.members(['alpha3', 'alpha2', 'alpha1', 'swapped'])
    expect((await q('(alpha)')).keys).to.have.members(['alpha3', 'alpha2', 'alpha1', 'swapped'])
  })

  it('is ANDed with where and query, on the page and in the count', async () => {
    const withWhere = await q('alpha', `where=sha:one`)
    expect(withWhere.keys).to.deep.equal(byId('alpha3', 'alpha1'))
    expect(withWhere.body._meta).to.deep.equal({ count: 2 })
    const withType = await q('alpha', `where=componenttype:${typeIds[1]}`)
    expect(withType.keys).to.deep.equal(['alpha1'])
    const withQuery = await q('alpha', `query=${encodeURIComponent('or(eq(sha,two),null(sha))')}`)
    expect(withQuery.keys).to.have.members(['alpha2', 'swapped'])
    expect(withQuery.body._meta).to.deep.equal({ count: 2 })
    expect(await found({ q: 'alpha', where: { sha: 'one' }, query: 'eq(name,alpha)' })).to.deep.equal(['alpha1'])
    // The components of one type (the component plugin's route) take q with their own where.
    const nested = await app.http.get(`/api/v1/componenttypes/${typeIds[0]}/components?q=${encodeURIComponent('gamma or alpha')}`)
    expect(nested.status, nested.text).to.equal(200)
    expect(nested.body.components.map((c: Row) => keyOf(c.id))).to.deep.equal(['alpha3', ...byId('alpha2', 'swapped')])
    expect(nested.body._meta).to.deep.equal({ count: 3 })
  })

  it('counts the matching rows in every count mode, and pages them in rank order with Link headers', async () => {
    for (const count of ['estimate', 'exact']) expect((await q('alpha', `count=${count}`)).body._meta).to.deep.equal({ count: 4 })
    const none = await q('alpha', 'count=none&limit=2')
    expect(none.body._meta).to.deep.equal({})
    expect(none.headers.link).to.match(/offset=2>; rel="next"/)
    // Pages of one row, followed by their Link headers, give the rank order of the whole list.
    const whole = (await q('gamma or alpha')).keys
    const paged: string[] = []
    let next: string | undefined = `/api/v1/components?q=${encodeURIComponent('gamma or alpha')}&limit=1&count=none`
    while (next) {
      const res = await app.http.get(next)
      expect(res.status, res.text).to.equal(200)
      paged.push(...res.body.components.map((c: Row) => keyOf(c.id)))
      const link = /<([^>]+)>; rel="next"/.exec(res.headers.link ?? '')?.[1]
      next = link ? new URL(link).pathname + new URL(link).search : undefined
    }
    expect(paged).to.deep.equal(whole)
    const last = await q('alpha', 'offset=3&limit=1')
    expect(last.keys).to.have.length(1)
    expect(last.body._meta).to.deep.equal({ count: 4 })
    expect(last.headers.link)
      .to.match(/rel="prev"/)
      .and.not.match(/rel="next"/)
  })

  it('a sorted search pages by cursor; a ranked one by offset, refusing after; a cursor of another q is a 400', async () => {
    const whole = (await q('alpha or delta', 'sort=-name&limit=200')).keys
    const paged: string[] = []
    let after: string | undefined
    do {
      const page = await q('alpha or delta', `sort=-name&limit=2${after ? `&after=${after}` : ''}`)
      paged.push(...page.keys)
      after = page.body._meta.next
      if (after) expect(page.headers.link).to.include(`after=${after}>; rel="next"`)
    } while (after)
    expect(paged).to.deep.equal(whole)
    const first = await q('alpha or delta', 'sort=-name&limit=2')
    const other = await app.http.get(`/api/v1/components?q=alpha&sort=-name&limit=2&after=${first.body._meta.next}`)
    expectError(other.body, 400, /another list/)
    const ranked = await q('alpha or delta', 'limit=2')
    expect(ranked.body._meta.next).to.equal(undefined)
    expect(ranked.headers.link).to.match(/offset=2>; rel="next"/)
    const refused = await app.http.get(`/api/v1/components?q=alpha&limit=2&after=${first.body._meta.next}`)
    expectError(refused.body, 400, /ranked by relevance/)
  })

  it('works with fields and embed, on the list and through the service', async () => {
    const page = await q('omega', 'fields=name,componenttype.name&embed=componenttype')
    expect(page.body.components).to.deep.equal([
      {
        id: rows.delta1.id,
        etag: rows.delta1.etag,
        name: 'delta',
        componenttype: { id: typeIds[0], etag: page.body.components[0].componenttype.etag, name: 'first' },
      },
    ])
    const served = await app.engine.service('component').find({ query: { q: 'omega', fields: 'name' } })
    expect(served.items).to.deep.equal([{ id: rows.delta1.id, etag: rows.delta1.etag, name: 'delta' }])
  })

  it('an empty q searches nothing: the list as without it, in created_at order', async () => {
    const all = await listed('sort=created_at')
    expect((await q('')).keys).to.deep.equal(all.keys)
  })

  it('a row written after the index is found, and found no more once its words change', async () => {
    const made = await app.http.post('/api/v1/components').send({ componenttype: typeIds[0], name: 'fresh words' }).expect(201)
    rows.fresh = made.body.component
    expect((await q('fresh')).keys).to.deep.equal(['fresh'])
    await app.http.put(`/api/v1/components/${rows.fresh.id}`).set('If-Match', rows.fresh.etag).send({ name: 'stale words' }).expect(204)
    expect((await q('fresh')).keys).to.deep.equal([])
    expect((await q('stale')).keys).to.deep.equal(['fresh'])
  })

  describe('refused with 400 invalid_parameter naming q', () => {
    const refused = async (query: string, message: RegExp) => {
      const res = await app.http.get(`/api/v1/components?${query}`)
      const body = expectError(res, 400, message, 'invalid_parameter')
      return body
    }
    it('longer than the parameter maximum', async () => {
      const body = await refused(
        `q=${'a'.repeat(MAX_PARAMETER_LENGTH + 1)}`,
        new RegExp(`^Invalid 'q' parameter: longer than ${MAX_PARAMETER_LENGTH} characters$`),
      )
      expect(body.payload).to.deep.equal({ max_length: MAX_PARAMETER_LENGTH })
      // At the maximum it is read (and counted in words).
      await app.http.get(`/api/v1/components?q=${'a'.repeat(MAX_PARAMETER_LENGTH)}`).expect(200)
    })
    it('with a NUL character', async () => {
      await refused('q=alpha%00', /^Invalid 'q' parameter: contains a NUL character$/)
    })
    it('given twice', async () => {
      await refused('q=alpha&q=beta', /^Invalid 'q' parameter: given more than once$/)
    })
    it('without a word (letters or digits): white space or punctuation only', async () => {
      for (const text of ['   ', '!!!', '"-"', '& | !', '-']) {
        const body = await refused(`q=${encodeURIComponent(text)}`, /^Invalid 'q' parameter: has no word to search for \(letters or digits\)$/)
        expect(body.payload).to.deep.equal({ fields: ['name', 'canonical_project_name', 'title'] })
      }
    })
    it(`with more than ${MAX_SEARCH_WORDS} words`, async () => {
      // `or` is a word too: 17 alternatives are 33 words.
      const words = (n: number) => Array.from({ length: n }, (_, i) => (i % 2 ? 'or' : `w${i}`)).join(' ')
      const body = await refused(`q=${encodeURIComponent(words(MAX_SEARCH_WORDS + 1))}`, /^Invalid 'q' parameter: 33 words are more than the maximum of 32$/)
      expect(body.payload).to.deep.equal({ max_words: MAX_SEARCH_WORDS })
      await app.http.get(`/api/v1/components?q=${encodeURIComponent(words(MAX_SEARCH_WORDS))}`).expect(200)
    })
    it('the same refusals through the service', async () => {
      const service = app.engine.service('component')
      const refusal = async (query: RawQuery) => {
        const err = await service.find({ query }).then(
          () => expect.fail('expected a 400'),
          (e: unknown) => e,
        )
        expect(err).to.be.instanceOf(ApiError)
        expect((err as ApiError).status).to.equal(400)
        return (err as ApiError).message
      }
      expect(await refusal({ q: ['a', 'b'] })).to.equal("Invalid 'q' parameter: given more than once")
      expect(await refusal({ q: 'a\u0000' })).to.equal("Invalid 'q' parameter: contains a NUL character")
      expect(await refusal({ q: '?!' })).to.equal("Invalid 'q' parameter: has no word to search for (letters or digits)")
      expect(await refusal({ q: 'x'.repeat(MAX_PARAMETER_LENGTH + 1) })).to.equal(`Invalid 'q' parameter: longer than ${MAX_PARAMETER_LENGTH} characters`)
    })
  })

  it('the statement filters and ranks with the stored search column, never parsing text per row, and PostgreSQL answers it from the full-text index', async () => {
    const { result, sql } = await statementsOf(app.db, () => app.engine.service('component').find({ query: { q: 'delta', count: 'none' } }))
    const page = sql.find((s) => s.includes('@@'))!
    expect(page).to.include(`"_search" @@ websearch_to_tsquery('simple', $1)`)
    expect(page).to.include(`order by ts_rank("_search", websearch_to_tsquery('simple', $2)) DESC, "id" asc limit $3`)
    expect(page).to.not.include('to_tsvector')
    // The column is never answered.
    expect(result.items).to.have.length.above(0)
    for (const row of result.items) expect(row).to.not.have.property('_search')
    const http = await q('delta')
    for (const row of http.body.components) expect(row).to.not.have.property('_search')
    // Too few rows for the planner to choose the index by itself: forbid the sequential scan.
    const plan = await app.db.transaction(async (trx: Knex.Transaction) => {
      await trx.raw('SET LOCAL enable_seqscan = off')
      const { rows: lines } = await trx.raw(`EXPLAIN ${page.replace(/\$[12]/g, "'delta'").replace('$3', '21')}`)
      return lines.map((l: Record<string, string>) => l['QUERY PLAN']).join('\n')
    })
    expect(plan).to.include('components_search')
  })

  it('lists without q run the statements they ran before: no full-text SQL', async () => {
    const { sql } = await statementsOf(app.db, () => app.engine.service('component').find({ query: { where: 'name:alpha', count: 'exact' } }))
    for (const s of sql) expect(s).to.not.match(/tsvector|tsquery|ts_rank/)
  })

  it('the list page byte budget keeps the rank order', async () => {
    // A budget one row of the largest size goes over: the page is measured, ranked the same.
    const small = await testApp({ maxResponseBytes: 1024 })
    const res = await small.http.get(`/api/v1/components?q=${encodeURIComponent('gamma or alpha')}&limit=3`)
    expect(res.status, res.text).to.equal(200)
    const whole = (await q('gamma or alpha')).keys
    const keys = res.body.components.map((c: Row) => keyOf(c.id))
    expect(keys.length).to.be.at.least(1)
    expect(keys).to.deep.equal(whole.slice(0, keys.length))
  })
})

describe(`search: q on a resource without searchable fields, and the identity resources (${DATABASE})`, function () {
  this.timeout(60_000)
  let server: ServerApp
  before(async () => {
    server = await serverApp()
  })

  it('q on audits and users (no x-search field) is a 400 naming q, over HTTP and through the service, an empty one too', async () => {
    for (const plural of ['audits', 'users']) {
      for (const text of ['admin', '']) {
        const res = await server.http.get(`/api/v1/${plural}?q=${encodeURIComponent(text)}`).set('Authorization', ADMIN_AUTH)
        const body = expectError(res, 400, `Invalid 'q' parameter: ${plural} have no searchable field (none is marked "x-search")`, 'invalid_parameter')
        expect(body.payload).to.deep.equal({ fields: [] })
      }
    }
    const err = await server.engine
      .service('user')
      .find({ query: { q: 'admin' } })
      .then(
        () => undefined,
        (e: unknown) => e,
      )
    expect((err as ApiError).status).to.equal(400)
    expect((err as ApiError).message).to.equal(`Invalid 'q' parameter: users have no searchable field (none is marked "x-search")`)
  })

  it('OpenAPI documents q on the lists of searchable resources only', () => {
    const doc = server.engine.openapi() as Row
    const listParameters = (path: string) => (doc.paths[path].get.parameters as Row[]).map((p) => p.name ?? p.$ref)
    for (const plural of ['components', 'componenttypes', 'teams', 'remotecis']) expect(listParameters(`/${plural}`)).to.include('q')
    for (const plural of ['users', 'audits']) expect(listParameters(`/${plural}`)).to.not.include('q')
    // The nested list of a type's components takes it too (the same list parameters).
    expect(listParameters('/componenttypes/{id}/components')).to.include('q')
    const q = (doc.paths['/components'].get.parameters as Row[]).find((p) => p.name === 'q')!
    expect(q.in).to.equal('query')
    expect(q.schema).to.deep.include({ type: 'string', maxLength: MAX_PARAMETER_LENGTH })
    expect(q.description).to.include('`name`, `canonical_project_name`, `title`').and.include(`At most ${MAX_SEARCH_WORDS} words`)
    // A detail takes no q.
    expect(((doc.paths['/components/{id}'].get.parameters ?? []) as Row[]).map((p) => p.name)).to.not.include('q')
  })
})

describe(`search: npm run db:generate writes the full-text index (${DATABASE})`, function () {
  this.timeout(180_000)
  const { tmpDir, schemasDir, remove } = scratchFolders()
  let fresh: Awaited<ReturnType<typeof freshDatabase>>
  let migrations: string
  after(async () => {
    await fresh?.drop()
    remove()
  })
  /** The full-text indexes by name, and the search columns' generation expressions by table. */
  const indexes = async () => {
    const { rows } = await fresh.db.raw(
      `select indexname, indexdef from pg_indexes where schemaname = current_schema() and indexname like '%\\_search' order by 1`,
    )
    const { rows: columns } = await fresh.db.raw(
      `select c.relname::text as "table", pg_get_expr(d.adbin, d.adrelid) as expression
         from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
         join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where n.nspname = current_schema() and a.attname = '_search' and a.attgenerated = 's' and not a.attisdropped order by 1`,
    )
    return {
      ...Object.fromEntries((rows as Row[]).map((r) => [r.indexname, r.indexdef])),
      ...Object.fromEntries((columns as Row[]).map((r) => [`${r.table}._search`, r.expression])),
    } as Record<string, string>
  }

  it('a new table gets a GIN index on its x-search fields, in schema order; generating again finds nothing to do', async () => {
    fresh = await freshDatabase()
    migrations = tmpDir('dci-migrations-')
    const result = await generateMigration({ db: fresh.db, schemasDir: schemasDir(), migrationsDir: migrations })
    const text = fs.readFileSync(result.file!, 'utf8')
    expect(text).to.include(
      `await knex.raw('ALTER TABLE "components" ADD COLUMN "_search" tsvector GENERATED ALWAYS AS (to_tsvector(\\'simple\\', coalesce("name", \\'\\') || \\' \\' || coalesce("canonical_project_name", \\'\\') || \\' \\' || coalesce("title", \\'\\'))) STORED')`,
    )
    expect(text).to.include(`await knex.raw('CREATE INDEX "components_search" ON "components" USING gin ("_search")')`)
    expect(text).to.include(
      `ALTER TABLE "componenttypes" ADD COLUMN "_search" tsvector GENERATED ALWAYS AS (to_tsvector(\\'simple\\', coalesce("name", \\'\\'))) STORED`,
    )
    await migrateLatest(fresh.db, migrations)
    const made = await indexes()
    expect(Object.keys(made)).to.deep.equal([
      'components_search',
      'componenttypes_search',
      'remotecis_search',
      'teams_search',
      'components._search',
      'componenttypes._search',
      'remotecis._search',
      'teams._search',
    ])
    expect(made.components_search).to.match(/USING gin \(_search\)$/)
    expect(made['components._search']).to.match(
      /^to_tsvector\('simple'::regconfig, .*COALESCE\(name, ''::text\).*COALESCE\(canonical_project_name, ''::text\).*COALESCE\(title, ''::text\)\)+$/,
    )
    expect((await generateMigration({ db: fresh.db, schemasDir: schemasDir(), migrationsDir: migrations })).file).to.equal(undefined)
  })

  it('adding and removing x-search writes the migration that remakes the index; its down() puts the old one back', async () => {
    const before = await indexes()
    const edited = schemasDir()
    const edit = (file: string, change: (schema: Row) => void) => {
      const schema = JSON.parse(fs.readFileSync(path.join(edited, file), 'utf8'))
      change(schema)
      fs.writeFileSync(path.join(edited, file), JSON.stringify(schema))
    }
    edit('component.json', (s) => {
      delete s.properties.title['x-search']
      s.properties.ref['x-search'] = true
    })
    edit('componenttype.json', (s) => {
      delete s.properties.name['x-search']
    })
    const result = await generateMigration({ db: fresh.db, schemasDir: edited, migrationsDir: migrations })
    expect(result.summary).to.deep.equal([
      "component (components): full-text index components_search on (name, canonical_project_name, title) is not the one the schema's x-search fields ask for",
      'component (components): full-text index components_search on (name, canonical_project_name, ref), for q, is missing',
      "componenttype (componenttypes): full-text index componenttypes_search on (name) is not the one the schema's x-search fields ask for",
    ])
    const text = fs.readFileSync(result.file!, 'utf8')
    expect(text).to.include(`DROP INDEX IF EXISTS "componenttypes_search"`)
    expect(text).to.include(`ALTER TABLE "componenttypes" DROP COLUMN IF EXISTS "_search"`)
    expect(text).to.include(`coalesce("canonical_project_name", \\'\\') || \\' \\' || coalesce("ref", \\'\\')`)
    await migrateLatest(fresh.db, migrations)
    const after = await indexes()
    expect(after).to.not.have.property('componenttypes_search')
    expect(after).to.not.have.property('componenttypes._search')
    expect(after['components._search']).to.match(/COALESCE\(ref, ''::text\)\)+$/)
    expect(after.components_search).to.match(/USING gin \(_search\)$/)
    expect((await generateMigration({ db: fresh.db, schemasDir: edited, migrationsDir: migrations })).file).to.equal(undefined)
    await rollbackMigrations(fresh.db, migrations, { one: true })
    expect(await indexes()).to.deep.equal(before)
  })

  it('x-search is refused at load on anything but an answered text field, or with a value other than a boolean', () => {
    // see test/schema-loader.test.ts for the messages; here the generator refuses such a schema too.
    const bad = schemasDir()
    const schema = JSON.parse(fs.readFileSync(path.join(bad, 'component.json'), 'utf8'))
    schema.properties.data['x-search'] = true
    fs.writeFileSync(path.join(bad, 'component.json'), JSON.stringify(schema))
    return generateMigration({ db: fresh.db, schemasDir: bad, migrationsDir: migrations }).then(
      () => expect.fail('expected a refusal'),
      (err: Error) =>
        expect(err.message).to.equal(
          "component.json: field 'data': x-search applies to text fields (a string that is not a uuid or a date-time); this one is json",
        ),
    )
  })
})
