import { type ColumnDef, flexRender, getCoreRowModel, useReactTable } from '@tanstack/react-table'
import { useEffect, useMemo, useState } from 'react'
import { api, HttpError, queryValue } from '../api'
import type { Context } from '../main'
import { type Field, isScalar, type ResourceMeta } from '../meta'
import { Value } from './value'

const PAGE = 20

/** A filter's expression of the query language, from the field's type and what was typed. */
function clause(field: Field, text: string): string | undefined {
  const value = text.trim()
  if (!value) return undefined
  if (field.type === 'string' && !field.format && !field.enum) return `ilike(${field.name},${queryValue(`%${value.replace(/[%_\\]/g, '\\$&')}%`)})`
  if (field.format === 'date-time') return `ge(${field.name},${queryValue(value)})`
  return `eq(${field.name},${queryValue(value)})`
}

/** The filter control a field's type calls for. */
function FilterInput({ field, value, onChange }: { field: Field; value: string; onChange(value: string): void }) {
  const label = `Filter ${field.name}`
  if (field.enum || field.type === 'boolean') {
    const options = field.enum ?? [true, false]
    return (
      <select aria-label={label} value={value} onChange={(e) => onChange(e.target.value)}>
        <option value="">any</option>
        {options.map((o) => (
          <option key={String(o)} value={String(o)}>
            {String(o)}
          </option>
        ))}
      </select>
    )
  }
  const type = field.type === 'integer' || field.type === 'number' ? 'number' : 'search'
  const placeholder = field.format === 'date-time' ? 'from (ISO date)' : field.type === 'string' && !field.format ? 'contains' : 'equals'
  return <input aria-label={label} type={type} value={value} placeholder={placeholder} onChange={(e) => onChange(e.target.value)} />
}

/**
 * A resource's rows: a column per scalar field, sorted by a click on its header (the server sorts),
 * filtered by a control per column (the query language), paged by keyset (`after`), with the count.
 */
export function ListView({ context, resource }: { context: Context; resource: ResourceMeta }) {
  const columns = useMemo(() => resource.fields.filter(isScalar), [resource])
  const [sort, setSort] = useState<string>('')
  const [filters, setFilters] = useState<Record<string, string>>({})
  const [applied, setApplied] = useState<Record<string, string>>({})
  const [cursors, setCursors] = useState<string[]>([])
  const [page, setPage] = useState<{ rows: Record<string, unknown>[]; count?: number; exact: boolean; next?: string }>()
  const [error, setError] = useState<string>()

  const query = useMemo(() => {
    const clauses = columns.map((f) => clause(f, applied[f.name] ?? '')).filter((c): c is string => c !== undefined)
    if (clauses.length === 0) return ''
    return clauses.length === 1 ? clauses[0] : `and(${clauses.join(',')})`
  }, [columns, applied])

  useEffect(() => {
    const params = new URLSearchParams({ limit: String(PAGE) })
    if (sort) params.set('sort', sort)
    if (query) params.set('query', query)
    const after = cursors.at(-1)
    if (after) params.set('after', after)
    let cancelled = false
    api(context.session, 'GET', `/${resource.plural}?${params}`)
      .then(({ body }) => {
        if (cancelled) return
        setPage({ rows: body[resource.plural], count: body._meta.count, exact: body._meta.count_exact !== false, next: body._meta.next })
        setError(undefined)
      })
      .catch((err: unknown) => !cancelled && setError(err instanceof HttpError ? `${err.status} ${err.code}: ${err.message}` : String(err)))
    return () => {
      cancelled = true
    }
  }, [context.session, resource.plural, sort, query, cursors])

  const tableColumns = useMemo<ColumnDef<Record<string, unknown>>[]>(
    () =>
      columns.map((field) => ({
        id: field.name,
        accessorFn: (row) => row[field.name],
        header: () => {
          const state = sort === field.name ? 'ascending' : sort === `-${field.name}` ? 'descending' : 'none'
          return (
            <button
              type="button"
              className="sort"
              aria-label={`Sort by ${field.name}${state === 'ascending' ? ', descending' : ''}`}
              onClick={() => {
                setCursors([])
                setSort(state === 'ascending' ? `-${field.name}` : field.name)
              }}
            >
              {field.name} <span aria-hidden="true">{state === 'ascending' ? '▲' : state === 'descending' ? '▼' : ''}</span>
            </button>
          )
        },
        cell: (info) =>
          field.name === 'id' ? (
            <a href={`#/${resource.plural}/${encodeURIComponent(String(info.getValue()))}`}>{String(info.getValue()).slice(0, 8)}</a>
          ) : (
            <Value field={field} value={info.getValue()} />
          ),
      })),
    [columns, resource.plural, sort],
  )
  const table = useReactTable({ data: page?.rows ?? [], columns: tableColumns, getCoreRowModel: getCoreRowModel() })

  return (
    <section>
      <div className="heading">
        <h1>{resource.plural}</h1>
        {context.may(resource.plural, 'create') && resource.create && (
          <a className="button" href={`#/${resource.plural}/new`}>
            New {resource.name}
          </a>
        )}
      </div>
      {resource.description && <p className="description">{resource.description}</p>}
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault()
          setCursors([])
          setApplied(filters)
        }}
      >
        <table className="rows">
          <thead>
            {table.getHeaderGroups().map((group) => (
              <tr key={group.id}>
                {group.headers.map((header) => (
                  <th key={header.id} scope="col" aria-sort={sort === header.id ? 'ascending' : sort === `-${header.id}` ? 'descending' : undefined}>
                    {flexRender(header.column.columnDef.header, header.getContext())}
                  </th>
                ))}
              </tr>
            ))}
            <tr className="filter-row">
              {columns.map((field) => (
                <td key={field.name}>
                  <FilterInput field={field} value={filters[field.name] ?? ''} onChange={(value) => setFilters({ ...filters, [field.name]: value })} />
                </td>
              ))}
            </tr>
          </thead>
          <tbody>
            {table.getRowModel().rows.map((row) => (
              <tr key={row.id}>
                {row.getVisibleCells().map((cell) => (
                  <td key={cell.id}>{flexRender(cell.column.columnDef.cell, cell.getContext())}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
        <div className="pager">
          <button type="submit">Filter</button>
          <button
            type="button"
            onClick={() => {
              setFilters({})
              setApplied({})
              setCursors([])
            }}
          >
            Clear filters
          </button>
          <span className="count" data-testid="count">
            {page?.count !== undefined ? `${page.exact ? '' : '~'}${page.count} ${resource.plural}` : ''}
          </span>
          <button type="button" disabled={cursors.length === 0} onClick={() => setCursors([])}>
            First page
          </button>
          <button type="button" disabled={cursors.length === 0} onClick={() => setCursors(cursors.slice(0, -1))}>
            Previous page
          </button>
          <button type="button" disabled={!page?.next} onClick={() => page?.next && setCursors([...cursors, page.next])}>
            Next page
          </button>
        </div>
      </form>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </section>
  )
}
