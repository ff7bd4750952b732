import crypto from 'node:crypto'
import fs from 'node:fs'
import zlib from 'node:zlib'
import type { Context } from 'koa'

/**
 * A fixed set of files served from memory: read and compressed once, at their first request, each
 * with a strong ETag (SHA-256 of its bytes), answered 304 to a matching `If-None-Match`, and gzip to a
 * client that accepts it. `immutable` files (names that carry their content's hash) are cached a year;
 * the others are revalidated each time (`no-cache`), so a new version of the package is seen at once.
 */
export interface StaticFile {
  /** Where the bytes are read from, or the text itself. */
  source: { file: string } | { text: string }
  type: string
  immutable?: boolean
}

export interface Loaded {
  body: Buffer
  gzip?: Buffer
  etag: string
  type: string
  cacheControl: string
}

/** Smaller files are not worth compressing. */
const GZIP_FROM_BYTES = 1_024

export function load(file: StaticFile): Loaded {
  const body = 'file' in file.source ? fs.readFileSync(file.source.file) : Buffer.from(file.source.text)
  const gzip = body.length >= GZIP_FROM_BYTES ? zlib.gzipSync(body, { level: 9 }) : undefined
  return {
    body,
    gzip,
    etag: `"${crypto.createHash('sha256').update(body).digest('base64url')}"`,
    type: file.type,
    cacheControl: file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
  }
}

/** Answers `ctx` with `file` (GET or HEAD), conditionally and compressed where it can. */
export function send(ctx: Context, file: Loaded): void {
  ctx.set('ETag', file.etag)
  ctx.set('Cache-Control', file.cacheControl)
  ctx.set('Vary', 'Accept-Encoding')
  ctx.type = file.type
  // koa's `fresh` holds only for a 2xx status, and a response's is 404 until a body is set.
  ctx.status = 200
  if (ctx.fresh) {
    ctx.status = 304
    return
  }
  if (file.gzip && ctx.acceptsEncodings('gzip', 'identity') === 'gzip') {
    ctx.set('Content-Encoding', 'gzip')
    ctx.body = file.gzip
  } else {
    ctx.body = file.body
  }
}

/**
 * The files of `list` (listed at the first request) by name, each read and compressed at its own
 * first request and kept; undefined for a name that is not one of them.
 */
export function fileStore(list: () => Record<string, StaticFile>): (name: string) => Loaded | undefined {
  let files: Record<string, StaticFile> | undefined
  const loaded = new Map<string, Loaded>()
  return (name) => {
    files ??= list()
    if (!Object.hasOwn(files, name)) return undefined
    let ready = loaded.get(name)
    if (!ready) {
      ready = load(files[name])
      loaded.set(name, ready)
    }
    return ready
  }
}
