import { expect } from 'chai'
import { createScratchDatabase, PG_URL, type ScratchDatabase } from './helpers/pg'
import { authedRequest, etagOf, keepAliveAgent, sleep, type JsonResponse } from './helpers/http-client'
import { ADMIN_AUTH, ADMIN_PASSWORD, killAllServers, startServer, type ServerProcess } from './helpers/server-process'

/** Requests as `admin` (the servers' first start makes it), unless a request sets its own `authorization`. */
const request = authedRequest(ADMIN_AUTH)
const basic = (login: string, password: string) => `Basic ${Buffer.from(`${login}:${password}`).toString('base64')}`

const CLIENTS = 50
const MAX_ATTEMPTS = 150 // per increment: bounded even under heavy contention

/** The counter is kept in the component's name ("counter-<n>"): the project's schemas have no integer field. */
function counterOf(res: JsonResponse): number {
  const match = /^counter-(\d+)$/.exec(res.body?.component?.name ?? '')
  if (!match) throw new Error(`not a counter: ${JSON.stringify(res.body)}`)
  return Number(match[1])
}

const title = PG_URL
  ? 'stateless scale-out: 3 server processes on one PostgreSQL, 50 concurrent clients'
  : 'stateless scale-out: SKIPPED on the embedded database, PGlite is single-process and cannot be shared by 3 servers (set DATABASE_URL)'

