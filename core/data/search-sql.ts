import type { SearchIndex } from '../schema/derive'

/**
 * The SQL of `q` on a resource's full-text index (core/schema/derive.ts, `searchIndex`), each with one
 * `?` for the words: whether a row matches, and how well. Both use the index's own `tsvector`
 * expression, written exactly as in the index, so PostgreSQL answers `matches` from the index.
 * `websearch_to_tsquery` reads any text without a syntax error: quotes make a phrase, `-` excludes a
 * word, `or` joins alternatives, other punctuation separates words.
 */
export function searchSql(index: SearchIndex): { matches: string; rank: string } {
  const query = `websearch_to_tsquery('${index.config}', ?)`
  return { matches: `${index.vector} @@ ${query}`, rank: `ts_rank(${index.vector}, ${query})` }
}
