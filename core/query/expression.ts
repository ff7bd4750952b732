/**
 * The grammar of the `query` list parameter, parsed into a tree with the position of every part:
 *
 *     expr       := logic | comparison
 *     logic      := ("and" | "or") "(" expr ("," expr)* ")" | "not" "(" expr ")"
 *     comparison := op "(" field "," value ")"          op: eq ne lt le gt ge like ilike contains not_contains
 *                 | "in" "(" field ("," value)+ ")"
 *                 | "null" "(" field ")"
 *     field      := name ("." name)*                    name: [A-Za-z_][A-Za-z0-9_]*
 *     value      := a run of characters but , ( ) " and white space | a "quoted" string (\" and \\ escape)
 *
 * White space between the parts is allowed. The parser reads each character once (a loop over the
 * text, recursion only per nested expression, bounded by `maxDepth`), so its time is linear in the
 * input. It knows no schema: names are checked by {@link compileFilter} (core/query/filter.ts).
 */

/** The comparison operators that take a field and one value. */
export const BINARY_OPERATORS = ['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'like', 'ilike', 'contains', 'not_contains'] as const
export type BinaryOperator = (typeof BINARY_OPERATORS)[number]
/** Every operator, in the order error messages list them. */
export const OPERATORS = ['and', 'or', 'not', ...BINARY_OPERATORS, 'in', 'null'] as const
export type Operator = (typeof OPERATORS)[number]

/** A field as written (`componenttype.name`), at `position` (0-based character offset). */
export interface FieldRef {
  path: string[]
  position: number
}

/** A value as written, unquoted and unescaped. */
export interface ValueRef {
  text: string
  position: number
}

export type Expression =
  | { op: 'and' | 'or'; args: Expression[]; position: number }
  | { op: 'not'; arg: Expression; position: number }
  | { op: BinaryOperator; field: FieldRef; value: ValueRef; position: number }
  | { op: 'in'; field: FieldRef; values: ValueRef[]; position: number }
  | { op: 'null'; field: FieldRef; position: number }

/** What the parser refuses: the problem, where, and what it expected there. */
export class ExpressionError extends Error {
  constructor(
    message: string,
    readonly position: number,
    readonly expected: readonly string[] = [],
  ) {
    super(message)
  }
}

export interface ExpressionLimits {
  /** Most comparisons (each value of `in` counts as one). */
  maxComparisons: number
  /** Most nesting levels (a lone comparison is depth 1). */
  maxDepth: number
}

export const DEFAULT_EXPRESSION_LIMITS: ExpressionLimits = { maxComparisons: 50, maxDepth: 8 }

const NAME_START = /[A-Za-z_]/
const NAME_PART = /[A-Za-z0-9_]/
const SPACE = /\s/
/** Characters that end an unquoted value. */
const VALUE_END = new Set([',', '(', ')', '"'])

/** Parses a `query` expression; throws an {@link ExpressionError} at the first problem. */
export function parseExpression(text: string, limits: ExpressionLimits = DEFAULT_EXPRESSION_LIMITS): Expression {
  let at = 0
  let comparisons = 0

  const describe = (position: number) => (position >= text.length ? 'the end' : `'${text.slice(position, position + 12)}'`)
  const fail = (what: string, expected: readonly string[] = [], position = at): never => {
    throw new ExpressionError(`expected ${what} at position ${position}, found ${describe(position)}`, position, expected)
  }
  const skipSpace = () => {
    while (at < text.length && SPACE.test(text[at])) at++
  }
  const expect = (char: string) => {
    skipSpace()
    if (text[at] !== char) fail(`'${char}'`, [char])
    at++
  }
  const name = (): string => {
    const start = at
    if (at < text.length && NAME_START.test(text[at])) {
      at++
      while (at < text.length && NAME_PART.test(text[at])) at++
    }
    return text.slice(start, at)
  }
  const field = (): FieldRef => {
    skipSpace()
    const position = at
    const path: string[] = []
    for (;;) {
      const part = name()
      if (!part) fail(path.length ? 'a field name after the dot' : 'a field name')
      path.push(part)
      if (text[at] !== '.') break
      at++
    }
    return { path, position }
  }
  const value = (): ValueRef => {
    skipSpace()
    const position = at
    if (text[at] === '"') {
      at++
      let out = ''
      for (;;) {
        if (at >= text.length) fail("the closing '\"' of the value opened", ['"'])
        const c = text[at]
        if (c === '"') {
          at++
          return { text: out, position }
        }
        if (c === '\\') {
          const next = text[at + 1]
          if (next !== '"' && next !== '\\') fail("'\\\"' or '\\\\' after a backslash in a quoted value", ['\\"', '\\\\'], at)
          out += next
          at += 2
        } else {
          out += c
          at++
        }
      }
    }
    while (at < text.length && !VALUE_END.has(text[at]) && !SPACE.test(text[at])) at++
    if (at === position) fail('a value (in double quotes when it holds , ( ) " or spaces)', ['value'])
    return { text: text.slice(position, at), position }
  }
  const counted = (n = 1) => {
    comparisons += n
    if (comparisons > limits.maxComparisons) {
      throw new ExpressionError(`more than ${limits.maxComparisons} comparisons`, at, [])
    }
  }

  const expression = (depth: number): Expression => {
    skipSpace()
    const position = at
    const op = name()
    if (!(OPERATORS as readonly string[]).includes(op)) fail('an operator', OPERATORS, position)
    if (depth > limits.maxDepth) throw new ExpressionError(`nested deeper than ${limits.maxDepth} levels`, position, [])
    expect('(')
    let node: Expression
    switch (op as Operator) {
      case 'and':
      case 'or': {
        const args = [expression(depth + 1)]
        skipSpace()
        while (text[at] === ',') {
          at++
          args.push(expression(depth + 1))
          skipSpace()
        }
        node = { op: op as 'and' | 'or', args, position }
        break
      }
      case 'not':
        node = { op: 'not', arg: expression(depth + 1), position }
        break
      case 'null':
        counted()
        node = { op: 'null', field: field(), position }
        break
      case 'in': {
        const f = field()
        expect(',')
        const values = [value()]
        skipSpace()
        while (text[at] === ',') {
          at++
          values.push(value())
          skipSpace()
        }
        counted(values.length)
        node = { op: 'in', field: f, values, position }
        break
      }
      default: {
        counted()
        const f = field()
        expect(',')
        node = { op: op as BinaryOperator, field: f, value: value(), position }
      }
    }
    skipSpace()
    if (text[at] !== ')') {
      // After a list (of expressions or of values) another item could come too.
      const list = node.op === 'and' || node.op === 'or' || node.op === 'in'
      fail(list ? "',' or ')'" : "')'", list ? [',', ')'] : [')'])
    }
    at++
    return node
  }

  const tree = expression(1)
  skipSpace()
  if (at < text.length) fail('the end of the expression', [])
  return tree
}
