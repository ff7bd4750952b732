import type Ajv from 'ajv'
import { errors } from '../errors'
import { answeredFields, ENGINE_FIELDS, fieldAliases, searchIndex, type SearchIndex } from '../schema/derive'
import type { ResourceDefinition } from '../schema/types'
import { schemaAjv } from '../schema/vocabulary'
import { columnsOf, convert, MAX_VALUE_LENGTH } from './columns'
import { decodeCursor, type Keyset, listDigest } from './cursor'
import { compileFilter, type Filter } from './filter'

/** Limits that bound what one list request may cost. */
export interface ListLimits {
  defaultLimit: number
  maxLimit: number
  maxOffset: number
}

/** Longest `where` value (characters), or the field's own `maxLength` when smaller. */
export const MAX_WHERE_VALUE_LENGTH = MAX_VALUE_LENGTH
/** Longest `where`, `query`, `sort`, `embed`, `fields` or `q` parameter (characters). */
export const MAX_PARAMETER_LENGTH = 8_192
/**
 * Most words in `q` (a word: a run of letters and digits). Each word costs a lookup per candidate row
 * when PostgreSQL matches and ranks, so thousands of them (`a or b or c...`) would cost seconds.
 */
export const MAX_SEARCH_WORDS = 32
/** Most clauses of one `where` (each field may appear once anyway). */
export const MAX_WHERE_CLAUSES = 32

export type SortDirection = 'asc' | 'desc'

/** A parsed, checked list request: every field name in it is a known column. */
export interface ListQuery {
  where: Array<[field: string, value: string | number | boolean]>
  sort: Array<[field: string, direction: SortDirection]>
  limit: number
  offset: number
  embed: string[]
  /** The `query` expression, checked, ANDed with `where`. */
  filter?: Filter
  /** `fields`: the keys to answer (see {@link FieldSelection}); all when absent. */
  fields?: FieldSelection
  /**
   * `q`: the words to look for in the `x-search` fields (NFC), and the index they are looked up with.
   * With it and no `sort` given, `sort` is empty: rows come by relevance, then `id`.
   */
  search?: { text: string; index: SearchIndex }
  /**
   * How `_meta.count` is computed: `estimate` (the default) counts exactly up to a threshold and
   * estimates above it; `exact` always counts every matching row; `none` leaves it out (the page
   * costs one statement).
   */
  count?: CountMode
  /**
   * Keyset paging (core/query/cursor.ts): which list this is, so its pages carry a cursor of their
   * last row (`_meta.next`), and with `after`, the row the page starts after. Lists parsed from a
   * request have it; a list without it is paged by offset only.
   */
  keyset?: Keyset
}

/**
 * The keys a `fields` parameter keeps in each answered row (`id` and `etag` always), and, by embedded
 * relation, those it keeps in the embedded row.
 */
export interface FieldSelection {
  keys: ReadonlySet<string>
  embedded: ReadonlyMap<string, ReadonlySet<string>>
}

/** A row with only the keys of `selection` (an embedded row: only its own selected keys). */
export function selectFields<R extends Record<string, unknown>>(row: R, selection: FieldSelection): R {
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(row)) {
    if (!selection.keys.has(key)) continue
    const inner = selection.embedded.get(key)
    const value = row[key]
    out[key] =
      inner && value !== null && typeof value === 'object' ? selectFields(value as Record<string, unknown>, { keys: inner, embedded: new Map() }) : value
  }
  return out as R
}

/** The values of the `count` list parameter. */
export const COUNT_MODES = ['estimate', 'exact', 'none'] as const
export type CountMode = (typeof COUNT_MODES)[number]

/** Query parameters as koa gives them: repeated keys arrive as arrays. */
export type RawQuery = Record<string, string | string[] | undefined>

/** A scalar a `where` clause compares with. */
export type WhereValue = string | number | boolean

/**
 * The list parameters as in-process callers give them: each either as the query string writes it
 * (`where: 'name:rhel'`) or structured (`where: { name: 'rhel' }`, `sort: ['-name']`, `limit: 5`).
 * Both are checked exactly as the query string is.
 */
export interface FindQuery {
  where?: string | Record<string, WhereValue>
  sort?: string | string[]
  limit?: number | string
  offset?: number | string
  embed?: string | string[]
  /** Keys to answer (`id` and `etag` always): `name,componenttype.name` (a dotted one inside an embed). */
  fields?: string | string[]
  count?: CountMode
  /** A `query` expression: `and(eq(name,rhel),gt(created_at,2024-01-01T00:00:00Z))`. */
  query?: string
  /** The cursor of a page (its `_meta.next`): the page that follows it, with the same where, query, sort and limit. */
  after?: string
  /** Words to search the `x-search` fields for (PostgreSQL's `websearch_to_tsquery`: `"a phrase"`, `-not`, `or`). */
  q?: string
}

