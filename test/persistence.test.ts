import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { ROOT } from './support'

const PORT = 5059

function startServer(dataDir: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--require', 'tsx/cjs', 'server.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(PORT), DATABASE_URL: '', DATA_DIR: dataDir, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 45_000
    const poll = async () => {
      if (child.exitCode !== null) return reject(new Error(`server exited with ${child.exitCode}`))
      try {
        const res = await fetch(`http://127.0.0.1:${PORT}/api/v1/componenttypes`)
        if (res.status === 200) return resolve(child)
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        child.kill('SIGKILL')
        return reject(new Error('server did not answer within 45 s'))
      }
      setTimeout(poll, 250)
    }
    poll()
  })
}

function stop(child: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  child.kill('SIGTERM')
  return exited
}

describe('npm start on the embedded database', () => {
  it('keeps data under DATA_DIR across a restart', async function () {
    this.timeout(120_000)
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dci-data-'))
    try {
      let server = await startServer(dataDir)
      const created = await fetch(`http://127.0.0.1:${PORT}/api/v1/componenttypes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'survives-restart' }),
      })
      expect(created.status).to.equal(201)
      const { componenttype } = (await created.json()) as { componenttype: { id: string } }
      expect(await stop(server)).to.equal(0)

      server = await startServer(dataDir)
      try {
        const res = await fetch(`http://127.0.0.1:${PORT}/api/v1/componenttypes/${componenttype.id}`)
        expect(res.status).to.equal(200)
        expect(((await res.json()) as any).componenttype.name).to.equal('survives-restart')
      } finally {
        expect(await stop(server)).to.equal(0)
      }
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true })
    }
  })
})
