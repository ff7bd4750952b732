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
  /** The embed paths: each once, after the paths it implies (`embed=a.b` gives `['a', 'a.b']`); see {@link embedPaths}. */
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
 * relation, the selection it makes in the embedded row (itself nested for a nested embed).
 */
export interface FieldSelection {
  keys: ReadonlySet<string>
  embedded: ReadonlyMap<string, FieldSelection>
}

/** A row with only the keys of `selection` (an embedded row: only its own selected keys, at every depth). */
export function selectFields<R extends Record<string, unknown>>(row: R, selection: FieldSelection): R {
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(row)) {
    if (!selection.keys.has(key)) continue
    const inner = selection.embedded.get(key)
    const value = row[key]
    out[key] = inner && value !== null && typeof value === 'object' ? selectFields(value as Record<string, unknown>, inner) : value
  }
  return out as R
}

/** Most relations one `embed` path follows: `embed=a.b.c` is the deepest. */
export const MAX_EMBED_DEPTH = 3
/** Most paths one `embed` parameter embeds, counting those a dotted path implies (`a.b` embeds `a` too). */
export const MAX_EMBED_PATHS = 32

/**
 * The paths an `embed` value names, each after the paths it implies (`a.b.c` embeds `a` and `a.b`),
 * each once, in the order given: a parent always comes before its children. Checks nothing (see
 * the parser's `parseEmbed`).
 */
export function embedPaths(raw: string): string[] {
  const sent = raw.split(',')
  if (!raw.includes('.')) return sent.length === 1 ? sent : [...new Set(sent)]
  const paths = new Set<string>()
  for (const path of sent) {
    for (let dot = path.indexOf('.'); dot >= 0; dot = path.indexOf('.', dot + 1)) paths.add(path.slice(0, dot))
    paths.add(path)
  }
  return [...paths]
}

/**
 * The resource an embed path leads to from `def` (`component.componenttype` from probes: componenttype).
 * For paths the parser checked: a step that is no relation throws.
 */
export function embedTarget(def: ResourceDefinition, path: string, definitionOf: (name: string) => ResourceDefinition): ResourceDefinition {
  let reached = def
  let start = 0
  for (;;) {
    const dot = path.indexOf('.', start)
    const relation = reached.fields.find((f) => f.name === (dot < 0 ? path.slice(start) : path.slice(start, dot)))?.relation
    if (!relation) throw new Error(`'${path}' is no embed path of ${def.plural}`)
    reached = definitionOf(relation.resource)
    if (dot < 0) return reached
    start = dot + 1
  }
}

/**
 * The value at an embed path of a row (`a.b`: the row embedded under `b` of the row embedded under
 * `a`), or undefined when a step on the way is null or not embedded.
 */
