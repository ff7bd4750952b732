import { expect } from 'chai'
import { BUILTIN_ERROR_CODES } from '../../client/protocol'

/** SQL text, stack frames or source positions: an error answer must show none of them. */
export const LEAK = /\bselect\b.*\bfrom\b|\binsert into\b|\bupdate\s+"?\w+"?\s+set\b|\bdelete from\b|\n\s+at |\.[jt]s:\d+/i

/** The keys of every error body, sorted. */
export const ERROR_KEYS = ['code', 'message', 'payload', 'status_code'] as const

/** An error answer: an HTTP response (supertest, fetch helpers), or a bare body. */
type Answer = { status: number; body: any; text?: string; type?: string; headers?: Record<string, any> } | Record<string, any>

/**
 * Asserts an error answer: `{message, payload, status_code, code}` and nothing else, `status_code` the
 * status, `code` a built-in code of that status (or the one given), no SQL or stack, and the message
 * when given. Takes a response (its status and content type are checked too) or a bare body.
 */
export function expectError(
  answer: Answer,
  status: number,
  message?: string | RegExp,
  code?: string,
): { message: string; payload: Record<string, any>; status_code: number; code: string } {
  const isResponse = typeof (answer as { status?: unknown }).status === 'number' && 'body' in answer
  const body = isResponse ? (answer as { body: any }).body : answer
  if (isResponse) {
    const res = answer as { status: number; text?: string; type?: string; headers?: Record<string, any> }
    expect(res.status, res.text).to.equal(status)
    const type = res.type ?? res.headers?.['content-type']
    if (type !== undefined) expect(type).to.match(/^application\/json/)
    if (res.text !== undefined) expect(res.text).to.not.match(LEAK)
  }
  expect(body, JSON.stringify(body)).to.have.all.keys(...ERROR_KEYS)
  expect(body.status_code).to.equal(status)
  expect(body.message).to.be.a('string')
  expect(body.payload).to.be.an('object')
  if (code !== undefined) expect(body.code).to.equal(code)
  else {
    const builtin = (BUILTIN_ERROR_CODES as Record<string, { status: number }>)[body.code]
    expect(builtin, `code '${body.code}' is a built-in code`).to.not.equal(undefined)
    expect(builtin.status, `the status of code '${body.code}'`).to.equal(status)
  }
  if (typeof message === 'string') expect(body.message).to.equal(message)
  else if (message) expect(body.message).to.match(message)
  return body
}

/** The 503 a statement past its timeout answers, on PostgreSQL and on the embedded database alike. */
export function expectQueryTimeout(res: { status: number; body: unknown; headers: Record<string, any> }): void {
  expect(res.status).to.equal(503)
  expect(res.body).to.deep.equal({
    message: 'The query took too long and was cancelled',
    payload: { retry_after: 1 },
    status_code: 503,
    code: 'query_timeout',
  })
  expect(res.headers['retry-after']).to.equal('1')
}
