import { expect } from 'chai'
import { PG_URL, withDatabase } from './helpers/pg'
import { claimPort } from './helpers/ports'
import { killAllServers, spawnServer, type ServerProcess } from './helpers/server-process'

/** Waits for the process to exit, at most `ms`; undefined if it still runs. */
async function exitWithin(server: ServerProcess, ms: number): Promise<number | null | undefined> {
  const timer = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ms).unref())
  return Promise.race([server.exited, timer])
}

/** The process wrote exactly one line, the fatal one, and nothing else on stdout or stderr. */
function theOnlyLine(server: ServerProcess): Record<string, any> {
  expect(server.otherOutput.join(''), 'stderr and non-JSON output').to.equal('')
  expect(server.logs.map((l) => l.msg)).to.deep.equal(['start-up failed'])
  expect(server.logs[0].level).to.equal(60)
  return server.logs[0]
}

describe('start-up stops at once, naming what to fix, on what waiting cannot cure', function () {
  this.timeout(60_000)
  after(() => killAllServers())

  it('a database that does not exist: exit 1 within seconds, one line naming the database and how to create it', async function () {
    if (!PG_URL) return this.skip() // needs a PostgreSQL server to ask
    const name = `dci_missing_${process.pid}`
    const started = Date.now()
    const server = spawnServer(await claimPort(), { DATABASE_URL: withDatabase(PG_URL, name) })
    expect(await exitWithin(server, 15_000)).to.equal(1)
    expect(Date.now() - started).to.be.below(15_000)
    const line = theOnlyLine(server)
    expect(line.code).to.equal('3D000')
    expect(line.err).to.include(`database "${name}" does not exist`)
    expect(line.err).to.include(`CREATE DATABASE "${name}"`)
    expect(line.err).to.match(/createdb .*dci_missing_/)
  })

  it('a user PostgreSQL does not know: exit 1, one line naming the user', async function () {
    if (!PG_URL) return this.skip()
    const url = new URL(PG_URL)
    url.username = `nobody_${process.pid}`
    url.password = 'not-this-one'
    const server = spawnServer(await claimPort(), { DATABASE_URL: url.toString() })
    expect(await exitWithin(server, 15_000)).to.equal(1)
    const line = theOnlyLine(server)
    expect(line.code).to.be.oneOf(['28000', '28P01'])
    expect(line.err).to.include(`user "nobody_${process.pid}"`)
    expect(line.err).not.to.include('not-this-one')
  })

  it('a DATABASE_URL that is not a URL: exit 1, one line naming the variable, never the password', async () => {
    const server = spawnServer(await claimPort(), { DATABASE_URL: 'postgres://me:hunter2@db.example.com:port/dci' })
    expect(await exitWithin(server, 15_000)).to.equal(1)
    const line = theOnlyLine(server)
    expect(line.err).to.match(/^DATABASE_URL is not a URL/)
    expect(line.err).not.to.include('hunter2')
  })

  it('a host name that does not resolve: exit 1, one line naming the host', async () => {
    const server = spawnServer(await claimPort(), { DATABASE_URL: 'postgres://me@no-such-host.invalid:5432/dci' })
    expect(await exitWithin(server, 15_000)).to.equal(1)
    const line = theOnlyLine(server)
    expect(line.err).to.include('the host "no-such-host.invalid" of DATABASE_URL is not known')
  })

  it('bound to a non-loopback address without ALLOWED_HOSTS: exit 1, one line saying to set it', async () => {
    const server = spawnServer(await claimPort(), { HOST: '0.0.0.0', ALLOWED_HOSTS: '' })
    expect(await exitWithin(server, 15_000)).to.equal(1)
    const line = theOnlyLine(server)
    expect(line.err).to.match(/^ALLOWED_HOSTS must be set when HOST \(0\.0\.0\.0\) is not a loopback address/)
  })
})
