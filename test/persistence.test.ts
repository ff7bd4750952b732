import { expect } from 'chai'
import { adminFetch, ownDatabase, startServer, stopServer } from './helpers/server-process'

describe('npm start on the embedded database', () => {
  it('keeps data under DATA_DIR across a restart', async function () {
    this.timeout(300_000)
    const own = await ownDatabase('persistence', false)
    try {
      // At info, start-up waits for this process's own "listening" line: at a quieter level a server of
      // another test run on the same port could answer the readiness poll (seen: ECONNREFUSED just after).
      let server = await startServer({ ...own.env, LOG_LEVEL: 'info' })
      const created = await adminFetch(`${server.origin}/api/v1/componenttypes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'survives-restart' }),
      })
      expect(created.status).to.equal(201)
      const { componenttype } = (await created.json()) as { componenttype: { id: string } }
      expect(await stopServer(server)).to.equal(0)

      server = await startServer({ ...own.env, LOG_LEVEL: 'info' })
      try {
        const res = await adminFetch(`${server.origin}/api/v1/componenttypes/${componenttype.id}`)
        expect(res.status).to.equal(200)
        expect(((await res.json()) as { componenttype: { name: string } }).componenttype.name).to.equal('survives-restart')
      } finally {
        expect(await stopServer(server)).to.equal(0)
      }
    } finally {
      await own.dispose()
    }
  })
})
