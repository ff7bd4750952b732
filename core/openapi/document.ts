import { EXACT_COUNT_UP_TO } from '../data/repository'
import type { ErrorRegistry } from '../errors'
import type { ActionDefinition } from '../plugins/plugin'
import type { Resource } from '../plugins/registry'
import { DEFAULT_EXPRESSION_LIMITS } from '../query/expression'
import { MAX_CURSOR_LENGTH, MAX_CURSOR_TEXT } from '../query/cursor'
import { MAX_PATTERN_CHARACTERS, MAX_PATTERN_COMPARISONS, MAX_RELATION_HOPS } from '../query/filter'
import { COUNT_MODES, LIST_PARAMETERS, type ListLimits, MAX_EMBED_DEPTH, MAX_EMBED_PATHS, MAX_PARAMETER_LENGTH, MAX_SEARCH_WORDS } from '../query/list-query'
import { aliasSchema, answeredFields, documentedCreateRequired, ENGINE_FIELDS, fieldSchema, SEARCH_CONFIG } from '../schema/derive'
import type { FieldDefinition, JsonSchema } from '../schema/types'

/** A JSON object of the OpenAPI document (operation, parameter, response...). */
export type OpenApiObject = { [key: string]: unknown }

/** The operations of one path, by lower-case HTTP method. */
export type OpenApiPathItem = Partial<Record<'get' | 'put' | 'post' | 'delete' | 'patch', OpenApiObject>> & OpenApiObject

/** An OpenAPI 3.1 document, as served at `<prefix>/openapi.json`. */
export interface OpenApiDocument {
  openapi: '3.1.0'
  info: { title: string; version: string; description?: string }
  servers: Array<{ url: string }>
  tags: Array<{ name: string; description?: string }>
  paths: Record<string, OpenApiPathItem>
  components: {
    schemas: Record<string, JsonSchema>
    parameters: Record<string, OpenApiObject>
    headers: Record<string, OpenApiObject>
    responses: Record<string, OpenApiObject>
  }
}

/** Title, version and description of the document (`info`). */
export interface OpenApiInfo {
  title: string
  version: string
  description?: string
}

/** The named schemas of one resource under `#/components/schemas`. */
type SchemaVariant = 'object' | 'create' | 'update' | 'detail' | 'list'

/** What the document is built from. */
export interface OpenApiSource {
  prefix: string
  resources: ReadonlyMap<string, Resource>
  actions: readonly ActionDefinition<any>[]
  errors: ErrorRegistry
  limits: ListLimits
  /** Set when requests are authenticated: the schemes, required on every operation but the public ones. */
  securitySchemes?: Record<string, Record<string, unknown>>
  /** Set when requests are rate limited: every operation documents the 429 and the RateLimit headers. */
  rateLimit?: { points: number; windowSeconds: number }
}

/** Keywords whose value is one subschema, and those whose value is a list or a map of subschemas. */
const ONE_SCHEMA = [
  'additionalProperties',
  'contains',
  'not',
  'if',
  'then',
  'else',
  'propertyNames',
  'unevaluatedItems',
  'unevaluatedProperties',
  'items',
  'additionalItems',
]
const SCHEMA_LIST = ['allOf', 'anyOf', 'oneOf', 'prefixItems']
const SCHEMA_MAP = ['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas']

/**
 * Rewrites a property schema of a schema file (JSON Schema draft-07, with the engine's `x-` keywords)
 * into JSON Schema 2020-12 as OpenAPI 3.1 reads it: `x-` keywords and `$schema`/`$id` dropped, tuple
 * `items` turned into `prefixItems`, `dependencies` split into `dependentRequired`/`dependentSchemas`.
 */
export function toDraft2020(schema: unknown): unknown {
  if (!schema || typeof schema !== 'object' || Array.isArray(schema)) return schema
  const out: JsonSchema = {}
  for (const [key, value] of Object.entries(schema as JsonSchema)) {
    if (key.startsWith('x-') || key === '$schema' || key === '$id') continue
    if (key === 'items' && Array.isArray(value)) out.prefixItems = value.map(toDraft2020)
    else if (key === 'additionalItems') {
      if (Array.isArray((schema as JsonSchema).items)) out.items = toDraft2020(value)
    } else if (key === 'definitions') out.$defs = mapValues(value, toDraft2020)
    else if (key === 'dependencies' && value && typeof value === 'object') {
      for (const [name, dep] of Object.entries(value)) {
        const target = Array.isArray(dep) ? 'dependentRequired' : 'dependentSchemas'
        out[target] = { ...(out[target] as object), [name]: Array.isArray(dep) ? dep : toDraft2020(dep) }
      }
    } else if (ONE_SCHEMA.includes(key)) out[key] = toDraft2020(value)
    else if (SCHEMA_LIST.includes(key) && Array.isArray(value)) out[key] = value.map(toDraft2020)
    else if (SCHEMA_MAP.includes(key)) out[key] = mapValues(value, toDraft2020)
    else out[key] = value
  }
  return out
}

function mapValues(value: unknown, fn: (v: unknown) => unknown): unknown {
  if (!value || typeof value !== 'object') return value
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fn(v)]))
}

