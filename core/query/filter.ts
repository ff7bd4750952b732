import type Ajv from 'ajv'
import type { ValidateFunction } from 'ajv'
import { ApiError } from '../errors'
import { fieldAliases, filterableFields } from '../schema/derive'
import type { FieldKind, JsonSchema, ResourceDefinition } from '../schema/types'
import { type BinaryOperator, DEFAULT_EXPRESSION_LIMITS, type Expression, ExpressionError, type FieldRef, parseExpression, type ValueRef } from './expression'

/** Most relations one `query` field may follow (`component.componenttype.name` is two). */
export const MAX_RELATION_HOPS = 3

/**
 * Most comparisons that match text against a pattern (`like`, `ilike`, and `contains` and
 * `not_contains` on text) in one expression, and most characters their patterns hold in all. Each
 * such comparison costs the database a pass over every candidate row's text: the costliest filter
 * these limits allow (4 patterns of 500 characters in all, half of them `ilike`, that match nothing,
 * and 46 more comparisons) takes 1.0 s per statement over 200,000 rows of 255 characters on this
 * machine's PostgreSQL and 2.3 s on the embedded database, within the 10 s statement timeout; 8
 * patterns of 1,000 characters took 4-8 s and 18-21 s (bench/RESULTS.md).
 */
export const MAX_PATTERN_COMPARISONS = 4
export const MAX_PATTERN_CHARACTERS = 500

/** A relation a comparison follows: the rows of `table` whose id the `column` of the row before holds. */
export interface Hop {
  column: string
  /** The related resource's name, and its table. */
  resource: string
  table: string
  /**
   * Set by access control: only the related rows whose `column` holds `value` count (a caller scoped
   * to a team filters through its team's rows only).
   */
  scope?: [column: string, value: string]
}

export type ComparisonOperator = BinaryOperator | 'in' | 'null'

/**
 * A checked `query` expression: every name is a column of its resource, every value of its field's
 * type. A comparison on a field through relations holds when a related row exists and the comparison
 * holds on it. A comparison of a null field is false (but `null`), and `not` is true when what it
 * negates is not true: the filter is two-valued, as a JavaScript evaluation of it is.
 */
export type Filter =
  | { op: 'and' | 'or'; args: Filter[] }
  | { op: 'not'; arg: Filter }
  | { op: ComparisonOperator; hops: Hop[]; column: string; array: boolean; values: unknown[] }

/** The relations of `filter` (for access control). */
export function filterHops(filter: Filter | undefined, out: Hop[] = []): Hop[] {
  if (!filter) return out
  switch (filter.op) {
    case 'and':
    case 'or':
      for (const arg of filter.args) filterHops(arg, out)
      break
    case 'not':
      filterHops(filter.arg, out)
      break
    default:
      out.push(...filter.hops)
  }
  return out
}

/** Longest value of a comparison (characters), or the field's own `maxLength` for eq, ne and in when smaller. */
export const MAX_QUERY_VALUE_LENGTH = 1_000

interface Column {
  name: string
  kind: FieldKind | 'array'
  /** The JSON Schema a value of eq, ne and in must match (an array's items'). */
  check: ValidateFunction
  /** The kind alone (format, type): what a value of lt, le, gt and ge must be. */
  checkKind: ValidateFunction
  maxLength: number
  /** The related resource, for a relation field. */
  relation?: string
}

interface Columns {
  def: ResourceDefinition
  byName: Map<string, Column>
  names: string[]
}

const INTEGER = /^-?\d{1,16}$/
const NUMBER = /^-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$/

/** A value as the field's type, or undefined when it cannot be one. */
function convert(kind: FieldKind | 'array', itemKind: string | undefined, raw: string): unknown {
  const k = kind === 'array' ? itemKind : kind
  switch (k) {
    case 'integer':
      return INTEGER.test(raw) && Number.isSafeInteger(Number(raw)) ? Number(raw) : undefined
    case 'number':
      return raw.length <= 64 && NUMBER.test(raw) && Number.isFinite(Number(raw)) ? Number(raw) : undefined
    case 'boolean':
      return raw === 'true' ? true : raw === 'false' ? false : undefined
    default:
      return raw.normalize('NFC')
  }
}

