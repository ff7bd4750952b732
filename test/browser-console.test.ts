import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { expect } from 'chai'
import type { Page } from 'playwright-core'
import { createEngine, type Engine, migrateLatest } from '../core'
import { builtConsoleDir } from '../core/http/console'
import { ensureAdmin } from '../core/identity'
import { serverPlugins } from '../resources'
import { generateMigration } from '../tooling/migration-generator'
import { type BrowserSession, launchBrowser, pageErrors, requireChromium, screenshot, seriousViolations } from './helpers/browser'
import { PG_URL } from './helpers/pg'
import { scratchFolders } from './helpers/scratch'
import { ADMIN_PASSWORD, freshDatabase, MIGRATIONS } from './support'

const { tmpDir, schemasDir, remove } = scratchFolders()

/** A resource the test drops in as a schema file: the console shows it with no code of its own. */
const GADGET = {
  title: 'gadget',
  description: 'A gadget, dropped in by the console test.',
  type: 'object',
  'x-plural': 'gadgets',
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 100, description: 'Name of the gadget.' },
    size: { type: 'integer', minimum: 1, maximum: 10, default: 1, description: 'From 1 to 10.' },
    kind: { type: 'string', enum: ['small', 'large'], description: 'Its kind.' },
    componenttype: { type: 'string', format: 'uuid', 'x-relation': { resource: 'componenttype', onDelete: 'restrict' }, description: 'Its componenttype.' },
  },
  required: ['name'],
  additionalProperties: false,
}

/**
 * The console in a real browser (the distribution's Chromium through playwright-core), against an
 * engine with the server's plugins, the project's schemas plus one dropped in, behind a Host
 * allowlist and with CORS off.
 */