const draft2020 = (schema: JsonSchema) => toDraft2020(schema) as JsonSchema

/** `componenttype` -> `#/components/schemas/componenttype.create`; dots cannot clash with resource names. */
function schemaName(resource: string, variant: SchemaVariant): string {
  return variant === 'object' ? resource : `${resource}.${variant}`
}

const ref = (section: string, name: string) => ({ $ref: `#/components/${section}/${name}` })

/** The name and meaning of each documented error status (`#/components/responses/<name>`). */
const STATUS_RESPONSES: Record<number, [name: string, description: string]> = {
  400: [
    'BadRequest',
    'A query parameter or the body is invalid (unknown field, bad value, JSON that does not parse or does not match the schema); `payload` names the problem.',
  ],
  401: ['Unauthorized', 'Credentials are missing or wrong.'],
  403: ['Forbidden', 'The caller may not do this.'],
  404: ['NotFound', 'No row has this id.'],
  405: ['MethodNotAllowed', 'The path exists but not with this method; the `Allow` header lists the methods it has.'],
  409: ['Conflict', 'The write breaks a unique key, or the row is still referenced by other rows.'],
  412: ['PreconditionFailed', '`If-Match` is missing or does not match the current ETag (someone changed the row since you read it); nothing was changed.'],
  413: ['PayloadTooLarge', 'The body is larger than the server accepts.'],
  415: ['UnsupportedMediaType', 'The body is not sent as `application/json`.'],
  422: ['Unprocessable', 'A relation field names a row that does not exist.'],
  429: ['TooManyRequests', 'Too many requests: retry later.'],
}
const SERVER_ERROR: [string, string] = [
  'ServerError',
  'The server cannot answer now or failed. 503 comes with `Retry-After`: `overloaded` (too many requests in flight, or no database connection free in time), `deadline_exceeded` (the request ran past its deadline), `query_timeout` (a statement ran past the statement timeout), `unavailable` (the database is out of reach). 500 carries a `request_id` in `payload`. Causes are logged, not sent.',
]

function responseName(status: number | string): string {
  return status === '5XX' ? SERVER_ERROR[0] : (STATUS_RESPONSES[Number(status)]?.[0] ?? `Error${status}`)
}

function errorResponse(status: number | string): { $ref: string } {
  return ref('responses', responseName(status))
}

/**
 * One response per error status the registry knows (4xx), one for every 5xx; each error schema
 * lists the codes of its status, so an answer with an unregistered code does not match the document.
 */
