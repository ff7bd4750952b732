/**
 * The embedded database (PGlite) off the server's event loop: PGlite runs in a worker thread
 * (pglite-worker.ts); knex talks to it through a knex client whose connections are sessions of a
 * queue in this thread. PGlite runs one statement at a time, so the queue decides which goes next:
 *
 * - a session inside an explicit transaction holds the database until it commits or rolls back;
 * - otherwise the waiting statement of highest response ratio goes first, (waited + expected) /
 *   expected, where `expected` is the running average of that SQL text's last durations: a cheap
 *   statement (a detail GET) overtakes expensive ones (lists) that arrived before it, and an expensive
 *   one's ratio grows as it waits, so it is never starved.
 *
 * Statement timeout: PGlite cannot be interrupted, so a statement not finished `statementTimeout`
 * after it was queued is answered as PostgreSQL's cancel (57014, 503 query_timeout) at once; if it
 * had started, the thread finishes it and rolls it back (see pglite-worker.ts), and the next
 * statements wait for that, each within its own timeout.
 */
import fs from 'node:fs'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import knexFactory, { type Knex } from 'knex'
import { lockDataDir } from './data-dir-lock'
import { CANCELLED, CONFIGURED, type Notification, type Reply, RUNNING, SENT, type Started } from './embedded-protocol'

export interface EmbeddedOptions {
  /** The database's folder; none: in memory. */
  dataDir?: string
  /** Milliseconds from queueing after which a statement is answered as cancelled (0: never). */
  statementTimeout: number
  /** Sessions knex may hold at once (statements still run one at a time). */
  poolSize: number
  /** Milliseconds a query waits for a free session. */
  acquireTimeout: number
  logger?: { warn(details: Record<string, unknown>, message: string): void }
}

/** A knex connection: a session of the queue. */
interface Session {
  id: number
  __knex__disposed?: unknown
}

interface Job {
  session: Session
  sql: string
  /** A LISTEN through PGlite's `listen` (its notifications come as messages), not a statement. */
  listen?: string
  params?: unknown[]
  options?: Record<string, unknown>
  queued: number
  expected: number
  settled: boolean
  started?: number
  timer?: NodeJS.Timeout
  resolve(reply: Reply): void
  reject(err: Error): void
}

// A statement never seen counts as this cheap (ms), so that it goes early and gets measured.
const FLOOR_MS = 1
// How many SQL texts the queue remembers durations of.
const COSTS_KEPT = 2_000

// The worker thread's first lines (see the constructor of EmbeddedDatabase).
const BOOTSTRAP = `const { workerData } = require('node:worker_threads')
require(workerData.pglite)
if (workerData.tsx) require(workerData.tsx).register()
require(workerData.entry)`

function timeoutError(): Error {
  return Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' })
}

/** An error of the database's thread, with PostgreSQL's fields (code, constraint, detail...). */
function rebuilt(fields: Record<string, unknown>): Error {
  const err = new Error(String(fields.message ?? 'embedded database error'))
  for (const [key, value] of Object.entries(fields)) if (key !== 'stack') (err as unknown as Record<string, unknown>)[key] = value
  return err
}

/** The worker thread running PGlite and the queue of statements in front of it. */
export class EmbeddedDatabase {
  private worker: Worker
  private readonly cell = new Int32Array(new SharedArrayBuffer(4))
  private readonly pending: Job[] = []
  private readonly costs = new Map<string, number>()
  private readonly listeners = new Map<string, Array<(payload: string) => void>>()
  // The session of the engine's own statements (listening), outside knex's pool.
  private readonly own: Session = { id: 0 }
  private running: Job | undefined
  private owner: Session | undefined
  private ready = false
  private failure: Error | undefined
  private referenced = true
  private sessions = 0
  /** Threads started after one died (see {@link restart}). */
  private restarts = 0
  private restartTimer: NodeJS.Timeout | undefined
  private relisten = false
  private readonly exited: Promise<void>
  private ended!: () => void
  private closing: Promise<void> | undefined
  private readonly release: () => void
  private announce!: (version: string) => void
  /** Resolves with PostgreSQL's version once PGlite has opened its database. */
  readonly started = new Promise<string>((resolve) => {
    this.announce = resolve
  })

  constructor(private readonly options: EmbeddedOptions) {
    this.release = options.dataDir ? lockDataDir(options.dataDir) : () => {}
    this.exited = new Promise((resolve) => {
      this.ended = resolve
    })
    // A new folder is made (initdb) by a thread of its own, then served by another: initdb takes
    // hundreds of MB that a thread which carries on does not give back (RSS about 830 MB instead of 400).
    const fresh = options.dataDir !== undefined && !fs.existsSync(path.join(options.dataDir, 'PG_VERSION'))
    try {
      this.worker = this.spawn(fresh)
    } catch (err) {
      this.release()
      throw err
    }
  }

