import Form from '@rjsf/core'
import type { ErrorSchema, FieldProps, RJSFSchema, UiSchema, WidgetProps } from '@rjsf/utils'
import validator from '@rjsf/validator-ajv8'
import { useEffect, useMemo, useState } from 'react'
import { api, HttpError, queryValue, type Session } from '../api'
import type { Context } from '../main'
import type { ResourceMeta } from '../meta'

type Row = Record<string, unknown>

/** An object or array field (free-form JSON): a text area that holds JSON, checked as it is typed. */
function JsonField(props: FieldProps) {
  const [text, setText] = useState(() => (props.formData === undefined ? '' : JSON.stringify(props.formData, null, 2)))
  const [invalid, setInvalid] = useState<string>()
  const id = props.fieldPathId.$id
  return (
    <div className="json-field">
      <label htmlFor={id}>
        {props.name}
        {props.required ? ' *' : ''}
      </label>
      {props.schema.description && <p className="field-description">{props.schema.description}</p>}
      <textarea
        id={id}
        rows={5}
        value={text}
        aria-invalid={invalid ? true : undefined}
        onChange={(e) => {
          setText(e.target.value)
          if (!e.target.value.trim()) {
            setInvalid(undefined)
            props.onChange(undefined, props.fieldPathId.path)
            return
          }
          try {
            props.onChange(JSON.parse(e.target.value), props.fieldPathId.path)
            setInvalid(undefined)
          } catch (err) {
            setInvalid(`not JSON: ${(err as Error).message}`)
          }
        }}
      />
      {invalid && <p className="error">{invalid}</p>}
    </div>
  )
}

/**
 * A relation: a search over the related resource's rows, by name, and a choice among the matches.
 * `ui:options` name the related resource (`plural`) and whether it has a name to search (`searchable`);
 * the form's context holds the session.
 */
function RelationWidget(props: WidgetProps) {
  const session = (props.registry.formContext as { session: Session }).session
  const plural = String(props.options.plural)
  const searchable = props.options.searchable === true
  const [search, setSearch] = useState('')
  const [options, setOptions] = useState<Row[]>([])
  useEffect(() => {
    const params = new URLSearchParams({ limit: '20' })
    if (searchable) params.set('sort', 'name')
    if (search.trim() && searchable) params.set('query', `ilike(name,${queryValue(`%${search.trim()}%`)})`)
    let cancelled = false
    api(session, 'GET', `/${plural}?${params}`)
      .then(({ body }) => !cancelled && setOptions(body[plural]))
      .catch(() => !cancelled && setOptions([]))
    return () => {
      cancelled = true
    }
  }, [search, session, plural, searchable])
  const chosen = typeof props.value === 'string' ? props.value : ''
  return (
    <div className="relation">
      <input type="search" aria-label={`Search ${plural}`} placeholder={`search ${plural}`} value={search} onChange={(e) => setSearch(e.target.value)} />
      <select
        id={props.id}
        aria-label={props.label || props.name}
        value={chosen}
        required={props.required}
        onChange={(e) => props.onChange(e.target.value || undefined)}
      >
        <option value="">—</option>
        {chosen && !options.some((o) => o.id === chosen) && <option value={chosen}>{chosen}</option>}
        {options.map((o) => (
          <option key={String(o.id)} value={String(o.id)}>
            {String(o.name ?? o.id)}
          </option>
        ))}
      </select>
    </div>
  )
}

/** Only the fields the body schema takes, without nulls (an omitted field keeps its value on update). */
function editable(row: Row, schema: RJSFSchema): Row {
  const properties = (schema.properties ?? {}) as Record<string, unknown>
  return Object.fromEntries(Object.entries(row).filter(([key, value]) => key in properties && value !== null))
}

