import type { SchemaKeyword } from './vocabulary'

/** How a field is stored and parsed; see the type table in the README. */
export type FieldKind = 'string' | 'uuid' | 'datetime' | 'integer' | 'number' | 'boolean' | 'json'

export type OnDelete = 'restrict' | 'cascade' | 'set null'

export interface FieldDefinition {
  name: string
  kind: FieldKind
  required: boolean
  /** The property's JSON Schema, as written in the file. */
  schema: JsonSchema
  relation?: { resource: string; onDelete: OnDelete }
  index: boolean
  /** `writeOnly: true`: accepted on writes, never answered (a password hash...). */
  hidden: boolean
  /** `x-case-insensitive: true` (a text field in a unique key): `RHEL` and `rhel` are one value of the key. */
  caseInsensitive?: boolean
  /** `x-alias`: a second name of the field, taken on writes, `where` and `sort`, and answered beside it. */
  alias?: string
  /** `x-search: true` (a text field): the list parameter `q` searches it (full-text search). */
  search?: boolean
}

export interface ResourceDefinition {
  /** Singular name: the file name without `.json`, the key of detail responses. */
  name: string
  /** Plural name: the route, the table and the key of list responses. */
  plural: string
  file: string
  schema: JsonSchema
  fields: FieldDefinition[]
  unique: string[][]
  /** `x-lookup`: a string field, unique on its own, whose value names a row in detail routes in place of its id. */
  lookup?: string
  /** `x-owner`: the field holding the owning team's id, or `id` for the team resource itself. */
  owner?: string
  /** `x-access`: the roles allowed per operation (`read`, `create`, `update`, `delete`, action names). */
  access: Record<string, string[]>
  /** `x-read-only`: clients may only read it (its rows are written by server code). */
  readOnly: boolean
}

/** The keywords plugins add, by where a schema may use them (see {@link SchemaKeyword}). */
export type ExtraKeywords = readonly SchemaKeyword[]

export type JsonSchema = { [key: string]: unknown }
