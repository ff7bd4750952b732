import type { Server, ServerResponse } from 'node:http'

/** What {@link closeStalledAnswers} reports when it closes a connection. */
export interface StalledAnswer {
  remote: string | undefined
  /** Bytes of the answer still waiting in the server's buffer. */
  pending_bytes: number
  write_timeout_ms: number
}

/**
 * Closes the connection of an answer its client stops reading: once the whole answer is handed to
 * Node (`res.end`), if part of it still waits in the socket's buffer and none of it leaves for
 * `timeoutMs`, the socket is destroyed, and the answer it held is freed. A client that reads slowly
 * but steadily keeps its connection. Nothing is watched while the request is processed, nor for an
 * answer that left in one write (the usual case): idle connections are Node's `keepAliveTimeout`'s.
 * Embedders serving the engine on their own `http.Server` call it once; 0 turns it off.
 */
export function closeStalledAnswers(server: Server, timeoutMs: number, onClose?: (stalled: StalledAnswer) => void): void {
  if (!(timeoutMs > 0)) return
  // First among the listeners: the 'prefinish' hook is in place before the handler can answer.
  server.prependListener('request', (_req, res: ServerResponse) => {
    res.once('prefinish', () => watch(res, timeoutMs, onClose))
  })
}

function watch(res: ServerResponse, timeoutMs: number, onClose?: (stalled: StalledAnswer) => void): void {
  const socket = res.socket
  if (!socket || socket.destroyed || socket.writableLength === 0) return
  let pending = socket.writableLength
  const timer = setInterval(() => {
    if (socket.destroyed || res.writableFinished) return clearInterval(timer)
    const now = socket.writableLength
    if (now < pending) {
      pending = now
      return
    }
    clearInterval(timer)
    onClose?.({ remote: socket.remoteAddress, pending_bytes: now, write_timeout_ms: timeoutMs })
    socket.destroy()
  }, timeoutMs)
  timer.unref()
  const stop = () => clearInterval(timer)
  res.once('finish', stop)
  res.once('close', stop)
}
