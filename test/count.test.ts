import { expect } from 'chai'
import { EXACT_COUNT_UP_TO } from '../core'
import { createComponent, createType, resetTables, testApp, type TestApp } from './support'

const COMPONENTS = '/api/v1/components'

/** Inserts `n` components of one type in one statement (the HTTP API would take minutes for 10,000). */
async function bulkComponents(app: TestApp, componenttype: string, n: number, name = 'bulk'): Promise<void> {
  await app.db.raw(
    `INSERT INTO components (name, componenttype, etag)
     SELECT ? || '-' || i, ?::uuid, md5(i::text) FROM generate_series(1, ?::int) AS i`,
    [name, componenttype, n],
  )
  await app.db.raw('ANALYZE components')
}

describe('_meta.count and the count parameter', () => {
  let app: TestApp
  before(async function () {
    this.timeout(120_000) // PGlite starts in seconds, longer on a busy machine
    app = await testApp()
  })
  beforeEach(async () => {
    await resetTables(app.db)
  })

  describe('up to the threshold, every count is exact and carries no flag', () => {
    it('the default count of a small list is exact: _meta is {count} alone', async () => {
      const ct = await createType(app, 't')
      for (const name of ['a', 'b', 'c']) await createComponent(app, name, ct.id)
      const res = await app.http.get(`${COMPONENTS}?limit=1`).expect(200)
      expect(res.body._meta).to.deep.equal({ count: 3, next: res.body._meta.next })
      expect(res.body._meta.next).to.be.a('string')
    })

    it('count=exact answers the same exact count', async () => {
      const ct = await createType(app, 't')
      for (const name of ['a', 'b']) await createComponent(app, name, ct.id)
      const res = await app.http.get(`${COMPONENTS}?count=exact&limit=1`).expect(200)
      expect(res.body._meta).to.deep.equal({ count: 2, next: res.body._meta.next })
      expect(res.body._meta.next).to.be.a('string')
    })

    it('count=estimate is the default, given explicitly', async () => {
      const ct = await createType(app, 't')
      await createComponent(app, 'a', ct.id)
      const res = await app.http.get(`${COMPONENTS}?count=estimate`).expect(200)
      expect(res.body._meta).to.deep.equal({ count: 1 })
    })

    it('limit=0 answers no rows and the count', async () => {
      const ct = await createType(app, 't')
      for (const name of ['a', 'b']) await createComponent(app, name, ct.id)
      const res = await app.http.get(`${COMPONENTS}?limit=0`).expect(200)
      expect(res.body).to.deep.equal({ components: [], _meta: { count: 2 } })
    })

    it('a last page that is not full tells the count without a count statement; a full one, or one past the end, counts', async () => {
      const ct = await createType(app, 't')
      for (const name of ['a', 'b', 'c', 'd']) await createComponent(app, name, ct.id)
      for (const [query, count, statements] of [
        ['limit=5', 4, 1],
        ['limit=3&offset=3', 4, 1],
        ['limit=4', 4, 2],
        ['limit=2&offset=2', 4, 2],
        ['limit=3', 4, 2],
        ['limit=2&offset=9', 4, 2],
      ] as const) {
        const sql: string[] = []
        const record = (q: { sql: string }) => sql.push(q.sql)
        app.db.on('query', record)
        try {
          const res = await app.http.get(`${COMPONENTS}?${query}`).expect(200)
          const { next, ...meta } = res.body._meta
          expect(meta, query).to.deep.equal({ count })
          // A cursor exactly when rows follow the page.
          expect(next !== undefined, query).to.equal(query === 'limit=3')
        } finally {
          app.db.removeListener('query', record)
        }
        expect(sql, query).to.have.length(statements)
      }
    })

    it('count=none on a small list: no count, whatever the page', async () => {
      const ct = await createType(app, 't')
      for (const name of ['a', 'b', 'c']) await createComponent(app, name, ct.id)
      for (const query of ['limit=2', 'limit=5', 'offset=9', 'limit=0']) {
        const res = await app.http.get(`${COMPONENTS}?count=none&${query}`).expect(200)
        // Only a cursor, when rows follow the page.
        expect(res.body._meta, query).to.deep.equal(query === 'limit=2' ? { next: res.body._meta.next } : {})
      }
    })

    it('an offset past the end still answers the count of every matching row', async () => {
      const ct = await createType(app, 't')
      for (const name of ['a', 'b', 'c']) await createComponent(app, name, ct.id)
      const res = await app.http.get(`${COMPONENTS}?offset=10`).expect(200)
      expect(res.body).to.deep.equal({ components: [], _meta: { count: 3 } })
      const last = await app.http.get(`${COMPONENTS}?offset=2&limit=2`).expect(200)
      expect(last.body._meta).to.deep.equal({ count: 3 })
    })
  })

  describe(`above ${EXACT_COUNT_UP_TO} matching rows`, function () {
    this.timeout(120_000)
    let ct: Record<string, any>
    const total = EXACT_COUNT_UP_TO + 50
    beforeEach(async () => {
      ct = await createType(app, 'many')
      await bulkComponents(app, ct.id, total)
    })

    it('the default count is an estimate over the threshold, flagged count_exact: false', async () => {
      const res = await app.http.get(`${COMPONENTS}?limit=2`).expect(200)
      expect(res.body.components).to.have.length(2)
      expect(res.body._meta).to.have.all.keys('count', 'count_exact', 'next')
      expect(res.body._meta.count_exact).to.equal(false)
      expect(res.body._meta.count).to.be.a('number').above(EXACT_COUNT_UP_TO)
    })

    it('such a list has a weak ETag of its rows: more rows past the page and ANALYZE leave it, a change on the page moves it', async () => {
      const url = `${COMPONENTS}?sort=name&limit=3`
      const first = await app.http.get(url).expect(200)
      expect(first.body._meta.count_exact).to.equal(false)
      expect(first.headers.etag).to.match(/^W\/"[0-9a-f]{32}"$/)
      // Rows that sort after the page, then new statistics: the estimate may move, the page does not.
      await bulkComponents(app, ct.id, 500, 'zzz')
      await app.http.get(url).set('If-None-Match', first.headers.etag).expect(304)
      // An exact count is part of the validator: the same page with count=exact has a strong ETag.
      expect((await app.http.get(`${url}&count=exact`).expect(200)).headers.etag).to.match(/^"[0-9a-f]{32}"$/)
      const [row] = first.body.components
      await app.http.put(`${COMPONENTS}/${row.id}`).set('If-Match', row.etag).send({ name: 'bulk-0-renamed' }).expect(204)
      const after = await app.http.get(url).set('If-None-Match', first.headers.etag).expect(200)
      expect(after.headers.etag).to.not.equal(first.headers.etag)
    })

    it('count=none leaves the count out: the page costs one statement where the estimate costs three', async () => {
      const statements = async (url: string) => {
        const sql: string[] = []
        const record = (q: { sql: string }) => sql.push(q.sql)
        app.db.on('query', record)
        try {
          return { res: await app.http.get(url).expect(200), sql }
        } finally {
          app.db.removeListener('query', record)
        }
      }
      const none = await statements(`${COMPONENTS}?limit=2&count=none`)
      expect(Object.keys(none.res.body._meta)).to.deep.equal(['next'])
      expect(none.res.body.components).to.have.length(2)
      expect(none.sql).to.have.length(1)
      const estimated = await statements(`${COMPONENTS}?limit=2`)
      expect(estimated.res.body._meta.count_exact).to.equal(false)
      expect(estimated.sql).to.have.length(3)
      // Without a count the page has a strong ETag: nothing in it is an estimate.
      expect(none.res.headers.etag).to.match(/^"[0-9a-f]{32}"$/)
      // In process too.
      const page = await app.engine.service('component').find({ query: { limit: 2, count: 'none' } })
      expect(page.meta).to.deep.equal({ next: none.res.body._meta.next })
      expect(page.items.map((r) => r.id)).to.deep.equal(none.res.body.components.map((r: any) => r.id))
      expect(page.nextOffset).to.equal(2)
    })

    it('past the 10,000th row a page reads one row more: the last one, full or not, is counted exactly and has no next link; one before it has', async () => {
      const last = await app.http.get(`${COMPONENTS}?offset=${total - 20}&limit=20`).expect(200)
      expect(last.body.components).to.have.length(20)
      expect(last.body._meta).to.deep.equal({ count: total })
      expect(last.headers.link).to.not.include('rel="next"')
      const partial = await app.http.get(`${COMPONENTS}?offset=${total - 5}&limit=20`).expect(200)
      expect(partial.body._meta).to.deep.equal({ count: total })
      expect(partial.headers.link).to.not.include('rel="next"')
      const before = await app.http.get(`${COMPONENTS}?offset=${total - 21}&limit=20`).expect(200)
      expect(before.body._meta.count_exact).to.equal(false)
      expect(before.headers.link).to.match(new RegExp(`offset=${total - 1}[^>]*>; rel="next"`))
      // Below the threshold the count says it: a page of an estimated list has a next link.
      expect((await app.http.get(`${COMPONENTS}?offset=0&limit=20`).expect(200)).headers.link).to.match(/offset=20>; rel="next"/)
    })

    it('count=exact counts every row and carries no flag', async () => {
      const res = await app.http.get(`${COMPONENTS}?limit=2&count=exact`).expect(200)
      expect(res.body._meta).to.deep.equal({ count: total, next: res.body._meta.next })
    })

    it('a where that matches few rows is counted exactly', async () => {
      const other = await createType(app, 'few')
      await bulkComponents(app, other.id, 7, 'few')
      const res = await app.http.get(`${COMPONENTS}?where=componenttype:${other.id}&limit=2`).expect(200)
      expect(res.body._meta).to.deep.equal({ count: 7, next: res.body._meta.next })
      const nested = await app.http.get(`/api/v1/componenttypes/${other.id}/components?limit=2`).expect(200)
      expect(nested.body._meta).to.deep.equal({ count: 7, next: nested.body._meta.next })
    })
  })

  describe('bad count values', () => {
    it('an unknown count value answers 400 listing the valid ones', async () => {
      const res = await app.http.get(`${COMPONENTS}?count=maybe`).expect(400)
      expect(res.body).to.have.all.keys('message', 'payload', 'status_code', 'code')
      expect(res.body.message).to.match(/^Invalid 'count' parameter/)
      expect(res.body.payload).to.deep.equal({ values: ['estimate', 'exact', 'none'] })
    })

    it('count given twice answers 400', async () => {
      const res = await app.http.get(`${COMPONENTS}?count=exact&count=exact`).expect(400)
      expect(res.body.message).to.match(/^Invalid 'count' parameter: given more than once/)
    })

    it('count is a list parameter only: on a detail route it is unknown', async () => {
      const ct = await createType(app, 't')
      const res = await app.http.get(`/api/v1/componenttypes/${ct.id}?count=exact`).expect(400)
      expect(res.body.message).to.equal("Unknown query parameter 'count'")
    })
  })
})