/** A {@link FindQuery} as the query string would carry it, for the one parser. */
export function toRawQuery(query: FindQuery | RawQuery): RawQuery {
  // No prototype: a "__proto__" key stays a key, which the parser refuses as unknown.
  const raw: RawQuery = Object.create(null)
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined) continue
    if (key === 'where' && value !== null && typeof value === 'object' && !Array.isArray(value)) {
      raw.where = Object.entries(value as Record<string, WhereValue>)
        .filter(([, v]) => v !== undefined)
        .map(([field, v]) => {
          // The grammar splits clauses on commas: such a value would silently become another filter.
          if (String(v).includes(',')) throw errors.badParameter('where', `the value of '${field}' contains a comma`)
          return `${field}:${String(v)}`
        })
        .join(',')
    } else if ((key === 'sort' || key === 'embed' || key === 'fields') && Array.isArray(value)) raw[key] = value.join(',')
    else raw[key] = typeof value === 'number' ? String(value) : (value as string | string[])
  }
  return raw
}

export const LIST_PARAMETERS = ['where', 'query', 'q', 'sort', 'limit', 'offset', 'after', 'embed', 'fields', 'count'] as const
export const DETAIL_PARAMETERS = ['embed', 'fields'] as const

/** The parameter value, or a 400 when it was given more than once. */
function single(query: RawQuery, name: string): string | undefined {
  const value = query[name]
  if (Array.isArray(value)) throw errors.badParameter(name, 'given more than once')
  return value
}

/** The parameter value, or a 400 when it is longer than {@link MAX_PARAMETER_LENGTH}. */
function bounded(value: string | undefined, name: string): string | undefined {
  if (value !== undefined && value.length > MAX_PARAMETER_LENGTH) {
    throw errors.badParameter(name, `longer than ${MAX_PARAMETER_LENGTH} characters`, { max_length: MAX_PARAMETER_LENGTH })
  }
  return value
}

function nonNegativeInteger(name: string, raw: string, max: number): number {
  if (!/^\d{1,15}$/.test(raw)) throw errors.badParameter(name, `'${raw.slice(0, 40)}' is not a non-negative integer`, { max })
  const n = Number(raw)
  if (n > max) throw errors.badParameter(name, `${n} is over the maximum of ${max}`, { max })
  return n
}

/**
 * Compiles, once per resource, the parser of its list parameters. Every field name is checked against
 * the schema (allowlist) and every `where` value against the field's own JSON Schema, so nothing a
 * client sends reaches knex as an identifier.
 */