function errorComponents(errors: ErrorRegistry): { responses: Record<string, OpenApiObject>; schemas: Record<string, JsonSchema> } {
  const responses: Record<string, OpenApiObject> = {}
  const schemas: Record<string, JsonSchema> = {}
  const server: string[] = []
  for (const [status, codes] of errors.byStatus()) {
    if (status >= 500) {
      server.push(...codes.map(([code]) => code))
      continue
    }
    const name = responseName(status)
    const description = STATUS_RESPONSES[status]?.[1] ?? codes.map(([, d]) => d.description).join(' ')
    schemas[name] = errorSchema(codes.map(([code]) => code))
    responses[name] = {
      description: `${description} Codes: ${codes.map(([code, d]) => `\`${code}\` (${d.description})`).join('; ')}`,
      content: { 'application/json': { schema: ref('schemas', name) } },
    }
  }
  schemas[SERVER_ERROR[0]] = errorSchema(server)
  responses[SERVER_ERROR[0]] = { description: SERVER_ERROR[1], content: { 'application/json': { schema: ref('schemas', SERVER_ERROR[0]) } } }
  responses[SERVER_ERROR[0]].headers = { 'Retry-After': ref('headers', 'RetryAfter') }
  responses.MethodNotAllowed.headers = { Allow: ref('headers', 'Allow') }
  if (responses.Unauthorized) responses.Unauthorized.headers = { 'WWW-Authenticate': ref('headers', 'WWWAuthenticate') }
  return { responses, schemas }
}

/** The error body with `code` one of `codes`. */
function errorSchema(codes: string[]): JsonSchema {
  return { type: 'object', allOf: [ref('schemas', 'Error')], properties: { code: { enum: codes } } }
}

function sharedComponents(limits: ListLimits, errors: ErrorRegistry): OpenApiDocument['components'] {
  const { responses, schemas } = errorComponents(errors)
  responses.NotModified = { description: 'The `If-None-Match` ETag is still current: no body.', headers: { ETag: ref('headers', 'ETag') } }
  return {
    schemas: {
      Error: {
        type: 'object',
        description: 'The body of every error answer.',
        properties: {
          message: { type: 'string', description: 'What went wrong, for people.' },
          payload: { type: 'object', description: 'Details for programs (field errors, valid parameters, current etag...).' },
          status_code: { type: 'integer', minimum: 400, maximum: 599, description: 'The HTTP status, repeated.' },
          code: { type: 'string', description: 'Stable and machine-readable: switch on it, not on `message`.' },
        },
        required: ['message', 'payload', 'status_code', 'code'],
        additionalProperties: false,
      },
      ...schemas,
      ListMeta: {
        type: 'object',
        properties: {
          count: {
            type: 'integer',
            minimum: 0,
            description: 'How many rows match `where`, on every page (see the `count` parameter); absent with `count=none`.',
          },
          count_exact: { const: false, description: 'Present, and false, only when `count` is an estimate.' },
          truncated: {
            const: true,
            description: 'Present, and true, only when the page stopped before `limit` rows to stay within the byte budget of one answer.',
          },
          next_offset: {
            type: 'integer',
            minimum: 0,
            description: 'With `truncated`, on a page not given `after`: the `offset` of the page that follows this one.',
          },
          next: {
            type: 'string',
            pattern: '^[A-Za-z0-9_-]+$',
            description:
              'When rows follow this page: an opaque cursor of its last row. `after=<next>`, with the same `where`, `query`, sort and `limit`, gives the page that follows, skipping and repeating no row while rows are inserted or deleted elsewhere. Absent when a sort value of the last row is a text longer than ' +
              `${MAX_CURSOR_TEXT} characters (the \`Link\` header then links the next page by \`offset\`).`,
          },
        },
        additionalProperties: false,
      },
    },
    parameters: {
      limit: {
        name: 'limit',
        in: 'query',
        description: `Page size (at most ${limits.maxLimit}).`,
        schema: { type: 'integer', minimum: 0, maximum: limits.maxLimit, default: limits.defaultLimit },
      },
      offset: {
        name: 'offset',
        in: 'query',
        description: 'Rows to skip, after sorting. Not with `after`.',
        schema: { type: 'integer', minimum: 0, maximum: limits.maxOffset, default: 0 },
      },
      after: {
        name: 'after',
        in: 'query',
        description:
          "A page's `_meta.next`: the rows that sort after that page's last row (keyset paging: a deep page costs what the first does). Give it with the same `where`, `query`, `sort` and `limit` as that page; a cursor of another list, or `after` with `offset`, is a 400.",
        schema: { type: 'string', maxLength: MAX_CURSOR_LENGTH, pattern: '^[A-Za-z0-9_-]+$' },
      },
      count: {
        name: 'count',
        in: 'query',
        description:
          `How \`_meta.count\` is computed: \`estimate\` counts exactly up to ${EXACT_COUNT_UP_TO} matching rows and gives the planner's estimate above ` +
          '(then `_meta.count_exact` is false); `exact` always counts every matching row; `none` leaves `_meta.count` out, and the page costs one statement.',
        schema: { type: 'string', enum: [...COUNT_MODES], default: 'estimate' },
      },
      IfNoneMatch: {
        name: 'If-None-Match',
        in: 'header',
        description: 'An ETag from an earlier answer: the server answers 304 without a body while it is still current.',
        schema: { type: 'string' },
      },
      IfMatch: {
        name: 'If-Match',
        in: 'header',
        required: true,
        description:
          'The ETag the change is based on (quoted, unquoted, weak, a list, or `*` for any). Missing or stale, the server answers 412 and changes nothing.',
        schema: { type: 'string', minLength: 1 },
      },
      Prefer: {
        name: 'Prefer',
        in: 'header',
        description: '`return=representation` makes a successful PUT answer 200 with the updated object instead of 204.',
        schema: { type: 'string', examples: ['return=representation'] },
      },
    },
    headers: {
      ETag: {
        description:
          'Entity tag of the answer: the row\'s own, a quoted strong validator to send back in `If-Match`; weak (`W/"..."`, for `If-None-Match` only) on a detail with `embed` (it digests the embedded rows\' too) and on a list whose count is an estimate (it digests the rows only).',
        required: true,
        schema: { type: 'string', pattern: '^(W/)?"[0-9a-f]{32}"$' },
      },
      Location: { description: 'Path of the created row.', required: true, schema: { type: 'string' } },
      Link: {
        description:
          'Links to the neighbouring pages (RFC 8288), each the full URL of the request with only `after` or `offset` changed. A request with `offset` is linked by offset: `rel="next"` when rows follow the page, `rel="prev"` and `rel="first"` when it is not the first. Any other (the first page, a page `after` a cursor) is linked by cursor: `rel="next"` with `after=<_meta.next>`, and `rel="first"` when it is not the first (keyset pages go forward only).',
        schema: { type: 'string', examples: ['<http://127.0.0.1:5000/api/v1/components?limit=20&after=WyJ...>; rel="next"'] },
      },
      PreferenceApplied: { description: 'Echoes `return=representation` when it was honoured.', schema: { type: 'string' } },
      Allow: { description: 'Methods the path has.', required: true, schema: { type: 'string' } },
      WWWAuthenticate: { description: 'The authentication schemes the server takes.', schema: { type: 'string' } },
      RetryAfter: { description: 'Seconds to wait before trying again (on 429 and 503).', schema: { type: 'string', pattern: '^[0-9]+$' } },
      RateLimitPolicy: {
        description: 'The rate limit (draft-ietf-httpapi-ratelimit-headers): `"default";q=<requests>;w=<seconds>`.',
        schema: { type: 'string', examples: ['"default";q=600;w=60'] },
      },
      RateLimit: {
        description:
          'What is left of the caller\'s rate limit (draft-ietf-httpapi-ratelimit-headers): `"default";r=<remaining>;t=<seconds to the window\'s end>`.',
        schema: { type: 'string', examples: ['"default";r=599;t=60'] },
      },
    },
    responses,
  }
}

