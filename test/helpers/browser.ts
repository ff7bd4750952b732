import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { BrowserContext, Page } from 'playwright-core'

/** Where browser tests save their screenshots (git-ignored). */
export const SCREENSHOTS = path.resolve(__dirname, '..', '..', 'test-output', 'screenshots')

/**
 * The distribution's Chromium (`apt-get install -y chromium`; Playwright's own download cannot work
 * here): CHROMIUM_PATH, else the first of the usual paths that exists.
 */
export function chromiumPath(): string | undefined {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter((p): p is string => Boolean(p))
  return candidates.find((p) => fs.existsSync(p))
}

/**
 * Skips the suite when no Chromium is installed, except in CI (`CI` set: `.ci/run` installs it), where
 * a missing browser fails the suite instead of hiding it.
 */
export function requireChromium(suite: Mocha.Context): string {
  const found = chromiumPath()
  if (found) return found
  if (process.env.CI) throw new Error('no Chromium at CHROMIUM_PATH, /usr/bin/chromium or /usr/bin/chromium-browser: apt-get install -y chromium')
  console.log('      (skipped: no Chromium installed; apt-get install -y chromium, or set CHROMIUM_PATH)')
  suite.skip()
  return ''
}

/** A browser session: its context (one profile, in a fresh folder) and a close that removes the folder. */
export interface BrowserSession {
  context: BrowserContext
  close(): Promise<void>
}

/**
 * Launches Chromium headless with a fresh `--user-data-dir` (Playwright's persistent context: the
 * only way it takes one) and the flags that keep it off the network and quiet.
 */
export async function launchBrowser(executablePath: string): Promise<BrowserSession> {
  const { chromium } = await import('playwright-core')
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dci-browser-'))
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    viewport: { width: 1280, height: 900 },
  })
  return {
    context,
    async close() {
      await context.close()
      fs.rmSync(userDataDir, { recursive: true, force: true })
    },
  }
}

/** The messages a page logged as errors (CSP violations and failed loads included), collected from now on. */
export function pageErrors(page: Page): string[] {
  const seen: string[] = []
  page.on('console', (message) => {
    if (message.type() === 'error') seen.push(message.text())
  })
  page.on('pageerror', (err) => seen.push(String(err)))
  return seen
}

/** A violation axe-core reports, as the tests print it. */
export interface AxeViolation {
  id: string
  impact: string | null
  help: string
  nodes: number
  /** The first few elements, as CSS selectors. */
  targets: string[]
}

/**
 * Runs axe-core (the installed package's script, evaluated in the page through the DevTools
 * protocol, which the page's Content-Security-Policy does not govern) and answers its serious and
 * critical violations.
 */
export async function seriousViolations(page: Page): Promise<AxeViolation[]> {
  const source = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8')
  await page.evaluate(source)
  const violations = await page.evaluate(async () => {
    type Result = { violations: Array<{ id: string; impact: string | null; help: string; nodes: Array<{ target: unknown[] }> }> }
    const result = await (globalThis as unknown as { axe: { run(): Promise<Result> } }).axe.run()
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.length,
      targets: v.nodes.slice(0, 4).map((n) => n.target.join(' ')),
    }))
  })
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
}

/** Saves a full-page screenshot under {@link SCREENSHOTS} as `<name>.png`, and answers its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(SCREENSHOTS, { recursive: true })
  const file = path.join(SCREENSHOTS, `${name}.png`)
  await page.screenshot({ path: file, fullPage: true })
  return file
}
