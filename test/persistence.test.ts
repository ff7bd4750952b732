import { expect } from 'chai'
import { adminFetch, ownDatabase, startServer, stopServer } from './helpers/server-process'

describe('npm start on the embedded database', () => {
  it('keeps data under DATA_DIR across a restart', async function () {
    this.timeout(300_000)
    const own = await ownDatabase('persistence', false)
    try {
      let server = await startServer({ ...own.env, LOG_LEVEL: 'warn' })
      const created = await adminFetch(`${server.origin}/api/v1/componenttypes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'survives-restart' }),
      })
      expect(created.status).to.equal(201)
      const { componenttype } = (await created.json()) as { componenttype: { id: string } }
      expect(await stopServer(server)).to.equal(0)

      server = await startServer({ ...own.env, LOG_LEVEL: 'warn' })
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