export function compileListQuery(
  def: ResourceDefinition,
  limits: ListLimits,
  ajv: Ajv = schemaAjv(),
  definitionOf: (name: string) => ResourceDefinition | undefined = (name) => (name === def.name ? def : undefined),
) {
  const filter = compileFilter(def, definitionOf, ajv)
  // `where` and `sort` take the scalar columns, a field's alias for the field itself.
  const columns = columnsOf(def, ajv)
  const scalar = (name: string) => {
    const column = columns.byName.get(name)
    return column && column.kind !== 'array' ? column : undefined
  }
  const fieldNames = columns.scalars
  const relations = def.fields.filter((f) => f.relation).map((f) => f.name)
  // Answered object and array fields are known, but neither compared nor ordered: say so, not "unknown".
  const structured = new Set(def.fields.filter((f) => f.kind === 'json' && !f.hidden).map((f) => f.name))
  const unknownField = (parameter: 'where' | 'sort', name: string) =>
    structured.has(name)
      ? errors.badParameter(parameter, `field '${name}' is an object or array, which cannot be ${parameter === 'where' ? 'filtered' : 'sorted'} on`, {
          field: name,
          fields: fieldNames,
        })
      : errors.badParameter(parameter, `unknown field '${name.slice(0, 80)}'`, { fields: fieldNames })

  function parseWhere(raw: string): ListQuery['where'] {
    if (raw.includes('\u0000')) throw errors.badParameter('where', 'contains a NUL character')
    const clauses = raw.split(',')
    if (clauses.length > MAX_WHERE_CLAUSES) {
      throw errors.badParameter('where', `${clauses.length} clauses are more than the maximum of ${MAX_WHERE_CLAUSES}`, { max_clauses: MAX_WHERE_CLAUSES })
    }
    const seen = new Set<string>()
    const parsed = clauses.map((clause): [string, WhereValue] => {
      const colon = clause.indexOf(':')
      if (colon <= 0) throw errors.badParameter('where', `'${clause.slice(0, 80)}' is not of the form field:value`, { fields: fieldNames })
      const sent = clause.slice(0, colon)
      const value = clause.slice(colon + 1)
      const field = scalar(sent)
      if (!field) throw unknownField('where', sent)
      const name = field.name
      // A field compares with one value: a second clause of it is a mistake or a way to cost more.
      if (seen.has(name)) throw errors.badParameter('where', `field '${sent}' is given twice`, { field: sent })
      seen.add(name)
      const max = field.maxLength
      if (value.length > max) {
        throw errors.badParameter('where', `the value of '${sent}' is longer than ${max} characters`, { field: sent, max_length: max })
      }
      const converted = convert(field.kind, value)
      if (converted === undefined || !field.check(converted)) {
        throw errors.badParameter('where', `'${value.slice(0, 80)}' is not a valid value for '${sent}'`, {
          field: sent,
          error: field.check.errors?.[0]?.message ?? `must be ${field.kind}`,
        })
      }
      return [name, converted]
    })
    // One shape per set of fields, whatever their order: the statement cache keeps fewer shapes.
    return parsed.length > 1 ? parsed.sort(([a], [b]) => (a < b ? -1 : 1)) : parsed
  }

  function parseSort(raw: string): ListQuery['sort'] {
    const seen = new Set<string>()
    return raw.split(',').map((item) => {
      const desc = item.startsWith('-')
      const sent = desc ? item.slice(1) : item
      const name = scalar(sent)?.name
      if (name === undefined) throw unknownField('sort', sent)
      if (seen.has(name)) throw errors.badParameter('sort', `field '${sent}' is given twice`, { fields: fieldNames })
      seen.add(name)
      return [name, desc ? 'desc' : 'asc']
    })
  }

  function parseEmbed(raw: string | undefined): string[] {
    if (raw === undefined || raw === '') return []
    const names = [...new Set(raw.split(','))]
    for (const name of names) {
      if (!relations.includes(name)) throw errors.badParameter('embed', `'${name.slice(0, 80)}' is not a relation of ${def.plural}`, { relations })
    }
    return names
  }

  // The keys an answered row has: the engine's, the schema's but write-only ones, and the aliases.
  const answeredKeys = (d: ResourceDefinition) => [
    ...ENGINE_FIELDS.map((f) => f.name),
    ...answeredFields(d).map((f) => f.name),
    ...fieldAliases(d).map(([, alias]) => alias),
  ]
  const ownKeys = answeredKeys(def)
  const relatedKeys = new Map(
    def.fields
      .filter((f) => f.relation)
      .map((f) => {
        const target = definitionOf(f.relation!.resource)
        return [f.name, target ? answeredKeys(target) : ['id', 'etag']] as const
      }),
  )

  function parseFields(raw: string | undefined, embed: readonly string[]): FieldSelection | undefined {
    if (raw === undefined || raw === '') return undefined
    const keys = new Set(['id', 'etag'])
    const embedded = new Map<string, Set<string>>()
    for (const name of raw.split(',')) {
      const dot = name.indexOf('.')
      if (dot < 0) {
        if (!ownKeys.includes(name)) throw errors.badParameter('fields', `unknown field '${name.slice(0, 80)}' of ${def.plural}`, { fields: ownKeys })
        keys.add(name)
        continue
      }
      const relation = name.slice(0, dot)
      const inner = name.slice(dot + 1)
      const valid = relatedKeys.get(relation)
      if (!valid) throw errors.badParameter('fields', `'${relation.slice(0, 80)}' is not a relation of ${def.plural}`, { relations })
      if (!embed.includes(relation)) {
        throw errors.badParameter('fields', `'${name.slice(0, 80)}' selects inside an embedded ${relation}: add embed=${relation}`, { embed: relation })
      }
      if (!valid.includes(inner)) throw errors.badParameter('fields', `unknown field '${inner.slice(0, 80)}' of the embedded ${relation}`, { fields: valid })
      keys.add(relation)
      let set = embedded.get(relation)
      if (!set) embedded.set(relation, (set = new Set(['id', 'etag'])))
      set.add(inner)
    }
    return { keys, embedded }
  }

  const search = searchIndex(def)
  const searchable = search?.fields ?? []
  const WORD = /[\p{L}\p{N}]+/gu

  /** `q`: the text PostgreSQL reads as a web search (`websearch_to_tsquery`, which takes any text). */
  function parseSearch(raw: string): NonNullable<ListQuery['search']> {
    if (!search) throw errors.badParameter('q', `${def.plural} have no searchable field (none is marked "x-search")`, { fields: [] })
    if (raw.includes('\u0000')) throw errors.badParameter('q', 'contains a NUL character')
    const words = raw.match(WORD)?.length ?? 0
    // Without a letter or a digit, PostgreSQL's parser finds no word, and the search would match nothing.
    if (words === 0) throw errors.badParameter('q', 'has no word to search for (letters or digits)', { fields: searchable })
    if (words > MAX_SEARCH_WORDS) {
      throw errors.badParameter('q', `${words} words are more than the maximum of ${MAX_SEARCH_WORDS}`, { max_words: MAX_SEARCH_WORDS })
    }
    return { text: raw.normalize('NFC'), index: search }
  }

  function checkKnown(query: RawQuery, allowed: readonly string[]): void {
    for (const key of Object.keys(query)) {
      if (!allowed.includes(key)) throw errors.unknownParameter(key.slice(0, 80), [...allowed])
    }
  }

  return {
    fields: fieldNames,
    relations,
    /** The keys `fields` takes: the answered ones, and those of embedded relations (`componenttype.name`). */
    selectable: [...ownKeys, ...[...relatedKeys].flatMap(([relation, keys]) => keys.map((k) => `${relation}.${k}`))],
    /** The fields of `query` (relations also as `name.`, followed by a field of the related resource). */
    queryFields: filter.fields,
    /** The fields `q` searches (`x-search`), in schema order; none when the resource takes no `q`. */
    searchable,

    /** Parses the query string of a list request; throws a 400 {@link ApiError} naming the bad key. */
    parseList(query: RawQuery): ListQuery {
      checkKnown(query, LIST_PARAMETERS)
      const where = bounded(single(query, 'where'), 'where')
      const expression = bounded(single(query, 'query'), 'query')
      const sort = bounded(single(query, 'sort'), 'sort')
      const q = bounded(single(query, 'q'), 'q')
      const limit = single(query, 'limit')
      const offset = single(query, 'offset')
      const count = single(query, 'count')
      if (count !== undefined && !(COUNT_MODES as readonly string[]).includes(count)) {
        throw errors.badParameter('count', `'${count.slice(0, 40)}' is not one of ${COUNT_MODES.join(', ')}`, { values: [...COUNT_MODES] })
      }
      const parsed: ListQuery = {
        where: where === undefined || where === '' ? [] : parseWhere(where),
        sort: sort === undefined || sort === '' ? [['created_at', 'asc']] : parseSort(sort),
        limit: limit === undefined ? limits.defaultLimit : nonNegativeInteger('limit', limit, limits.maxLimit),
        offset: offset === undefined ? 0 : nonNegativeInteger('offset', offset, limits.maxOffset),
        embed: parseEmbed(bounded(single(query, 'embed'), 'embed')),
        count: (count as CountMode | undefined) ?? 'estimate',
      }
      if (expression !== undefined && expression !== '') parsed.filter = filter.parse(expression)
      // Any q on a resource without searchable fields is refused, an empty one too; else an empty q searches nothing.
      if (q !== undefined && (q !== '' || !search)) {
        parsed.search = parseSearch(q)
        if (sort === undefined || sort === '') parsed.sort = []
      }
      const after = single(query, 'after')
      if (parsed.search && parsed.sort.length === 0) {
        // Ranked by relevance, a list is paged by offset: the rank is a float the database computes,
        // which a cursor would not carry exactly.
        if (after !== undefined) throw errors.badParameter('after', 'cannot page a search ranked by relevance: give a sort to page by cursor, or use offset')
      } else {
        // The list a cursor pages, as the client asked for it (access control adds its own filters later).
        const list = listDigest([def.name, parsed.where, parsed.filter ?? null, parsed.search?.text ?? null, parsed.sort, parsed.limit])
        parsed.keyset = { list }
        if (after !== undefined) {
          if (offset !== undefined) throw errors.badParameter('after', 'cannot be given with offset: a page starts after a cursor or at an offset')
          parsed.keyset.after = decodeCursor(after, list, keysetOrder(parsed.sort), columns)
        }
      }
      const fields = parseFields(bounded(single(query, 'fields'), 'fields'), parsed.embed)
      if (fields) parsed.fields = fields
      return parsed
    },

    /** Parses the query string of a detail request (`embed` and `fields` are allowed there). */
    parseDetail(query: RawQuery): { embed: string[]; fields?: FieldSelection } {
      checkKnown(query, DETAIL_PARAMETERS)
      const embed = parseEmbed(bounded(single(query, 'embed'), 'embed'))
      const fields = parseFields(bounded(single(query, 'fields'), 'fields'), embed)
      return fields ? { embed, fields } : { embed }
    },
  }
}

export type ListQueryParser = ReturnType<typeof compileListQuery>

/** The order of a list's rows: its sort, then the id (unless the sort has it), which makes it total. */
export function keysetOrder(sort: ListQuery['sort']): ListQuery['sort'] {
  return sort.some(([field]) => field === 'id') ? sort : [...sort, ['id', 'asc']]
}
