import { SEARCH_COLUMN, type SearchIndex } from '../schema/derive'

/**
 * The SQL of `q` on a resource's full-text index (core/schema/derive.ts, `searchIndex`), each with one
 * `?` for the words: whether a row matches, and how well. Both read the stored `tsvector` column the
 * GIN index is on: PostgreSQL answers `matches` from the index, and neither parses a row's text (a
 * phrase's recheck and the rank read the stored vector).
 * `websearch_to_tsquery` reads any text without a syntax error: quotes make a phrase, `-` excludes a
 * word, `or` joins alternatives, other punctuation separates words.
 */
export function searchSql(index: SearchIndex): { matches: string; rank: string } {
  const query = `websearch_to_tsquery('${index.config}', ?)`
  return { matches: `"${SEARCH_COLUMN}" @@ ${query}`, rank: `ts_rank("${SEARCH_COLUMN}", ${query})` }
}