  /** Starts the database's thread: one that makes a new DATA_DIR and ends (`initOnly`), or the one that serves. */
  private spawn(initOnly: boolean, configured = false): Worker {
    // The thread loads PGlite before anything else, so that under tsx (npm start, the tests) tsx's
    // loader, registered next for the worker's own TypeScript, never transforms PGlite's 2 MB bundle
    // (seconds at each open).
    const ext = path.extname(__filename)
    const worker = new Worker(BOOTSTRAP, {
      eval: true,
      workerData: {
        dataDir: this.options.dataDir,
        initOnly,
        configured,
        state: this.cell.buffer,
        pglite: require.resolve('@electric-sql/pglite'),
        tsx: ext === '.ts' ? require.resolve('tsx/cjs/api') : undefined,
        entry: path.join(__dirname, `pglite-worker${ext}`),
      },
      stdout: false,
      stderr: false,
    })
    worker.on('message', (message: Reply | Started | Notification | { closed: true }) => this.receive(message))
    worker.on('error', (err) => {
      // The serving thread of a DATA_DIR is restarted when it exits (below): only say why.
      if (!initOnly && this.ready && this.options.dataDir) {
        this.options.logger?.warn({ err: err.message }, 'the embedded database thread failed')
        return
      }
      this.fail(Object.assign(new Error(`the embedded database thread failed: ${err.message}`), { code: '57P01' }))
    })
    worker.once('exit', (code) => {
      // A new folder made, or the folder's shared_buffers set: a new thread opens it.
      if (((initOnly && code === 0) || code === CONFIGURED) && !this.failure && !this.closing) {
        this.worker = this.spawn(false, true)
        return
      }
      // The serving thread of a DATA_DIR died (a crash of PGlite, or terminated): a new one opens the
      // folder, which holds every committed write. An in-memory database died with its thread.
      if (!initOnly && this.ready && this.options.dataDir && !this.failure && !this.closing) {
        this.restart(code)
        return
      }
      this.stop(Object.assign(new Error('Connection terminated: the embedded database thread stopped'), { code: '57P01' }))
    })
    return worker
  }

  /** A new session for knex's pool. */
  async session(): Promise<Session> {
    if (this.failure) throw this.failure
    return { id: ++this.sessions }
  }

  /** Ends a session: a transaction it left open is rolled back. */
  async endSession(session: Session): Promise<void> {
    if (this.owner === session && !this.failure) await this.query(session, 'ROLLBACK').catch(() => {})
  }

  /**
   * Calls `listener` with each NOTIFY on `channel`. PGlite delivers a notification with the answer of
   * the statement that committed it: it reaches the listener before that statement's caller.
   */
  async listen(channel: string, listener: (payload: string) => void): Promise<void> {
    const known = this.listeners.get(channel)
    if (known) return void known.push(listener)
    this.listeners.set(channel, [listener])
    await this.enqueue(this.own, `LISTEN ${channel}`, undefined, undefined, channel)
  }

  /** After a restart: LISTEN again on every channel, then tell each listener it may have missed notifications. */
  private listenAgain(): void {
    this.relisten = false
    for (const [channel, listeners] of this.listeners) {
      this.enqueue(this.own, `LISTEN ${channel}`, undefined, undefined, channel).then(
        () => {
          for (const listener of listeners) listener('')
        },
        () => {},
      )
    }
  }

  /** Runs a statement outside knex's sessions (as PGlite's own `query`). */
  async run(sql: string, params?: unknown[]): Promise<{ rows: any[] }> {
    const reply = await this.query(this.own, sql, params)
    return { rows: reply.rows ?? [] }
  }

  /** Queues a statement of `session`; resolves with its result, or rejects with its error or the timeout. */
  query(session: Session, sql: string, params?: unknown[], options?: Record<string, unknown>): Promise<Reply> {
    // A session whose transaction died with a thread: nothing more runs on it.
    if (session.__knex__disposed) return Promise.reject(session.__knex__disposed)
    return this.enqueue(session, sql, params, options)
  }

  private enqueue(session: Session, sql: string, params?: unknown[], options?: Record<string, unknown>, listen?: string): Promise<Reply> {
    if (this.failure) return Promise.reject(this.failure)
    return new Promise<Reply>((resolve, reject) => {
      const job: Job = {
        session,
        sql,
        listen,
        params,
        options,
        queued: performance.now(),
        expected: this.costs.get(sql) ?? FLOOR_MS,
        settled: false,
        resolve,
        reject,
      }
      this.pending.push(job)
      if (this.ready) this.arm(job)
      this.pump()
    })
  }

