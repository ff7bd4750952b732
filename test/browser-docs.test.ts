import { expect } from 'chai'
import type { Page } from 'playwright-core'
import { keepAliveAgent, request } from './helpers/http-client'
import { launchBrowser, pageErrors, requireChromium, screenshot, seriousViolations, type BrowserSession } from './helpers/browser'
import { PG_URL } from './helpers/pg'
import { ADMIN_PASSWORD, killAllServers, ownDatabase, startServer, stopServer, type OwnDatabase, type ServerProcess } from './helpers/server-process'

/**
 * The API reference in a real browser (the distribution's Chromium through playwright-core), served
 * by `server.ts` as users run it, behind its Host allowlist and with CORS off.
 */
describe(`browser: the API reference at /api/v1/docs/ (${PG_URL ? 'PostgreSQL' : 'embedded database'})`, function () {
  this.timeout(120_000)
  let own: OwnDatabase
  let server: ServerProcess
  let browser: BrowserSession
  let page: Page
  let errors: string[]

  before(async function () {
    this.timeout(200_000)
    const executable = requireChromium(this)
    own = await ownDatabase('docs', Boolean(PG_URL))
    server = await startServer({ ...own.env, LOG_LEVEL: 'warn' })
    browser = await launchBrowser(executable)
    page = await browser.context.newPage()
    errors = pageErrors(page)
  })

  after(async () => {
    await browser?.close()
    if (server) await stopServer(server)
    await killAllServers()
    await own?.dispose()
  })

  it('the reference renders every resource of openapi.json with no error in the page (none from its Content-Security-Policy)', async () => {
    const response = await page.goto(`${server.origin}/api/v1/docs`)
    expect(response!.status()).to.equal(200)
    expect(page.url()).to.equal(`${server.origin}/api/v1/docs/`)
    await page.locator('.opblock').first().waitFor()
    const document = (await (await fetch(`${server.origin}/api/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, { tags?: string[] }>> }
    const tags = new Set<string>()
    for (const methods of Object.values(document.paths)) {
      for (const operation of Object.values(methods)) for (const tag of operation.tags ?? []) tags.add(tag)
    }
    const shown = await page.locator('.opblock-tag').evaluateAll((nodes) => nodes.map((n) => n.getAttribute('data-tag')))
    expect(new Set(shown)).to.deep.equal(tags)
    expect(await page.locator('.opblock').count()).to.be.at.least(19)
    await screenshot(page, 'docs')
    expect(errors, 'errors logged by the page').to.deep.equal([])
  })

  it('"Try it out" of GET /componenttypes, authorized with Basic credentials, gets 200 and the list from the server itself', async () => {
    await page.locator('.btn.authorize').first().click()
    const basic = page.locator('.auth-container').filter({ hasText: 'basic' }).first()
    await basic.locator('input[type=text]').fill('admin')
    await basic.locator('input[type=password]').fill(ADMIN_PASSWORD)
    await basic.locator('button.authorize').click()
    await page.locator('.btn-done').first().click()
    const operation = page.locator('#operations-componenttypes-list_componenttypes')
    await operation.locator('.opblock-summary').click()
    await operation.locator('.try-out__btn').click()
    await operation.locator('.execute').click()
    const live = operation.locator('.live-responses-table .response')
    await live.first().waitFor()
    expect((await live.locator('.response-col_status').first().textContent())?.trim()).to.equal('200')
    expect(await operation.locator('.live-responses-table .microlight').first().textContent()).to.include('"componenttypes"')
    await screenshot(page, 'docs-try-it')
    // Without the credentials the same call is refused: the 200 came from the ones given.
    const anonymous = await fetch(`${server.origin}/api/v1/componenttypes`)
    expect(anonymous.status).to.equal(401)
    expect(errors, 'errors logged by the page').to.deep.equal([])
  })

  it('an accessibility scan with axe-core reports no serious or critical violation', async () => {
    const violations = await seriousViolations(page)
    expect(violations, JSON.stringify(violations, null, 1)).to.deep.equal([])
  })

  it('its files are served with a strong ETag (304 when it matches), gzip when accepted, and revalidated (no-cache: their names carry no hash)', async () => {
    // node:http, not fetch: fetch adds `Cache-Control: no-cache` to a request with If-None-Match (as the
    // Fetch standard says), which asks for the file again; a browser revalidates with max-age=0.
    const agent = keepAliveAgent()
    const url = `${server.origin}/api/v1/docs/swagger-ui-bundle.js`
    const first = await request(agent, 'GET', url, { headers: { 'accept-encoding': 'gzip' } })
    expect(first.status).to.equal(200)
    expect(first.headers['content-encoding']).to.equal('gzip')
    expect(first.headers['cache-control']).to.equal('no-cache')
    const etag = first.headers.etag!
    expect(etag).to.match(/^"[\w-]{43}"$/)
    const again = await request(agent, 'GET', url, { headers: { 'if-none-match': etag, 'cache-control': 'max-age=0' } })
    expect(again.status).to.equal(304)
    const plain = await request(agent, 'GET', url, { headers: { 'accept-encoding': 'identity' } })
    expect(plain.headers['content-encoding']).to.equal(undefined)
    expect(Number(plain.headers['content-length'])).to.be.above(1_000_000)
    expect(Number(plain.headers['content-length'])).to.be.above(Number(first.headers['content-length']) * 2)
    agent.destroy()
  })
})