export function embeddedAt(row: Record<string, unknown>, path: string): Record<string, unknown> | undefined {
  let value: unknown = row
  let start = 0
  for (;;) {
    const dot = path.indexOf('.', start)
    value = (value as Record<string, unknown>)[dot < 0 ? path.slice(start) : path.slice(start, dot)]
    if (value === null || typeof value !== 'object') return undefined
    if (dot < 0) return value as Record<string, unknown>
    start = dot + 1
  }
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
  /** Relations to embed: `componenttype`, or a dotted path (`component.componenttype`) that embeds each level. */
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

  // The relations of a resource an embed path reaches, by field: the related resource (undefined when
  // none is registered under that name, which nothing follows). Made once per resource reached.
  const relationTargets = new Map<string, ReadonlyMap<string, ResourceDefinition | undefined>>()
  const targetsOf = (d: ResourceDefinition) => {
    let targets = relationTargets.get(d.name)
    if (!targets) {
      targets = new Map(d.fields.filter((f) => f.relation).map((f) => [f.name, definitionOf(f.relation!.resource)] as const))
      relationTargets.set(d.name, targets)
    }
    return targets
  }
  const relationsAt = (d: ResourceDefinition | undefined) => (d ? [...targetsOf(d).keys()] : [])

  function parseEmbed(raw: string | undefined): string[] {
    if (raw === undefined || raw === '') return []
    // Too deep a path is refused before its prefixes are made (a path of n steps makes n of them).
    if (raw.includes('.')) {
      for (const path of raw.split(',')) {
        if (path.split('.', MAX_EMBED_DEPTH + 1).length > MAX_EMBED_DEPTH) {
          throw errors.badParameter('embed', `'${path.slice(0, 240)}' follows more than ${MAX_EMBED_DEPTH} relations`, { max_depth: MAX_EMBED_DEPTH })
        }
      }
    }
    const paths = embedPaths(raw)
    // Parents come before their children: each path is checked as one relation of its parent's resource.
    const reached = new Map<string, ResourceDefinition | undefined>()
    for (const path of paths) {
      const dot = path.lastIndexOf('.')
      const parentPath = dot < 0 ? undefined : path.slice(0, dot)
      const parent = parentPath === undefined ? def : reached.get(parentPath)
      const name = path.slice(dot + 1)
      const targets = parent && targetsOf(parent)
      if (!targets?.has(name)) {
        if (parentPath === undefined) throw errors.badParameter('embed', `'${name.slice(0, 80)}' is not a relation of ${def.plural}`, { relations })
        const valid = relationsAt(parent)
        throw errors.badParameter(
          'embed',
          `'${name.slice(0, 80)}' of '${parentPath.slice(0, 240)}' is not a relation of ${parent ? parent.plural : 'an unknown resource'}`,
          { path: parentPath, relations: valid },
        )
      }
      reached.set(path, targets.get(name))
    }
    if (paths.length > MAX_EMBED_PATHS) {
      throw errors.badParameter('embed', `${paths.length} paths (with those the dotted ones imply) are more than the maximum of ${MAX_EMBED_PATHS}`, {
        max_paths: MAX_EMBED_PATHS,
      })
    }
    return paths
  }

  // The keys an answered row has: the engine's, the schema's but write-only ones, and the aliases.
  const answeredKeys = (d: ResourceDefinition) => [
    ...ENGINE_FIELDS.map((f) => f.name),
    ...answeredFields(d).map((f) => f.name),
    ...fieldAliases(d).map(([, alias]) => alias),
  ]
  const ownKeys = answeredKeys(def)
  const keysByResource = new Map<string, readonly string[]>([[def.name, ownKeys]])
  const keysOf = (d: ResourceDefinition | undefined): readonly string[] => {
    if (!d) return ['id', 'etag']
    let keys = keysByResource.get(d.name)
    if (!keys) keysByResource.set(d.name, (keys = answeredKeys(d)))
    return keys
  }

  /**
   * Every embed path of this resource up to {@link MAX_EMBED_DEPTH} relations, parents first, with the
   * resource it reaches; undefined when there are more than `max`.
   */
  function allEmbedPaths(max: number): Array<[path: string, target: ResourceDefinition | undefined]> | undefined {
    const out: Array<[string, ResourceDefinition | undefined]> = []
    const walk = (d: ResourceDefinition, prefix: string, depth: number): boolean => {
      for (const [name, target] of targetsOf(d)) {
        if (out.push([`${prefix}${name}`, target]) > max) return false
        if (depth < MAX_EMBED_DEPTH && target && !walk(target, `${prefix}${name}.`, depth + 1)) return false
      }
      return true
    }
    return walk(def, '', 1) ? out : undefined
  }

  type MutableSelection = { keys: Set<string>; embedded: Map<string, MutableSelection> }

  function parseFields(raw: string | undefined, embed: readonly string[]): FieldSelection | undefined {
    if (raw === undefined || raw === '') return undefined
    const root: MutableSelection = { keys: new Set(['id', 'etag']), embedded: new Map() }
    for (const name of raw.split(',')) {
      if (!name.includes('.')) {
        if (!ownKeys.includes(name)) throw errors.badParameter('fields', `unknown field '${name.slice(0, 80)}' of ${def.plural}`, { fields: ownKeys })
        root.keys.add(name)
        continue
      }
      // `a.b.key`: `a` and `a.b` are relations, embedded, of the resource reached so far; `key` one of its keys.
      const parts = name.split('.')
      let selection = root
      let reached: ResourceDefinition | undefined = def
      let path = ''
      for (let i = 0; i < parts.length - 1; i++) {
        const relation = parts[i]
        const targets: ReadonlyMap<string, ResourceDefinition | undefined> | undefined = reached && targetsOf(reached)
        if (!targets?.has(relation)) {
          if (i === 0) throw errors.badParameter('fields', `'${relation.slice(0, 80)}' is not a relation of ${def.plural}`, { relations })
          throw errors.badParameter('fields', `'${relation.slice(0, 80)}' is not a relation of the embedded ${path}`, { relations: relationsAt(reached) })
        }
        path = i === 0 ? relation : `${path}.${relation}`
        if (i >= MAX_EMBED_DEPTH) {
          throw errors.badParameter('fields', `'${name.slice(0, 240)}' selects deeper than ${MAX_EMBED_DEPTH} embedded relations`, {
            max_depth: MAX_EMBED_DEPTH,
          })
        }
        if (!embed.includes(path)) {
          throw errors.badParameter('fields', `'${name.slice(0, 240)}' selects inside an embedded ${path}: add embed=${path}`, { embed: path })
        }
        selection.keys.add(relation)
        let inner = selection.embedded.get(relation)
        if (!inner) selection.embedded.set(relation, (inner = { keys: new Set(['id', 'etag']), embedded: new Map() }))
        selection = inner
        reached = targets.get(relation)
      }
      const key = parts[parts.length - 1]
      const valid = keysOf(reached)
      if (!valid.includes(key)) throw errors.badParameter('fields', `unknown field '${key.slice(0, 80)}' of the embedded ${path}`, { fields: valid })
      selection.keys.add(key)
    }
    return root
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
    /**
     * The embed paths, up to {@link MAX_EMBED_DEPTH} relations (`component`, `component.componenttype`),
     * parents first; undefined when there are more than `max`.
     */
    embedPaths: (max: number) => allEmbedPaths(max)?.map(([path]) => path),
    /**
     * The keys `fields` takes: the answered ones, and those of embedded relations at every depth
     * (`componenttype.name`, `component.componenttype.name`); undefined when there are more than `max`.
     */
    selectable(max: number): string[] | undefined {
      const paths = allEmbedPaths(max)
      if (!paths) return undefined
      const keys = [...ownKeys]
      for (const [path, target] of paths) {
        for (const key of keysOf(target)) if (keys.push(`${path}.${key}`) > max) return undefined
      }
      return keys
    },
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
