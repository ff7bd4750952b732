import type { ComparisonOperator, Filter, Hop } from '../query/filter'

const SQL_OPERATOR: Partial<Record<ComparisonOperator, string>> = { eq: '=', ne: '<>', lt: '<', le: '<=', gt: '>', ge: '>=', like: 'LIKE', ilike: 'ILIKE' }

/**
 * The SQL of a `query` filter (core/query/filter.ts), for a WHERE clause of its resource's table, with its bindings in order, and
 * its shape (the SQL says it all: values are bound, never written into it).
 */
export function filterSql(filter: Filter): { sql: string; bindings: unknown[] } {
  const bindings: unknown[] = []
  const walk = (f: Filter): string => {
    switch (f.op) {
      case 'and':
      case 'or':
        return f.args.length === 1 ? walk(f.args[0]) : `(${f.args.map(walk).join(f.op === 'and' ? ' AND ' : ' OR ')})`
      case 'not':
        return `NOT coalesce(${walk(f.arg)}, false)`
      default: {
        // The `?` of the hops' scopes come before the comparison's, outermost first.
        for (const hop of f.hops) if (hop.scope) bindings.push(hop.scope[1])
        if (f.op !== 'null') bindings.push(...(f.array ? [JSON.stringify([f.values[0]])] : f.values))
        let sql = comparison(f)
        for (let i = f.hops.length - 1; i >= 0; i--) {
          const hop = f.hops[i]
          sql = `"${hop.column}" IN (SELECT "id" FROM "${hop.table}" WHERE ${hop.scope ? `"${hop.scope[0]}" = ? AND ` : ''}${sql})`
        }
        return sql
      }
    }
  }
  return { sql: walk(filter), bindings }
}

type Comparison = Extract<Filter, { hops: Hop[] }>

function comparison(f: Comparison): string {
  const column = `"${f.column}"`
  switch (f.op) {
    case 'null':
      return `${column} IS NULL`
    case 'in':
      return `${column} IN (${f.values.map(() => '?').join(', ')})`
    case 'contains':
      return f.array ? `${column} @> ?::jsonb` : `strpos(${column}, ?) > 0`
    case 'not_contains':
      return f.array ? `NOT (${column} @> ?::jsonb)` : `strpos(${column}, ?) = 0`
    default:
      return `${column} ${SQL_OPERATOR[f.op]} ?`
  }
}

/** A shape key of a filter: the same for two filters whose SQL is the same. */
export function filterShape(filter: Filter): string {
  switch (filter.op) {
    case 'and':
    case 'or':
      return `${filter.op}(${filter.args.map(filterShape).join(',')})`
    case 'not':
      return `not(${filterShape(filter.arg)})`
    default:
      return `${filter.op}(${filter.hops.map((h) => `${h.column}${h.scope ? '*' : ''}.`).join('')}${filter.column}${filter.array ? '[]' : ''},${filter.values.length})`
  }
}
