import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import pino from 'pino'
import supertest from 'supertest'
import { createEngine, definePlugin, migrateLatest, openDatabase, type Engine } from '../core'
import { DataDirLockedError, LOCK_FILE } from '../core/data/data-dir-lock'
import componenttype from '../resources/componenttype'
import { expectQueryTimeout } from './helpers/errors'
import { ADMIN_AUTH, killAllServers, spawnServer, startServer, stopServer } from './helpers/server-process'
import { claimPort } from './helpers/ports'
import { DATABASE, MIGRATIONS, SCHEMAS } from './support'

/** Test-only routes: a statement that sleeps, and a write whose statement outlasts the timeout. */
const probeRoutes = definePlugin({
  name: 'probe',
  setup(api) {
    api.action({
      name: 'probe_sleep',
      method: 'GET',
      path: '/probe/sleep',
      summary: 'Runs SELECT pg_sleep(seconds)',
      transaction: false,
      async handler(ctx) {
        await ctx.db.raw('SELECT pg_sleep(?)', [Number(ctx.query.seconds ?? 2)])
        return { slept: true }
      },
    })
    api.action({
      name: 'probe_slow_write',
      method: 'POST',
      path: '/probe/slow-write',
      summary: 'Inserts a componenttype by a statement that sleeps 1 s first',
      transaction: false,
      async handler(ctx) {
        await ctx.db.raw('INSERT INTO componenttypes (name, etag) SELECT ?, md5(random()::text) FROM (SELECT pg_sleep(1)) s', [String(ctx.query.name)])
        return { written: true }
      },
    })
  },
})

/** The largest delay of a 10 ms timer while `work` runs: what the event loop was kept from doing. */
async function loopStall<T>(work: () => Promise<T>): Promise<{ result: T; stall: number }> {
  let stall = 0
  let last = performance.now()
  const timer = setInterval(() => {
    const now = performance.now()
    stall = Math.max(stall, now - last - 10)
    last = now
  }, 10)
  try {
    return { result: await work(), stall }
  } finally {
    clearInterval(timer)
  }
}

const onEmbedded = DATABASE === 'embedded'

