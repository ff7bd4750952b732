import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'chai'
import supertest from 'supertest'
import { createEngine, type EngineOptions } from '../core'
import { builtConsoleDir } from '../core/http/console'
import { serverPlugins } from '../resources'
import { scratchFolders } from './helpers/scratch'
import { SCHEMAS, testDatabase } from './support'

const { tmpDir, remove } = scratchFolders()

async function appWith(options: Partial<EngineOptions>) {
  const engine = await createEngine({ db: await testDatabase(), schemasDir: SCHEMAS, plugins: serverPlugins(), checkSchema: false, ...options })
  return supertest(engine.app().callback())
}

/** A console build of two files, as Vite writes one: a page, and an asset whose name carries its hash. */
function fakeBuild(): string {
  const dir = tmpDir('dci-console-')
  fs.mkdirSync(path.join(dir, 'assets'))
  fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>console</title><script type="module" src="./assets/index-Ab12Cd34.js"></script>')
  fs.writeFileSync(path.join(dir, 'assets', 'index-Ab12Cd34.js'), `console.log(${JSON.stringify('x'.repeat(5_000))})`)
  fs.writeFileSync(path.join(dir, 'assets', 'notes.txt'), 'not a type the console serves')
  return dir
}

describe('the web console at /console/, through HTTP', () => {
  after(() => remove())

  it('the page is revalidated (no-cache, strong ETag, 304), the hashed assets are cached a year (immutable), gzip when accepted', async () => {
    const http = await appWith({ console: fakeBuild() })
    const page = await http.get('/console/').expect(200)
    expect(page.headers['content-type']).to.equal('text/html; charset=utf-8')
    expect(page.headers['cache-control']).to.equal('no-cache')
    expect(page.headers['content-security-policy']).to.include("script-src 'self' 'unsafe-eval';").and.include("frame-ancestors 'none'")
    await http.get('/console/').set('If-None-Match', page.headers.etag).expect(304)
    const asset = await http.get('/console/assets/index-Ab12Cd34.js').set('Accept-Encoding', 'gzip').expect(200)
    expect(asset.headers['cache-control']).to.equal('public, max-age=31536000, immutable')
    expect(asset.headers['content-encoding']).to.equal('gzip')
    expect(asset.headers.etag).to.match(/^"[\w-]{43}"$/)
    await http.get('/console/assets/index-Ab12Cd34.js').set('If-None-Match', asset.headers.etag).expect(304)
  })

  it('config.json tells the console where the API is; / leads to the console; /console to /console/', async () => {
    const http = await appWith({ console: fakeBuild(), prefix: '/dci/v2' })
    expect((await http.get('/console/config.json').expect(200)).body).to.deep.equal({ api: '/dci/v2' })
    expect((await http.get('/').expect(302)).headers.location).to.equal('/console/')
    expect((await http.get('/console').expect(301)).headers.location).to.equal('console/')
  })

  it('only the files of the build are served: others are 404 JSON, other methods 405 JSON', async () => {
    const http = await appWith({ console: fakeBuild() })
    for (const p of [
      '/console/assets/notes.txt',
      '/console/nope.js',
      '/console/../package.json',
      '/console/%2e%2e/package.json',
      '/console/assets/',
      '/console/constructor',
    ]) {
      const res = await http.get(p)
      expect(res.status, p).to.equal(404)
      expect(res.body.code, p).to.equal('route_not_found')
    }
    const post = await http.post('/console/').send({}).expect(405)
    expect(post.body.code).to.equal('method_not_allowed')
  })

  it('without a build, /console/ says how to build it (404 JSON) and / leads to the API reference; console: false serves nothing', async () => {
    const unbuilt = await appWith({ console: undefined as unknown as string })
    if (!builtConsoleDir()) {
      const res = await unbuilt.get('/console/').expect(404)
      expect(res.body.message).to.include('npm run console:build')
    }
    const off = await appWith({ console: false })
    expect((await off.get('/').expect(302)).headers.location).to.equal('/api/v1/docs/')
    await off.get('/console/').expect(404)
  })

  it('the console is behind the Host allowlist', async () => {
    const http = await appWith({ console: fakeBuild(), allowedHosts: ['localhost'] })
    await http.get('/console/').set('Host', 'localhost').expect(200)
    expect((await http.get('/console/').set('Host', 'evil.example').expect(421)).body.code).to.equal('misdirected_request')
  })

  it("this checkout's build (npm install runs it) is found and served: its page loads only relative, hashed assets", async function () {
    const built = builtConsoleDir()
    if (!built) {
      if (process.env.CI) throw new Error('the console is not built in CI: npm ci runs `prepare`, which builds it')
      this.skip()
    }
    const http = await appWith({})
    const page = await http.get('/console/').expect(200)
    const sources = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]).filter((s) => !s.startsWith('data:'))
    expect(sources.length).to.be.at.least(2)
    for (const source of sources) {
      expect(source).to.match(/^\.\/assets\/[\w-]+-[\w-]{8}\.(js|css)$/)
      const asset = await http.get(`/console/${source.slice(2)}`).expect(200)
      expect(asset.headers['cache-control']).to.equal('public, max-age=31536000, immutable')
    }
  })
})
