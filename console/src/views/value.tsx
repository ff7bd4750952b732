import type { Field } from '../meta'

/** A field's value as text, a relation as a link to the related row (its name when embedded). */
export function Value({ field, value }: { field: Field; value: unknown }) {
  if (value === null || value === undefined) return <span className="null">—</span>
  if (field.relation) {
    const embedded = typeof value === 'object' ? (value as Record<string, unknown>) : undefined
    const id = embedded ? String(embedded.id) : String(value)
    const label = embedded ? String(embedded.name ?? embedded.id) : id.slice(0, 8)
    return <a href={`#/${field.relation.plural}/${encodeURIComponent(id)}`}>{label}</a>
  }
  if (typeof value === 'object') return <code className="json">{JSON.stringify(value)}</code>
  return <>{String(value)}</>
}
