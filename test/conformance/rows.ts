import fc from 'fast-check'
import type { FieldDefinition, ResourceDefinition } from '../../core'
import type { ValidateFunction } from 'ajv'
import { bodySchema } from '../../core/schema/derive'
import type { JsonSchema } from '../../core/schema/types'
import { schemaAjv } from '../../core/schema/vocabulary'
import type { TestApp } from '../support'

/** A row as the API answers it. */
export type ApiRow = Record<string, any> & { id: string; etag: string; created_at: string; updated_at: string }

const LETTERS = 'abcdefghijklmnopqrstuvwxyz'

/**
 * `seed` written in base 26 with lowercase letters, left-padded to `length`: distinct seeds give
 * distinct strings, and a larger seed gives a later string in every collation (same length, a-z only).
 */
export function letters(seed: number, length: number): string {
  let out = ''
  let n = Math.abs(Math.trunc(seed))
  do {
    out = LETTERS[n % 26] + out
    n = Math.floor(n / 26)
  } while (n > 0)
  return out.length >= length ? out.slice(out.length - length) : 'a'.repeat(length - out.length) + out
}

function firstType(schema: JsonSchema): string | undefined {
  const type = schema.type
  if (Array.isArray(type)) return type.find((t) => t !== 'null') as string | undefined
  return type as string | undefined
}

function stringFor(schema: JsonSchema, seed: number): string {
  const min = (schema.minLength as number | undefined) ?? 0
  const max = (schema.maxLength as number | undefined) ?? 255
  const length = Math.min(max, Math.max(min, 8))
  const code = letters(seed, Math.max(1, Math.min(length, 8)))
  const format = schema.format as string | undefined
  if (format) {
    const day = new Date(Date.UTC(2020, 0, 1) + seed * 60_000)
    const byFormat: Record<string, () => string> = {
      uuid: () => `00000000-0000-4000-8000-${seed.toString(16).padStart(12, '0')}`,
      'date-time': () => day.toISOString(),
      date: () => new Date(Date.UTC(2020, 0, 1) + seed * 86_400_000).toISOString().slice(0, 10),
      time: () => `${day.toISOString().slice(11, 19)}Z`,
      email: () => `${code}@example.com`,
      'idn-email': () => `${code}@example.com`,
      hostname: () => `${code}.example.com`,
      'idn-hostname': () => `${code}.example.com`,
      uri: () => `https://example.com/${code}`,
      url: () => `https://example.com/${code}`,
      iri: () => `https://example.com/${code}`,
      'uri-reference': () => `/${code}`,
      'iri-reference': () => `/${code}`,
      'uri-template': () => `/${code}/{id}`,
      ipv4: () => `10.${(seed >> 16) & 255}.${(seed >> 8) & 255}.${seed & 255}`,
      ipv6: () => `fd00::${(seed & 0xffff).toString(16)}`,
      regex: () => `${code}+`,
      'json-pointer': () => `/${code}`,
      'relative-json-pointer': () => `0/${code}`,
      duration: () => `P${seed + 1}D`,
      byte: () => Buffer.from(code).toString('base64'),
    }
    const make = byFormat[format]
    if (!make) throw new Error(`the conformance row generator does not know the string format '${format}': add it to test/conformance/rows.ts`)
    return make()
  }
  if (typeof schema.pattern === 'string') {
    // fast-check builds strings matching a regular expression; the seed makes them reproducible.
    const re = new RegExp(schema.pattern as string, 'u')
    const candidates = fc.sample(fc.stringMatching(re), { seed, numRuns: 200 })
    const fit = candidates.find((s) => s.length >= min && s.length <= max && !s.includes(',') && s.trim() === s)
    if (fit === undefined) throw new Error(`no string of length ${min}..${max} found for pattern ${schema.pattern}`)
    return fit
  }
  return length === 0 ? '' : code.length >= length ? code : code + 'x'.repeat(length - code.length)
}

function numberFor(schema: JsonSchema, seed: number, integer: boolean): number {
  const exMin = schema.exclusiveMinimum as number | undefined
  const exMax = schema.exclusiveMaximum as number | undefined
  let lo = (schema.minimum as number | undefined) ?? (exMin !== undefined ? (integer ? Math.floor(exMin) + 1 : exMin + 0.5) : 0)
  let hi = (schema.maximum as number | undefined) ?? (exMax !== undefined ? (integer ? Math.ceil(exMax) - 1 : exMax - 0.5) : lo + 1_000_000)
  if (integer) {
    lo = Math.ceil(lo)
    hi = Math.floor(hi)
  }
  const step = (schema.multipleOf as number | undefined) ?? 1
  const first = Math.ceil(lo / step) * step
  const slots = Math.max(1, Math.floor((hi - first) / step) + 1)
  const value = first + (seed % slots) * step
  // A fractional part checks that numbers survive the round trip, when the schema allows one.
  if (!integer && schema.multipleOf === undefined && value + 0.5 <= hi) return value + 0.5
  return value
}

/**
 * A value valid against a field's JSON Schema, made from `seed` only (the same seed, the same value).
 * Strings respect minLength/maxLength/enum/format/pattern, numbers their bounds and multipleOf;
 * objects get every property, arrays `minItems` (at least one) items. Relations are not handled here:
 * see {@link RowFactory}.
 */
