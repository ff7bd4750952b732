import net from 'node:net'

/** The TCP ports these tests may use on 127.0.0.1. */
export const PORT_RANGE = Array.from({ length: 10 }, (_, i) => 5160 + i)

const claimed = new Set<number>()

/** True when nothing listens on 127.0.0.1:`port` (checked by binding it for a moment). */
export function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer()
    probe.once('error', () => resolve(false))
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)))
  })
}

/**
 * A port of {@link PORT_RANGE} that is free now and not claimed by this test process. Another test
 * run may share the machine (and these ports), so the search starts at a random port, and callers
 * retry with another port when a bind fails anyway.
 */
export async function claimPort(): Promise<number> {
  const start = Math.floor(Math.random() * PORT_RANGE.length)
  for (let i = 0; i < PORT_RANGE.length; i++) {
    const port = PORT_RANGE[(start + i) % PORT_RANGE.length]
    if (claimed.has(port)) continue
    claimed.add(port)
    if (await isPortFree(port)) return port
    claimed.delete(port)
  }
  throw new Error(`no free port in ${PORT_RANGE[0]}-${PORT_RANGE[PORT_RANGE.length - 1]}`)
}

/** Gives a port back to {@link claimPort}. */
export function releasePort(port: number): void {
  claimed.delete(port)
}
