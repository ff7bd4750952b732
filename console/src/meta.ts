/**
 * What the console knows of the resources, read from the server's openapi.json: nothing of a
 * resource is written here, so a resource added by dropping a schema file appears with no code.
 */

export type JsonSchema = Record<string, any>

export interface Field {
  name: string
  schema: JsonSchema
  /** The JSON type without null: string, integer, number, boolean, object, array. */
  type: string
  format?: string
  enum?: unknown[]
  nullable: boolean
  /** Set by the server (id, etag, created_at...). */
  readOnly: boolean
  relation?: { resource: string; plural: string }
  description?: string
}

export interface ResourceMeta {
  name: string
  plural: string
  title: string
  description?: string
  fields: Field[]
  /** The body schemas of POST and PUT, when the resource takes them. */
  create?: JsonSchema
  update?: JsonSchema
  /** Parameters of its list (`q` only where some field is searchable). */
  listParameters: string[]
}

export interface Meta {
  title: string
  resources: ResourceMeta[]
  byName: Map<string, ResourceMeta>
  byPlural: Map<string, ResourceMeta>
}

const ALIAS = /^Alias of `/

/** The type of a schema without its null (`["string", "null"]` is a nullable string). */
function typeOf(schema: JsonSchema): { type: string; nullable: boolean } {
  if (Array.isArray(schema.type)) {
    const types = schema.type.filter((t: string) => t !== 'null')
    return { type: types[0] ?? 'string', nullable: schema.type.includes('null') }
  }
  if (schema.type) return { type: schema.type, nullable: false }
  // A relation's answer schema: the id, or the embedded row.
  if (Array.isArray(schema.oneOf)) return { type: 'string', nullable: schema.oneOf.some((s: JsonSchema) => s.type === 'null') }
  return { type: 'string', nullable: false }
}

/** Drops alias properties (another name of a field) from a body schema: a form shows each field once. */
function withoutAliases(schema: JsonSchema): JsonSchema {
  const properties = Object.fromEntries(Object.entries(schema.properties ?? {}).filter(([, s]) => !ALIAS.test((s as JsonSchema).description ?? '')))
  const required: string[] = (schema.required ?? []).filter((r: string) => r in properties)
  const { anyOf, ...rest } = schema
  // A required field with an alias is required under either name: an `anyOf` of two `required`. The
  // form shows the field under its own name only, so there it is simply required.
  const either = Array.isArray(anyOf) && anyOf.every((s: JsonSchema) => Array.isArray(s.required) && Object.keys(s).length === 1)
  if (either) for (const option of anyOf) for (const name of option.required) if (name in properties && !required.includes(name)) required.push(name)
  return { ...rest, ...(anyOf && !either && { anyOf }), properties, required }
}

export function readMeta(document: JsonSchema): Meta {
  const schemas = document.components?.schemas ?? {}
  const resources: ResourceMeta[] = []
  for (const [path, methods] of Object.entries(document.paths as Record<string, Record<string, JsonSchema>>)) {
    const match = /^\/([^/{}]+)\/\{id\}$/.exec(path)
    const get = methods.get
    if (!match || !get || typeof get.operationId !== 'string' || !get.operationId.startsWith('get_')) continue
    const plural = match[1]
    const name = get.operationId.slice('get_'.length)
    const schema = schemas[name]
    if (!schema?.properties) continue
    const fields: Field[] = []
    for (const [fieldName, fieldSchema] of Object.entries(schema.properties as Record<string, JsonSchema>)) {
      if (ALIAS.test(fieldSchema.description ?? '')) continue
      const { type, nullable } = typeOf(fieldSchema)
      const relation = fieldSchema['x-relation'] ?? (Array.isArray(fieldSchema.oneOf) ? relationOf(fieldSchema.oneOf) : undefined)
      fields.push({
        name: fieldName,
        schema: fieldSchema,
        type,
        format: fieldSchema.format ?? (Array.isArray(fieldSchema.oneOf) ? 'uuid' : undefined),
        enum: fieldSchema.enum,
        nullable,
        readOnly: fieldSchema.readOnly === true,
        relation,
        description: fieldSchema.description,
      })
    }
    const list = document.paths[`/${plural}`]
    const createRef = list?.post?.requestBody?.content?.['application/json']?.schema?.$ref as string | undefined
    const updateRef = methods.put?.requestBody?.content?.['application/json']?.schema?.$ref as string | undefined
    const schemaOf = (ref?: string) => (ref ? withoutAliases(schemas[ref.split('/').pop()!]) : undefined)
    resources.push({
      name,
      plural,
      title: schema.title ?? name,
      description: schema.description,
      fields,
      create: schemaOf(createRef),
      update: schemaOf(updateRef),
      listParameters: (list?.get?.parameters ?? []).map((p: JsonSchema) => p.name ?? p.$ref?.split('/').pop()).filter(Boolean),
    })
  }
  resources.sort((a, b) => a.plural.localeCompare(b.plural))
  return {
    title: document.info?.title ?? 'API',
    resources,
    byName: new Map(resources.map((r) => [r.name, r])),
    byPlural: new Map(resources.map((r) => [r.plural, r])),
  }

  /** The resource an answer's `oneOf: [uuid, {$ref: <resource>}]` names. */
  function relationOf(oneOf: JsonSchema[]): { resource: string; plural: string } | undefined {
    const ref = oneOf.find((s) => typeof s.$ref === 'string')?.$ref as string | undefined
    if (!ref) return undefined
    const resource = ref.split('/').pop()!
    const listPath = Object.keys(document.paths).find((p) => document.paths[p]?.get?.operationId === `get_${resource}`)
    const plural = listPath ? listPath.split('/')[1] : `${resource}s`
    return { resource, plural }
  }
}

/** Whether a field can be a column of the table (and sorted on): not an object nor an array. */
export function isScalar(field: Field): boolean {
  return field.type !== 'object' && field.type !== 'array'
}
