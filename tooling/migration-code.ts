/** Pieces of the TypeScript a generated migration is written in, shared by the generator and its orphan-table steps. */

/** A TypeScript literal for a JSON value, strings in single quotes. */
export function literal(value: unknown): string {
  if (typeof value === 'string') return `'${JSON.stringify(value).slice(1, -1).replace(/\\"/g, '"').replace(/'/g, "\\'")}'`
  return JSON.stringify(value)
}

/** `await knex.raw('...')`: a statement knex's table builder cannot write (these lines go outside a table block). */
export const raw = (sql: string) => `await knex.raw(${literal(sql)})`