/** The scalar item type of an array field (`{"type": "array", "items": {"type": "string"}}`), if it has one. */
function scalarItems(schema: JsonSchema): JsonSchema | undefined {
  const types = Array.isArray(schema.type) ? schema.type : [schema.type]
  if (!types.includes('array')) return undefined
  const items = schema.items as JsonSchema | undefined
  const itemType = items && (Array.isArray(items.type) ? items.type.find((t) => t !== 'null') : items.type)
  return typeof itemType === 'string' && ['string', 'integer', 'number', 'boolean'].includes(itemType) ? items : undefined
}

const KIND_SCHEMA: Record<string, JsonSchema> = {
  uuid: { type: 'string', format: 'uuid' },
  datetime: { type: 'string', format: 'date-time' },
  integer: { type: 'integer' },
  number: { type: 'number' },
  boolean: { type: 'boolean' },
  string: { type: 'string' },
}

/** The operators each kind of field takes. */
function operatorsOf(column: Column): ComparisonOperator[] {
  if (column.kind === 'array') return ['contains', 'not_contains', 'null']
  const base: ComparisonOperator[] = ['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'in', 'null']
  return column.kind === 'string' ? [...base, 'like', 'ilike', 'contains', 'not_contains'] : base
}

/**
 * Compiles, once per resource, the checker of its `query` expressions: parses the text, resolves each
 * field (its alias, and relations followed with dots, up to {@link MAX_RELATION_HOPS}) and converts each
 * value to the field's type. Every refusal is a 400 `invalid_query` whose payload gives the position
 * in the expression and what was expected there.
 */
export function compileFilter(def: ResourceDefinition, definitionOf: (name: string) => ResourceDefinition | undefined, ajv: Ajv) {
  const cache = new Map<string, Columns>()
  const columnsOf = (d: ResourceDefinition): Columns => {
    let found = cache.get(d.name)
    if (found) return found
    const byName = new Map<string, Column>()
    for (const field of filterableFields(d)) {
      const own = field.schema.maxLength
      byName.set(field.name, {
        name: field.name,
        kind: field.kind,
        check: ajv.compile(field.schema),
        checkKind: ajv.compile(KIND_SCHEMA[field.kind] ?? { type: 'string' }),
        maxLength: typeof own === 'number' && own < MAX_QUERY_VALUE_LENGTH ? own : MAX_QUERY_VALUE_LENGTH,
        relation: d.fields.find((f) => f.name === field.name)?.relation?.resource,
      })
    }
    for (const field of d.fields) {
      const items = field.kind === 'json' && !field.hidden ? scalarItems(field.schema) : undefined
      if (!items) continue
      const check = ajv.compile(items)
      byName.set(field.name, { name: field.name, kind: 'array', check, checkKind: check, maxLength: MAX_QUERY_VALUE_LENGTH })
    }
    for (const [field, alias] of fieldAliases(d)) {
      const column = byName.get(field)
      if (column) byName.set(alias, column)
    }
    const names = [...byName.keys()].flatMap((n) => (byName.get(n)!.relation ? [n, `${n}.`] : [n]))
    found = { def: d, byName, names }
    cache.set(d.name, found)
    return found
  }
  columnsOf(def)

  const refuse = (message: string, position: number, expected: readonly string[]) =>
    new ApiError(400, `Invalid 'query' parameter: ${message}`, { position, expected: [...expected] }, {}, 'invalid_query')

  /** The hops and the column a field names, checked part by part. */
  const resolve = (ref: FieldRef): { hops: Hop[]; column: Column } => {
    let columns = columnsOf(def)
    const hops: Hop[] = []
    let position = ref.position
    for (let i = 0; i < ref.path.length; i++) {
      const part = ref.path[i]
      const column = columns.byName.get(part)
      if (!column) {
        throw refuse(`unknown field '${part.slice(0, 80)}' of ${columns.def.plural} at position ${position}`, position, columns.names)
      }
      if (i === ref.path.length - 1) return { hops, column }
      if (!column.relation)
        throw refuse(`'${part}' is not a relation of ${columns.def.plural}: nothing follows it (position ${position})`, position, columns.names)
      if (hops.length === MAX_RELATION_HOPS) throw refuse(`a field follows at most ${MAX_RELATION_HOPS} relations (position ${position})`, position, [])
      const target = definitionOf(column.relation)
      if (!target) throw refuse(`unknown field '${part}' at position ${position}`, position, columns.names)
      hops.push({ column: column.name, resource: target.name, table: target.plural })
      columns = columnsOf(target)
      position += part.length + 1
    }
    // A path has at least one part (the parser sees to it).
    throw refuse('a field name', ref.position, columns.names)
  }

  const typed = (column: Column, op: ComparisonOperator, ref: ValueRef): unknown => {
    const raw = ref.text
    const pattern = op === 'like' || op === 'ilike' || ((op === 'contains' || op === 'not_contains') && column.kind === 'string')
    const max = op === 'eq' || op === 'ne' || op === 'in' ? column.maxLength : MAX_QUERY_VALUE_LENGTH
    if (raw.length > max) throw refuse(`the value at position ${ref.position} is longer than ${max} characters`, ref.position, [`at most ${max} characters`])
    if (pattern) return raw.normalize('NFC')
    const itemKind = column.kind === 'array' ? String((column.check.schema as JsonSchema).type) : undefined
    const value = convert(column.kind, itemKind, raw)
    const check = op === 'eq' || op === 'ne' || op === 'in' || column.kind === 'array' ? column.check : column.checkKind
    if (value === undefined || !check(value)) {
      const error = check.errors?.[0]?.message ?? `must be ${column.kind === 'array' ? itemKind : column.kind}`
      throw refuse(`'${raw.slice(0, 80)}' at position ${ref.position} is not a valid value for '${column.name}': ${error}`, ref.position, [
        `a ${column.kind === 'array' ? `${itemKind} item` : column.kind} value`,
      ])
    }
    return value
  }

  let patterns = 0
  let patternCharacters = 0
  const check = (e: Expression): Filter => {
    switch (e.op) {
      case 'and':
      case 'or':
        return { op: e.op, args: e.args.map(check) }
      case 'not':
        return { op: 'not', arg: check(e.arg) }
      default: {
        const { hops, column } = resolve(e.field)
        const allowed = operatorsOf(column)
        if (!allowed.includes(e.op)) {
          throw refuse(
            `${e.op} does not apply to '${e.field.path.join('.')}', a${column.kind === 'array' ? 'n array' : ` ${column.kind}`} field (position ${e.position})`,
            e.position,
            allowed,
          )
        }
        if ((e.op === 'like' || e.op === 'ilike' || e.op === 'contains' || e.op === 'not_contains') && column.kind !== 'array') {
          if (++patterns > MAX_PATTERN_COMPARISONS) {
            throw refuse(
              `more than ${MAX_PATTERN_COMPARISONS} text-matching comparisons (like, ilike, contains, not_contains) at position ${e.position}`,
              e.position,
              [],
            )
          }
          patternCharacters += e.value.text.length
          if (patternCharacters > MAX_PATTERN_CHARACTERS) {
            throw refuse(
              `the patterns of text-matching comparisons hold more than ${MAX_PATTERN_CHARACTERS} characters in all (position ${e.value.position})`,
              e.value.position,
              [],
            )
          }
        }
        const refs = e.op === 'null' ? [] : e.op === 'in' ? e.values : [e.value]
        return {
          op: e.op,
          hops,
          column: column.name,
          array: column.kind === 'array',
          values: refs.map((ref) => typed(column, e.op as ComparisonOperator, ref)),
        }
      }
    }
  }

  return {
    /** The fields a `query` names directly (relations also as `name.`, to follow them). */
    fields: columnsOf(def).names,
    /** Parses and checks a `query` parameter. */
    parse(text: string): Filter {
      if (text.includes('\u0000')) throw refuse('contains a NUL character', text.indexOf('\u0000'), [])
      patterns = 0
      patternCharacters = 0
      let tree: Expression
      try {
        tree = parseExpression(text, DEFAULT_EXPRESSION_LIMITS)
      } catch (err) {
        if (err instanceof ExpressionError) throw refuse(err.message, err.position, err.expected)
        throw err
      }
      return check(tree)
    },
  }
}

export type FilterParser = ReturnType<typeof compileFilter>
