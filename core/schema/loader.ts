import fs from 'node:fs'
import path from 'node:path'
import type Ajv from 'ajv'
import { columnBounded, ENGINE_FIELD_NAMES, INTEGER_COLUMN_RANGE } from './derive'
import type { ExtraKeywords, FieldDefinition, FieldKind, JsonSchema, OnDelete, ResourceDefinition } from './types'
import { PROPERTY_KEYWORDS, PROPERTY_SCHEMA_KEYWORDS, SCHEMA_DRAFT, SCHEMA_KEYWORDS, schemaAjv, type SchemaKeyword } from './vocabulary'

export type { ResourceDefinition }

/** A schema file that cannot be registered. The message names the file and the problem. */
export class SchemaError extends Error {
  constructor(file: string, problem: string) {
    super(`${path.basename(file)}: ${problem}`)
    this.name = 'SchemaError'
  }
}

const SAFE_IDENTIFIER = /^[a-z][a-z0-9_]{0,62}$/
const ROLE_NAME = /^[a-z][a-z0-9_]{0,62}$/
const RESERVED_TABLES = ['knex_migrations', 'knex_migrations_lock']
const ON_DELETE: OnDelete[] = ['restrict', 'cascade', 'set null']
const ALLOWED_TOP_LEVEL = new Set([
  '$schema',
  '$id',
  'title',
  'description',
  'type',
  'properties',
  'required',
  'additionalProperties',
  'examples',
  '$comment',
  ...SCHEMA_KEYWORDS.filter((k) => !PROPERTY_KEYWORDS.includes(k)),
])

function kindOf(file: string, name: string, prop: JsonSchema): FieldKind {
  const { type, format } = prop
  switch (type) {
    case 'string':
      if (format === 'uuid') return 'uuid'
      if (format === 'date-time') return 'datetime'
      return 'string'
    case 'integer':
    case 'number':
    case 'boolean':
      return type
    case 'object':
    case 'array':
      return 'json'
    default:
      throw new SchemaError(
        file,
        `field '${name}' has unsupported type ${JSON.stringify(type)}` +
          ' (use string, integer, number, boolean, object or array; optional fields are the ones not in "required")',
      )
  }
}

// Where draft-07 puts subschemas: one schema, a list of them, or a map of them by name.
const ONE_SCHEMA = ['items', 'additionalItems', 'contains', 'additionalProperties', 'propertyNames', 'if', 'then', 'else', 'not']
const SCHEMA_LIST = ['items', 'allOf', 'anyOf', 'oneOf']
const SCHEMA_MAP = ['properties', 'patternProperties', 'dependencies']

/**
 * Refuses any keyword of a property's schema, at any depth, that nothing would apply: unknown ones
 * (typos, other dialects' `nullable`), the engine's keywords anywhere but on the property itself
 * (`x-relation` inside `items` would make no foreign key), and `default` or `writeOnly` deeper than the
 * property (see {@link PROPERTY_SCHEMA_KEYWORDS}). Plugin keywords (`on: 'property'`) are allowed on
 * the property itself.
 */
