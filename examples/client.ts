/**
 * The typed client: create, list, update with an ETag, handle a 412, delete.
 * Run against a running server: `DCI_URL=http://127.0.0.1:5000/api/v1 DCI_PASSWORD=... npx tsx examples/client.ts` (user DCI_USER, default admin)
 * (or `DCI_TOKEN=dci_...`, an API key; neither: no credentials, for an engine without identity).
 * Without DCI_URL it starts its own engine on an in-memory embedded database (or DATABASE_URL) first,
 * and logs in as the admin it bootstraps there.
 */
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { PreconditionFailedError, createClient, type Credentials } from '../client'
import { createEngine, migrateLatest, openDatabase } from '../core'
import { ensureAdmin } from '../core/identity'
import { plugins } from '../resources'
// The types generated from the schemas (`npm run types:generate`), by route: what the client is typed by.
import type { Resources } from '../resources/types'

/** The credentials of the environment: DCI_TOKEN (an API key), or DCI_PASSWORD (of DCI_USER, default admin). */
function credentialsFromEnv(): Credentials | undefined {
  const { DCI_TOKEN, DCI_USER, DCI_PASSWORD } = process.env
  if (DCI_TOKEN) return { bearer: DCI_TOKEN }
  if (DCI_PASSWORD) return { basic: { username: DCI_USER || 'admin', password: DCI_PASSWORD } }
  return undefined
}

/**
 * A server of its own, for a self-contained run, and credentials for it: on an empty database, the
 * admin it bootstraps (as `npm start` does) with a random password. `stop` closes it and its database.
 */
async function startServer(): Promise<{ url: string; credentials: Credentials | undefined; stop(): Promise<void> }> {
  const root = path.resolve(__dirname, '..')
  const db = openDatabase({ url: process.env.DATABASE_URL || undefined })
  await migrateLatest(db, path.join(root, 'migrations'))
  const engine = await createEngine({ db, schemasDir: path.join(root, 'schemas'), plugins })
  const password = await ensureAdmin(engine, { password: randomBytes(12).toString('base64url') })
  // A database that has users already: the admin's password is not ours to know.
  const credentials = password ? { basic: { username: 'admin', password } } : credentialsFromEnv()
  const server = http.createServer(engine.app().callback())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}${engine.prefix}`,
    credentials,
    stop: async () => {
      await new Promise((resolve) => server.close(resolve))
      await db.destroy()
    },
  }
}

async function main(): Promise<void> {
  const own = process.env.DCI_URL ? undefined : await startServer()
  const baseUrl = process.env.DCI_URL || own!.url
  console.log(`server: ${baseUrl}`)
  const dci = createClient<Resources>({ baseUrl, credentials: own ? own.credentials : credentialsFromEnv() })
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