export function valueFromSchema(schema: JsonSchema, seed: number, depth = 0): unknown {
  if (schema.const !== undefined) return schema.const
  if (Array.isArray(schema.enum)) {
    const choices = (schema.enum as unknown[]).filter((v) => v !== null)
    return choices[seed % choices.length]
  }
  switch (firstType(schema)) {
    case 'string':
      return stringFor(schema, seed)
    case 'integer':
      return numberFor(schema, seed, true)
    case 'number':
      return numberFor(schema, seed, false)
    case 'boolean':
      return seed % 2 === 1
    case 'null':
      return null
    case 'array': {
      const items = (schema.items as JsonSchema | undefined) ?? { type: 'string' }
      const count = Math.min((schema.maxItems as number | undefined) ?? 3, Math.max((schema.minItems as number | undefined) ?? 1, 1))
      return Array.from({ length: depth > 4 ? ((schema.minItems as number | undefined) ?? 0) : count }, (_, i) => valueFromSchema(items, seed + i, depth + 1))
    }
    case 'object': {
      const properties = (schema.properties as Record<string, JsonSchema> | undefined) ?? {}
      const required = (schema.required as string[] | undefined) ?? []
      const out: Record<string, unknown> = {}
      // A free-form object still gets content, so that its round trip through the database is checked.
      if (Object.keys(properties).length === 0 && schema.additionalProperties !== false) {
        return { seed, label: letters(seed, 8), nested: { list: [seed, true, null] } }
      }
      for (const [name, prop] of Object.entries(properties)) {
        if (depth > 4 && !required.includes(name)) continue
        out[name] = valueFromSchema(prop, seed, depth + 1)
      }
      return out
    }
    default:
      throw new Error(`the conformance row generator cannot make a value for ${JSON.stringify(schema)}`)
  }
}

/** A JSON value of the wrong type for a field, refused by its schema. */
export function wrongTypeFor(field: FieldDefinition): unknown {
  switch (firstType(field.schema)) {
    case 'string':
      return 12345
    case 'integer':
    case 'number':
      return 'not a number'
    case 'boolean':
      return 'yes'
    case 'array':
      return 'not an array'
    default:
      return 'not an object'
  }
}

/**
 * Makes valid rows of any registered resource from its schema alone, over HTTP. Relation fields get
 * a parent row of the related resource, created first (recursively). Each row gets a fresh seed, so
 * unique keys do not collide; tests may pin fields with `overrides`.
 */
export class RowFactory {
  private counter = 100
  private readonly validators: Record<string, ValidateFunction> = {}
  private readonly parents = new Map<string, string>()

  constructor(readonly app: TestApp) {}

  /** A seed no other row of this factory used. */
  nextSeed(): number {
    return this.counter++
  }

  private def(name: string): ResourceDefinition {
    return this.app.engine.resource(name).def
  }

  /**
   * The value of `field` for `seed`: the same seed gives the same value. For a relation it is the id of
   * a parent row made for that seed (once per factory).
   */
  async value(name: string, field: string, seed: number, creating: string[] = []): Promise<unknown> {
    const definition = this.def(name).fields.find((f) => f.name === field)
    if (!definition) throw new Error(`${name} has no field ${field}`)
    if (!definition.relation) return valueFromSchema(definition.schema, seed)
    const key = `${name}.${field}.${seed}`
    let id = this.parents.get(key)
    if (!id) {
      const target = definition.relation.resource
      if (creating.includes(target)) return null
      id = (await this.create(target, {}, [...creating, name])).id
      this.parents.set(key, id)
    }
    return id
  }

  /** A valid POST body (every field, optional ones included), checked by the engine's own validator. */
  async body(name: string, overrides: Record<string, unknown> = {}, creating: string[] = []): Promise<Record<string, unknown>> {
    const seed = this.nextSeed()
    const body: Record<string, unknown> = {}
    for (const field of this.def(name).fields) {
      if (field.name in overrides) {
        body[field.name] = overrides[field.name]
        continue
      }
      const value = await this.value(name, field.name, seed, creating)
      // A relation cycle is cut by leaving the optional field out.
      if (value !== null || !field.relation) body[field.name] = value
    }
    const check = (this.validators[name] ??= schemaAjv({ allErrors: true }).compile(bodySchema(this.def(name), 'create')))
    if (!check(structuredClone(body))) throw new Error(`${name}: generated an invalid body: ${JSON.stringify(check.errors)}`)
    return body
  }

  /** A valid PUT body: new values for every field but relations (which keep their parent). */
  updateBody(name: string): Record<string, unknown> {
    const seed = this.nextSeed()
    const body: Record<string, unknown> = {}
    for (const field of this.def(name).fields) {
      if (!field.relation) body[field.name] = valueFromSchema(field.schema, seed)
    }
    return body
  }

  /** Creates a row over HTTP (expects 201) and returns it as the API shows it. */
  async create(name: string, overrides: Record<string, unknown> = {}, creating: string[] = []): Promise<ApiRow> {
    const { plural } = this.app.engine.resource(name)
    const body = await this.body(name, overrides, creating)
    const res = await this.app.http.post(`${this.app.engine.prefix}/${plural}`).send(body)
    if (res.status !== 201) throw new Error(`creating a ${name} from ${JSON.stringify(body)} answered ${res.status}: ${res.text}`)
    return res.body[name]
  }
}
