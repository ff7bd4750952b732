import { expect } from 'chai'
import supertest from 'supertest'
import { buildHostApp } from '../examples/embed'
import { resetTables, testDatabase } from './support'

describe('examples/embed.ts: the engine inside a host koa app', () => {
  let http: ReturnType<typeof supertest>
  before(async () => {
    const db = await testDatabase()
    await resetTables(db)
    http = supertest((await buildHostApp(db)).host.callback())
  })

  it('the host keeps its own route beside the engine', async () => {
    const res = await http.get('/health').expect(200)
    expect(res.body.status).to.equal('ok')
    expect(res.body.resources).to.include.members(['componenttypes', 'components'])
  })

  it('the engine serves the API under /api/v1 in the host app', async () => {
    const created = await http.post('/api/v1/componenttypes').send({ name: 'embedded' }).expect(201)
    const list = await http.get('/api/v1/componenttypes').expect(200)
    expect(list.body.componenttypes.map((c: any) => c.id)).to.include(created.body.componenttype.id)
  })

  it('paths outside the prefix are left to the host (koa answers its own 404)', async () => {
    const res = await http.get('/not-an-api-path').expect(404)
    expect(res.text).to.equal('Not Found')
  })

  it('unknown paths under the prefix get the engine JSON 404', async () => {
    const res = await http.get('/api/v1/nope').expect(404)
    expect(res.body).to.include({ status_code: 404 })
  })
})

describe('examples/embed.ts run as a program', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`starts, serves /health and /api/v1 on its port, and stops on ${signal} with exit code 0`, async function () {
      this.timeout(60_000)
      const { spawn } = await import('node:child_process')
      const port = 5058
      const child = spawn(process.execPath, ['--require', 'tsx/cjs', 'examples/embed.ts'], {
        env: { ...process.env, PORT: String(port), DATABASE_URL: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      try {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('example did not start in 45 s')), 45_000)
          child.stdout.on('data', (chunk) => {
            if (String(chunk).includes('host app on')) {
              clearTimeout(timer)
              resolve()
            }
          })
          child.on('exit', (code) => reject(new Error(`example exited with ${code}`)))
        })
        const health = await fetch(`http://127.0.0.1:${port}/health`)
        expect(health.status).to.equal(200)
        const list = await fetch(`http://127.0.0.1:${port}/api/v1/componenttypes`)
        expect(list.status).to.equal(200)
        expect(await list.json()).to.deep.equal({ componenttypes: [], _meta: { count: 0 } })
      } finally {
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill(signal)
        expect(await exited).to.equal(0)
      }
    })
  }
})
