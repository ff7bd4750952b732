import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { expect } from 'chai'
import { createClient, type Client } from '../client'
import type { Resources } from '../resources/types'
import { createComponent, createType, resetTables, testApp, type TestApp } from './support'

/** The links of a `Link` header, by relation. */
function links(header: string | null | undefined): Record<string, string> {
  const found: Record<string, string> = {}
  for (const m of (header ?? '').matchAll(/<([^>]*)>; rel="([a-z]+)"/g)) found[m[2]] = m[1]
  return found
}

describe('pages: Link headers to the neighbouring pages of a list', () => {
  let app: TestApp
  let server: http.Server
  let origin: string
  let names: string[]

  before(async function () {
    this.timeout(120_000)
    app = await testApp({ maxResponseBytes: 20_000, maxFieldBytes: 20_000 })
    await resetTables(app.db)
    const ct = await createType(app, 't')
    names = ['a', 'b', 'c', 'd', 'e']
    for (const name of names) await createComponent(app, name, ct.id)
    // The node handler under /dci, as a host that forwards the URL whole serves it.
    const handle = app.engine.handler({ basePath: '/dci' })
    server = http.createServer((req, res) => handle(req, res))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  after(async () => {
    await new Promise((resolve) => server?.close(resolve))
    if (app) await resetTables(app.db)
  })

  const get = async (url: string) => {
    const res = await fetch(url.startsWith('http') ? url : `${origin}${url}`)
    expect(res.status, url).to.equal(200)
    return { body: (await res.json()) as any, links: links(res.headers.get('Link')) }
  }

  it('a page asked by offset links by offset: the first to the next one, a middle page to next, prev and first, the last to prev and first: full URLs with only offset changed', async () => {
    const base = `${origin}/dci/api/v1/components?sort=name&limit=2`
    const first = await get(`/dci/api/v1/components?sort=name&offset=0&limit=2`)
    expect(first.links).to.deep.equal({ next: `${base}&offset=2` })
    const middle = await get(first.links.next)
    expect(middle.body.components.map((c: any) => c.name)).to.deep.equal(['c', 'd'])
    expect(middle.links).to.deep.equal({ next: `${base}&offset=4`, prev: base, first: base })
    const last = await get(middle.links.next)
    expect(last.body.components.map((c: any) => c.name)).to.deep.equal(['e'])
    expect(last.links).to.deep.equal({ prev: `${base}&offset=2`, first: base })
  })

  it('the links keep the other parameters as the client encoded them, and replace offset however it was written', async () => {
    const page = await get('/dci/api/v1/components?limit=2&where=name%3Ac&offse%74=1&sort=name')
    expect(page.body.components).to.deep.equal([])
    const plain = await get('/dci/api/v1/components?query=in(name%2C%22a%22%2Cb%2Cc%2Cd)&offset=1&limit=2&sort=name')
    expect(plain.body.components.map((c: any) => c.name)).to.deep.equal(['b', 'c'])
    const base = `${origin}/dci/api/v1/components?query=in(name%2C%22a%22%2Cb%2Cc%2Cd)&limit=2&sort=name`
    expect(plain.links).to.deep.equal({ next: `${base}&offset=3`, prev: base, first: base })
    expect((await get(plain.links.next)).body.components.map((c: any) => c.name)).to.deep.equal(['d'])
    expect(page.links).to.deep.equal({
      prev: `${origin}/dci/api/v1/components?limit=2&where=name%3Ac&sort=name`,
      first: `${origin}/dci/api/v1/components?limit=2&where=name%3Ac&sort=name`,
    })
  })

  it('a page that ends exactly at the last row has no next link; a single page has no Link at all', async () => {
    const res = await fetch(`${origin}/dci/api/v1/components?limit=5`)
    expect(res.headers.get('Link')).to.equal(null)
    const exact = await get('/dci/api/v1/components?sort=name&limit=3&offset=2')
    expect(exact.body.components).to.have.length(3)
    expect(Object.keys(exact.links)).to.have.members(['prev', 'first'])
  })

  it('a page not asked by offset links by cursor: next after its _meta.next, first once past the first page, no prev', async () => {
    const base = `${origin}/dci/api/v1/components?sort=name&limit=2`
    const first = await get('/dci/api/v1/components?sort=name&limit=2')
    expect(first.body._meta.next).to.match(/^[A-Za-z0-9_-]+$/)
    expect(first.links).to.deep.equal({ next: `${base}&after=${first.body._meta.next}` })
    const middle = await get(first.links.next)
    expect(middle.body.components.map((c: any) => c.name)).to.deep.equal(['c', 'd'])
    expect(middle.body._meta.count).to.equal(5)
    expect(middle.links).to.deep.equal({ next: `${base}&after=${middle.body._meta.next}`, first: base })
    const last = await get(middle.links.next)
    expect(last.body.components.map((c: any) => c.name)).to.deep.equal(['e'])
    expect(last.body._meta).to.deep.equal({ count: 5 })
    expect(last.links).to.deep.equal({ first: base })
  })

  it('walking the next links gives every row once, in order, keeping where, sort, limit and count', async () => {
    const seen: string[] = []
    let url: string | undefined = '/dci/api/v1/components?sort=-name&limit=2&count=none'
    while (url) {
      const page = await get(url)
      expect(page.body._meta.count).to.equal(undefined)
      seen.push(...page.body.components.map((c: any) => c.name))
      if (page.links.next) {
        expect(page.links.next).to.include('sort=-name').and.include('count=none').and.include('limit=2')
        expect(new URL(page.links.next).searchParams.get('after')).to.equal(page.body._meta.next)
      } else expect(page.body._meta).to.deep.equal({})
      url = page.links.next
    }
    expect(seen).to.deep.equal([...names].reverse())
    const filtered = await get('/dci/api/v1/components?where=name:c&limit=1')
    expect(filtered.links).to.deep.equal({})
  })

  it('a page cut short by the byte budget links to the row after its last one, as next_offset says', async () => {
    const ct = await createType(app, 'large')
    try {
      for (const name of ['l1', 'l2', 'l3']) {
        const res = await fetch(`${origin}/dci/api/v1/components`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ name, componenttype: ct.id, data: { blob: 'x'.repeat(9_000) } }),
        })
        expect(res.status).to.equal(201)
      }
      const page = await get(`/dci/api/v1/components?where=componenttype:${ct.id}&sort=name&offset=0&limit=3`)
      expect(page.body._meta.truncated).to.equal(true)
      const next = page.body._meta.next_offset
      expect(next).to.equal(page.body.components.length)
      expect(new URL(page.links.next).searchParams.get('offset')).to.equal(String(next))
      // Linked by cursor, the next page starts after the last row answered too.
      const keyset = await get(`/dci/api/v1/components?where=componenttype:${ct.id}&sort=name&limit=3`)
      expect(keyset.body._meta.truncated).to.equal(true)
      const answered = keyset.body.components.map((c: any) => c.name)
      const rest = await get(keyset.links.next)
      expect([...answered, ...rest.body.components.map((c: any) => c.name)].slice(0, 3)).to.deep.equal(['l1', 'l2', 'l3'])
      expect(rest.body.components[0].name).to.equal(['l1', 'l2', 'l3'][answered.length])
    } finally {
      await app.db('components').where({ componenttype: ct.id }).delete()
      await app.db('componenttypes').where({ id: ct.id }).delete()
    }
  })

  it('the typed client gives nextOffset from the Link header, and count is undefined with count: none', async () => {
    const client: Client<Resources> = createClient<Resources>({ baseUrl: `${origin}/dci/api/v1` })
    const seen: string[] = []
    for (let offset = 0; ; ) {
      const page = await client.components.list({ sort: ['name'], limit: 2, offset, count: 'none' })
      const count: undefined = page.count
      expect(count).to.equal(undefined)
      seen.push(...page.items.map((c) => c.name))
      if (page.nextOffset === undefined) break
      offset = page.nextOffset
    }
    expect(seen).to.deep.equal(names)
    const counted = await client.components.list({ sort: ['name'], limit: 2 })
    expect(counted.count).to.equal(5)
    expect(counted.nextOffset).to.equal(undefined)
    expect(counted.next).to.be.a('string')
    const after = await client.components.list({ sort: ['name'], limit: 2, after: counted.next })
    expect(after.items.map((c) => c.name)).to.deep.equal(['c', 'd'])
  })
})
