import { expect } from 'chai'
import Koa from 'koa'
import supertest from 'supertest'
import { createEngine, type EngineOptions } from '../core'
import { serverPlugins } from '../resources'
import { SCHEMAS, testDatabase } from './support'

/** An engine with the server's plugins (authentication on), and `options`. */
async function engineWith(options: Partial<EngineOptions> = {}) {
  return createEngine({ db: await testDatabase(), schemasDir: SCHEMAS, plugins: serverPlugins(), checkSchema: false, ...options })
}

/** The binary body of a response, as supertest would otherwise try to decode it. */
function binary(res: supertest.Response, callback: (err: Error | null, body: Buffer) => void): void {
  const chunks: Buffer[] = []
  res.on('data', (chunk: Buffer) => chunks.push(chunk))
  res.on('end', () => callback(null, Buffer.concat(chunks)))
}

describe('the API index and the API reference (/api/v1/docs/), through HTTP', () => {
  let http: ReturnType<typeof supertest>
  let title: string

  before(async () => {
    const engine = await engineWith()
    title = engine.openapi().info.title
    http = supertest(engine.app().callback())
  })

  it('GET /api/v1 and /api/v1/ answer the index without credentials: status, message, every resource URL, openapi.json and the docs', async () => {
    for (const path of ['/api/v1', '/api/v1/']) {
      const res = await http.get(path).expect(200)
      expect(res.body).to.include({ _status: 'OK', message: `${title}.` })
      expect(res.body.resources).to.include({ components: '/api/v1/components', componenttypes: '/api/v1/componenttypes' })
      expect(res.body.links).to.deep.equal({ openapi: '/api/v1/openapi.json', docs: '/api/v1/docs/' })
    }
  })

  it('GET / leads to the reference (302) when no console is served; /api/v1/docs to /api/v1/docs/ (301, a relative Location, so it holds under any mount)', async () => {
    const root = await supertest((await engineWith({ console: false })).app().callback())
      .get('/')
      .expect(302)
    expect(root.headers.location).to.equal('/api/v1/docs/')
    const docs = await http.get('/api/v1/docs?x=1').expect(301)
    expect(docs.headers.location).to.equal('docs/?x=1')
  })

  it("the page is public HTML that loads only this origin's files, under a Content-Security-Policy that allows no inline script", async () => {
    const res = await http.get('/api/v1/docs/').expect(200)
    expect(res.headers['content-type']).to.equal('text/html; charset=utf-8')
    expect(res.text).to.include(`<title>${title} API reference</title>`)
    const sources = [...res.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1])
    expect(sources).to.have.members(['swagger-ui.css', 'docs.css', 'favicon-32x32.png', 'swagger-ui-bundle.js', 'init.js'])
    expect(res.text).to.not.match(/<script>[^<]/)
    expect(res.headers['content-security-policy']).to.match(/script-src 'self';/)
    expect(res.headers['content-security-policy']).to.include("frame-ancestors 'none'")
    const init = await http.get('/api/v1/docs/init.js').expect(200)
    expect(init.text).to.include("url: '../openapi.json'")
    for (const sourced of sources) await http.get(`/api/v1/docs/${sourced}`).buffer(true).parse(binary).expect(200)
  })

  it('a file of the reference: strong ETag, 304 to a matching If-None-Match, gzip only when accepted, HEAD without body', async () => {
    const gz = await http.get('/api/v1/docs/swagger-ui.css').set('Accept-Encoding', 'gzip').buffer(true).parse(binary).expect(200)
    expect(gz.headers['content-encoding']).to.equal('gzip')
    expect(gz.headers.vary).to.equal('Accept-Encoding')
    const plain = await http.get('/api/v1/docs/swagger-ui.css').set('Accept-Encoding', 'identity').expect(200)
    expect(plain.headers['content-encoding']).to.equal(undefined)
    expect(plain.headers.etag).to.equal(gz.headers.etag)
    expect(Number(plain.headers['content-length'])).to.be.above(Number(gz.headers['content-length']))
    await http.get('/api/v1/docs/swagger-ui.css').set('If-None-Match', plain.headers.etag).expect(304)
    await http.get('/api/v1/docs/swagger-ui.css').set('If-None-Match', '"other"').expect(200)
    const head = await http.head('/api/v1/docs/swagger-ui.css').expect(200)
    expect(head.text ?? '').to.equal('')
  })

  it('an unknown file answers 404 JSON, another method 405 JSON with Allow; nothing outside the package is reachable', async () => {
    for (const path of [
      '/api/v1/docs/nope.js',
      '/api/v1/docs/../package.json',
      '/api/v1/docs/%2e%2e/%2e%2e/package.json',
      '/api/v1/docs/constructor',
      '/api/v1/docs/swagger-ui.js.map',
    ]) {
      const res = await http.get(path)
      expect(res.status, path).to.equal(404)
      expect(res.body.code).to.equal('route_not_found')
    }
    for (const path of ['/api/v1/docsx', '/api/v1/docs.json']) {
      const res = await http.get(path)
      expect(res.status, path).to.be.oneOf([401, 404])
      expect(res.body.code, path).to.be.oneOf(['unauthorized', 'route_not_found'])
    }
    const post = await http.post('/api/v1/docs/').send({}).expect(405)
    expect(post.headers.allow).to.equal('GET, HEAD')
    expect(post.body.code).to.equal('method_not_allowed')
  })

  it('the reference is behind the Host allowlist, as the API is', async () => {
    const guarded = supertest((await engineWith({ allowedHosts: ['localhost'] })).app().callback())
    await guarded.get('/api/v1/docs/').set('Host', 'localhost').expect(200)
    const refused = await guarded.get('/api/v1/docs/').set('Host', 'evil.example').expect(421)
    expect(refused.body.code).to.equal('misdirected_request')
  })

  it('docs: false serves neither the reference nor the redirect of /, and the index has no docs link', async () => {
    const without = supertest((await engineWith({ docs: false, console: false })).app().callback())
    expect((await without.get('/api/v1/docs/')).status).to.be.oneOf([401, 404])
    await without.get('/').expect(404)
    expect((await without.get('/api/v1').expect(200)).body.links).to.deep.equal({ openapi: '/api/v1/openapi.json' })
  })

  it('mounted in a host app (engine.middleware()), the reference answers under the prefix with the same relative URLs', async () => {
    const engine = await engineWith()
    const host = new Koa()
    host.use(engine.middleware())
    const agent = supertest(host.callback())
    const page = await agent.get('/api/v1/docs/').expect(200)
    expect(page.text).to.include('src="init.js"')
    expect((await agent.get('/api/v1/docs').expect(301)).headers.location).to.equal('docs/')
  })
})