type ListParameter = (typeof LIST_PARAMETERS)[number]

/**
 * How each list parameter is documented, by name: a parameter added to the parser without a
 * description here is a type error. `where`, `sort` and `embed` list the fields this resource allows.
 */
const LIST_PARAMETER_DOCS: Record<ListParameter, (resource: Resource) => OpenApiObject | undefined> = {
  where: ({ query: { fields } }) => ({
    name: 'where',
    in: 'query',
    description:
      "Equality filters, AND-ed: `field:value[,field:value...]`. The value runs from the first colon to the next comma and is parsed by the field's type (`true`/`false`, numbers, uuids, date-times). " +
      `Fields: ${fields.map((f) => `\`${f}\``).join(', ')}.`,
    style: 'form',
    explode: false,
    schema: { type: 'array', items: { type: 'string', pattern: `^(?:${fields.join('|')}):[^,]*$` } },
  }),
  query: ({ query: { queryFields } }) => ({
    name: 'query',
    in: 'query',
    description:
      'A filter expression, AND-ed with `where`. Comparisons: `eq(f,v)` `ne(f,v)` `lt(f,v)` `le(f,v)` `gt(f,v)` `ge(f,v)`, `in(f,v1,v2,...)`, ' +
      '`like(f,pattern)` and `ilike(f,pattern)` (SQL `%` and `_`), `contains(f,v)` and `not_contains(f,v)` (a substring of a text field, an item of an array field), `null(f)`; ' +
      'logic: `and(e1,e2,...)`, `or(e1,e2,...)`, `not(e)`. Values are parsed by the field\'s type; a value holding `,` `(` `)` `"` or spaces is written in double quotes, with `\\"` and `\\\\` as escapes. ' +
      `A field may follow relations with dots (\`componenttype.name\`, at most ${MAX_RELATION_HOPS}). A comparison of a null field is false (but \`null\`), and \`not(e)\` is true where \`e\` is not. ` +
      `At most ${DEFAULT_EXPRESSION_LIMITS.maxComparisons} comparisons (each value of \`in\` counts) and ${DEFAULT_EXPRESSION_LIMITS.maxDepth} levels, of them at most ${MAX_PATTERN_COMPARISONS} text-matching ones (\`like\`, \`ilike\`, \`contains\` and \`not_contains\` on text) with ${MAX_PATTERN_CHARACTERS} pattern characters in all; a bad expression is a 400 \`invalid_query\` whose payload gives the \`position\` and what was \`expected\` there. ` +
      `Fields: ${queryFields.map((f) => `\`${f}\``).join(', ')}.`,
    schema: { type: 'string', maxLength: MAX_PARAMETER_LENGTH, examples: ['and(eq(name,rhel),gt(created_at,2024-01-01T00:00:00Z))'] },
  }),
  // Only resources with `x-search` fields take `q`: elsewhere it is a 400.
  q: ({ query: { searchable } }) =>
    searchable.length === 0
      ? undefined
      : {
          name: 'q',
          in: 'query',
          description:
            `Full-text search of ${searchable.map((f) => `\`${f}\``).join(', ')} (PostgreSQL's \`websearch_to_tsquery\`, configuration \`${SEARCH_CONFIG}\`: ` +
            'words are lowercased and match whole, without stemming). Rows holding every word match; `"a phrase"` matches the words in a row, `-word` excludes, `or` between words matches either. ' +
            `Without \`sort\`, rows come by relevance (\`ts_rank\`), then \`id\`; with it, the sort wins. At most ${MAX_SEARCH_WORDS} words (runs of letters and digits), and at least one: a \`q\` without any is a 400.`,
          schema: { type: 'string', maxLength: MAX_PARAMETER_LENGTH, examples: ['rhel 8.4 -beta'] },
        },
  sort: ({ query: { fields } }) => ({
    name: 'sort',
    in: 'query',
    description:
      'Sort keys, in order: `field` ascending, `-field` descending, each field once (default `created_at`, or relevance with `q`; ties are broken by `id`).',
    style: 'form',
    explode: false,
    schema: { type: 'array', items: { type: 'string', enum: fields.flatMap((f) => [f, `-${f}`]) } },
  }),
  limit: () => ref('parameters', 'limit'),
  offset: () => ref('parameters', 'offset'),
  after: () => ref('parameters', 'after'),
  embed: (resource) => embedParameter(resource),
  fields: (resource) => fieldsParameter(resource),
  count: () => ref('parameters', 'count'),
}

function listParameters(resource: Resource): OpenApiObject[] {
  return LIST_PARAMETERS.map((name) => LIST_PARAMETER_DOCS[name](resource)).filter((p): p is OpenApiObject => p !== undefined)
}

/**
 * Most values an `embed` or `fields` parameter's schema lists: past it, the items are described by a
 * pattern, so that a resource with many relations (whose paths up to depth 3 grow as their cube)
 * does not swell the document.
 */
