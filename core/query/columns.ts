import type Ajv from 'ajv'
import type { ValidateFunction } from 'ajv'
import { fieldAliases, filterableFields } from '../schema/derive'
import type { FieldKind, JsonSchema, ResourceDefinition } from '../schema/types'

/** Longest value a `where` clause or a `query` comparison compares with (characters), or the field's own `maxLength` when smaller. */
export const MAX_VALUE_LENGTH = 1_000

const INTEGER = /^-?\d{1,16}$/
/**
 * A decimal number. Linear: each part has one way to match (the digits before the point cannot be
 * traded with those after it), and values are shorter than {@link MAX_NUMBER_LENGTH} before it runs.
 */
const NUMBER = /^-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$/
/** Longest text a `number` value may have: more digits than a double holds, with room for an exponent. */
const MAX_NUMBER_LENGTH = 64

/** Turns a value as the query string writes it into the type of a field of `kind`, or undefined when it cannot be one. */
export function convert(kind: string, raw: string): string | number | boolean | undefined {
  switch (kind) {
    case 'integer':
      return INTEGER.test(raw) && Number.isSafeInteger(Number(raw)) ? Number(raw) : undefined
    case 'number':
      return raw.length <= MAX_NUMBER_LENGTH && NUMBER.test(raw) && Number.isFinite(Number(raw)) ? Number(raw) : undefined
    case 'boolean':
      return raw === 'true' ? true : raw === 'false' ? false : undefined
    case 'string':
      // Text is stored in NFC: a value written decomposed finds it too.
      return raw.normalize('NFC')
    default:
      return raw
  }
}

/** A field a list compares: by `where` and `query` (scalars), or by `query` only (`array`: an array of scalars). */
export interface Column {
  name: string
  kind: FieldKind | 'array'
  /** For an array, the type of its items. */
  itemKind?: string
  /** The JSON Schema a value of `where`, eq, ne and in must match (an array's items'). */
  check: ValidateFunction
  /** The kind alone (format, type): what a value of lt, le, gt and ge must be. */
  checkKind: ValidateFunction
  maxLength: number
  /** The related resource, for a relation field. */
  relation?: string
}

/** The columns of a resource by name (aliases too, beside their field's), and the names to list in errors. */
export interface Columns {
  def: ResourceDefinition
  byName: ReadonlyMap<string, Column>
  /** Scalar fields, then aliases: what `where` and `sort` take. */
  scalars: string[]
  /** Every name, a relation also as `name.`: what `query` takes. */
  names: string[]
}

const KIND_SCHEMA: Record<string, JsonSchema> = {
  uuid: { type: 'string', format: 'uuid' },
  datetime: { type: 'string', format: 'date-time' },
  integer: { type: 'integer' },
  number: { type: 'number' },
  boolean: { type: 'boolean' },
  string: { type: 'string' },
}

/** The scalar item type of an array field (`{"type": "array", "items": {"type": "string"}}`), if it has one. */
function scalarItems(schema: JsonSchema): { items: JsonSchema; type: string } | undefined {
  const types = Array.isArray(schema.type) ? schema.type : [schema.type]
  if (!types.includes('array')) return undefined
  const items = schema.items as JsonSchema | undefined
  const type = items && (Array.isArray(items.type) ? items.type.find((t) => t !== 'null') : items.type)
  return typeof type === 'string' && ['string', 'integer', 'number', 'boolean'].includes(type) ? { items: items!, type } : undefined
}

// Compiled once per validator instance and resource: the `where` parser and the `query` checker of
// a resource share them, as do the resources whose `query` follows a relation to it.
const compiled = new WeakMap<Ajv, WeakMap<ResourceDefinition, Columns>>()

/** The columns of `def`, their values' validators compiled by `ajv` (once). */
export function columnsOf(def: ResourceDefinition, ajv: Ajv): Columns {
  let byDef = compiled.get(ajv)
  if (!byDef) compiled.set(ajv, (byDef = new WeakMap()))
  const found = byDef.get(def)
  if (found) return found
  const byName = new Map<string, Column>()
  for (const field of filterableFields(def)) {
    const own = field.schema.maxLength
    byName.set(field.name, {
      name: field.name,
      kind: field.kind,
      check: ajv.compile(field.schema),
      checkKind: ajv.compile(KIND_SCHEMA[field.kind] ?? { type: 'string' }),
      maxLength: typeof own === 'number' && own < MAX_VALUE_LENGTH ? own : MAX_VALUE_LENGTH,
      relation: def.fields.find((f) => f.name === field.name)?.relation?.resource,
    })
  }
  const fields = [...byName.keys()]
  for (const field of def.fields) {
    const array = field.kind === 'json' && !field.hidden ? scalarItems(field.schema) : undefined
    if (!array) continue
    const check = ajv.compile(array.items)
    byName.set(field.name, { name: field.name, kind: 'array', itemKind: array.type, check, checkKind: check, maxLength: MAX_VALUE_LENGTH })
  }
  const aliases: string[] = []
  for (const [field, alias] of fieldAliases(def)) {
    const column = byName.get(field)
    if (!column) continue
    byName.set(alias, column)
    if (column.kind !== 'array') aliases.push(alias)
  }
  const names = [...byName.keys()].flatMap((n) => (byName.get(n)!.relation ? [n, `${n}.`] : [n]))
  const columns: Columns = { def, byName, scalars: [...fields, ...aliases], names }
  byDef.set(def, columns)
  return columns
}
