import type { ErrorObject, ValidateFunction } from 'ajv'
import type { Knex } from 'knex'
import { Model, type ModelClass } from 'objection'
import { errors } from './errors'
import { compileListQuery, type ListLimits, type ListQueryParser } from './list-query'
import { Repository } from './repository'
import type { ResourcePlugin } from './resource'
import { RESERVED_FIELDS, SchemaError, schemaAjv, type JsonSchema, type ResourceDefinition } from './schema-loader'

/** A registered resource: its definition and everything built from it once, at start-up. */
export interface Resource {
  name: string
  plural: string
  def: ResourceDefinition
  /**
   * An objection model of the resource's table (JSON columns declared), for plugins' own queries:
   * `resource.model.query(engine.db)`. The engine's statements run through knex (see Repository).
   */
  model: ModelClass<Model>
  /** The trusted internal API (no validation, no hooks). */
  repository: Repository
  /** The compiled parser of list and detail query strings. */
  query: ListQueryParser
  /** Validates a POST body; throws a 400 ApiError listing each field's error. */
  validateCreate(body: unknown): Record<string, unknown>
  /** Validates a PUT body (every field optional); throws a 400 ApiError. */
  validateUpdate(body: unknown): Record<string, unknown>
  plugin?: ResourcePlugin<any>
  /** Resources whose rows point at this one, as `plural.field`. */
  referencedBy: string[]
}

/**
 * The schema a body is checked against: optional fields also accept null (stored as NULL, shown as
 * null); on update nothing is required.
 */
function bodySchema(def: ResourceDefinition, forUpdate: boolean): JsonSchema {
  const properties: Record<string, JsonSchema> = {}
  for (const field of def.fields) {
    const prop = { ...field.schema }
    if (!field.required) {
      prop.type = [prop.type, 'null']
      if (Array.isArray(prop.enum)) prop.enum = [...prop.enum, null]
    }
    properties[field.name] = prop
  }
  return {
    type: 'object',
    properties,
    required: forUpdate ? [] : def.fields.filter((f) => f.required).map((f) => f.name),
    additionalProperties: false,
  }
}

function fieldOf(error: ErrorObject): string {
  if (error.keyword === 'additionalProperties') return (error.params as { additionalProperty: string }).additionalProperty
  if (error.keyword === 'required') return (error.params as { missingProperty: string }).missingProperty
  return error.instancePath.slice(1).replace(/\//g, '.') || '(body)'
}

function messageOf(error: ErrorObject): string {
  if (error.keyword === 'additionalProperties') {
    const field = (error.params as { additionalProperty: string }).additionalProperty
    return (RESERVED_FIELDS as readonly string[]).includes(field) ? 'is read-only: the server sets it' : 'is not a field of this resource'
  }
  if (error.keyword === 'required') return 'is required'
  return error.message ?? 'is invalid'
}

/** Most fields one validation error lists; the payload counts the others in `more_errors`. */
export const MAX_LISTED_FIELD_ERRORS = 100

/** Builds a validator that answers with every field's first error (up to {@link MAX_LISTED_FIELD_ERRORS}). */
function validator(check: ValidateFunction) {
  return (body: unknown): Record<string, unknown> => {
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw errors.bodyNotObject()
    if (check(body)) return body as Record<string, unknown>
    // No prototype: an unknown field named "constructor" or "toString" must still be listed.
    const fieldErrors: Record<string, string> = Object.create(null)
    let listed = 0
    let unlisted = 0
    // The schema's own fields first: ajv reports unknown fields before them, and they matter more.
    const all = check.errors ?? []
    const ordered = [...all.filter((e) => e.keyword !== 'additionalProperties'), ...all.filter((e) => e.keyword === 'additionalProperties')]
    for (const error of ordered) {
      const field = fieldOf(error)
      if (field in fieldErrors) continue
      // A body of many bad fields must not make an error many times its size.
      if (listed === MAX_LISTED_FIELD_ERRORS) unlisted++
      else {
        fieldErrors[field] = messageOf(error)
        listed++
      }
    }
    throw errors.validation(fieldErrors, unlisted)
  }
}

/** The objection model of a resource: table, id and the columns objection (de)serialises as JSON. */
function modelFor(def: ResourceDefinition): ModelClass<Model> {
  const jsonFields = def.fields.filter((f) => f.kind === 'json').map((f) => f.name)
  const model = class extends Model {
    static override tableName = def.plural
    static override jsonAttributes = jsonFields
  }
  Object.defineProperty(model, 'name', { value: `${def.name}Model` })
  return model
}

/** Names knex gives constraints by default, mapped to what they mean, to word 409/422 answers. */
function constraintNames(def: ResourceDefinition, defs: ResourceDefinition[]) {
  const names = new Map<string, { fields?: string[]; referenced?: string; referencing?: string }>()
  for (const key of def.unique) names.set(`${def.plural}_${key.join('_')}_unique`, { fields: key })
  for (const field of def.fields) {
    if (field.relation) names.set(`${def.plural}_${field.name}_foreign`, { fields: [field.name], referenced: field.relation.resource })
  }
  // A delete blocked by another table's foreign key names that table's constraint.
  for (const other of defs) {
    for (const field of other.fields) {
      if (field.relation?.resource === def.name) {
        names.set(`${other.plural}_${field.name}_foreign`, { fields: [field.name], referenced: def.name, referencing: other.plural })
      }
    }
  }
  return (constraint: string) => names.get(constraint)
}

/**
 * Builds every resource from its definition and plugin: model, repository, validators and query parser,
 * each once. Refuses a plugin for a schema that does not exist, or two plugins for one schema.
 */
export function buildRegistry(
  defs: ResourceDefinition[],
  plugins: ResourcePlugin<any>[],
  knex: Knex,
  limits: ListLimits,
): Map<string, Resource> {
  // Bodies: every field's error, no coercion, unknown fields refused (not removed), no defaults filled.
  const ajv = schemaAjv({ allErrors: true, coerceTypes: false, removeAdditional: false, useDefaults: false })
  // `where` values: the first error is enough.
  const queryAjv = schemaAjv()

  const pluginFor = new Map<string, ResourcePlugin<any>>()
  for (const plugin of plugins) {
    if (!defs.some((d) => d.name === plugin.schema)) throw new SchemaError(`${plugin.schema}.json`, 'a plugin is registered for this schema, but the file does not exist')
    if (pluginFor.has(plugin.schema)) throw new SchemaError(`${plugin.schema}.json`, 'two plugins are registered for this schema')
    pluginFor.set(plugin.schema, plugin)
  }

  const registry = new Map<string, Resource>()
  const lookup = (name: string) => {
    const resource = registry.get(name)
    if (!resource) throw new Error(`unknown resource ${name}`)
    return resource.repository
  }
  for (const def of defs) {
    const model = modelFor(def)
    registry.set(def.name, {
      name: def.name,
      plural: def.plural,
      def,
      model,
      repository: new Repository(def, model, knex, lookup, constraintNames(def, defs)),
      query: compileListQuery(def, limits, queryAjv),
      validateCreate: validator(ajv.compile(bodySchema(def, false))),
      validateUpdate: validator(ajv.compile(bodySchema(def, true))),
      plugin: pluginFor.get(def.name),
      referencedBy: defs.flatMap((o) => o.fields.filter((f) => f.relation?.resource === def.name).map((f) => `${o.plural}.${f.name}`)),
    })
  }
  return registry
}
