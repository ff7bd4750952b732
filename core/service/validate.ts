import type { ErrorObject, ValidateFunction } from 'ajv'
import { errors } from '../errors'
import { ENGINE_FIELD_NAMES } from '../schema/derive'

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

/** Most fields one validation error lists; the payload counts the others in `more_errors`. */
const MAX_LISTED_FIELD_ERRORS = 100

/** Builds a validator that answers with every field's first error (up to {@link MAX_LISTED_FIELD_ERRORS}). */
export function validator(check: ValidateFunction): (body: unknown) => Record<string, unknown> {
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