  /** Starts the job's statement timeout. */
  private arm(job: Job): void {
    const ms = this.options.statementTimeout
    if (!ms) return
    job.queued = performance.now()
    job.timer = setTimeout(() => this.expire(job), ms)
  }

  private expire(job: Job): void {
    if (job.settled) return
    if (job !== this.running) {
      const at = this.pending.indexOf(job)
      if (at < 0) return
      this.pending.splice(at, 1)
    } else if (Atomics.compareExchange(this.cell, 0, SENT, CANCELLED) !== SENT && Atomics.compareExchange(this.cell, 0, RUNNING, CANCELLED) !== RUNNING) {
      return // FINISHING: its result is on its way
    }
    job.settled = true
    job.reject(timeoutError())
  }

  /** Sends the next statement to the thread when it is free. */
  private pump(): void {
    if (this.ready && !this.running && !this.failure) {
      const job = this.next()
      if (job) {
        this.running = job
        job.started = performance.now()
        Atomics.store(this.cell, 0, SENT)
        this.worker.postMessage(job.listen ? { listen: job.listen } : { sql: job.sql, params: job.params, options: job.options })
      }
    }
    // The thread keeps the process alive only while it has work, as PGlite on the main thread did.
    const busy = !this.ready || this.running !== undefined || this.pending.length > 0 || this.closing !== undefined
    if (busy !== this.referenced) {
      this.referenced = busy
      if (busy) this.worker.ref()
      else this.worker.unref()
    }
  }

  /** The transaction's owner's next statement, else the waiting statement of highest response ratio. */
  private next(): Job | undefined {
    const { pending } = this
    if (!pending.length) return undefined
    let best = -1
    if (this.owner) {
      best = pending.findIndex((j) => j.session === this.owner)
    } else {
      const now = performance.now()
      let ratio = -1
      for (let i = 0; i < pending.length; i++) {
        const r = (now - pending[i].queued + pending[i].expected) / pending[i].expected
        if (r > ratio) {
          ratio = r
          best = i
        }
      }
    }
    return best < 0 ? undefined : pending.splice(best, 1)[0]
  }

  private receive(message: Reply | Started | Notification | { closed: true }): void {
    if ('notification' in message) {
      for (const listener of this.listeners.get(message.notification) ?? []) listener(message.payload)
      return
    }
    if ('ready' in message) {
      if (!message.ready) {
        this.fail(rebuilt(message.error ?? {}))
        this.worker.terminate()
        return
      }
      this.ready = true
      this.announce(message.version ?? '')
      for (const job of this.pending) if (!job.timer) this.arm(job)
      if (this.relisten) this.listenAgain()
      this.pump()
      return
    }
    if ('closed' in message) return
    const job = this.running
    if (!job) return
    this.running = undefined
    this.owner = message.inTransaction ? job.session : undefined
    clearTimeout(job.timer)
    if (!message.cancelled) this.learn(job.sql, performance.now() - job.started!)
    if (!job.settled) {
      job.settled = true
      if (message.error) job.reject(rebuilt(message.error))
      else if (message.cancelled) job.reject(timeoutError())
      else job.resolve(message)
    }
    this.pump()
  }

  /** Keeps the running average of a SQL text's duration. */
  private learn(sql: string, ms: number): void {
    const before = this.costs.get(sql)
    if (before === undefined && this.costs.size >= COSTS_KEPT) this.costs.clear()
    this.costs.set(sql, Math.max(FLOOR_MS, before === undefined ? ms : before * 0.7 + ms * 0.3))
  }