export const MAX_DOCUMENTED_VALUES = 200

/** A name, or names joined by dots: up to `dots` dots. */
const dotted = (dots: number) => `^[A-Za-z_][A-Za-z0-9_]*(?:\\.[A-Za-z_][A-Za-z0-9_]*){0,${dots}}$`

/** `embed`, only for resources that have relations: it replaces each named relation id by the object. */
function embedParameter(resource: Resource): OpenApiObject | undefined {
  if (resource.query.relations.length === 0) return undefined
  const paths = resource.query.embedPaths(MAX_DOCUMENTED_VALUES)
  return {
    name: 'embed',
    in: 'query',
    description:
      'Relation fields to replace by the related object (`embed=a,b`). A path follows relations of the embedded object with dots ' +
      `(\`embed=component.componenttype\`), at most ${MAX_EMBED_DEPTH} relations deep, and embeds each level on the way (\`component\` too); ` +
      `at most ${MAX_EMBED_PATHS} paths in all, those implied included. A relation unset, or set to a row the caller may not see, embeds as null, and nothing below it. ` +
      'An unknown relation at any level is a 400 listing the valid ones there.',
    style: 'form',
    explode: false,
    schema: {
      type: 'array',
      items: paths ? { type: 'string', enum: paths } : { type: 'string', pattern: dotted(MAX_EMBED_DEPTH - 1) },
      uniqueItems: true,
    },
  }
}

/** `fields`, on lists and details: the keys to answer. */
function fieldsParameter(resource: Resource): OpenApiObject {
  const keys = resource.query.selectable(MAX_DOCUMENTED_VALUES)
  return {
    name: 'fields',
    in: 'query',
    description:
      'The keys to answer in each row, `id` and `etag` always (`fields=name,created_at`). A key of an embedded relation follows it with a dot (`fields=name,componenttype.name&embed=componenttype`), ' +
      'at any depth of the embed (`fields=component.componenttype.name&embed=component.componenttype`); an embedded row keeps its `id` and `etag`. An unknown key is a 400 listing the valid ones.',
    style: 'form',
    explode: false,
    schema: { type: 'array', items: keys ? { type: 'string', enum: keys } : { type: 'string', pattern: dotted(MAX_EMBED_DEPTH) } },
  }
}

/**
 * The `x-relation` extension of a relation field's property (and of its alias): the resource it points
 * to, by singular name and plural (its path), so that a client can follow it from the document alone.
 */
function relationExtension(field: FieldDefinition, pluralOf: (name: string) => string): JsonSchema {
  if (!field.relation) return {}
  return { 'x-relation': { resource: field.relation.resource, plural: pluralOf(field.relation.resource) } }
}

/** The stored object as answers show it (write-only fields left out), and the create and update bodies. */
function resourceSchemas(resource: Resource, pluralOf: (name: string) => string): Record<string, JsonSchema> {
  const { def } = resource
  const related = (field: FieldDefinition) => relationExtension(field, pluralOf)
  const engine = Object.fromEntries(ENGINE_FIELDS.map((f) => [f.name, f.schema]))
  const stored: Record<string, JsonSchema> = { id: engine.id }
  const body: Record<string, JsonSchema> = {}
  for (const f of def.fields) {
    body[f.name] = fieldSchema(f, draft2020)
    // The byte limit of a write (x-max-bytes, or the engine's default): no JSON Schema keyword says it.
    const maxBytes = resource.maxBytes[f.name]
    if (maxBytes !== undefined) {
      const said = body[f.name].description
      body[f.name] = { ...body[f.name], description: `${said ? `${String(said)} ` : ''}At most ${maxBytes} bytes as JSON (UTF-8).` }
    }
    if (f.alias) body[f.alias] = { ...aliasSchema(f, body[f.name]), ...related(f) }
    body[f.name] = { ...body[f.name], ...related(f) }
  }
  for (const field of answeredFields(def)) {
    const schema = fieldSchema(field, draft2020)
    if (!field.relation) {
      stored[field.name] = schema
      continue
    }
    const { description, ...idSchema } = schema
    const target = field.relation.resource
    stored[field.name] = {
      description: `${description ? `${String(description)} ` : ''}The id of a ${target}; with \`embed=${field.name}\`, the ${target} itself.`,
      oneOf: [{ ...idSchema, type: 'string' }, ref('schemas', schemaName(target, 'object')), ...(field.required ? [] : [{ type: 'null' }])],
      ...related(field),
    }
  }
  for (const field of answeredFields(def)) if (field.alias) stored[field.alias] = { ...aliasSchema(field, fieldSchema(field, draft2020)), ...related(field) }
  for (const field of ENGINE_FIELDS.slice(1)) stored[field.name] = field.schema
  const computed = Object.fromEntries(Object.entries(resource.outputFields).map(([name, schema]) => [name, { ...draft2020(schema), readOnly: true }]))
  const describe = (what: string) => ({
    ...(def.schema.title !== undefined ? { title: `${String(def.schema.title)}${what}` } : {}),
    ...(def.schema.description !== undefined ? { description: def.schema.description } : {}),
  })
  const schemas: Record<string, JsonSchema> = {
    [schemaName(def.name, 'object')]: {
      ...describe(''),
      type: 'object',
      properties: { ...stored, ...computed },
      required: [...Object.keys(stored), ...Object.keys(computed)],
      additionalProperties: false,
    },
    [schemaName(def.name, 'create')]: {
      ...describe(' (create)'),
      type: 'object',
      properties: body,
      ...documentedCreateRequired(def),
      additionalProperties: false,
      // A schema file's examples are bodies a client sends, without the engine's fields.
      ...(def.schema.examples !== undefined ? { examples: def.schema.examples } : {}),
    },
    [schemaName(def.name, 'update')]: {
      ...describe(' (update)'),
      type: 'object',
      description: 'The fields to change; the others keep their value.',
      properties: body,
      additionalProperties: false,
    },
    [schemaName(def.name, 'detail')]: {
      type: 'object',
      properties: { [def.name]: ref('schemas', schemaName(def.name, 'object')) },
      required: [def.name],
      additionalProperties: false,
    },
    [schemaName(def.name, 'list')]: {
      type: 'object',
      properties: { [def.plural]: { type: 'array', items: ref('schemas', schemaName(def.name, 'object')) }, _meta: ref('schemas', 'ListMeta') },
      required: [def.plural, '_meta'],
      additionalProperties: false,
    },
  }
  // A read-only resource (x-read-only) takes no body.
  if (def.readOnly) {
    delete schemas[schemaName(def.name, 'create')]
    delete schemas[schemaName(def.name, 'update')]
  }
  return schemas
}

