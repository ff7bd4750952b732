/**
 * A typed builder of `query` expressions (the server's query language, see the README): field names
 * and value types are checked by the compiler against the row type the list is of.
 *
 *     client.components.list({ query: q.and(q.eq('name', 'rhel-9'), q.gt('created_at', new Date('2024-01-01'))) })
 *
 * A field of a related row is written with a dot after a relation field (`'componenttype.name'`): the
 * relation is checked, the rest by the server.
 */

/** A `query` expression over rows of type `T`: pass it as `query` to a list. */
export interface Query<T> {
  readonly text: string
  /** Phantom: only the compiler reads it. */
  readonly __row?: (row: T) => void
}

type Scalar = string | number | boolean

/** Fields of `T` whose values are scalars (the fields a comparison takes). */
type ScalarKeys<T> = { [K in keyof T]-?: NonNullable<T[K]> extends Scalar ? K : never }[keyof T] & string
/** Fields of `T` whose values are text. */
type TextKeys<T> = { [K in keyof T]-?: NonNullable<T[K]> extends string ? K : never }[keyof T] & string
/** Fields of `T` whose values are arrays of scalars. */
type ArrayKeys<T> = { [K in keyof T]-?: NonNullable<T[K]> extends ReadonlyArray<Scalar> ? K : never }[keyof T] & string
/** A field of a related row: a relation field (text, an id) then a dot. */
type RelatedPath<T> = `${TextKeys<T>}.${string}`

/** The value a field compares with: its own type (a `Date` for text, which date-times are). */
type ValueOf<T, K> = K extends keyof T ? (NonNullable<T[K]> extends string ? string | Date : NonNullable<T[K]>) : Scalar | Date
/** The item type of an array field. */
type ItemOf<T, K> = K extends keyof T ? (NonNullable<T[K]> extends ReadonlyArray<infer I> ? I : never) : never

/** A value as the grammar writes it: text always in double quotes (with `\"` and `\\`), numbers and booleans bare. */
function literal(value: Scalar | Date): string {
  if (value instanceof Date) return `"${value.toISOString()}"`
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new RangeError(`query: ${value} is not a finite number`)
    return String(value)
  }
  if (typeof value === 'boolean') return String(value)
  return `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`
}

const expression = <T>(text: string): Query<T> => ({ text })
const comparison =
  (op: string) =>
  <T>(field: string, value: Scalar | Date): Query<T> =>
    expression(`${op}(${field},${literal(value)})`)

/** A comparison of a scalar field (or a related row's field) with a value of its type. */
type Compare = <T, K extends ScalarKeys<T> | RelatedPath<T> = ScalarKeys<T> | RelatedPath<T>>(field: K, value: ValueOf<T, K>) => Query<T>
/** A text field matched against a pattern. */
type Match = <T>(field: TextKeys<T> | RelatedPath<T>, pattern: string) => Query<T>
/** An item of an array field, or a substring of a text field. */
type Contains = {
  <T, K extends ArrayKeys<T> = ArrayKeys<T>>(field: K, item: ItemOf<T, K>): Query<T>
  <T>(field: TextKeys<T> | RelatedPath<T>, text: string): Query<T>
}

/** The builder: each function checks its field and value against the row type the list expects. */
export const q = {
  eq: comparison('eq') as Compare,
  ne: comparison('ne') as Compare,
  lt: comparison('lt') as Compare,
  le: comparison('le') as Compare,
  gt: comparison('gt') as Compare,
  ge: comparison('ge') as Compare,
  /** SQL pattern: `%` any run, `_` one character. */
  like: comparison('like') as Match,
  /** `like`, ignoring case. */
  ilike: comparison('ilike') as Match,
  /** A substring of a text field, or an item of an array field. */
  contains: comparison('contains') as Contains,
  not_contains: comparison('not_contains') as Contains,
  in<T, K extends ScalarKeys<T> | RelatedPath<T> = ScalarKeys<T> | RelatedPath<T>>(field: K, ...values: [ValueOf<T, K>, ...Array<ValueOf<T, K>>]): Query<T> {
    return expression(`in(${[field, ...values.map((v) => literal(v as Scalar | Date))].join(',')})`)
  },
  null<T>(field: (keyof T & string) | RelatedPath<T>): Query<T> {
    return expression(`null(${field})`)
  },
  and<T>(...all: [Query<T>, ...Array<Query<T>>]): Query<T> {
    return expression(`and(${all.map((e) => e.text).join(',')})`)
  },
  or<T>(...any: [Query<T>, ...Array<Query<T>>]): Query<T> {
    return expression(`or(${any.map((e) => e.text).join(',')})`)
  },
  not<T>(e: Query<T>): Query<T> {
    return expression(`not(${e.text})`)
  },
}
