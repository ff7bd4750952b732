import type { ErrorObject, ValidateFunction } from 'ajv'
import { errors } from '../errors'
import { canonicalBody, ENGINE_FIELD_NAMES } from '../schema/derive'
import type { FieldDefinition } from '../schema/types'

function fieldOf(error: ErrorObject): string {
  if (error.keyword === 'additionalProperties') return (error.params as { additionalProperty: string }).additionalProperty
  if (error.keyword === 'required') return (error.params as { missingProperty: string }).missingProperty
  return error.instancePath.slice(1).replace(/\//g, '.') || '(body)'
}

function messageOf(error: ErrorObject): string {
  if (error.keyword === 'additionalProperties') {
    const field = (error.params as { additionalProperty: string }).additionalProperty
    return ENGINE_FIELD_NAMES.includes(field) ? 'is read-only: the server sets it' : 'is not a field of this resource'
  }
  if (error.keyword === 'required') return 'is required'
  return error.message ?? 'is invalid'
}

const NO_ALIASES: ReadonlyMap<string, string> = new Map()

/** Most fields one validation error lists; the payload counts the others in `more_errors`. */
const MAX_LISTED_FIELD_ERRORS = 100

/** How one text field's values are checked and stored (see {@link textRules}). */
export interface TextRule {
  field: string
  /** An object or array field: only a NUL is refused, in any string or key inside it. */
  json?: boolean
  /** `x-multiline`: line breaks and tabs are allowed. */
  multiline: boolean
  /** `minLength` of 1 or more: a value of white space only is blank, and refused. */
  nonBlank: boolean
}

// Control characters (C0, DEL, C1), and invisible format characters (Unicode Cf) but the zero width
// joiner, which emoji sequences need: they make look-alike values ("rhel" and "rhel\u200b") and
// reorder text (U+202E).
const CONTROL = /\p{Cc}/u
const CONTROL_BUT_LINES = /(?![\t\n\r])\p{Cc}/u
const FORMAT = /(?!\u200d)\p{Cf}/u

/**
 * The text rules of a resource's string fields: stored in Unicode NFC (so "café" composed and
 * decomposed are one value, and one unique key), no control or invisible format characters (line
 * breaks and tabs with `x-multiline`), and not blank where `minLength` is 1 or more.
 */
export function textRules(fields: readonly FieldDefinition[]): TextRule[] {
  return fields
    .filter((f) => f.kind === 'string' || f.kind === 'json')
    .map((f) =>
      f.kind === 'json'
        ? { field: f.name, json: true, multiline: true, nonBlank: false }
        : { field: f.name, multiline: f.schema['x-multiline'] === true, nonBlank: Number(f.schema.minLength ?? 0) >= 1 },
    )
}

/** True when a string or key anywhere in a JSON value holds a NUL, which a `jsonb` column cannot store. Without recursion. */
function holdsNul(value: unknown): boolean {
  const stack = [value]
  while (stack.length) {
    const node = stack.pop()
    if (typeof node === 'string') {
      if (node.includes('\u0000')) return true
    } else if (node && typeof node === 'object') {
      for (const [key, child] of Object.entries(node)) {
        if (key.includes('\u0000')) return true
        stack.push(child)
      }
    }
  }
  return false
}

/** Why a text value is refused, or undefined. */
function textProblem(value: string, rule: TextRule): string | undefined {
  if ((rule.multiline ? CONTROL_BUT_LINES : CONTROL).test(value))
    return rule.multiline ? 'must not contain control characters' : 'must be one line without control characters'
  if (FORMAT.test(value)) return 'must not contain invisible format characters (U+200B, U+202E, U+FEFF...)'
  if (rule.nonBlank && value.trim() === '') return 'must not be blank'
  return undefined
}

/**
 * Applies the text rules to a body that matched its schema: answers the body with its strings in NFC
 * (a new object only when one changes), or throws the 400 naming each refused field (a text field
 * breaking its rules, an object or array field holding a NUL).
 */
function applyTextRules(body: Record<string, unknown>, rules: readonly TextRule[], sentAs: ReadonlyMap<string, string>): Record<string, unknown> {
  let out = body
  let refused: Record<string, string> | undefined
  for (const rule of rules) {
    const value = body[rule.field]
    const named = sentAs.get(rule.field) ?? rule.field
    if (rule.json) {
      if (holdsNul(value))
        (refused ??= Object.create(null) as Record<string, string>)[named] = 'must not contain a NUL character (U+0000), which cannot be stored'
      continue
    }
    if (typeof value !== 'string') continue
    const problem = textProblem(value, rule)
    if (problem) (refused ??= Object.create(null) as Record<string, string>)[named] = problem
    const normal = value.normalize('NFC')
    if (normal !== value) {
      if (out === body) out = { ...body }
      out[rule.field] = normal
    }
  }
  if (refused) throw errors.validation(refused)
  return out
}

/** Bytes of a value's JSON text in UTF-8. */
function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value))
}

