import net from 'node:net'
import { expect } from 'chai'
import { PG_URL, type ScratchDatabase } from './helpers/pg'
import { authedRequest, keepAliveAgent, sleep } from './helpers/http-client'
import { ADMIN_AUTH, killAllServers, ownDatabase, startServer, waitForLog, type OwnDatabase, type ServerProcess } from './helpers/server-process'

const request = authedRequest(ADMIN_AUTH)

/** Opens a connection; resolves 'connected' or the connect error's code. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve('connected')
    })
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
  })
}

/**
 * A POST sent over a raw socket in two halves: the headers and half the body now, the rest on
 * `finish()`. It resolves once the server has the request in hand (its `100 Continue` interim answer
 * to `Expect: 100-continue` says so: a busy server may take a while to read new connections), so
 * between the two the request is in flight on the server. `finish()` answers what came after the 100.
 */
function halfSentPost(port: number, body: object): Promise<{ finish(): Promise<string> }> {
  const json = Buffer.from(JSON.stringify(body))
  const head =
    `POST /api/v1/componenttypes HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: ${ADMIN_AUTH}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${json.length}\r\nExpect: 100-continue\r\n\r\n`
  const interim = 'HTTP/1.1 100 Continue\r\n\r\n'
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(head))
    let received = ''
    // The socket is not half-closed from this side (an HTTP server aborts such a request): the
    // server closes it after its response, as it answers with Connection: close.
    const ended = new Promise<string>((res, rej) => {
      socket.once('close', () => res(received.startsWith(interim) ? received.slice(interim.length) : received))
      socket.once('error', rej)
    })
    // Closed or reset before the 100: the request never got in flight (after it, these change nothing).
    ended.then((text) => reject(new Error(`the connection closed before a 100 Continue: ${JSON.stringify(text)}`)), reject)
    socket.setEncoding('utf8').on('data', (chunk: string) => {
      const before = received
      received += chunk
      if (before.length < interim.length && received.length >= interim.length) {
        if (!received.startsWith(interim)) return reject(new Error(`expected a 100 Continue, got ${JSON.stringify(received)}`))
        socket.write(json.subarray(0, 5))
        resolve({
          finish() {
            socket.write(json.subarray(5))
            return ended
          },
        })
      }
    })
  })
}

for (const database of ['embedded', 'postgresql'] as const) {
  const skipped = database === 'postgresql' && !PG_URL
  const title = skipped ? 'graceful shutdown under load (postgresql): SKIPPED, DATABASE_URL is not set' : `graceful shutdown under load (${database})`

  describe(title, function () {
    this.timeout(150_000)
    let own: OwnDatabase | undefined
    let scratch: ScratchDatabase | undefined
    let server: ServerProcess

    before(async function () {
      if (skipped) return this.skip()
      own = await ownDatabase('shutdown', database === 'postgresql')
      scratch = own.scratch
      server = await startServer(own.env)
    })

    after(async () => {
      await killAllServers()
      await own?.dispose()
    })

    it('SIGTERM under keep-alive load: stops accepting, finishes in-flight requests without a reset, closes the pool, exits 0', async () => {
      const agent = keepAliveAgent({ maxSockets: 8 })
      const responses: Array<{ status: number; close: boolean; afterSignal: boolean }> = []
      const failures: string[] = []
      let signalled = false
      let refused = 0
      const acknowledged: string[] = []
      const client = async (c: number) => {
        const until = Date.now() + 60_000
        for (let i = 0; i < 10_000 && Date.now() < until; i++) {
          const afterSignal = signalled
          try {
            const res =
              i % 2
                ? await request(agent, 'GET', `${server.origin}/api/v1/componenttypes?limit=5`)
                : await request(agent, 'POST', `${server.origin}/api/v1/componenttypes`, { body: { name: `load-${c}-${i}` } })
            responses.push({ status: res.status, close: res.headers.connection === 'close', afterSignal })
            if (res.status === 201) acknowledged.push(res.body.componenttype.id)
          } catch (err) {
            const code = (err as NodeJS.ErrnoException).code
            // A new connection refused once the server stopped listening is how a client learns it.
            if (code === 'ECONNREFUSED' && signalled) {
              refused++
              return
            }
            failures.push(`${code}: ${(err as Error).message}`)
            return
          }
        }
      }
      const load = Promise.all(Array.from({ length: 8 }, (_, c) => client(c)))
      await sleep(1_000)
      const inFlight = await halfSentPost(server.port, { name: 'in-flight-at-sigterm' })
      await sleep(100)
      signalled = true
      server.child.kill('SIGTERM')
      await waitForLog(server, (l) => l.msg === 'shutting down', 10_000)
      await sleep(200)
      expect(await tryConnect(server.port), 'a new connection after SIGTERM').to.equal('ECONNREFUSED')
      expect(server.alive(), 'it must wait for the in-flight request').to.equal(true)
      const raw = await inFlight.finish()
      await load
      let deadline: NodeJS.Timeout | undefined
      const tooLate = new Promise<string>((resolve) => (deadline = setTimeout(() => resolve('did not exit within 20 s'), 20_000)))
      const code = await Promise.race([server.exited, tooLate])
      clearTimeout(deadline) // else the pending timer keeps mocha's process alive for 20 s after the summary

      expect(failures, 'requests that failed other than by a refused new connection').to.deep.equal([])
      expect(raw).to.match(/^HTTP\/1\.1 201 Created\r\n/)
      expect(raw).to.match(/\r\nConnection: close\r\n/i)
      expect(responses.filter((r) => r.status >= 300).map((r) => r.status)).to.deep.equal([])
      expect(responses.filter((r) => !r.afterSignal).length).to.be.greaterThan(0)
      expect(responses.filter((r) => r.close).length, 'no client was told to close its connection').to.be.greaterThan(0)
      expect(refused, 'clients that saw the listener closed').to.be.greaterThan(0)
      expect(code).to.equal(0)
      const messages = server.logs.map((l) => l.msg)
      expect(messages.indexOf('stopped')).to.be.greaterThan(messages.indexOf('shutting down'))
      // LOG_LEVEL=info: one request line per answered request, the in-flight one included.
      const requestLines = server.logs.filter((l) => l.msg === 'request')
      expect(requestLines.length).to.be.at.least(responses.length + 1)
      for (const line of requestLines) {
        expect(line).to.include.all.keys('request_id', 'method', 'path', 'status', 'duration_ms')
        expect(line.duration_ms).to.be.a('number')
      }
      expect(requestLines.filter((l) => l.method === 'POST' && l.status === 201).length).to.be.at.least(acknowledged.length + 1)
      agent.destroy()

      if (scratch) {
        // The pool is closed: no connection left, and every acknowledged create is stored.
        expect(await scratch.backends()).to.equal(0)
        const ids = new Set((await scratch.db('componenttypes').select('id')).map((r) => r.id))
        expect(acknowledged.filter((id) => !ids.has(id))).to.deep.equal([])
        expect(await scratch.db('componenttypes').where({ name: 'in-flight-at-sigterm' })).to.have.length(1)
      }
    })
  })
}