describe(onEmbedded ? 'the embedded database' : 'the embedded database: SKIPPED, DATABASE_URL is set (these are PGlite behaviours)', function () {
  this.timeout(120_000)
  // Two in-memory databases for the whole file (PGlite takes seconds to open): one with a 400 ms
  // statement timeout behind an engine, one with a long timeout.
  let engine: Engine
  let patient: Engine
  let dirs: string[] = []

  const tempDir = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dci-embedded-'))
    dirs.push(dir)
    return dir
  }

  before(async function () {
    if (!onEmbedded) return this.skip()
    const quiet = pino({ level: 'silent' })
    const db = openDatabase({ statementTimeout: 400 })
    const long = openDatabase({ statementTimeout: 30_000 })
    await Promise.all([migrateLatest(db, MIGRATIONS), migrateLatest(long, MIGRATIONS)])
    engine = await createEngine({ db, schemasDir: SCHEMAS, plugins: [componenttype, probeRoutes], logger: quiet })
    patient = await createEngine({ db: long, schemasDir: SCHEMAS, plugins: [componenttype, probeRoutes], logger: quiet })
  })

  after(async () => {
    await engine?.db.destroy()
    await patient?.db.destroy()
    await killAllServers()
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true })
    dirs = []
  })

  describe('off the event loop', () => {
    it('a 1 s statement leaves the event loop free: timers fire on time and other statements are answered', async () => {
      const db = patient.db
      const { stall } = await loopStall(async () => {
        const sleeping = db.raw('SELECT pg_sleep(1)')
        await new Promise((resolve) => setTimeout(resolve, 900))
        await sleeping
      })
      // On the main thread PGlite kept the loop for the whole second.
      expect(stall).to.be.below(300)
    })

    it('a cheap statement overtakes queued expensive ones instead of waiting behind all of them', async () => {
      const db = patient.db
      {
        const heavy = 'SELECT count(*) FROM generate_series(1, 300000) g WHERE g % 7 = 3'
        const solo = performance.now()
        await db.raw(heavy)
        await db.raw(heavy)
        const heavyMs = (performance.now() - solo) / 2
        await db.raw('SELECT 1 AS cheap')
        // Nine expensive statements queued (the pool has ten sessions), then a cheap one.
        const queued = Array.from({ length: 9 }, () => db.raw(heavy))
        await new Promise((resolve) => setTimeout(resolve, 5))
        const started = performance.now()
        await db.raw('SELECT 1 AS cheap')
        const cheapMs = performance.now() - started
        await Promise.all(queued)
        // First come, first served it would wait about 9 x heavyMs; it waits for the running one at most.
        expect(cheapMs, `cheap ${cheapMs.toFixed(0)} ms, heavy ${heavyMs.toFixed(0)} ms each`).to.be.below(Math.max(3 * heavyMs, heavyMs + 100))
      }
    })

    it('a transaction holds the database: statements of other sessions wait for its end, and see its commit', async () => {
      const db = patient.db
      try {
        await db.raw('CREATE TABLE held (n int)')
        const trx = await db.transaction()
        await trx.raw('INSERT INTO held VALUES (1)')
        let seen: number | undefined
        const outside = db.raw('SELECT count(*)::int AS n FROM held').then((r: { rows: Array<{ n: number }> }) => {
          seen = r.rows[0].n
        })
        await new Promise((resolve) => setTimeout(resolve, 100))
        expect(seen).to.equal(undefined)
        await trx.raw('INSERT INTO held VALUES (2)')
        await trx.commit()
        await outside
        expect(seen).to.equal(2)
      } finally {
        await db.raw('DROP TABLE held')
      }
    })
  })

  describe('statement timeout', () => {
    it('a statement past the timeout answers 503 query_timeout, as on PostgreSQL, in about the timeout; the next request is served', async () => {
      const http = supertest(engine.app().callback())
      const started = Date.now()
      const res = await http.get('/api/v1/probe/sleep?seconds=3').set('Authorization', ADMIN_AUTH)
      const took = Date.now() - started
      expectQueryTimeout(res)
      expect(took).to.be.below(2_000)
      // The statement cannot be interrupted: the next one waits for its end (3 s after it began) within its own timeout, then runs.
      await new Promise((resolve) => setTimeout(resolve, 2_800 - took))
      await http.get('/api/v1/componenttypes').set('Authorization', ADMIN_AUTH).expect(200)
    })

    it('a write answered 503 query_timeout never takes effect (rolled back in the database thread)', async () => {
      const http = supertest(engine.app().callback())
      const res = await http.post('/api/v1/probe/slow-write?name=too-late').set('Authorization', ADMIN_AUTH)
      expect(res.status).to.equal(503)
      expect(res.body.code).to.equal('query_timeout')
      // Past the statement's own end (1 s), the row is not there.
      await new Promise((resolve) => setTimeout(resolve, 1_200))
      const list = await http.get('/api/v1/componenttypes?where=name:too-late').set('Authorization', ADMIN_AUTH).expect(200)
      expect(list.body.componenttypes).to.deep.equal([])
      expect((await engine.db.raw("SELECT count(*)::int AS n FROM componenttypes WHERE name = 'too-late'")).rows[0].n).to.equal(0)
    })

    it('the same write within the timeout is committed', async () => {
      await supertest(patient.app().callback()).post('/api/v1/probe/slow-write?name=in-time').set('Authorization', ADMIN_AUTH).expect(200)
      expect((await patient.db.raw("SELECT count(*)::int AS n FROM componenttypes WHERE name = 'in-time'")).rows[0].n).to.equal(1)
    })
  })

  describe('DATA_DIR lock', () => {
    it('a second open of the same folder is refused, naming the folder and the process; the lock file goes with the close', async () => {
      const dir = tempDir()
      const db = openDatabase({ dataDir: dir })
      try {
        expect(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8')).to.equal(String(process.pid))
        let refused: unknown
        try {
          openDatabase({ dataDir: dir })
        } catch (err) {
          refused = err
        }
        expect(refused).to.be.instanceOf(DataDirLockedError)
        expect((refused as Error).message).to.include(`DATA_DIR ${dir} is in use by process ${process.pid}`)
        await db.raw('SELECT 1')
      } finally {
        await db.destroy()
      }
      expect(fs.existsSync(path.join(dir, LOCK_FILE))).to.equal(false)
    })

    it('a lock file left by a process that is gone (kill -9) is taken over', async () => {
      const dir = tempDir()
      // A pid that is not running: a child that has exited.
      const gone = spawnSync(process.execPath, ['-e', '']).pid
      fs.writeFileSync(path.join(dir, LOCK_FILE), String(gone))
      const db = openDatabase({ dataDir: dir })
      try {
        expect(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8')).to.equal(String(process.pid))
        await db.raw('SELECT 1')
      } finally {
        await db.destroy()
      }
    })

    it('a second server on the same DATA_DIR refuses to start with a message naming the folder and the running pid; the first keeps serving', async () => {
      const dir = tempDir()
      const first = await startServer({ DATABASE_URL: '', DATA_DIR: dir })
      try {
        const second = spawnServer(await claimPort(), { DATABASE_URL: '', DATA_DIR: dir })
        const code = await second.exited
        expect(code).to.equal(1)
        const output = JSON.stringify(second.logs) + second.otherOutput.join('')
        expect(output).to.include(`DATA_DIR ${dir} is in use by process ${first.child.pid}`)
        const res = await fetch(`${first.origin}/api/v1/componenttypes`, { headers: { authorization: ADMIN_AUTH } })
        expect(res.status).to.equal(200)
      } finally {
        expect(await stopServer(first)).to.equal(0)
      }
      expect(fs.existsSync(path.join(dir, LOCK_FILE))).to.equal(false)
    })
  })

  describe('shared_buffers', () => {
    const sharedBuffers = async (dir: string) => {
      const db = openDatabase({ dataDir: dir })
      try {
        const { rows } = await db.raw(`SELECT current_setting('shared_buffers') AS value, sourcefile FROM pg_settings WHERE name = 'shared_buffers'`)
        return { value: rows[0].value as string, file: path.basename(String(rows[0].sourcefile)) }
      } finally {
        await db.destroy()
      }
    }

    it('a new DATA_DIR runs with 32MB, not the 128MB initdb writes', async () => {
      expect(await sharedBuffers(tempDir())).to.deep.equal({ value: '32MB', file: 'postgresql.auto.conf' })
    })

    it("a folder with initdb's 128MB (as earlier versions made it) gets 32MB at its next start, and keeps its rows", async () => {
      const dir = tempDir()
      const { PGlite } = await import('@electric-sql/pglite')
      const old = new PGlite({ dataDir: dir })
      await old.exec(`CREATE TABLE kept (n integer); INSERT INTO kept VALUES (7)`)
      expect((await old.query<{ shared_buffers: string }>('SHOW shared_buffers')).rows[0].shared_buffers).to.equal('128MB')
      await old.close()
      expect(await sharedBuffers(dir)).to.deep.equal({ value: '32MB', file: 'postgresql.auto.conf' })
      const db = openDatabase({ dataDir: dir })
      try {
        expect((await db.raw('SELECT n FROM kept')).rows).to.deep.equal([{ n: 7 }])
      } finally {
        await db.destroy()
      }
    })

    it('a value set by ALTER SYSTEM is kept', async () => {
      const dir = tempDir()
      const db = openDatabase({ dataDir: dir })
      try {
        await db.raw(`ALTER SYSTEM SET shared_buffers = '48MB'`)
      } finally {
        await db.destroy()
      }
      expect(await sharedBuffers(dir)).to.deep.equal({ value: '48MB', file: 'postgresql.auto.conf' })
    })
  })

  describe('a thread that dies', () => {
    it('closed while no thread runs (just after one died): the close ends at once and frees DATA_DIR', async () => {
      const dir = tempDir()
      const db = openDatabase({ dataDir: dir })
      await db.raw('SELECT 1')
      await (db.client as unknown as { embedded: { worker: { terminate(): Promise<number> } } }).embedded.worker.terminate()
      const started = Date.now()
      await db.destroy()
      expect(Date.now() - started).to.be.below(2_000)
      expect(fs.existsSync(path.join(dir, LOCK_FILE))).to.equal(false)
    })

    it('is restarted on its DATA_DIR: the statement it ran fails as on a dropped connection (57P01), a transaction it held is lost and never committed, later statements are served, committed rows kept, LISTEN renewed', async () => {
      const dir = tempDir()
      const warnings: string[] = []
      const db = openDatabase({ dataDir: dir, logger: { warn: (_details, message) => warnings.push(message) } })
      const embedded = (db.client as unknown as { embedded: { listen(channel: string, listener: (payload: string) => void): Promise<void> } }).embedded
      const thread = () => (embedded as unknown as { worker: { terminate(): Promise<number> } }).worker
      try {
        await db.raw('CREATE TABLE kept (n integer)')
        await db.raw('INSERT INTO kept VALUES (1)')
        const heard: string[] = []
        await embedded.listen('kept_changes', (payload) => heard.push(payload))

        // A statement running when the thread dies.
        const inFlight = db.raw('SELECT pg_sleep(1)').then(
          () => 'answered',
          (err: { code?: string }) => err.code,
        )
        await new Promise((resolve) => setTimeout(resolve, 300))
        await thread().terminate()
        expect(await inFlight).to.equal('57P01')
        expect(warnings).to.include('the embedded database thread stopped: starting a new one')

        // Served again, with the committed row; the listeners were told they may have missed some.
        expect((await db.raw('SELECT n FROM kept ORDER BY n')).rows).to.deep.equal([{ n: 1 }])
        for (let i = 0; i < 50 && heard.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20))
        expect(heard).to.deep.equal([''])
        await db.raw(`SELECT pg_notify('kept_changes', 'again')`)
        expect(heard).to.deep.equal(['', 'again'])

        // A transaction whose thread dies: its COMMIT fails, nothing of it is kept, the next work is served.
        let failed: unknown
        try {
          await db.transaction(async (trx) => {
            await trx.raw('INSERT INTO kept VALUES (2)')
            await thread().terminate()
          })
        } catch (err) {
          failed = err
        }
        expect((failed as { code?: string })?.code).to.equal('57P01')
        await db.raw('INSERT INTO kept VALUES (3)')
        expect((await db.raw('SELECT n FROM kept ORDER BY n')).rows).to.deep.equal([{ n: 1 }, { n: 3 }])
      } finally {
        await db.destroy()
      }
      // Closed normally, its rows are on disk for the next open.
      const again = openDatabase({ dataDir: dir })
      try {
        expect((await again.raw('SELECT n FROM kept ORDER BY n')).rows).to.deep.equal([{ n: 1 }, { n: 3 }])
      } finally {
        await again.destroy()
      }
    })
  })
})