const json = (schema: unknown) => ({ 'application/json': { schema } })

function errorResponses(statuses: Array<number | string>): Record<string, { $ref: string }> {
  return Object.fromEntries([...statuses, '5XX'].map((s) => [String(s), errorResponse(s)]))
}

/** The statuses of the given error codes (an action's `errors`), refusing unregistered ones. */
function statusesOf(codes: readonly string[], source: OpenApiSource, where: string): number[] {
  return codes.map((code) => {
    if (!source.errors.has(code)) throw new Error(`openapi: ${where} names error code '${code}', which no plugin registered`)
    return source.errors.create(code, '').status
  })
}

/** A path parameter holding the id of a row of `resource`. */
function idParameter(resource: string, name = 'id', description?: string): OpenApiObject {
  return { name, in: 'path', required: true, description: description ?? `Id of a ${resource}.`, schema: { type: 'string', format: 'uuid' } }
}

/**
 * The `{id}` of a detail route: an id, or on a resource with `x-lookup` the value of that field too
 * (a value that parses as a uuid is always taken as an id).
 */
function detailParameter(resource: Resource): OpenApiObject {
  const { name, def } = resource
  if (def.lookup === undefined) return idParameter(name)
  const field = def.fields.find((f) => f.name === def.lookup)!
  return {
    name: 'id',
    in: 'path',
    required: true,
    description: `Id of a ${name}, or its ${field.name} (unique): a value that parses as a uuid is always an id; an unknown ${field.name} answers 404.`,
    schema: { anyOf: [{ type: 'string', format: 'uuid' }, withoutAnnotations(draft2020(field.schema))] },
    'x-lookup': field.name,
  }
}

/** A field's schema without what documents the field itself (its description, title, default, examples). */
function withoutAnnotations(schema: JsonSchema): JsonSchema {
  return Object.fromEntries(Object.entries(schema).filter(([key]) => !['description', 'title', 'default', 'examples'].includes(key)))
}

/** A GET answering one page of `resource`: its list parameters, ETag, 304, 400 and 5XX, plus the given ones. */
function listOperation(
  resource: Resource,
  operation: { operationId: string; summary: string; description?: string; parameters?: OpenApiObject[]; errors?: number[] },
): OpenApiObject {
  return {
    operationId: operation.operationId,
    summary: operation.summary,
    ...(operation.description ? { description: operation.description } : {}),
    tags: [resource.plural],
    parameters: [...(operation.parameters ?? []), ...listParameters(resource), ref('parameters', 'IfNoneMatch')],
    responses: {
      200: {
        description: `One page of ${resource.plural}; the ETag digests the body.`,
        headers: { ETag: ref('headers', 'ETag'), Link: ref('headers', 'Link') },
        content: json(ref('schemas', schemaName(resource.name, 'list'))),
      },
      304: ref('responses', 'NotModified'),
      ...errorResponses([400, ...(operation.errors ?? [])]),
    },
  }
}

/**
 * The five generated routes of one resource, with the error statuses its schema can lead to; the
 * two reads only for a read-only resource (its writes answer 405, as any method a path lacks).
 */
