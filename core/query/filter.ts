import type Ajv from 'ajv'
import { ApiError } from '../errors'
import type { ResourceDefinition } from '../schema/types'
import { type Column, columnsOf, convert, MAX_VALUE_LENGTH } from './columns'
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

/** The operators each kind of field takes. */
function operatorsOf(column: Column): ComparisonOperator[] {
  if (column.kind === 'array') return ['contains', 'not_contains', 'null']
  const base: ComparisonOperator[] = ['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'in', 'null']
  return column.kind === 'string' ? [...base, 'like', 'ilike', 'contains', 'not_contains'] : base
}

/** A comparison that matches text against a pattern: what {@link MAX_PATTERN_COMPARISONS} counts. */
function matchesText(op: ComparisonOperator, column: Column): boolean {
  return column.kind === 'string' && (op === 'like' || op === 'ilike' || op === 'contains' || op === 'not_contains')
}

/**
 * Compiles, once per resource, the checker of its `query` expressions: parses the text, resolves each
 * field (its alias, and relations followed with dots, up to {@link MAX_RELATION_HOPS}) and converts each
 * value to the field's type. Every refusal is a 400 `invalid_query` whose payload gives the position
 * in the expression and what was expected there.
 */
export function compileFilter(def: ResourceDefinition, definitionOf: (name: string) => ResourceDefinition | undefined, ajv: Ajv) {
  const refuse = (message: string, position: number, expected: readonly string[]) =>
    new ApiError(400, `Invalid 'query' parameter: ${message}`, { position, expected: [...expected] }, {}, 'invalid_query')

  /** The hops and the column a field names, checked part by part. */
  const resolve = (ref: FieldRef): { hops: Hop[]; column: Column } => {
    let columns = columnsOf(def, ajv)
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
      columns = columnsOf(target, ajv)
      position += part.length + 1
    }
    // A path has at least one part (the parser sees to it).
    throw refuse('a field name', ref.position, columns.names)
  }

  const typed = (column: Column, op: ComparisonOperator, ref: ValueRef): unknown => {
    const raw = ref.text
    const max = op === 'eq' || op === 'ne' || op === 'in' ? column.maxLength : MAX_VALUE_LENGTH
    if (raw.length > max) throw refuse(`the value at position ${ref.position} is longer than ${max} characters`, ref.position, [`at most ${max} characters`])
    if (matchesText(op, column)) return raw.normalize('NFC')
    const itemKind = column.itemKind
    const value = convert(itemKind ?? column.kind, raw)
    const check = op === 'eq' || op === 'ne' || op === 'in' || column.kind === 'array' ? column.check : column.checkKind
    if (value === undefined || !check(value)) {
      const error = check.errors?.[0]?.message ?? `must be ${column.kind === 'array' ? itemKind : column.kind}`
      throw refuse(`'${raw.slice(0, 80)}' at position ${ref.position} is not a valid value for '${column.name}': ${error}`, ref.position, [
        `a ${column.kind === 'array' ? `${itemKind} item` : column.kind} value`,
      ])
    }
    return value
  }

  /** `spent`: the text-matching comparisons met so far in the expression, and their patterns' characters. */
  const check = (e: Expression, spent: { patterns: number; characters: number }): Filter => {
    switch (e.op) {
      case 'and':
      case 'or':
        return { op: e.op, args: e.args.map((arg) => check(arg, spent)) }
      case 'not':
        return { op: 'not', arg: check(e.arg, spent) }
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
        if (e.op !== 'in' && e.op !== 'null' && matchesText(e.op, column)) {
          if (++spent.patterns > MAX_PATTERN_COMPARISONS) {
            throw refuse(
              `more than ${MAX_PATTERN_COMPARISONS} text-matching comparisons (like, ilike, contains, not_contains) at position ${e.position}`,
              e.position,
              [],
            )
          }
          spent.characters += e.value.text.length
          if (spent.characters > MAX_PATTERN_CHARACTERS) {
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
    fields: columnsOf(def, ajv).names,
    /** Parses and checks a `query` parameter. */
    parse(text: string): Filter {
      if (text.includes('\u0000')) throw refuse('contains a NUL character', text.indexOf('\u0000'), [])
      let tree: Expression
      try {
        tree = parseExpression(text, DEFAULT_EXPRESSION_LIMITS)
      } catch (err) {
        if (err instanceof ExpressionError) throw refuse(err.message, err.position, err.expected)
        throw err
      }
      return check(tree, { patterns: 0, characters: 0 })
    },
  }
}

export type FilterParser = ReturnType<typeof compileFilter>