/** The server's field errors (`payload.errors` of a 400) as the form shows them, beside their fields. */
function toErrorSchema(errors: Record<string, string>): ErrorSchema {
  const schema: Record<string, unknown> = {}
  for (const [path, message] of Object.entries(errors)) {
    const field = path.replace(/^\//, '').split(/[./]/)[0] || path
    schema[field] = { __errors: [message] }
  }
  return schema as ErrorSchema
}

/**
 * A create or edit form generated from the resource's body schema (openapi.json): checked in the
 * browser by the same schema, then by the server, whose field errors show beside their fields. An edit
 * saves with the ETag it was loaded with; on 412 the current values are shown, to reload or overwrite.
 */
export function FormView({ context, resource, id }: { context: Context; resource: ResourceMeta; id?: string }) {
  const schema = (id ? resource.update : resource.create) as RJSFSchema | undefined
  const [formData, setFormData] = useState<Row>()
  const [etag, setEtag] = useState<string>()
  const [serverErrors, setServerErrors] = useState<ErrorSchema>()
  const [message, setMessage] = useState<string>()
  const [conflict, setConflict] = useState<{ current: Row; etag: string }>()
  const [saving, setSaving] = useState(false)

  const uiSchema = useMemo<UiSchema>(() => {
    const ui: UiSchema = { 'ui:submitButtonOptions': { submitText: id ? 'Save' : 'Create' } }
    for (const field of resource.fields) {
      if (!schema?.properties || !(field.name in schema.properties)) continue
      if (field.relation) {
        const related = context.meta.byPlural.get(field.relation.plural)
        ui[field.name] = {
          'ui:widget': RelationWidget,
          'ui:options': { plural: field.relation.plural, searchable: Boolean(related?.fields.some((f) => f.name === 'name')) },
        }
      } else if (field.type === 'object' || field.type === 'array') ui[field.name] = { 'ui:field': JsonField }
      else if (field.type === 'string' && !field.format && !field.enum && !(field.schema.maxLength <= 255)) ui[field.name] = { 'ui:widget': 'textarea' }
    }
    return ui
  }, [resource, schema, id, context])

  useEffect(() => {
    if (!id || !schema) {
      setFormData({})
      return
    }
    api(context.session, 'GET', `/${resource.plural}/${encodeURIComponent(id)}`)
      .then(({ body }) => {
        const row = body[resource.name] as Row
        setFormData(editable(row, schema))
        setEtag(row.etag as string)
      })
      .catch((err: unknown) => setMessage(err instanceof HttpError ? `${err.status} ${err.code}: ${err.message}` : String(err)))
  }, [context.session, resource, id, schema])

  if (!schema) return <p className="error">This resource takes no {id ? 'update' : 'create'}.</p>
  if (!formData) return message ? <p className="error">{message}</p> : <p className="loading">Loading…</p>

  const save = async (data: Row, ifMatch?: string) => {
    setSaving(true)
    setServerErrors(undefined)
    setMessage(undefined)
    try {
      if (id) {
        await api(context.session, 'PUT', `/${resource.plural}/${encodeURIComponent(id)}`, { body: data, ifMatch: ifMatch ?? etag })
        context.go(`#/${resource.plural}/${encodeURIComponent(id)}`)
      } else {
        const created = await api(context.session, 'POST', `/${resource.plural}`, { body: data })
        context.go(`#/${resource.plural}/${encodeURIComponent(String(created.body[resource.name].id))}`)
      }
    } catch (err) {
      if (err instanceof HttpError && err.status === 412 && id) {
        const current = await api(context.session, 'GET', `/${resource.plural}/${encodeURIComponent(id)}`)
        setConflict({ current: current.body[resource.name], etag: current.body[resource.name].etag })
      } else if (err instanceof HttpError && Object.keys(err.fieldErrors).length) {
        setServerErrors(toErrorSchema(err.fieldErrors))
        setMessage(err.message)
      } else {
        setMessage(err instanceof HttpError ? `${err.status} ${err.code}: ${err.message}` : String(err))
      }
    } finally {
      setSaving(false)
    }
  }

  return (
    <section>
      <div className="heading">
        <h1>{id ? `Edit ${resource.name}` : `New ${resource.name}`}</h1>
        <a className="button secondary" href={id ? `#/${resource.plural}/${encodeURIComponent(id)}` : `#/${resource.plural}`}>
          Cancel
        </a>
      </div>
      {conflict && (
        <div role="alert" className="conflict">
          <p>
            <strong>This {resource.name} changed since you opened it.</strong> Its current values:
          </p>
          <pre className="json">{JSON.stringify(editable(conflict.current, schema), null, 2)}</pre>
          <button
            type="button"
            onClick={() => {
              setFormData(editable(conflict.current, schema))
              setEtag(conflict.etag)
              setConflict(undefined)
            }}
          >
            Reload (drop my changes)
          </button>
          <button
            type="button"
            className="danger"
            onClick={() => {
              const mine = formData
              setEtag(conflict.etag)
              setConflict(undefined)
              void save(mine, conflict.etag)
            }}
          >
            Overwrite with my values
          </button>
        </div>
      )}
      {message && (
        <p role="alert" className="error">
          {message}
        </p>
      )}
      <Form
        schema={schema}
        uiSchema={uiSchema}
        formData={formData}
        validator={validator}
        formContext={{ session: context.session }}
        extraErrors={serverErrors}
        showErrorList={false}
        noHtml5Validate
        disabled={saving}
        onChange={(e) => setFormData(e.formData as Row)}
        onSubmit={(e) => void save(e.formData as Row)}
      />
    </section>
  )
}
