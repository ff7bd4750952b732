import crypto from 'node:crypto'
import { errors } from '../errors'
import type { Columns } from './columns'

/**
 * Keyset pages. A cursor (`_meta.next`, sent back as `after`) is the sort values of the last row of a
 * page (and its id, which ends every order), so the following page is the rows that sort after them:
 * a condition on indexed columns, whose cost does not grow with the page's depth, and which neither
 * skips nor repeats a row when rows are inserted or deleted before it. It also holds a digest of the
 * list it pages (its resource, `where`, `query`, `sort` and `limit`), so a cursor sent with another
 * list is a 400 rather than a page of something else, and the number of rows before the next page
 * (a position, exact when no row moved since, used only to link by `offset` when a sort value is too
 * long to carry).
 *
 * Its text is base64url of `[digest, position, values]`: opaque to clients, but not a secret (it says
 * no more than the rows the client was answered), so it is not signed. Its values are checked as a
 * `where` value is before they reach SQL.
 */

/** The position of a list in its keyset: which list it is, and the sort values of the row it starts after. */
export interface Keyset {
  /** The digest of the list the cursor pages. */
  list: string
  /** With `after`: the sort values of the last row of the page before (the id last), and its position. */
  after?: { values: Array<string | number | boolean | null>; position: number }
}

/** Longest text value a cursor carries (as a `where` value): past it, the next page is linked by offset. */
export const MAX_CURSOR_TEXT = 1_000
/** Longest `after`: a cursor of the longest values of the most sort keys fits. */
export const MAX_CURSOR_LENGTH = 8_192

/** The digest that tells one list from another (resource, filters, order and page size). */
export function listDigest(parts: unknown[]): string {
  return crypto.createHash('sha256').update(JSON.stringify(parts)).digest('base64url').slice(0, 16)
}

/** The cursor of the row after which a page starts: its sort keys' values (undefined when one is too long to carry). */
export function encodeCursor(list: string, position: number, values: unknown[]): string | undefined {
  const out: Array<string | number | boolean | null> = []
  for (const value of values) {
    if (value === null || value === undefined) out.push(null)
    else if (value instanceof Date) out.push(value.toISOString())
    else if (typeof value === 'string') {
      if (value.length > MAX_CURSOR_TEXT) return undefined
      out.push(value)
    } else if (typeof value === 'number' || typeof value === 'boolean') out.push(value)
    else return undefined
  }
  return Buffer.from(JSON.stringify([list, position, out])).toString('base64url')
}

const BASE64URL = /^[A-Za-z0-9_-]+$/

/**
 * The position `after` gives in the list `list`, whose order is `keys`: a 400 naming `after` when it
 * is not a cursor this server gave, is a cursor of another list, or holds a value its column cannot.
 */
export function decodeCursor(raw: string, list: string, keys: ReadonlyArray<readonly [string, string]>, columns: Columns): NonNullable<Keyset['after']> {
  const refuse = (why: string) => errors.badParameter('after', why)
  const notCursor = () => refuse('is not a cursor this server gave (_meta.next)')
  if (raw.length > MAX_CURSOR_LENGTH) throw refuse(`longer than ${MAX_CURSOR_LENGTH} characters`)
  if (!BASE64URL.test(raw)) throw notCursor()
  let decoded: unknown
  try {
    decoded = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'))
  } catch {
    throw notCursor()
  }
  if (!Array.isArray(decoded) || decoded.length !== 3 || typeof decoded[0] !== 'string' || !Array.isArray(decoded[2])) throw notCursor()
  const [digest, position, values] = decoded as [string, unknown, unknown[]]
  if (digest !== list) {
    throw refuse('is the cursor of another list: send it with the where, query, sort and limit of the page that gave it')
  }
  if (!Number.isSafeInteger(position) || (position as number) < 0 || values.length !== keys.length) throw notCursor()
  keys.forEach(([name], i) => {
    const value = values[i]
    if (value === null) {
      // Every list ends its order with the id, which is never null.
      if (name === 'id') throw notCursor()
      return
    }
    const column = columns.byName.get(name)
    const fits =
      column !== undefined &&
      (column.kind === 'integer'
        ? Number.isSafeInteger(value)
        : column.kind === 'number'
          ? typeof value === 'number' && Number.isFinite(value)
          : column.kind === 'boolean'
            ? typeof value === 'boolean'
            : typeof value === 'string' && value.length <= MAX_CURSOR_TEXT && !value.includes('\u0000') && column.checkKind(value) === true)
    if (!fits) throw refuse(`holds a value that is not one of '${name}'`)
  })
  return { values: values as Array<string | number | boolean | null>, position: position as number }
}

/**
 * The SQL condition "sorts after these values" for an order of `keys` (each column's nulls last
 * ascending and first descending, as PostgreSQL sorts them; the last key is the id), with its
 * bindings in order: a range on the first key, which an index on it can start from, and the exact
 * condition `k1 > v1 OR (k1 = v1 AND k2 > v2) OR ...`. `nullable` says which columns may hold null.
 */
export function keysetSql(
  keys: ReadonlyArray<readonly [string, 'asc' | 'desc']>,
  values: ReadonlyArray<unknown>,
  nullable: (column: string) => boolean,
): { sql: string; bindings: unknown[] } {
  const bindings: unknown[] = []
  const quoted = (name: string) => `"${name}"`
  const equal = (i: number): string => {
    if (values[i] === null) return `${quoted(keys[i][0])} IS NULL`
    bindings.push(values[i])
    return `${quoted(keys[i][0])} = ?`
  }
  // "Sorts strictly after values[i] on key i", or undefined when nothing does (after a null, ascending).
  const after = (i: number): string | undefined => {
    const [name, direction] = keys[i]
    const column = quoted(name)
    if (values[i] === null) return direction === 'asc' ? undefined : `${column} IS NOT NULL`
    bindings.push(values[i])
    if (direction === 'desc') return `${column} < ?`
    return nullable(name) ? `(${column} > ? OR ${column} IS NULL)` : `${column} > ?`
  }
  const parts: string[] = []
  // The range: rows that sort before the first value are out, whatever the other keys hold.
  const [first, direction] = keys[0]
  if (values[0] === null) {
    if (direction === 'asc') parts.push(`${quoted(first)} IS NULL`)
  } else {
    bindings.push(values[0])
    parts.push(
      direction === 'desc' ? `${quoted(first)} <= ?` : nullable(first) ? `(${quoted(first)} >= ? OR ${quoted(first)} IS NULL)` : `${quoted(first)} >= ?`,
    )
  }
  const terms: string[] = []
  for (let i = 0; i < keys.length; i++) {
    const mark = bindings.length
    const equals: string[] = []
    for (let j = 0; j < i; j++) equals.push(equal(j))
    const strictly = after(i)
    if (strictly === undefined) {
      bindings.length = mark
      continue
    }
    terms.push(equals.length ? `(${[...equals, strictly].join(' AND ')})` : strictly)
  }
  parts.push(terms.length === 1 ? terms[0] : `(${terms.join(' OR ')})`)
  return { sql: parts.join(' AND '), bindings }
}

/** The shape of {@link keysetSql}'s SQL for these values: which of them are null. */
export function keysetShape(values: ReadonlyArray<unknown>): string {
  return values.map((v) => (v === null ? '0' : '1')).join('')
}
