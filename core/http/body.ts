import bytes from 'bytes'
import bodyParser from 'koa-bodyparser'
import type { Context, Middleware, Next } from 'koa'
import { type ApiError, errors } from '../errors'
import { continueIfAwaited } from './edge'
import { jsonTextProblem } from './json-text'

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * Why a parsed body cannot be taken, in one walk without recursion (a hostile body cannot blow the
 * stack): nesting deeper than `maxDepth` (the body is level 1), else the first value that would not be
 * stored as sent: a number too large for a double (`1e400` parses as Infinity, which a JSON column
 * keeps as null), a lone UTF-16 surrogate in a string or key (`"\ud800"`, which a text column keeps
 * as U+FFFD), or a text field that starts with a byte order mark.
 */
function bodyProblem(body: object, maxDepth: number): ApiError | undefined {
  let unstorable: string | undefined
  // The embedded database's protocol decoder drops a byte order mark that starts a text value, so such
  // a value would not read back as sent; both databases refuse it alike.
  if (Object.values(body).some((v) => typeof v === 'string' && v.startsWith('\uFEFF'))) {
    unstorable = 'a text value starts with U+FEFF (a byte order mark)'
  }
  const stack: Array<[unknown, number]> = [[body, 1]]
  while (stack.length) {
    const [node, depth] = stack.pop()!
    if (typeof node === 'number' && !Number.isFinite(node)) unstorable ??= 'a number is too large to be stored'
    else if (typeof node === 'string' && LONE_SURROGATE.test(node)) unstorable ??= 'a string holds a lone UTF-16 surrogate'
    else if (node && typeof node === 'object') {
      if (depth > maxDepth) return errors.tooDeep(maxDepth)
      for (const [key, child] of Object.entries(node)) {
        if (LONE_SURROGATE.test(key)) unstorable ??= 'a string holds a lone UTF-16 surrogate'
        stack.push([child, depth + 1])
      }
    }
  }
  return unstorable === undefined ? undefined : errors.invalidValue(unstorable)
}

/** What the parsed body hides: a key given twice, a number that would not be stored as written. */
function textProblem(raw: string | undefined): ApiError | undefined {
  const problem = raw === undefined ? undefined : jsonTextProblem(raw)
  if (!problem) return undefined
  if (problem.kind === 'duplicate-key') return errors.invalidValue(`the key '${problem.path}' is given twice`, { field: problem.path })
  return errors.invalidValue(`the number ${problem.literal.slice(0, 40)} of '${problem.path}' cannot be stored exactly`, { field: problem.path })
}

/**
 * Parses JSON bodies of POST and PUT: 415 unless the body is `application/json`, 413 over the limit,
 * 400 for invalid JSON, a body that is not an object, or nesting deeper than `maxDepth`. A request
 * that waits for `100 Continue` (see `expectContinue`) gets it here, right before its body is read.
 */
export function jsonBody(options: { limit: string; maxDepth: number }): Middleware {
  // Not strict: `null` or `42` are valid JSON, answered "must be a JSON object" below, not "invalid JSON".
  const parse = bodyParser({ enableTypes: ['json'], jsonLimit: options.limit, strict: false })
  const limitBytes = bytes.parse(options.limit) ?? Number.POSITIVE_INFINITY
  return async (ctx: Context, next: Next) => {
    if (ctx.method !== 'POST' && ctx.method !== 'PUT') return next()
    const hasBody = Boolean(ctx.get('Transfer-Encoding')) || Number(ctx.get('Content-Length') || 0) > 0
    if (!hasBody) {
      ctx.request.body = {}
      return next()
    }
    if (!ctx.is('application/json')) throw errors.unsupportedMediaType(ctx.get('Content-Type') || undefined)
    // JSON is UTF-8 (RFC 8259): another charset would be decoded as UTF-8 and stored mangled.
    const charset = ctx.request.charset
    if (charset && !/^utf-?8$/i.test(charset)) throw errors.unsupportedMediaType(ctx.get('Content-Type'), 'Request body must be JSON in UTF-8')
    if (ctx.req.headers.expect !== undefined) {
      // The client waits for `100 Continue` before it sends the body: sent now that everything but the
      // body is known good, and not at all for a body declared larger than the limit.
      if (Number(ctx.get('Content-Length')) > limitBytes) throw errors.bodyTooLarge(options.limit)
      continueIfAwaited(ctx.req, ctx.res)
    }
    await parse(ctx, async () => {})
    const body = ctx.request.body
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw errors.bodyNotObject()
    // Refused rather than silently stored as something else.
    const problem = bodyProblem(body, options.maxDepth) ?? textProblem((ctx.request as { rawBody?: string }).rawBody)
    if (problem) throw problem
    return next()
  }
}