describe(`browser: the console at /console/ (${PG_URL ? 'PostgreSQL' : 'embedded database'})`, function () {
  this.timeout(120_000)
  let fresh: Awaited<ReturnType<typeof freshDatabase>>
  let engine: Engine
  let server: http.Server
  let origin: string
  let browser: BrowserSession
  let page: Page
  let errors: string[]
  let rhel: { id: string; etag: string }

  /** Logs in through the form, as a person would. */
  async function logIn(target: Page, name: string, password: string): Promise<void> {
    await target.goto(`${origin}/`)
    await target.getByLabel('Name or email').fill(name)
    await target.getByLabel('Password', { exact: true }).fill(password)
    await target.getByRole('button', { name: 'Log in' }).click()
    await target.getByTestId('caller').waitFor()
  }

  /** The texts of a column of the table on the page. */
  async function column(index: number): Promise<string[]> {
    await page.locator('table.rows tbody tr').first().waitFor()
    return page.locator(`table.rows tbody tr td:nth-child(${index + 1})`).allTextContents()
  }

  before(async function () {
    this.timeout(200_000)
    const executable = requireChromium(this)
    if (!builtConsoleDir()) throw new Error('the console is not built: npm run console:build')
    fresh = await freshDatabase()
    // The project's migrations, then the one `npm run db:generate` writes for the dropped-in schema.
    const migrations = tmpDir('dci-migrations-')
    for (const file of fs.readdirSync(MIGRATIONS)) fs.copyFileSync(path.join(MIGRATIONS, file), path.join(migrations, file))
    const schemas = schemasDir({ 'gadget.json': GADGET })
    await migrateLatest(fresh.db, migrations)
    await generateMigration({ db: fresh.db, schemasDir: schemas, migrationsDir: migrations })
    await migrateLatest(fresh.db, migrations)
    engine = await createEngine({
      db: fresh.db,
      schemasDir: schemas,
      plugins: serverPlugins(),
      allowedHosts: ['127.0.0.1'],
      logger: { error() {}, warn() {}, info() {} },
    })
    await ensureAdmin(engine, { password: ADMIN_PASSWORD })
    const componenttypes = engine.service('componenttype')
    for (const name of ['charlie', 'alpha', 'bravo', 'delta']) await componenttypes.create({ name })
    rhel = (await componenttypes.create({ name: 'rhel' })) as { id: string; etag: string }
    const team = (await engine.service('team').create({ name: 'console-team' })) as { id: string }
    await engine.service('user').create({ name: 'reader', role: 'user', team: team.id, password: 'reader password 1' })
    server = http.createServer(engine.app().callback())
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    browser = await launchBrowser(executable)
    page = await browser.context.newPage()
    errors = pageErrors(page)
  })

  // A failed step leaves a screenshot of what the browser showed.
  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && page) await screenshot(page, `failed-${this.currentTest.title.slice(0, 40).replace(/\W+/g, '-')}`)
  })

  after(async () => {
    await browser?.close()
    if (server) {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
    await fresh?.drop()
    remove()
  })

  it("log in: the caller's name and role are shown, every readable resource is in the navigation, the dropped-in one too", async () => {
    await logIn(page, 'admin', ADMIN_PASSWORD)
    expect(await page.getByTestId('caller').textContent())
      .to.include('admin')
      .and.include('super_admin')
    const nav = await page.getByRole('navigation', { name: 'Resources' }).getByRole('link').allTextContents()
    expect(nav).to.include.members(['componenttypes', 'components', 'remotecis', 'teams', 'users', 'audits', 'gadgets'])
    await screenshot(page, 'console-home')
    expect(await seriousViolations(page), 'axe-core on the home view').to.deep.equal([])
  })

  it('list, sort and filter: a column header sorts (both ways), a filter built from the field type narrows, the count follows', async () => {
    await page.getByRole('navigation', { name: 'Resources' }).getByRole('link', { name: 'componenttypes', exact: true }).click()
    const nameColumn = (await page.locator('table.rows thead tr').first().locator('th').allTextContents()).findIndex((t) => t.startsWith('name'))
    expect(nameColumn).to.be.at.least(0)
    await page.getByRole('button', { name: /^Sort by name/ }).click()
    await page.locator('th[aria-sort="ascending"]').waitFor()
    expect(await column(nameColumn)).to.deep.equal(['alpha', 'bravo', 'charlie', 'delta', 'rhel'])
    await page.getByRole('button', { name: /^Sort by name/ }).click()
    await page.locator('th[aria-sort="descending"]').waitFor()
    expect(await column(nameColumn)).to.deep.equal(['rhel', 'delta', 'charlie', 'bravo', 'alpha'])
    expect(await page.getByTestId('count').textContent()).to.equal('5 componenttypes')
    await page.getByLabel('Filter name').fill('RAV')
    await page.getByRole('button', { name: 'Filter', exact: true }).click()
    await page.getByTestId('count').getByText('1 componenttypes').waitFor()
    expect(await column(nameColumn)).to.deep.equal(['bravo'])
    await screenshot(page, 'console-list')
    expect(await seriousViolations(page), 'axe-core on the list view').to.deep.equal([])
    await page.getByRole('button', { name: 'Clear filters' }).click()
    await page.getByTestId('count').getByText('5 componenttypes').waitFor()
  })

  it('create with a validation error, then fixed: the error shows beside its field, the fixed form creates the row', async () => {
    await page.goto(`${origin}/console/#/gadgets/new`)
    await page.getByLabel(/^size/).fill('11')
    await page.getByRole('button', { name: 'Create' }).click()
    const form = page.locator('form.rjsf')
    await form.getByText(/must have required property 'name'|is a required property/).waitFor()
    await form.getByText(/must be <= 10/).waitFor()
    await screenshot(page, 'console-create-invalid')
    expect(await seriousViolations(page), 'axe-core on the form').to.deep.equal([])
    await page.getByLabel(/^name/).fill('gizmo')
    await page.getByLabel(/^size/).fill('3')
    await page.getByLabel(/^kind/).selectOption('large')
    await page.getByLabel('componenttype', { exact: true }).selectOption({ label: 'rhel' })
    await page.getByRole('button', { name: 'Create' }).click()
    await page.getByRole('heading', { name: 'gadget gizmo' }).waitFor()
    const stored = (await engine.service('gadget').find({ query: { where: { name: 'gizmo' } } })).items[0] as Record<string, unknown>
    expect(stored).to.include({ name: 'gizmo', size: 3, kind: 'large', componenttype: rhel.id })
    // The detail links the relation to its row, embedded.
    await page.getByRole('link', { name: 'rhel' }).first().waitFor()
    await screenshot(page, 'console-detail')
    expect(await seriousViolations(page), 'axe-core on the detail view').to.deep.equal([])
  })

  it('a field error only the server knows (a JSON field over its byte limit) shows beside its field; a conflict (409) shows its message', async () => {
    await page.goto(`${origin}/console/#/components/new`)
    await page.getByLabel(/^name/).fill('big')
    await page.getByLabel('componenttype', { exact: true }).selectOption({ label: 'rhel' })
    await page.getByLabel(/^data/).fill(JSON.stringify({ blob: 'x'.repeat(70_000) }))
    await page.getByRole('button', { name: 'Create' }).click()
    // The innermost field group holding the data field holds the server's message too.
    const beside = page.locator('div.form-group:has(#root_data)').last()
    await beside.getByText('must take at most 65536 bytes as JSON (UTF-8)').waitFor()
    await screenshot(page, 'console-server-error')
    expect((await engine.service('component').find({ query: { where: { name: 'big' } } })).items).to.have.length(0)
    await page.goto(`${origin}/console/#/componenttypes/new`)
    await page.getByLabel(/^name/).fill('alpha')
    await page.getByRole('button', { name: 'Create' }).click()
    await page.getByRole('alert').getByText(/409/).waitFor()
  })

  it('edit: the form opens with the stored values and saves with the ETag it was loaded with', async () => {
    const gizmo = (await engine.service('gadget').find({ query: { where: { name: 'gizmo' } } })).items[0] as { id: string }
    await page.goto(`${origin}/console/#/gadgets/${gizmo.id}`)
    await page.getByRole('link', { name: 'Edit' }).click()
    const name = page.getByLabel(/^name/)
    await name.waitFor()
    expect(await name.inputValue()).to.equal('gizmo')
    await name.fill('gizmo two')
    await page.getByRole('button', { name: 'Save' }).click()
    await page.getByRole('heading', { name: 'gadget gizmo two' }).waitFor()
    expect((await engine.service('gadget').get(gizmo.id)).name).to.equal('gizmo two')
  })

  it('a conflicting edit from a second session: 412 shows "changed since you opened it" with the current values; overwrite saves mine deliberately', async () => {
    const gizmo = (await engine.service('gadget').find({ query: { where: { name: 'gizmo two' } } })).items[0] as { id: string; etag: string }
    await page.goto(`${origin}/console/#/gadgets/${gizmo.id}/edit`)
    await page.getByLabel(/^name/).waitFor()
    // A second session changes the row meanwhile.
    const other = await browser.context.browser()?.newContext()
    const second = other ? await other.newPage() : await browser.context.newPage()
    await second.request.put(`${origin}/api/v1/gadgets/${gizmo.id}`, {
      headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`, 'if-match': `"${gizmo.etag}"` },
      data: { name: 'changed elsewhere', size: 9 },
    })
    await second.close()
    await page.getByLabel(/^name/).fill('mine')
    await page.getByRole('button', { name: 'Save' }).click()
    const conflict = page.locator('.conflict')
    await conflict.getByText('changed since you opened it').waitFor()
    expect(await conflict.textContent()).to.include('changed elsewhere')
    await screenshot(page, 'console-conflict')
    await conflict.getByRole('button', { name: 'Overwrite with my values' }).click()
    await page.getByRole('heading', { name: 'gadget mine' }).waitFor()
    expect((await engine.service('gadget').get(gizmo.id)).name).to.equal('mine')
  })

  it('delete asks for confirmation, then deletes with the ETag and returns to the list', async () => {
    const gizmo = (await engine.service('gadget').find({ query: { where: { name: 'mine' } } })).items[0] as { id: string }
    await page.goto(`${origin}/console/#/gadgets/${gizmo.id}`)
    await page.getByRole('button', { name: 'Delete' }).click()
    const dialog = page.getByRole('alertdialog')
    await dialog.waitFor()
    await screenshot(page, 'console-delete')
    await dialog.getByRole('button', { name: 'Yes, delete it' }).click()
    await page.getByRole('heading', { name: 'gadgets' }).waitFor()
    expect((await engine.service('gadget').find({ query: {} })).items).to.have.length(0)
  })

  it('a user without rights is offered no create, edit nor delete; log out returns to the login', async () => {
    await page.getByRole('button', { name: 'Log out' }).click()
    await page.getByLabel('Name or email').waitFor()
    await logIn(page, 'reader', 'reader password 1')
    expect(await page.getByTestId('caller').textContent())
      .to.include('reader')
      .and.include('(user)')
    await page.goto(`${origin}/console/#/componenttypes`)
    await page.locator('table.rows tbody tr').first().waitFor()
    expect(await page.getByRole('link', { name: /^New / }).count()).to.equal(0)
    await page.goto(`${origin}/console/#/componenttypes/${rhel.id}`)
    await page.getByRole('heading', { name: 'componenttype rhel' }).waitFor()
    expect(await page.getByRole('link', { name: 'Edit' }).count()).to.equal(0)
    expect(await page.getByRole('button', { name: 'Delete' }).count()).to.equal(0)
    // audits are for super_admins: not in a user's navigation.
    expect(await page.getByRole('navigation', { name: 'Resources' }).getByRole('link').allTextContents()).to.not.include('audits')
    await screenshot(page, 'console-reader')
  })

  it('wrong credentials are refused on the login form; no page logged an error', async () => {
    await page.getByRole('button', { name: 'Log out' }).click()
    await page.getByLabel('Name or email').fill('admin')
    await page.getByLabel('Password', { exact: true }).fill('not the password')
    await page.getByRole('button', { name: 'Log in' }).click()
    await page.getByText('Wrong name, password or key.').waitFor()
    await screenshot(page, 'console-login')
    expect(await seriousViolations(page), 'axe-core on the login view').to.deep.equal([])
    // The only errors the page logged are those of the requests refused on purpose above (the 400 of
    // the oversized field, the 409, the 412 of the conflicting edit, the 401 of this login) and rjsf's note of the invalid form.
    expect(errors.filter((e) => !/status of (400|401|409|412)|^Form validation failed/.test(e))).to.deep.equal([])
  })
})
