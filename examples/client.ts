/**
 * The typed client: create, list, update with an ETag, handle a 412, delete.
 * Run against a running server: `DCI_URL=http://127.0.0.1:5000/api/v1 DCI_PASSWORD=... npx tsx examples/client.ts`
 * (user DCI_USER, default admin, with HTTP Basic; or DCI_TOKEN, an API key, as a Bearer token).
 * Without DCI_URL it starts its own engine, as the server runs it, on an in-memory embedded database
 * (or DATABASE_URL) first, with a user admin of a generated password.
 */
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { PreconditionFailedError, createClient } from '../client'
import { createEngine, migrateLatest, openDatabase } from '../core'
import { ensureAdmin } from '../core/identity'
import { plugins } from '../resources'
// The types generated from the schemas (`npm run types:generate`), by route: what the client is typed by.
import type { Resources } from '../resources/types'

/** The `Authorization` header of HTTP Basic. */
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

/**
 * A server of its own, for a self-contained run, with the server's plugins (identity and access on);
 * `authorization` is its admin's; `stop` closes it and its database.
 */
async function startServer(): Promise<{ url: string; authorization: string; stop(): Promise<void> }> {
  const root = path.resolve(__dirname, '..')
  const db = openDatabase({ url: process.env.DATABASE_URL || undefined })
  await migrateLatest(db, path.join(root, 'migrations'))
  const engine = await createEngine({ db, schemasDir: path.join(root, 'schemas'), plugins })
  // A database without users gets team and user admin (super_admin), as a first start of the server does.
  const password = randomBytes(12).toString('base64url')
  if (!(await ensureAdmin(engine, { password }))) throw new Error('this database has users already: run against its server with DCI_URL')
  const server = http.createServer(engine.app().callback())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}${engine.prefix}`,
    authorization: basic('admin', password),
    stop: async () => {
      await new Promise((resolve) => server.close(resolve))
      await db.destroy()
    },
  }
}

/** The credentials of the environment, for a server given by DCI_URL. */
function credentialsFromEnv(): string | undefined {
  if (process.env.DCI_TOKEN) return `Bearer ${process.env.DCI_TOKEN}`
  if (process.env.DCI_PASSWORD) return basic(process.env.DCI_USER || 'admin', process.env.DCI_PASSWORD)
  return undefined
}

async function main(): Promise<void> {
  const own = process.env.DCI_URL ? undefined : await startServer()
  const baseUrl = process.env.DCI_URL || own!.url
  console.log(`server: ${baseUrl}`)
  const authorization = own?.authorization ?? credentialsFromEnv()
  // Credentials go with every request: HTTP Basic, or an API key as a Bearer token.
  const dci = createClient<Resources>({ baseUrl, headers: authorization ? { Authorization: authorization } : {} })
  try {
    // Type names are unique: a suffix lets the example run again against the same server.
    const rhel = await dci.componenttypes.create({ name: `rhel-${randomBytes(3).toString('hex')}` })
    console.log(`created componenttype ${rhel.name}`)
    const old = await dci.components.create({ name: 'RHEL-9.3', componenttype: rhel.id })
    const latest = await dci.components.create({ name: 'RHEL-9.4', componenttype: rhel.id })
    console.log(`created components ${old.name}, ${latest.name}`)

    const page = await dci.components.list({ where: { componenttype: rhel.id }, sort: ['-name'], limit: 1, embed: ['componenttype'] })
    const [newest] = page.items
    console.log(`newest rhel component: ${newest.name} (${page.count} in all), type ${String(newest.componenttype?.name)}`)

    // Every write carries the ETag it is based on, and gets the new one back.
    const { etag } = await dci.components.update(latest.id, { name: 'RHEL-9.4.1' }, { etag: latest.etag })
    console.log(`renamed ${latest.name} to RHEL-9.4.1, new etag differs: ${etag !== latest.etag}`)
    try {
      await dci.components.update(latest.id, { name: 'RHEL-9.4.2' }, { etag: latest.etag })
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err
      // Someone (here: us) changed it since that etag was read: read again, then decide.
      console.log(`a stale etag is refused: ${err.status} ${err.name}`)
    }

    await dci.components.remove(latest.id, { etag })
    await dci.components.remove(old.id, { etag: old.etag })
    await dci.componenttypes.remove(rhel.id, { etag: rhel.etag })
    console.log('deleted 2 components and 1 componenttype')
  } finally {
    await own?.stop()
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
