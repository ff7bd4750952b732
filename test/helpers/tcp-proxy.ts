import net from 'node:net'
import { claimPort, releasePort } from './ports'

/**
 * A TCP proxy on 127.0.0.1 that forwards every connection to a target (PostgreSQL), and can be cut:
 * {@link TcpProxy.cut} destroys every open connection and refuses new ones (the listener closes, so a
 * connect gets ECONNREFUSED, as when the database is down); {@link TcpProxy.restore} listens again.
 */
export class TcpProxy {
  private server: net.Server | undefined
  private readonly sockets = new Set<net.Socket>()
  /** Connections accepted since the proxy was created. */
  accepted = 0

  constructor(
    readonly port: number,
    readonly target: { host: string; port: number },
  ) {}

  /** A proxy to `target` on a free port of the test range, listening. */
  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    for (let attempt = 1; ; attempt++) {
      const proxy = new TcpProxy(await claimPort(), target)
      try {
        await proxy.listen()
        return proxy
      } catch (err) {
        if (attempt >= 3) throw err
      }
    }
  }

  /** Starts listening (also used by {@link restore}). */
  async listen(): Promise<void> {
    if (this.server) return
    const server = net.createServer((client) => {
      this.accepted++
      const upstream = net.connect(this.target.port, this.target.host)
      for (const socket of [client, upstream]) {
        this.sockets.add(socket)
        socket.setNoDelay(true)
        socket.on('error', () => {}) // a peer that goes away is the point of this proxy
        socket.on('close', () => {
          this.sockets.delete(socket)
          client.destroy()
          upstream.destroy()
        })
      }
      client.pipe(upstream)
      upstream.pipe(client)
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.port, '127.0.0.1', () => {
        server.off('error', reject)
        resolve()
      })
    })
    this.server = server
  }

  /** Destroys every open connection (both sides) and refuses new ones until {@link restore}. */
  async cut(): Promise<void> {
    const server = this.server
    this.server = undefined
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve()
    for (const socket of this.sockets) socket.destroy()
    this.sockets.clear()
    await closed
  }

  /** Accepts and forwards connections again. */
  restore(): Promise<void> {
    return this.listen()
  }

  /** Connections open through the proxy right now (each counted once). */
  get openConnections(): number {
    return this.sockets.size / 2
  }

  /** Cuts everything and stops for good. */
  async close(): Promise<void> {
    await this.cut()
    releasePort(this.port)
  }
}