describe(title, function () {
  this.timeout(150_000)
  let scratch: ScratchDatabase | undefined
  let servers: ServerProcess[] = []
  const agent = keepAliveAgent()
  const url = (i: number, path: string) => `${servers[i % servers.length].origin}/api/v1${path}`
  let componenttype: string

  before(async function () {
    if (!PG_URL) return this.skip()
    scratch = await createScratchDatabase('out')
    // Started together on an empty database: their migrations race, and must still all come up.
    servers = await Promise.all([1, 2, 3].map(() => startServer({ DATABASE_URL: scratch!.url, ADMIN_PASSWORD })))
    const res = await request(agent, 'POST', url(0, '/componenttypes'), { body: { name: 'counters' } })
    expect(res.status).to.equal(201)
    componenttype = res.body.componenttype.id
  })

  after(async () => {
    agent.destroy()
    await killAllServers()
    await scratch?.drop()
  })

  async function createCounter(): Promise<string> {
    const res = await request(agent, 'POST', url(1, '/components'), { body: { name: 'counter-0', componenttype } })
    expect(res.status).to.equal(201)
    return res.body.component.id
  }

  /**
   * One read-modify-write increment: GET, PUT counter+1 with If-Match through another process, again
   * from a fresh read on 412. Returns the value written, or 'gone' once the row answers 404.
   */
  async function increment(id: string, client: number, record?: (put: PutRecord) => void): Promise<number | 'gone'> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const read = await request(agent, 'GET', url(client + attempt, `/components/${id}`))
      if (read.status === 404) return 'gone'
      expect(read.status, JSON.stringify(read.body)).to.equal(200)
      const next = counterOf(read) + 1
      const sentAt = performance.now()
      const put = await request(agent, 'PUT', url(client + attempt + 1, `/components/${id}`), {
        body: { name: `counter-${next}` },
        headers: { 'if-match': `"${etagOf(read)}"` },
      })
      record?.({ status: put.status, sentAt, value: next })
      if (put.status === 204) return next
      if (put.status === 404) return 'gone'
      expect(put.status, JSON.stringify(put.body)).to.equal(412)
      await sleep(Math.random() * 4)
    }
    throw new Error(`client ${client}: no increment landed in ${MAX_ATTEMPTS} attempts`)
  }

  it('If-Match read-modify-write increments through all 3 processes land exactly once: final value = number of 204 writes', async () => {
    const rows = await Promise.all(Array.from({ length: 5 }, createCounter))
    const perClient = 2
    const written = new Map<string, number[]>(rows.map((id) => [id, []]))
    let conflicts = 0
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, client) => {
        const id = rows[client % rows.length]
        for (let k = 0; k < perClient; k++) {
          const value = await increment(id, client, (put) => {
            if (put.status === 412) conflicts++
          })
          if (value === 'gone') throw new Error('a counter disappeared')
          written.get(id)!.push(value)
        }
      }),
    )
    let successes = 0
    for (const [i, id] of rows.entries()) {
      const values = written.get(id)!
      successes += values.length
      const final = counterOf(await request(agent, 'GET', url(i, `/components/${id}`)))
      // Each acknowledged write stored a value no other acknowledged write stored: 1, 2, ..., final.
      expect(
        [...values].sort((a, b) => a - b),
        `row ${i}: values written by 204 PUTs`,
      ).to.deep.equal(Array.from({ length: final }, (_, v) => v + 1))
      expect(final, `row ${i}: final counter`).to.equal(values.length)
    }
    expect(successes).to.equal(CLIENTS * perClient)
    expect(conflicts, 'the clients never collided: the test did not exercise a race').to.be.greaterThan(0)
  })

  it('50 concurrent creates of one unique componenttype name across the processes: exactly one 201, 49 409, one row', async () => {
    for (let round = 0; round < 3; round++) {
      const name = `unique-${round}-${Date.now()}`
      const results = await Promise.all(
        Array.from({ length: CLIENTS }, (_, client) => request(agent, 'POST', url(client, '/componenttypes'), { body: { name } })),
      )
      const statuses = results.map((r) => r.status)
      expect(
        statuses.filter((s) => s === 201),
        `round ${round}: ${statuses}`,
      ).to.have.length(1)
      expect(
        statuses.filter((s) => s === 409),
        `round ${round}: ${statuses}`,
      ).to.have.length(CLIENTS - 1)
      for (const res of results.filter((r) => r.status === 409)) expect(res.body).to.include({ status_code: 409 })
      const created = results.find((r) => r.status === 201)!.body.componenttype
      const stored = await scratch!.db('componenttypes').where({ name })
      expect(stored.map((row) => row.id)).to.deep.equal([created.id])
    }
  })

  it('DELETE racing If-Match updates: after the DELETE 204 no PUT succeeds, each PUT is 204/404/412, the row is gone everywhere', async () => {
    const rows = await Promise.all(Array.from({ length: 5 }, createCounter))
    const updatersPerRow = 9
    await Promise.all(
      rows.map(async (id, row) => {
        const puts: PutRecord[] = []
        let deleted: { value: number; ackAt: number } | undefined
        const updater = async (client: number) => {
          for (let k = 0; k < 40; k++) if ((await increment(id, client, (put) => puts.push(put))) === 'gone') return
          throw new Error('the row was never deleted under the updaters')
        }
        const deleter = async () => {
          await sleep(50 + Math.random() * 200)
          for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
            const read = await request(agent, 'GET', url(row + attempt, `/components/${id}`))
            expect(read.status).to.equal(200)
            const res = await request(agent, 'DELETE', url(row + attempt + 2, `/components/${id}`), { headers: { 'if-match': `"${etagOf(read)}"` } })
            if (res.status === 204) {
              deleted = { value: counterOf(read), ackAt: performance.now() }
              return
            }
            expect(res.status, JSON.stringify(res.body)).to.equal(412)
            await sleep(Math.random() * 4)
          }
          throw new Error('the DELETE never got through')
        }
        await Promise.all([deleter(), ...Array.from({ length: updatersPerRow }, (_, u) => updater(row * updatersPerRow + u))])

        expect(deleted, `row ${row}`).to.not.equal(undefined)
        expect(
          puts.map((p) => p.status).filter((s) => ![204, 404, 412].includes(s)),
          `row ${row}: unexpected PUT statuses`,
        ).to.deep.equal([])
        const succeeded = puts.filter((p) => p.status === 204)
        expect(
          succeeded.filter((p) => p.sentAt > deleted!.ackAt),
          `row ${row}: PUTs that succeeded after the DELETE 204`,
        ).to.deep.equal([])
        // The DELETE removed the latest version: every 204 write is accounted for, none came after it.
        expect(
          succeeded.map((p) => p.value).sort((a, b) => a - b),
          `row ${row}`,
        ).to.deep.equal(Array.from({ length: deleted!.value }, (_, v) => v + 1))
        expect(succeeded.length, `row ${row}: no update succeeded before the DELETE, nothing raced`).to.be.greaterThan(0)
        for (let s = 0; s < servers.length; s++) expect((await request(agent, 'GET', url(s, `/components/${id}`))).status).to.equal(404)
        expect(await scratch!.db('components').where({ id })).to.deep.equal([])
      }),
    )
  })

  describe('credentials across processes: each request looks its credential up', () => {
    let user: { id: string; etag: string }

    before(async () => {
      const team = await request(agent, 'POST', url(0, '/teams'), { body: { name: 'agents' } })
      expect(team.status, JSON.stringify(team.body)).to.equal(201)
      const made = await request(agent, 'POST', url(1, '/users'), { body: { name: 'agent', password: 'agent password 1', team: team.body.team.id } })
      expect(made.status, JSON.stringify(made.body)).to.equal(201)
      user = made.body.user
    })

    const identityOn = (server: number, authorization: string) => request(agent, 'GET', url(server, '/identity'), { headers: { authorization } })

    /**
     * Each process remembers verified credentials and forgets them when PostgreSQL delivers the
     * change's NOTIFY (sent at commit) to its listening connection: milliseconds after the write's
     * answer at most. Asks each process until it answers `status`, and fails past `NOTIFY_DELIVERY_MS`.
     */
    const NOTIFY_DELIVERY_MS = 2_000
    const settlesTo = async (server: number, authorization: string, status: number): Promise<[number, string | undefined]> => {
      const deadline = Date.now() + NOTIFY_DELIVERY_MS
      for (;;) {
        const res = await identityOn(server, authorization)
        if (res.status === status || Date.now() > deadline) return [res.status, res.body?.code]
        await sleep(5)
      }
    }

    it('an API key revoked through one process fails on every process as soon as the change is notified', async () => {
      for (let round = 0; round < servers.length; round++) {
        const created = await request(agent, 'POST', url(round + 1, `/users/${user.id}/apikeys`), { body: { name: `round ${round}` } })
        expect(created.status, JSON.stringify(created.body)).to.equal(201)
        const { id, token } = created.body.apikey
        for (let s = 0; s < servers.length; s++) expect((await identityOn(s, `Bearer ${token}`)).status, `process ${s} before`).to.equal(200)
        const revoked = await request(agent, 'DELETE', url(round, `/users/${user.id}/apikeys/${id}`))
        expect(revoked.status, JSON.stringify(revoked.body)).to.equal(204)
        const after = await Promise.all(servers.map((_, s) => settlesTo(s, `Bearer ${token}`, 401)))
        expect(after, `round ${round}`).to.deep.equal(servers.map(() => [401, 'unauthorized']))
      }
      expect(await scratch!.db('apikeys').where({ holder_id: user.id })).to.deep.equal([])
    })

    it('a password changed through one process fails on every process as soon as the change is notified, though each had it cached', async () => {
      const old = basic('agent', 'agent password 1')
      for (let s = 0; s < servers.length; s++) expect((await identityOn(s, old)).status, `process ${s} before`).to.equal(200)
      const read = await request(agent, 'GET', url(0, `/users/${user.id}`))
      const put = await request(agent, 'PUT', url(0, `/users/${user.id}`), {
        body: { password: 'agent password 2' },
        headers: { authorization: old, 'if-match': `"${etagOf(read)}"` },
      })
      expect(put.status, JSON.stringify(put.body)).to.equal(204)
      const after = await Promise.all(servers.map((_, s) => settlesTo(s, old, 401)))
      expect(after.map(([status]) => status)).to.deep.equal(servers.map(() => 401))
      const now = await Promise.all(servers.map((_, s) => identityOn(s, basic('agent', 'agent password 2'))))
      expect(now.map((res) => res.status)).to.deep.equal(servers.map(() => 200))
    })
  })
})

interface PutRecord {
  status: number
  /** performance.now() when the PUT was sent. */
  sentAt: number
  /** The counter value the PUT tried to store. */
  value: number
}