function resourcePaths(resource: Resource, source: OpenApiSource): Record<string, OpenApiPathItem> {
  const { name, plural, def } = resource
  const writeErrors = [400, ...(def.unique.length ? [409] : []), 413, 415, ...(resource.query.relations.length ? [422] : [])]
  // A delete answers 409 when a restricting foreign key of another resource still points at the row.
  const restricted = [...source.resources.values()].some((o) => o.def.fields.some((f) => f.relation?.resource === name && f.relation.onDelete === 'restrict'))
  const detail = ref('schemas', schemaName(name, 'detail'))
  const embed = embedParameter(resource)
  const tags = [plural]
  const paths: Record<string, OpenApiPathItem> = {
    [`/${plural}`]: {
      get: listOperation(resource, { operationId: `list_${plural}`, summary: `List ${plural}` }),
      post: {
        operationId: `create_${name}`,
        summary: `Create a ${name}`,
        tags,
        requestBody: { required: true, content: json(ref('schemas', schemaName(name, 'create'))) },
        responses: {
          201: { description: `The created ${name}.`, headers: { ETag: ref('headers', 'ETag'), Location: ref('headers', 'Location') }, content: json(detail) },
          ...errorResponses(writeErrors),
        },
      },
    },
    [`/${plural}/{id}`]: {
      parameters: [detailParameter(resource)],
      get: {
        operationId: `get_${name}`,
        summary: `Read one ${name}`,
        tags,
        parameters: [...(embed ? [embed] : []), fieldsParameter(resource), ref('parameters', 'IfNoneMatch')],
        responses: {
          200: { description: `The ${name}; its ETag is the current etag.`, headers: { ETag: ref('headers', 'ETag') }, content: json(detail) },
          304: ref('responses', 'NotModified'),
          ...errorResponses([400, 404]),
        },
      },
      put: {
        operationId: `update_${name}`,
        summary: `Change some fields of a ${name}`,
        tags,
        parameters: [ref('parameters', 'IfMatch'), ref('parameters', 'Prefer')],
        requestBody: { required: true, content: json(ref('schemas', schemaName(name, 'update'))) },
        responses: {
          200: {
            description: `Updated; sent when the request has \`Prefer: return=representation\`.`,
            headers: { ETag: ref('headers', 'ETag'), 'Preference-Applied': ref('headers', 'PreferenceApplied') },
            content: json(detail),
          },
          204: { description: 'Updated; the new ETag is in the header.', headers: { ETag: ref('headers', 'ETag') } },
          ...errorResponses([...writeErrors, 404, 412]),
        },
      },
      delete: {
        operationId: `delete_${name}`,
        summary: `Delete a ${name}`,
        tags,
        parameters: [ref('parameters', 'IfMatch')],
        responses: {
          204: { description: 'Deleted.' },
          ...errorResponses([404, ...(restricted ? [409] : []), 412]),
        },
      },
    },
  }
  // A read-only resource (`x-read-only`) serves GET only: its writes answer 405, as any missing route.
  if (def.readOnly) {
    delete paths[`/${plural}`].post
    delete paths[`/${plural}/{id}`].put
    delete paths[`/${plural}/{id}`].delete
  }
  return paths
}

/** `/a/:id/b` -> `/a/{id}/b`. */
function openapiPath(path: string): string {
  return path.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, '{$1}')
}