/**
 * Refuses each field whose value takes more bytes as JSON than its limit (`caps`, field -> bytes, see
 * `fieldMaxBytes` in core/schema/derive.ts), naming it as the body did.
 */
function checkSizes(body: Record<string, unknown>, caps: ReadonlyArray<readonly [string, number]>, sentAs: ReadonlyMap<string, string>): void {
  let refused: Record<string, string> | undefined
  for (const [field, max] of caps) {
    const value = body[field]
    if (value === undefined || value === null) continue
    // A string's JSON takes at most 6 bytes per UTF-16 unit (\u001f) and its quotes: short ones need no count.
    if (typeof value === 'string' && 6 * value.length + 2 <= max) continue
    if (jsonBytes(value) > max) {
      ;(refused ??= Object.create(null) as Record<string, string>)[sentAs.get(field) ?? field] = `must take at most ${max} bytes as JSON (UTF-8)`
    }
  }
  if (refused) throw errors.validation(refused)
}

/**
 * Builds a validator that answers with every field's first error (up to {@link MAX_LISTED_FIELD_ERRORS}).
 * A field the body names by its alias (`aliases`, field -> alias pairs) is renamed to the field's name
 * first, and its errors name it as the body did; a field given under both names with different values
 * is refused, naming the alias. A body that matches its schema then has its fields' sizes checked
 * against `caps` (field -> largest JSON text in bytes).
 */
export function validator(
  check: ValidateFunction,
  rules: readonly TextRule[] = [],
  aliases: ReadonlyArray<readonly [string, string]> = [],
  caps: ReadonlyArray<readonly [string, number]> = [],
): (body: unknown) => Record<string, unknown> {
  return (sent: unknown): Record<string, unknown> => {
    if (!sent || typeof sent !== 'object' || Array.isArray(sent)) throw errors.bodyNotObject()
    const canonical = aliases.length ? canonicalBody(aliases, sent as Record<string, unknown>) : { body: sent as Record<string, unknown>, sentAs: NO_ALIASES }
    if ('conflicts' in canonical) throw errors.validation(canonical.conflicts)
    const { body, sentAs } = canonical
    if (check(body)) {
      if (caps.length) checkSizes(body, caps, sentAs)
      return rules.length ? applyTextRules(body, rules, sentAs) : body
    }
    // No prototype: an unknown field named "constructor" or "toString" must still be listed.
    const fieldErrors: Record<string, string> = Object.create(null)
    let listed = 0
    let unlisted = 0
    // The schema's own fields first: ajv reports unknown fields before them, and they matter more.
    const all = check.errors ?? []
    const ordered = [...all.filter((e) => e.keyword !== 'additionalProperties'), ...all.filter((e) => e.keyword === 'additionalProperties')]
    for (const error of ordered) {
      const path = fieldOf(error)
      const top = path.split('.')[0]
      const field = sentAs.has(top) ? sentAs.get(top)! + path.slice(top.length) : path
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
