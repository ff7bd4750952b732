import { useEffect, useState } from 'react'
import { api, HttpError } from '../api'
import type { Context } from '../main'
import type { ResourceMeta } from '../meta'
import { Value } from './value'

/** One row: every field, relations as links with the related rows embedded, edit and delete when the role may. */
export function DetailView({ context, resource, id }: { context: Context; resource: ResourceMeta; id: string }) {
  const [row, setRow] = useState<Record<string, unknown>>()
  const [etag, setEtag] = useState<string>()
  const [error, setError] = useState<string>()
  const [confirming, setConfirming] = useState(false)

  // Embedded: the relations to resources the caller may read.
  const embed = resource.fields
    .filter((f) => f.relation && context.may(f.relation.plural, 'read'))
    .map((f) => f.name)
    .join(',')

  useEffect(() => {
    const query = embed ? `?embed=${embed}` : ''
    api(context.session, 'GET', `/${resource.plural}/${encodeURIComponent(id)}${query}`)
      .then(({ body }) => {
        const value = body[resource.name] as Record<string, unknown>
        setRow(value)
        setEtag(value.etag as string)
      })
      .catch((err: unknown) => setError(err instanceof HttpError ? `${err.status} ${err.code}: ${err.message}` : String(err)))
  }, [context.session, resource, id, embed])

  const remove = async () => {
    try {
      await api(context.session, 'DELETE', `/${resource.plural}/${encodeURIComponent(id)}`, { ifMatch: etag })
      context.go(`#/${resource.plural}`)
    } catch (err) {
      setConfirming(false)
      setError(
        err instanceof HttpError && err.status === 412
          ? 'This row changed since you opened it: reload it before deleting.'
          : err instanceof HttpError
            ? `${err.status} ${err.code}: ${err.message}`
            : String(err),
      )
    }
  }

  if (error && !row)
    return (
      <p role="alert" className="error">
        {error}
      </p>
    )
  if (!row) return <p className="loading">Loading…</p>
  return (
    <section>
      <div className="heading">
        <h1>
          {resource.name} {String(row.name ?? row.id)}
        </h1>
        <a className="button secondary" href={`#/${resource.plural}`}>
          All {resource.plural}
        </a>
        {context.may(resource.plural, 'update') && resource.update && (
          <a className="button" href={`#/${resource.plural}/${encodeURIComponent(id)}/edit`}>
            Edit
          </a>
        )}
        {context.may(resource.plural, 'delete') && resource.update && (
          <button type="button" className="danger" onClick={() => setConfirming(true)}>
            Delete
          </button>
        )}
      </div>
      {confirming && (
        <div role="alertdialog" aria-labelledby="confirm-delete" className="confirm">
          <p id="confirm-delete">
            Delete {resource.name} {String(row.name ?? row.id)}? This cannot be undone.
          </p>
          <button type="button" className="danger" onClick={remove}>
            Yes, delete it
          </button>
          <button type="button" onClick={() => setConfirming(false)}>
            Cancel
          </button>
        </div>
      )}
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <dl className="fields">
        {resource.fields.map((field) => (
          <div key={field.name}>
            <dt title={field.description}>{field.name}</dt>
            <dd>
              {field.relation && row[field.name] && typeof row[field.name] === 'object' ? (
                <>
                  <Value field={field} value={row[field.name]} />
                  <details>
                    <summary>embedded {field.relation.resource}</summary>
                    <pre className="json">{JSON.stringify(row[field.name], null, 2)}</pre>
                  </details>
                </>
              ) : field.type === 'object' || field.type === 'array' ? (
                <pre className="json">{JSON.stringify(row[field.name], null, 2)}</pre>
              ) : (
                <Value field={field} value={row[field.name]} />
              )}
            </dd>
          </div>
        ))}
      </dl>
    </section>
  )
}