function checkPropertyKeywords(file: string, field: string, prop: JsonSchema, keywords: ExtraKeywords): void {
  const plugin = keywords.filter((k) => k.on === 'property').map((k) => k.name)
  const stack: Array<[schema: JsonSchema, at: string]> = [[prop, '']]
  while (stack.length) {
    const [schema, at] = stack.pop()!
    const where = at ? ` (at ${at})` : ''
    const top = at === ''
    for (const key of Object.keys(schema)) {
      if (PROPERTY_SCHEMA_KEYWORDS.includes(key)) continue
      if (top && (PROPERTY_KEYWORDS.includes(key) || plugin.includes(key) || key === 'default' || key === 'writeOnly')) continue
      let problem: string
      if (key === 'x-relation') {
        problem =
          'x-relation is only allowed on a field itself, not inside items or a nested schema (a list of relations is not supported:' +
          ' it would need a join table; relate each row through a field of a resource of its own instead)'
      } else if (PROPERTY_KEYWORDS.includes(key) || plugin.includes(key) || key === 'default' || key === 'writeOnly') {
        problem = `${key} is only allowed on a field itself, where the engine applies it`
      } else if (SCHEMA_KEYWORDS.includes(key as never) || keywords.some((k) => k.name === key)) {
        problem = `${key} belongs at the top level of the schema`
      } else if (key === 'nullable') {
        problem = 'nullable is not JSON Schema (draft-07), and nothing would apply it: a field that is not in "required" already takes null'
      } else if (key === 'readOnly') {
        problem = "readOnly is not supported: the engine's own fields (id, etag, created_at, updated_at) are the read-only ones"
      } else problem = `unknown keyword '${key}': schema files are JSON Schema draft-07 plus the engine's x- keywords`
      throw new SchemaError(file, `field '${field}'${where}: ${problem}`)
    }
    const push = (child: unknown, path: string) => {
      if (child && typeof child === 'object' && !Array.isArray(child)) stack.push([child as JsonSchema, at ? `${at}.${path}` : path])
    }
    for (const key of ONE_SCHEMA) push(schema[key], key)
    for (const key of SCHEMA_LIST) {
      if (Array.isArray(schema[key])) for (const [i, child] of (schema[key] as unknown[]).entries()) push(child, `${key}[${i}]`)
    }
    for (const key of SCHEMA_MAP) {
      const map = schema[key]
      if (map && typeof map === 'object' && !Array.isArray(map)) for (const [name, child] of Object.entries(map)) push(child, `${key}.${name}`)
    }
  }
}

/**
 * Refuses bounds an integer field's column cannot hold: every `integer` is stored in a 32-bit
 * `integer` column (see {@link INTEGER_COLUMN_RANGE}).
 */
