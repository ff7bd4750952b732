import path from 'node:path'
import { expect } from 'chai'
import { listDigest } from '../core/query/cursor'
import { type GeneratedApp, generatedApp, ROOT } from './support'
import { random } from './helpers/random'

const PROBE = path.join(ROOT, 'test', 'fixtures', 'schemas', 'probe.json')

type Row = Record<string, any>

const cursorOf = (list: string, position: number, values: unknown[]) => Buffer.from(JSON.stringify([list, position, values])).toString('base64url')

describe('keyset pages: after=<cursor>', function () {
  this.timeout(300_000)
  let app: GeneratedApp
  const SEED = Number(process.env.KEYSET_SEED ?? 20261203)
  const RUNS = Number(process.env.KEYSET_RUNS ?? 40)
  const rnd = random(SEED)
  const pick = <T>(list: readonly T[]) => list[Math.floor(rnd() * list.length)]
  const LETTERS = ['a', 'b', 'B', 'c', 'é']
  const INSTANTS = ['2024-01-01T00:00:00.000Z', '2024-06-15T12:30:00.000Z', '2025-01-01T00:00:00.000Z', '2025-03-01T08:00:00.250Z']
  const NUMBERS = [-2, -0.5, 0, 0.1, 0.25, 1.5, 3]
  const components: string[] = []

  /** A probe with few distinct values per field, and nulls: many ties, which the id breaks. */
  const probeBody = (): Row => {
    const maybe = <T>(value: () => T) => (rnd() < 0.25 ? undefined : value())
    const body: Row = {
      label: maybe(() => Array.from({ length: 1 + Math.floor(rnd() * 2) }, () => pick(LETTERS)).join('')),
      n: maybe(() => Math.floor(rnd() * 5) - 2),
      x: maybe(() => pick(NUMBERS)),
      flag: maybe(() => rnd() < 0.5),
      at: maybe(() => pick(INSTANTS)),
      level: maybe(() => pick(['low', 'mid', 'high'])),
      component: maybe(() => pick(components)),
    }
    for (const key of Object.keys(body)) if (body[key] === undefined) delete body[key]
    return body
  }
  const insert = async () => {
    const res = await app.http.post('/api/v1/probes').send(probeBody())
    expect(res.status, res.text).to.equal(201)
    return res.body.probe as Row
  }

  before(async () => {
    app = await generatedApp([PROBE])
    const type = (await app.http.post('/api/v1/componenttypes').send({ name: 't' }).expect(201)).body.componenttype
    for (const name of ['c1', 'c2', 'c3'])
      components.push((await app.http.post('/api/v1/components').send({ name, componenttype: type.id }).expect(201)).body.component.id)
    for (let i = 0; i < 60; i++) await insert()
  })
  after(async () => {
    await app?.close()
  })

  it('walks a list by cursor: the pages are the offset pages, and the last has no next', async () => {
    const all = (await app.http.get('/api/v1/probes?sort=label,-n&limit=200').expect(200)).body.probes.map((r: Row) => r.id)
    const seen: string[] = []
    let after: string | undefined
    do {
      const res = await app.http
        .get('/api/v1/probes')
        .query({ sort: 'label,-n', limit: 7, ...(after ? { after } : {}) })
        .expect(200)
      seen.push(...res.body.probes.map((r: Row) => r.id))
      expect(res.body._meta.count).to.equal(all.length)
      after = res.body._meta.next
      if (after) expect(res.body.probes).to.have.length(7)
    } while (after)
    expect(seen).to.deep.equal(all)
  })

  it('through the service too: find({ after }) gives the page after the cursor', async () => {
    const service = app.engine.service('probe')
    const first = await service.find({ query: { sort: '-x', limit: 5, count: 'none' } })
    const next = first.meta.next as string
    expect(next).to.be.a('string')
    const second = await service.find({ query: { sort: '-x', limit: 5, count: 'none', after: next } })
    const both = await service.find({ query: { sort: '-x', limit: 10, count: 'none' } })
    expect([...first.items, ...second.items].map((r) => r.id)).to.deep.equal(both.items.map((r) => r.id))
  })

  it('refuses a cursor with offset, one of another list, and anything that is not a cursor it gave, with 400s naming after', async () => {
    const first = await app.http.get('/api/v1/probes?sort=n&limit=3&where=flag:true').expect(200)
    const next: string = first.body._meta.next
    const refused = async (query: string, why: RegExp) => {
      const res = await app.http.get(`/api/v1/probes?${query}`)
      expect(res.status, `${query}: ${res.text}`).to.equal(400)
      expect(res.body.code).to.equal('invalid_parameter')
      expect(res.body.message).to.match(/^Invalid 'after' parameter: /)
      expect(res.body.message).to.match(why)
    }
    await refused(`sort=n&limit=3&where=flag:true&after=${next}&offset=0`, /offset/)
    // Another sort, filter, limit or query: the cursor is of another list.
    await refused(`sort=-n&limit=3&where=flag:true&after=${next}`, /another list/)
    await refused(`sort=n&limit=4&where=flag:true&after=${next}`, /another list/)
    await refused(`sort=n&limit=3&where=flag:false&after=${next}`, /another list/)
    await refused(`sort=n&limit=3&where=flag:true&query=null(label)&after=${next}`, /another list/)
    await refused(`sort=n&limit=3&after=${next}`, /another list/)
    await refused('after=!!', /not a cursor/)
    await refused(`after=${Buffer.from('{"a":1}').toString('base64url')}`, /not a cursor/)
    await refused(`after=${'A'.repeat(9_000)}`, /longer than/)
    // A cursor of this very list whose values are not its columns' (the digest is not a secret).
    const list = listDigest(['probe', [], null, null, [['n', 'asc']], 20])
    await refused(`sort=n&after=${cursorOf(list, 0, ['x', '00000000-0000-4000-8000-000000000000'])}`, /not one of 'n'/)
    await refused(`sort=n&after=${cursorOf(list, 0, [1, 'not-a-uuid'])}`, /not one of 'id'/)
    await refused(`sort=n&after=${cursorOf(list, 0, [1, null])}`, /not a cursor/)
    await refused(`sort=n&after=${cursorOf(list, -1, [1, '00000000-0000-4000-8000-000000000000'])}`, /not a cursor/)
    await refused(`sort=n&after=${cursorOf(list, 0, [1])}`, /not a cursor/)
    // Through the service: the same 400.
    const err = await app.engine
      .service('probe')
      .find({ query: { sort: 'n', after: 'nope!' } })
      .then(
        () => undefined,
        (e) => e,
      )
    expect(err?.status).to.equal(400)
    // A well-formed cursor of this list with values no row has is a page, not an error.
    const page = await app.http.get(`/api/v1/probes?sort=n&after=${cursorOf(list, 0, [-1_000, '00000000-0000-4000-8000-000000000000'])}`).expect(200)
    expect(page.body.probes.length).to.be.greaterThan(0)
  })

  it('a cursor through a null sort value, ascending and descending, continues after the nulls as the order places them', async () => {
    for (const sort of ['label', '-label', 'flag,-at', '-component,x']) {
      const all = (await app.http.get(`/api/v1/probes?sort=${sort}&limit=200`).expect(200)).body.probes.map((r: Row) => r.id)
      const seen: string[] = []
      let after: string | undefined
      do {
        const res = await app.http
          .get('/api/v1/probes')
          .query({ sort, limit: 4, count: 'none', ...(after ? { after } : {}) })
          .expect(200)
        seen.push(...res.body.probes.map((r: Row) => r.id))
        after = res.body._meta.next
      } while (after)
      expect(seen, sort).to.deep.equal(all)
    }
  })

  const SORTABLE = ['label', 'n', 'x', 'flag', 'at', 'level', 'component', 'created_at', 'id']

  it(`random sorts and page sizes while rows are inserted and deleted (KEYSET_SEED=${SEED}, ${RUNS} walks): no row skipped or repeated, and the order kept`, async () => {
    for (let run = 0; run < RUNS; run++) {
      const keys = [...SORTABLE].sort(() => rnd() - 0.5).slice(0, 1 + Math.floor(rnd() * 3))
      const sort = keys.map((k) => (rnd() < 0.5 ? `-${k}` : k)).join(',')
      const limit = 2 + Math.floor(rnd() * 9)
      const viaService = rnd() < 0.5
      const where = rnd() < 0.3 ? { query: 'not(eq(level,low))' } : {}
      const before = (
        await app.http
          .get('/api/v1/probes')
          .query({ sort, limit: 200, ...where })
          .expect(200)
      ).body.probes as Row[]
      const deleted = new Set<string>()
      const seen: string[] = []
      let after: string | undefined
      let pages = 0
      do {
        // The page is read while other writers insert and delete rows, seen or not yet seen.
        const victims = Array.from({ length: rnd() < 0.5 ? 1 : 0 }, () => pick(before).id).filter((id) => !deleted.has(id))
        for (const id of victims) deleted.add(id)
        const query = { sort, limit, count: rnd() < 0.5 ? 'none' : 'estimate', ...where, ...(after ? { after } : {}) } as const
        const [page] = await Promise.all([
          viaService
            ? app.engine
                .service('probe')
                .find({ query })
                .then((p) => ({ ids: p.items.map((r) => r.id as string), next: p.meta.next }))
            : app.http
                .get('/api/v1/probes')
                .query(query)
                .expect(200)
                .then((res) => ({ ids: res.body.probes.map((r: Row) => r.id as string), next: res.body._meta.next as string | undefined })),
          ...Array.from({ length: rnd() < 0.5 ? 1 : 0 }, () => insert()),
          ...victims.map((id) => app.db('probes').where({ id }).delete()),
        ])
        seen.push(...page.ids)
        after = page.next
        expect(++pages, `pages of sort=${sort} limit=${limit}`).to.be.below(100)
      } while (after)
      const context = `sort=${sort} limit=${limit} ${viaService ? 'service' : 'http'} ${JSON.stringify(where)}`
      expect(new Set(seen).size, `${context}: a row repeated`).to.equal(seen.length)
      const seenSet = new Set(seen)
      const skipped = before.filter((r) => !deleted.has(r.id) && !seenSet.has(r.id))
      expect(
        skipped.map((r) => r.id),
        `${context}: rows skipped`,
      ).to.deep.equal([])
      // The rows seen that still exist come in the order the list now has them.
      const now = (
        await app.http
          .get('/api/v1/probes')
          .query({ sort, limit: 200, ...where })
          .expect(200)
      ).body.probes.map((r: Row) => r.id as string)
      const position = new Map(now.map((id: string, i: number) => [id, i]))
      const order = seen.filter((id) => position.has(id)).map((id) => position.get(id)!)
      expect(
        order.every((p, i) => i === 0 || p > order[i - 1]),
        `${context}: out of order`,
      ).to.equal(true)
      // Keep the table near its size.
      const count = Number((await app.db('probes').count({ c: '*' }))[0].c)
      for (let i = count; i < 60; i++) await insert()
    }
  })
})