  /**
   * After the serving thread died: the statement it was running fails as on a terminated connection
   * (57P01, 503 `unavailable`), and so does every statement of the session whose transaction it held,
   * which knex then discards (its transaction is gone: a COMMIT must never run outside it). Other
   * waiting statements wait for the new thread, each within its own timeout. The notification
   * channels are listened to again, and their listeners told once that they may have missed some.
   * A thread that dies again waits longer before the next (0.1 s, doubling up to 5 s).
   */
  private restart(code: number): void {
    const err = Object.assign(new Error(`Connection terminated: the embedded database thread stopped (exit code ${code}) and is restarted`), {
      code: '57P01',
    })
    this.ready = false
    const broken = this.owner
    this.owner = undefined
    if (broken) (broken as Session).__knex__disposed = err
    const failed = this.running ? [this.running] : []
    this.running = undefined
    for (let i = this.pending.length - 1; i >= 0; i--) if (broken && this.pending[i].session === broken) failed.push(...this.pending.splice(i, 1))
    for (const job of failed) {
      clearTimeout(job.timer)
      if (!job.settled) {
        job.settled = true
        job.reject(err)
      }
    }
    const delay = Math.min(5_000, 100 * 2 ** this.restarts++)
    this.options.logger?.warn(
      { exit_code: code, retry_in_ms: delay, data_dir: this.options.dataDir },
      'the embedded database thread stopped: starting a new one',
    )
    this.relisten = true
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined
      this.worker = this.spawn(false, true)
    }, delay)
  }

  /** No thread runs and none will: statements fail with `err`, DATA_DIR is freed, `close` may return. */
  private stop(err: Error): void {
    this.fail(err)
    this.release()
    this.ended()
  }

  /** The thread is gone or never started: every statement waiting fails with `err`, and all later ones. */
  private fail(err: Error): void {
    if (this.failure) return
    this.failure = err
    const jobs = this.running ? [this.running, ...this.pending] : [...this.pending]
    this.running = undefined
    this.pending.length = 0
    for (const job of jobs) {
      clearTimeout(job.timer)
      if (!job.settled) {
        job.settled = true
        job.reject(err)
      }
    }
  }

  /**
   * Closes PGlite (writing its files) and ends the thread, then frees DATA_DIR. A statement still
   * running is waited for up to `graceMs`; past that the thread is stopped.
   */
  close(graceMs = 10_000): Promise<void> {
    this.closing ??= (async () => {
      if (this.restartTimer) {
        // Closed while no thread runs (between a thread's death and the next): nothing to wait for.
        clearTimeout(this.restartTimer)
        this.restartTimer = undefined
        this.stop(Object.assign(new Error('Connection terminated: the embedded database is closed'), { code: '57P01' }))
        return
      }
      this.pump()
      if (!this.failure) {
        this.worker.postMessage({ close: true })
        const timer = setTimeout(() => this.worker.terminate(), graceMs)
        await this.exited
        clearTimeout(timer)
      } else {
        await this.worker.terminate()
        await this.exited
      }
    })()
    return this.closing
  }
}

/** A knex instance on the embedded database: PostgreSQL's knex dialect over {@link EmbeddedDatabase}. */
export function openEmbedded(options: EmbeddedOptions): Knex {
  const database = new EmbeddedDatabase(options)
  const ClientPG = require('knex/lib/dialects/postgres/index.js') as new (config: Knex.Config) => Record<string, any>
  class ClientEmbedded extends ClientPG {
    /** The database, for what knex does not do: LISTEN (see core/identity/changes.ts). */
    readonly embedded = database

    constructor(config: Knex.Config) {
      super(config)
      database.started.then(
        (version) => {
          this.version = version
        },
        () => {},
      )
    }

    _driver() {
      return undefined
    }

    // A session at once, without the version query of knex's PostgreSQL client: it would wait the
    // seconds PGlite takes to start within knex's acquire timeout (the version comes with `started`).
    acquireRawConnection() {
      return database.session()
    }

    async destroyRawConnection(session: Session) {
      await database.endSession(session)
    }

    async _query(session: Session, obj: { sql?: string; bindings?: unknown[]; options?: Record<string, unknown>; response?: unknown }) {
      if (!obj.sql) throw new Error('The query is empty')
      obj.response = await database.query(session, obj.sql, obj.bindings, obj.options)
      return obj
    }

    processResponse(obj: { method?: string; response: Reply }, runner: unknown) {
      const command = obj.method === 'first' || obj.method === 'pluck' ? 'SELECT' : (obj.method?.toUpperCase() ?? '')
      return super.processResponse({ ...obj, response: { ...obj.response, rowCount: obj.response.affectedRows, command } }, runner)
    }

    _stream(session: Session, obj: { sql?: string; bindings?: unknown[] }, stream: NodeJS.WritableStream) {
      return new Promise((resolve, reject) => {
        stream.on('error', reject)
        stream.on('end', resolve)
        this._query(session, obj)
          .then((done) => {
            for (const row of (done.response as Reply).rows ?? []) stream.write(row as never)
          })
          .catch((err: Error) => stream.emit('error', err))
          .then(() => stream.end())
      })
    }

    async destroy(callback?: (err?: Error) => void) {
      try {
        await super.destroy()
        await database.close()
        callback?.()
      } catch (err) {
        if (!callback) throw err
        callback(err as Error)
      }
    }
  }
  return knexFactory({
    client: ClientEmbedded as unknown as typeof Knex.Client,
    connection: {},
    pool: { min: 0, max: options.poolSize, idleTimeoutMillis: 10_000 },
    acquireConnectionTimeout: options.acquireTimeout,
    ...(options.logger ? { log: { warn: (message: string) => options.logger!.warn({ source: 'knex' }, String(message)) } } : {}),
  })
}