function checkIntegerBounds(file: string, field: string, prop: JsonSchema): void {
  const { minimum, maximum } = INTEGER_COLUMN_RANGE
  const outside = (v: unknown) => typeof v === 'number' && (v < minimum || v > maximum)
  const beyond = (what: string, value: unknown) =>
    new SchemaError(
      file,
      `field '${field}': ${what} ${JSON.stringify(value)} is beyond the range of an integer column (${minimum}..${maximum});` +
        ' keep integer bounds within it, or use "type": "number" (a double, exact up to 2^53) for larger values',
    )
  for (const key of ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum']) if (outside(prop[key])) throw beyond(key, prop[key])
  if (outside(prop.const)) throw beyond('const', prop.const)
  if (Array.isArray(prop.enum)) for (const v of prop.enum) if (outside(v)) throw beyond('enum value', v)
}

function parseRelation(file: string, name: string, raw: unknown): FieldDefinition['relation'] {
  if (raw === undefined) return undefined
  const rel = typeof raw === 'string' ? { resource: raw } : raw
  if (!rel || typeof rel !== 'object' || typeof (rel as { resource?: unknown }).resource !== 'string') {
    throw new SchemaError(file, `field '${name}': x-relation must be a resource name or {"resource", "onDelete"}`)
  }
  const { resource, onDelete = 'restrict', ...rest } = rel as { resource: string; onDelete?: string }
  if (Object.keys(rest).length) throw new SchemaError(file, `field '${name}': unknown x-relation key '${Object.keys(rest)[0]}'`)
  if (!ON_DELETE.includes(onDelete as OnDelete)) {
    throw new SchemaError(file, `field '${name}': onDelete must be one of ${ON_DELETE.join(', ')}`)
  }
  return { resource, onDelete: onDelete as OnDelete }
}

/** Reads and checks one schema file on its own (cross-file checks happen in {@link loadSchemas}). */
function parseSchemaFile(file: string, text: string, ajv: Ajv, keywords: ExtraKeywords = []): ResourceDefinition {
  const name = path.basename(file, '.json')
  if (!SAFE_IDENTIFIER.test(name)) throw new SchemaError(file, `resource name '${name}' is not a safe SQL identifier (${SAFE_IDENTIFIER})`)
  let schema: JsonSchema
  try {
    schema = JSON.parse(text)
  } catch (err) {
    throw new SchemaError(file, `invalid JSON: ${(err as Error).message}`)
  }
  if (!schema || typeof schema !== 'object' || Array.isArray(schema)) throw new SchemaError(file, 'a schema must be a JSON object')
  if (schema.$schema !== undefined && schema.$schema !== SCHEMA_DRAFT && schema.$schema !== SCHEMA_DRAFT.slice(0, -1)) {
    throw new SchemaError(
      file,
      `$schema ${JSON.stringify(schema.$schema)} is not supported: schema files are JSON Schema draft-07 ("$schema": "${SCHEMA_DRAFT}", or no $schema)`,
    )
  }
  if (schema.title !== undefined && schema.title !== name) {
    throw new SchemaError(file, `title ${JSON.stringify(schema.title)} must be the file's name, '${name}' (or be left out)`)
  }
  for (const key of Object.keys(schema)) {
    if (!ALLOWED_TOP_LEVEL.has(key) && !keywords.some((k) => k.on === 'resource' && k.name === key)) {
      throw new SchemaError(file, `unsupported top-level keyword '${key}'`)
    }
  }
  checkKeywords(file, schema, 'resource', keywords)
  if (schema.type !== 'object') throw new SchemaError(file, 'the schema must have "type": "object"')
  if (schema.additionalProperties !== undefined && schema.additionalProperties !== false) {
    throw new SchemaError(file, 'additionalProperties must be false (unknown fields are refused)')
  }
  const plural = schema['x-plural'] ?? `${name}s`
  if (typeof plural !== 'string' || !SAFE_IDENTIFIER.test(plural)) {
    throw new SchemaError(file, `x-plural '${String(plural)}' is not a safe SQL identifier (${SAFE_IDENTIFIER})`)
  }
  if (plural === name) throw new SchemaError(file, 'x-plural must differ from the resource name')
  if (RESERVED_TABLES.includes(plural)) throw new SchemaError(file, `table name '${plural}' is reserved: knex keeps its migration history there`)
  const properties = schema.properties
  if (!properties || typeof properties !== 'object' || Array.isArray(properties)) throw new SchemaError(file, 'the schema must declare "properties"')
  const required = schema.required ?? []
  if (!Array.isArray(required) || required.some((r) => typeof r !== 'string')) throw new SchemaError(file, '"required" must be a list of field names')

  const fields: FieldDefinition[] = Object.entries(properties as Record<string, JsonSchema>).map(([field, prop]) => {
    if (ENGINE_FIELD_NAMES.includes(field)) {
      throw new SchemaError(file, `field '${field}' is reserved: the engine adds ${ENGINE_FIELD_NAMES.join(', ')} itself`)
    }
    if (!SAFE_IDENTIFIER.test(field)) throw new SchemaError(file, `field name '${field}' is not a safe SQL identifier (${SAFE_IDENTIFIER})`)
    if (!prop || typeof prop !== 'object' || Array.isArray(prop)) throw new SchemaError(file, `field '${field}' must be a schema object`)
    checkPropertyKeywords(file, field, prop, keywords)
    const kind = kindOf(file, field, prop)
    if (kind === 'integer') checkIntegerBounds(file, field, prop)
    const relation = parseRelation(file, field, prop['x-relation'])
    if (relation && kind !== 'uuid') throw new SchemaError(file, `field '${field}' has x-relation, so it must be {"type": "string", "format": "uuid"}`)
    if (prop['x-index'] !== undefined && typeof prop['x-index'] !== 'boolean') throw new SchemaError(file, `field '${field}': x-index must be true or false`)
    if (prop['x-multiline'] !== undefined && (prop['x-multiline'] !== true || kind !== 'string')) {
      throw new SchemaError(file, `field '${field}': x-multiline must be true, on a string field`)
    }
    if (prop.writeOnly !== undefined && typeof prop.writeOnly !== 'boolean') throw new SchemaError(file, `field '${field}': writeOnly must be true or false`)
    if (prop['x-case-insensitive'] !== undefined && (prop['x-case-insensitive'] !== true || kind !== 'string')) {
      throw new SchemaError(file, `field '${field}': x-case-insensitive must be true, on a string field`)
    }
    const alias = prop['x-alias']
    if (alias !== undefined && (typeof alias !== 'string' || !SAFE_IDENTIFIER.test(alias))) {
      throw new SchemaError(file, `field '${field}': x-alias must be a field name, a safe SQL identifier (${SAFE_IDENTIFIER})`)
    }
    if (typeof alias === 'string' && ENGINE_FIELD_NAMES.includes(alias)) {
      throw new SchemaError(file, `field '${field}': x-alias '${alias}' is reserved: the engine adds ${ENGINE_FIELD_NAMES.join(', ')} itself`)
    }
    const maxBytes = prop['x-max-bytes']
    if (maxBytes !== undefined && (!Number.isSafeInteger(maxBytes) || (maxBytes as number) < 2 || (kind !== 'json' && kind !== 'string'))) {
      throw new SchemaError(file, `field '${field}': x-max-bytes must be an integer of 2 or more (bytes of JSON text), on an object, array or string field`)
    }
    const search = prop['x-search']
    if (search !== undefined && typeof search !== 'boolean') throw new SchemaError(file, `field '${field}': x-search must be true or false`)
    if (search === true && kind !== 'string') {
      throw new SchemaError(file, `field '${field}': x-search applies to text fields (a string that is not a uuid or a date-time); this one is ${kind}`)
    }
    if (search === true && prop.writeOnly === true) {
      throw new SchemaError(file, `field '${field}': x-search cannot go on a writeOnly field: q would tell which rows hold a word of it`)
    }
    checkKeywords(file, prop, 'property', keywords, field)
    const hidden = prop.writeOnly === true
    const definition: FieldDefinition = {
      name: field,
      kind,
      required: required.includes(field),
      schema: prop,
      relation,
      index: prop['x-index'] === true,
      hidden,
    }
    if (prop['x-case-insensitive'] === true) definition.caseInsensitive = true
    if (typeof alias === 'string') definition.alias = alias
    if (search === true) definition.search = true
    return definition
  })
  const names = new Set<string>()
  for (const name of fields.flatMap((f) => (f.alias ? [f.name, f.alias] : [f.name]))) {
    if (names.has(name)) throw new SchemaError(file, `x-alias '${name}' is already the name or alias of another field`)
    names.add(name)
  }
  for (const r of required as string[]) {
    if (!fields.some((f) => f.name === r)) throw new SchemaError(file, `required field '${r}' is not in "properties"`)
  }

  const unique = schema['x-unique'] ?? []
  if (!Array.isArray(unique) || unique.some((k) => !Array.isArray(k) || k.length === 0)) {
    throw new SchemaError(file, 'x-unique must be a list of keys, each a non-empty list of field names')
  }
  for (const key of unique as string[][]) {
    for (const f of key) {
      const field = fields.find((d) => d.name === f)
      if (!field) throw new SchemaError(file, `x-unique names unknown field '${f}'`)
      if (field.kind === 'json') throw new SchemaError(file, `x-unique field '${f}' is an object or array`)
    }
  }
  for (const field of fields) {
    if (field.caseInsensitive && !(unique as string[][]).some((key) => key.includes(field.name))) {
      throw new SchemaError(file, `field '${field.name}': x-case-insensitive applies to unique keys, and the field is in no x-unique key`)
    }
  }

  const lookup = schema['x-lookup']
  if (lookup !== undefined) {
    const field = typeof lookup === 'string' ? fields.find((f) => f.name === lookup) : undefined
    if (!field) throw new SchemaError(file, `x-lookup must name one field of the schema (got ${JSON.stringify(lookup)})`)
    if (field.kind !== 'string') throw new SchemaError(file, `x-lookup '${lookup}' must be a text field (a uuid-shaped value is always an id)`)
    if (!(unique as string[][]).some((key) => key.length === 1 && key[0] === lookup)) {
      throw new SchemaError(
        file,
        `x-lookup '${lookup}' must be a unique key on its own (x-unique: [["${lookup}"]]): a value must name at most one row` +
          ' (a field unique only with others, as a remoteci name in its team, cannot be a lookup)',
      )
    }
  }

  const owner = schema['x-owner']
  if (owner !== undefined) {
    if (typeof owner !== 'string') throw new SchemaError(file, 'x-owner must be a field name, or "id" for a resource that owns itself')
    const field = fields.find((f) => f.name === owner)
    if (owner !== 'id' && !field?.relation) throw new SchemaError(file, `x-owner '${owner}' must be "id" or a field with x-relation`)
  }
  const access = schema['x-access'] ?? {}
  if (!access || typeof access !== 'object' || Array.isArray(access)) {
    throw new SchemaError(file, 'x-access must be an object: per operation (read, create, update, delete or an action name), a list of roles')
  }
  for (const [operation, roles] of Object.entries(access as Record<string, unknown>)) {
    if (!ROLE_NAME.test(operation)) throw new SchemaError(file, `x-access operation '${operation}' is not an operation or action name`)
    if (!Array.isArray(roles) || roles.some((r) => typeof r !== 'string' || !ROLE_NAME.test(r))) {
      throw new SchemaError(file, `x-access '${operation}' must be a list of role names`)
    }
  }
  const readOnly = schema['x-read-only'] ?? false
  if (typeof readOnly !== 'boolean') throw new SchemaError(file, 'x-read-only must be true or false')

  for (const field of fields) {
    if (field.schema.default === undefined) continue
    let check: ReturnType<Ajv['compile']>
    try {
      check = ajv.compile({ ...columnBounded(field), default: undefined })
    } catch {
      continue // the whole schema's compile below names the problem
    }
    if (!check(field.schema.default)) {
      throw new SchemaError(
        file,
        `field '${field.name}': default ${JSON.stringify(field.schema.default)} does not match the field (${ajv.errorsText(check.errors)})`,
      )
    }
  }

  try {
    ajv.compile(schema)
  } catch (err) {
    throw new SchemaError(file, `not a valid JSON Schema: ${(err as Error).message}`)
  }
  return {
    name,
    plural,
    file,
    schema,
    fields,
    unique: unique as string[][],
    ...(lookup !== undefined ? { lookup: lookup as string } : {}),
    owner,
    access: access as Record<string, string[]>,
    readOnly,
  }
}

/** Checks that relate several files: unique plurals and names, relations to known resources. */
function checkDefinitions(defs: ResourceDefinition[]): void {
  const byRoute = new Map<string, ResourceDefinition>()
  for (const def of defs) {
    for (const key of [def.name, def.plural]) {
      const other = byRoute.get(key)
      if (other && other !== def) throw new SchemaError(def.file, `name or plural '${key}' is already used by ${path.basename(other.file)}`)
      byRoute.set(key, def)
    }
  }
  const names = new Set(defs.map((d) => d.name))
  for (const def of defs) {
    for (const field of def.fields) {
      if (field.relation && !names.has(field.relation.resource)) {
        throw new SchemaError(def.file, `field '${field.name}' relates to unknown resource '${field.relation.resource}'`)
      }
      if (field.relation && def.owner === field.name) {
        const target = defs.find((d) => d.name === field.relation!.resource)!
        if (target.owner !== 'id') {
          throw new SchemaError(def.file, `x-owner '${field.name}' relates to '${target.name}', which must own itself ("x-owner": "id")`)
        }
      }
      if (field.relation?.onDelete === 'set null' && field.required) {
        throw new SchemaError(def.file, `field '${field.name}' is required, so its relation cannot use onDelete "set null"`)
      }
    }
  }
}

/** Runs the `check` of each plugin keyword the schema (or one property) uses. */
function checkKeywords(file: string, schema: JsonSchema, on: SchemaKeyword['on'], keywords: ExtraKeywords, field?: string): void {
  for (const keyword of keywords) {
    if (keyword.on !== on || schema[keyword.name] === undefined) continue
    const problem = keyword.check?.(schema[keyword.name])
    if (problem) throw new SchemaError(file, `${field ? `field '${field}': ` : ''}${keyword.name} ${problem}`)
  }
}

/** Reads one schema file from disk and checks it on its own. */
function readSchemaFile(file: string, ajv: Ajv, keywords: ExtraKeywords = []): ResourceDefinition {
  return parseSchemaFile(file, fs.readFileSync(file, 'utf8'), ajv, keywords)
}

/** An ajv that accepts the engine's keywords and the given plugin keywords in schema files. */
function loaderAjv(keywords: ExtraKeywords = []): Ajv {
  return schemaAjv(
    {},
    keywords.map((k) => k.name),
  )
}

/**
 * Loads every `*.json` file of a folder, sorted by name, plus `more` files (schema files plugins
 * bring). Throws {@link SchemaError} on the first bad file.
 */
export function loadSchemas(dir: string, keywords: ExtraKeywords = [], more: readonly string[] = []): ResourceDefinition[] {
  const ajv = loaderAjv(keywords)
  const files = [
    ...fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .sort()
      .map((f) => path.join(dir, f)),
    ...more,
  ]
  const defs = files.map((file) => readSchemaFile(file, ajv, keywords))
  checkDefinitions(defs)
  return defs
}
