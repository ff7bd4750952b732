import Ajv, { type Options } from 'ajv'
import addFormats from 'ajv-formats'
import { fullFormats } from 'ajv-formats/dist/formats'

/**
 * The vocabulary a schema file may use on top of JSON Schema (draft-07):
 * - top level: `x-plural` (route and table name, default `<name>s`), `x-unique` (list of unique keys,
 *   each a list of field names), `x-lookup` (a string field that is a unique key on its own: its value
 *   names a row in detail routes in place of the id; a value that parses as a uuid is always an id);
 * - on a property: `x-relation` (`"<resource>"` or `{"resource", "onDelete"}`: the field holds the id
 *   of a row of that resource; `onDelete` is `restrict` (default), `cascade` or `set null`), and
 *   `x-index: true` (index the column for `where`/`sort`), `x-multiline: true` (a text field that may
 *   hold line breaks and tabs), `x-case-insensitive: true` (a text field of an `x-unique` key compared
 *   case-insensitively there: `RHEL` and `rhel` are one value of the key), `x-alias` (a second name of
 *   the field: writes, `where` and `sort` take either, answers carry both keys; see core/schema/derive.ts),
 *   `x-max-bytes` (an integer: the largest JSON text, in UTF-8 bytes, a write may store in an object,
 *   array or string field; such fields without it get the engine's `maxFieldBytes`, 64 KiB by default),
 *   `x-search: true` (a text field the list parameter `q` searches, by PostgreSQL full-text search; see
 *   `searchIndex` in core/schema/derive.ts).
 * - access, at the top level: `x-owner` (the field holding the row's owning team, a relation to a
 *   resource whose own `x-owner` is `"id"`: it owns itself), `x-access` (per operation, `read`,
 *   `create`, `update`, `delete` or an action's name, the roles allowed) and `x-read-only: true`
 *   (clients only read it; server code writes it). The engine checks them; an identity plugin
 *   enforces them (see core/identity).
 * Standard keywords the engine gives a meaning: `writeOnly: true` on a property (accepted on writes,
 * never answered), `readOnly` is refused (the engine's own fields are the read-only ones).
 */
export const SCHEMA_KEYWORDS = [
  'x-plural',
  'x-unique',
  'x-lookup',
  'x-relation',
  'x-index',
  'x-multiline',
  'x-case-insensitive',
  'x-alias',
  'x-max-bytes',
  'x-search',
  'x-owner',
  'x-access',
  'x-read-only',
] as const

/** The engine's keywords a property may carry (on the property itself, never deeper); the others are top-level ones. */
export const PROPERTY_KEYWORDS: readonly string[] = ['x-relation', 'x-index', 'x-multiline', 'x-case-insensitive', 'x-alias', 'x-max-bytes', 'x-search']

/** The JSON Schema draft a schema file is written in, as its `$schema` may say (with or without the `#`). */
export const SCHEMA_DRAFT = 'http://json-schema.org/draft-07/schema#'

/**
 * The standard keywords a property's schema may use, at any depth: draft-07's validation keywords and
 * applicators, the formats' bounds ajv-formats adds, and the annotations that only document
 * (`title`, `description`, `examples`, `$comment`). Any other keyword is refused at load, naming the
 * field: a typo (`minLenght`) or a keyword of another dialect (`nullable`, draft 2020-12's
 * `prefixItems`) would otherwise be ignored. `default` and `writeOnly` are allowed on the property
 * itself only (deeper, nothing applies them); `readOnly`, `$id`, `$schema`, `definitions` and the
 * `content*` annotations nowhere.
 */
export const PROPERTY_SCHEMA_KEYWORDS: readonly string[] = [
  'type',
  'enum',
  'const',
  'multipleOf',
  'maximum',
  'exclusiveMaximum',
  'minimum',
  'exclusiveMinimum',
  'maxLength',
  'minLength',
  'pattern',
  'format',
  'formatMaximum',
  'formatMinimum',
  'formatExclusiveMaximum',
  'formatExclusiveMinimum',
  'items',
  'additionalItems',
  'maxItems',
  'minItems',
  'uniqueItems',
  'contains',
  'maxProperties',
  'minProperties',
  'required',
  'properties',
  'patternProperties',
  'additionalProperties',
  'dependencies',
  'propertyNames',
  'if',
  'then',
  'else',
  'allOf',
  'anyOf',
  'oneOf',
  'not',
  '$ref',
  'title',
  'description',
  'examples',
  '$comment',
]

/** The operations `x-access` names besides actions. */
export const ACCESS_OPERATIONS = ['read', 'create', 'update', 'delete'] as const
export type AccessOperation = (typeof ACCESS_OPERATIONS)[number]

/**
 * A keyword a plugin adds to the vocabulary: schema files may then use it at the top level or on a
 * property; `check` refuses a bad value with a message (the loader names the file).
 */
export interface SchemaKeyword {
  /** Must start with `x-`. */
  name: string
  /** Where a schema may use it. */
  on: 'resource' | 'property'
  /** Returns why a value is refused, or undefined when it is fine. */
  check?(value: unknown): string | undefined
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** True when `id` can be a row id; anything else is answered 404 without asking the database. */
export function isUuid(id: string): boolean {
  return UUID.test(id)
}

const RFC3339 = (fullFormats['date-time'] as { validate: (value: string) => boolean }).validate

/**
 * A date-time that a `timestamptz(3)` column keeps as sent: RFC 3339 (ajv-formats' full check), at
 * most millisecond precision (`.1234` would be rounded; trailing zeros are fine), no leap second (`:60`
 * would become the next minute), and a year from 0001 (year 0000 is 1 BC to PostgreSQL).
 */
export function isStorableDateTime(value: string): boolean {
  if (!RFC3339(value)) return false
  const m = /^(\d{4})-\d\d-\d\d[Tt ]\d\d:\d\d:(\d\d)(?:\.(\d+))?/.exec(value)
  return m !== null && m[1] !== '0000' && m[2] !== '60' && !/[1-9]/.test((m[3] ?? '').slice(3))
}

/**
 * An ajv instance that knows the engine's schema keywords (and `extra` ones from plugins) and the
 * string formats, with `uuid` meaning what a uuid column accepts (ajv-formats also takes
 * "urn:uuid:...", which PostgreSQL refuses).
 */
export function schemaAjv(options: Options = {}, extra: readonly string[] = []): Ajv {
  const ajv = new Ajv({ strict: true, allErrors: false, ...options })
  addFormats(ajv)
  ajv.addFormat('uuid', isUuid)
  ajv.addFormat('date-time', isStorableDateTime)
  ajv.addVocabulary([...SCHEMA_KEYWORDS, ...extra])
  return ajv
}
