import { ApiError, type Engine, type Params, type RawQuery } from '../../core'

/** What a request through the services answers: the shape the conformance suite reads from supertest. */
export interface ServiceResponse {
  status: number
  body: any
  headers: Record<string, string>
  text: string
}

/**
 * A supertest-like agent whose requests never touch HTTP: each is mapped to the in-process service
 * call of the same meaning (`GET /<plural>` -> `find`, `PUT /<plural>/<id>` with `If-Match` ->
 * `update` with `ifMatch`...), and the result (or the thrown {@link ApiError}) to the status and body
 * the HTTP transport would send. It lets one conformance suite test both transports. Only what the
 * services define is mapped: no 304, `Location` or `Prefer` (those tests run over HTTP only).
 */
export function serviceAgent(engine: Engine, params: Params = {}) {
  const call = (method: string, path: string) => new ServiceRequest(engine, params, method, path)
  return {
    get: (path: string) => call('GET', path),
    post: (path: string) => call('POST', path),
    put: (path: string) => call('PUT', path),
    delete: (path: string) => call('DELETE', path),
  }
}

class ServiceRequest implements PromiseLike<ServiceResponse> {
  private readonly headers: Record<string, string> = {}
  private readonly given: RawQuery = {}
  private body: unknown
  private expected?: number

  constructor(
    private readonly engine: Engine,
    private readonly params: Params,
    private readonly method: string,
    private readonly path: string,
  ) {}

  set(name: string, value: string): this {
    this.headers[name.toLowerCase()] = value
    return this
  }

  send(body: unknown): this {
    this.body = body
    return this
  }

  expect(status: number): this {
    this.expected = status
    return this
  }

  // biome-ignore lint/suspicious/noThenProperty: awaited like a supertest request, on purpose
  then<A = ServiceResponse, B = never>(
    onFulfilled?: ((value: ServiceResponse) => A | PromiseLike<A>) | null,
    onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): PromiseLike<A | B> {
    return this.run().then(onFulfilled, onRejected)
  }

  private async run(): Promise<ServiceResponse> {
    const res = await this.answer()
    if (this.expected !== undefined && res.status !== this.expected) {
      throw new Error(`expected ${this.expected}, got ${res.status} from ${this.method} ${this.path} through the services: ${res.text}`)
    }
    return res
  }

  private async answer(): Promise<ServiceResponse> {
    const [pathname, search] = this.path.split('?', 2) as [string, string | undefined]
    const query: RawQuery = { ...this.given }
    for (const [key, value] of new URLSearchParams(search ?? '')) {
      const seen = query[key]
      query[key] = seen === undefined ? value : [...(Array.isArray(seen) ? seen : [seen]), value]
    }
    const [plural, encoded, ...rest] = pathname.slice(this.engine.prefix.length + 1).split('/')
    // The id as the router gives it to the route: URL-decoded.
    const id = encoded === undefined ? undefined : decodeURIComponent(encoded)
    const resource = [...this.engine.resources.values()].find((r) => r.plural === plural)
    if (!resource || rest.length) throw new Error(`the service agent maps resource routes only, not ${this.path}`)
    const service = resource.service
    const params: Params = { ...this.params, query }
    const ifMatch = this.headers['if-match']
    try {
      if (id === undefined && this.method === 'GET') {
        const page = await service.find(params)
        return respond(200, { [plural]: page.items, _meta: page.meta })
      }
      if (id === undefined && this.method === 'POST') {
        const row = await service.create(this.body as Record<string, unknown>, params)
        return respond(201, { [resource.name]: row }, row.etag)
      }
      if (id !== undefined && this.method === 'GET') {
        const row = await service.get(id, params)
        return respond(200, { [resource.name]: row }, row.etag)
      }
      if (id !== undefined && this.method === 'PUT') {
        const row = await service.update(id, (this.body ?? {}) as Record<string, unknown>, { ...params, ifMatch })
        return respond(204, {}, row.etag)
      }
      if (id !== undefined && this.method === 'DELETE') {
        await service.remove(id, { ...params, ifMatch })
        return respond(204, {})
      }
    } catch (err) {
      if (err instanceof ApiError) return respond(err.status, err.toJSON())
      throw err
    }
    throw new Error(`the service agent does not map ${this.method} ${this.path}`)
  }

  /** supertest's `.query(object)`. */
  query(values: Record<string, string | number>): this {
    for (const [key, value] of Object.entries(values)) this.given[key] = String(value)
    return this
  }
}

/** The answer as the wire would carry it: JSON (dates as ISO strings), no body on a 204. */
function respond(status: number, body: object, etag?: string): ServiceResponse {
  const text = status === 204 ? '' : JSON.stringify(body)
  return { status, body: text ? JSON.parse(text) : {}, headers: etag ? { etag: `"${etag}"` } : {}, text }
}