/** The operation of one action, from its definition: parameters, body, answer and error statuses. */
function actionPaths(action: ActionDefinition<any>, source: OpenApiSource): Record<string, OpenApiPathItem> {
  const where = `action '${action.name}'`
  const resourceOf = (name: string) => {
    const resource = [...source.resources.values()].find((r) => r.name === name)
    if (!resource) throw new Error(`openapi: ${where} names resource '${name}', which does not exist`)
    return resource
  }
  const pathParameters = Object.entries(action.pathParams ?? {}).map(([name, p]) =>
    'resource' in p
      ? idParameter(resourceOf(p.resource).name, name, p.description)
      : { name, in: 'path', required: true, ...(p.description ? { description: p.description } : {}), schema: draft2020(p.schema) },
  )
  const statuses = [
    ...(action.input ? [400, 413, 415] : []),
    ...(Object.values(action.pathParams ?? {}).some((p) => 'resource' in p) ? [404] : []),
    ...statusesOf(action.errors ?? [], source, where),
  ]
  const unique = [...new Set(statuses)].sort()
  const method = action.method.toLowerCase()
  if (action.list) {
    const operation = listOperation(resourceOf(action.list), {
      operationId: action.name,
      summary: action.summary,
      description: action.description,
      parameters: pathParameters,
      errors: unique.filter((s) => s !== 400),
    })
    return { [openapiPath(action.path)]: { [method]: operation } }
  }
  const status = action.status ?? 200
  const operation: OpenApiObject = {
    operationId: action.name,
    summary: action.summary,
    ...(action.description ? { description: action.description } : {}),
    tags: ['actions'],
    parameters: pathParameters,
    ...(action.input ? { requestBody: { required: true, content: json(draft2020(action.input)) } } : {}),
    responses: {
      [status]: status === 204 ? { description: 'Done.' } : { description: 'Done.', content: json(draft2020(action.output ?? { type: 'object' })) },
      ...errorResponses(unique),
    },
  }
  return { [openapiPath(action.path)]: { [method]: operation } }
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const

/**
 * Declares the security schemes, requires one of them everywhere, and documents on every operation
 * but the index (and openapi.json, which is no operation) the 401 of missing or wrong credentials and
 * the 403 of a caller who may not do it.
 */
function secure(document: OpenApiDocument, schemes: Record<string, Record<string, unknown>>): void {
  ;(document.components as Record<string, unknown>).securitySchemes = schemes
  ;(document as unknown as Record<string, unknown>).security = Object.keys(schemes).map((name) => ({ [name]: [] }))
  for (const [path, item] of Object.entries(document.paths)) {
    for (const method of METHODS) {
      const operation = item[method] as OpenApiObject | undefined
      if (!operation) continue
      if (path === '/') operation.security = []
      else operation.responses = { ...(operation.responses as object), 401: errorResponse(401), 403: errorResponse(403) }
    }
  }
}

/**
 * Builds the OpenAPI 3.1 document from the registered resources and actions: paths relative to the
 * engine's prefix (the `servers` entry), component schemas from the schema files, error responses
 * from the error registry. Called once, at start-up; throws when an action describes a path and
 * method that is already described, or names an unregistered error code.
 */
export function buildOpenApiDocument(source: OpenApiSource, info?: OpenApiInfo): OpenApiDocument {
  const document: OpenApiDocument = {
    openapi: '3.1.0',
    info: info ?? { title: 'Resource API', version: '1.0.0', description: 'REST resources generated from JSON Schema files.' },
    servers: [{ url: source.prefix || '/' }],
    tags: [],
    paths: {},
    components: sharedComponents(source.limits, source.errors),
  }
  const addPaths = (paths: Record<string, OpenApiPathItem>, from: string) => {
    for (const [path, item] of Object.entries(paths)) {
      const existing = (document.paths[path] ??= {})
      for (const [key, value] of Object.entries(item)) {
        if ((METHODS as readonly string[]).includes(key) && existing[key] !== undefined) {
          throw new Error(`openapi: ${from} describes ${key.toUpperCase()} ${path}, which is already described`)
        }
        existing[key] = value
      }
    }
  }
  const plurals = new Map([...source.resources.values()].map((r) => [r.name, r.plural]))
  const pluralOf = (name: string) => {
    const plural = plurals.get(name)
    if (plural === undefined) throw new Error(`openapi: a relation names resource '${name}', which does not exist`)
    return plural
  }
  for (const resource of source.resources.values()) {
    document.tags.push({ name: resource.plural, ...(resource.def.schema.description ? { description: String(resource.def.schema.description) } : {}) })
    Object.assign(document.components.schemas, resourceSchemas(resource, pluralOf))
    addPaths(resourcePaths(resource, source), `resource ${resource.name}`)
  }
  document.paths['/'] = {
    get: {
      operationId: 'index',
      summary: 'The API index: status, resources and links',
      tags: ['index'],
      responses: {
        200: {
          description: 'The server is up; each resource with its URL, and where the OpenAPI document is.',
          content: json({
            type: 'object',
            properties: {
              _status: { const: 'OK' },
              message: { type: 'string' },
              resources: { type: 'object', additionalProperties: { type: 'string' } },
              links: { type: 'object', properties: { openapi: { type: 'string' } }, required: ['openapi'] },
            },
            required: ['_status', 'message', 'resources', 'links'],
          }),
        },
        ...errorResponses([]),
      },
    },
  }
  document.tags.push({ name: 'index', description: 'The API root.' })
  if (source.actions.some((a) => !a.list)) document.tags.push({ name: 'actions', description: 'Custom operations added by plugins.' })
  for (const action of source.actions) addPaths(actionPaths(action, source), `action '${action.name}'`)
  if (source.securitySchemes) secure(document, source.securitySchemes)
  if (source.rateLimit) rateLimited(document, source.rateLimit)
  return document
}

/**
 * Documents the rate limit: on every operation the 429 of a caller past it, with `Retry-After`, and
 * on every answer the `RateLimit-Policy` and `RateLimit` headers the limiter sends.
 */
function rateLimited(document: OpenApiDocument, { points, windowSeconds }: { points: number; windowSeconds: number }): void {
  const headers = { 'RateLimit-Policy': ref('headers', 'RateLimitPolicy'), RateLimit: ref('headers', 'RateLimit') }
  const responses = document.components.responses as Record<string, OpenApiObject>
  const name = responseName(429)
  responses[name] = {
    ...responses[name],
    description: `${responses[name]?.description ?? STATUS_RESPONSES[429][1]} At most ${points} requests per ${windowSeconds} s per caller (its identity, else its address).`,
    headers: { 'Retry-After': ref('headers', 'RetryAfter'), ...headers },
  }
  for (const item of Object.values(document.paths)) {
    for (const method of METHODS) {
      const operation = item[method] as OpenApiObject | undefined
      if (!operation) continue
      const answers = operation.responses as Record<string, OpenApiObject>
      for (const [status, answer] of Object.entries(answers)) {
        // Successful answers carry the headers too; the shared components ($ref) are left as they are.
        if (/^2/.test(status) && !('$ref' in answer)) answer.headers = { ...(answer.headers as object), ...headers }
      }
      operation.responses = { ...answers, 429: errorResponse(429) }
    }
  }
}
