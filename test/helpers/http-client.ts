import http from 'node:http'

/** A response as the load tests need it: status, headers and the parsed JSON body (or undefined). */
export interface JsonResponse {
  status: number
  headers: http.IncomingHttpHeaders
  body: any
}

/**
 * One HTTP request on `agent` (share a keep-alive agent to reuse connections), with a JSON body when
 * `body` is given. Network failures reject with Node's error (its `code`: ECONNREFUSED, ECONNRESET...).
 * The request is aborted after `timeoutMs`.
 */
export function request(
  agent: http.Agent,
  method: string,
  url: string,
  options: { body?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<JsonResponse> {
  const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body))
  const headers: Record<string, string> = { ...options.headers }
  if (payload) {
    headers['content-type'] = 'application/json'
    headers['content-length'] = String(payload.length)
  }
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent, headers, timeout: options.timeoutMs ?? 30_000 }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('error', reject)
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let body: unknown
        try {
          body = text ? JSON.parse(text) : undefined
        } catch {
          body = text
        }
        resolve({ status: res.statusCode!, headers: res.headers, body })
      })
    })
    req.on('timeout', () => req.destroy(Object.assign(new Error(`${method} ${url} timed out`), { code: 'ETESTTIMEOUT' })))
    req.on('error', reject)
    req.end(payload)
  })
}

/**
 * {@link request} with `authorization` on every request (a request's own `headers` may replace it):
 * `const request = authedRequest(ADMIN_AUTH)` for a server that needs credentials.
 */
export function authedRequest(authorization: string): typeof request {
  return (agent, method, url, options = {}) => request(agent, method, url, { ...options, headers: { authorization, ...options.headers } })
}

/**
 * A keep-alive agent that drops an idle socket before the server's announced `Keep-Alive: timeout`
 * runs out (Node applies the hint only when the agent has a timeout of its own), so a request is never
 * written on a socket the server is closing at that moment.
 */
export function keepAliveAgent(options: http.AgentOptions = {}): http.Agent {
  return new http.Agent({ keepAlive: true, timeout: 60_000, ...options })
}

/** The `"..."`-quoted ETag header of a response, unquoted. */
export function etagOf(res: JsonResponse): string {
  const etag = String(res.headers.etag ?? '')
  return etag.replace(/^"(.*)"$/, '$1')
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
