/** The server's API, as the console calls it: JSON in and out, credentials on every request. */

/** An error answer of the API: its status and the error body's `code`, `message` and `payload`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly payload: Record<string, unknown>,
  ) {
    super(message)
  }

  /** A validation error's messages by field (`payload.errors` of a 400 `validation_failed`). */
  get fieldErrors(): Record<string, string> {
    const errors = this.payload.errors
    return errors && typeof errors === 'object' ? (errors as Record<string, string>) : {}
  }
}

export interface Answer<T = any> {
  status: number
  /** The ETag header without its quotes (or W/ prefix), when the answer has one. */
  etag?: string
  body: T
}

/** Who calls: the `Authorization` header sent with every request. */
export interface Session {
  authorization: string
}

let apiBase = '/api/v1'

/** Reads where the API is (`config.json`, written by the server that serves the console). */
export async function loadConfig(): Promise<void> {
  const res = await fetch('./config.json', { cache: 'no-store' })
  if (res.ok) apiBase = ((await res.json()) as { api: string }).api
}

export function basic(username: string, password: string): Session {
  const bytes = new TextEncoder().encode(`${username}:${password}`)
  return { authorization: `Basic ${btoa(String.fromCharCode(...bytes))}` }
}

export function bearer(token: string): Session {
  return { authorization: `Bearer ${token}` }
}

export async function api<T = any>(
  session: Session | undefined,
  method: string,
  path: string,
  options: { body?: unknown; ifMatch?: string } = {},
): Promise<Answer<T>> {
  const headers: Record<string, string> = { Accept: 'application/json' }
  if (session) headers.Authorization = session.authorization
  if (options.body !== undefined) headers['Content-Type'] = 'application/json'
  if (options.ifMatch) headers['If-Match'] = `"${options.ifMatch}"`
  const res = await fetch(`${apiBase}${path}`, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    cache: 'no-store',
    credentials: 'omit',
  })
  const text = await res.text()
  let body: any
  try {
    body = text ? JSON.parse(text) : undefined
  } catch {
    body = undefined
  }
  if (!res.ok) throw new HttpError(res.status, body?.code ?? 'error', body?.message ?? `${res.status} ${res.statusText}`, body?.payload ?? {})
  const etag = res.headers.get('ETag')?.replace(/^W\//, '').replace(/"/g, '')
  return { status: res.status, etag, body }
}

/** A value of the query language (`query=`), quoted when it has to be. */
export function queryValue(value: string): string {
  return /^[^,()"\s\\]+$/.test(value) ? value : `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
}
