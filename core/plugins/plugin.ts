import type { Db } from '../data/repository'
import type { ErrorRegistry } from '../errors'
import type { EngineLogger } from '../http/frame'
import type { RawQuery } from '../query/list-query'
import type { Knex } from 'knex'
import type { JsonSchema, ResourceDefinition } from '../schema/types'
import type { SchemaKeyword } from '../schema/vocabulary'
import type { HookSet, Identity, Page, Params, ResourceService, TransportRequest } from '../service/types'

/** What an action's handler is given. */
export interface ActionContext<I = Record<string, unknown>> {
  /** Path parameters (`:id` -> `path.id`). */
  path: Record<string, string>
  /** Query parameters as sent; with `list`, checked as that resource's list parameters. */
  query: RawQuery
  /** The body, checked against `input` (empty object when the action takes none). */
  body: I
  /** The call's params: provider, identity, and the action's transaction. */
  params: Params & { provider: string; identity: Identity }
  /** The database or transaction the handler runs in. */
  db: Db
  /** The service of any resource, in the action's transaction and with the caller's identity. */
  service(name: string): ResourceService
  /** The engine's error codes, for `errors.create('code', message)`. */
  errors: ErrorRegistry
  /** The definitions of every registered resource, in registration order. */
  definitions(): readonly ResourceDefinition[]
}

/** What an action hook is given: the action's context, which action, and (after) its result. */
export interface ActionHookContext extends ActionContext {
  readonly action: ActionDefinition<any>
  /** The resource the action belongs to (see {@link ActionDefinition.resource}). */
  readonly resource?: string
  /** after hooks: what the handler returned. */
  result?: Page | Record<string, unknown> | void
  /** A resource's definition (default: the action's resource). */
  definition(name?: string): ResourceDefinition
}

/**
 * Hooks around every action: `before` runs after the input checks and before the handler, `after`
 * once it returned, both in the action's transaction (a throw rolls the action back).
 */
export interface ActionHooks {
  before?(ctx: ActionHookContext): void | Promise<void>
  after?(ctx: ActionHookContext): void | Promise<void>
}

/** The HTTP methods an action may use. */
export type ActionMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

/**
 * A declarative custom operation: from one definition the engine makes the route, checks the input,
 * writes the OpenAPI operation and runs the handler in a transaction.
 */
export interface ActionDefinition<I = Record<string, unknown>> {
  /** Unique; the OpenAPI operationId and the typed client's method name. */
  name: string
  method: ActionMethod
  /** Below the engine's prefix, with `:param` segments: `/componenttypes/:id/components`. */
  path: string
  summary: string
  description?: string
  /** Path parameters; `{ resource }` is the id of a row of that resource (not a uuid: 404). */
  pathParams?: Record<string, { resource: string; description?: string } | { schema: JsonSchema; description?: string }>
  /** The action answers a page of this resource, and takes its list parameters. */
  list?: string
  /**
   * The resource the action belongs to, whose `x-access` may name it (default: the resource of the
   * first `pathParams` entry with one, else `list`).
   */
  resource?: string
  /** The body's JSON Schema (POST, PUT, PATCH); a body that does not match it is a 400. */
  input?: JsonSchema
  /** The answer's JSON Schema (unless `list`); the handler returns that object. */
  output?: JsonSchema
  /** The success status (default 200; 204 sends no body). */
  status?: number
  /** Error codes the action may answer with besides those of its input, documented in openapi.json. */
  errors?: string[]
  /** Run the handler in a transaction (default true). */
  transaction?: boolean
  handler(ctx: ActionContext<I>): Promise<Page | Record<string, unknown> | void> | Page | Record<string, unknown> | void
}

/** Declares an action (an identity function that gives it its type). */
export function defineAction<I = Record<string, unknown>>(action: ActionDefinition<I>): ActionDefinition<I> {
  return action
}

/**
 * Tells who calls from an HTTP request: an identity (which every service call of the request then
 * carries in `params.identity`), or undefined when credentials are missing or wrong (401). It may
 * throw an `ApiError` (a 403, say). Every route needs it except the index and `openapi.json`.
 */
export interface Authenticator {
  identify(request: TransportRequest, engine: AuthenticatorHost): Identity | undefined | Promise<Identity | undefined>
  /** The `WWW-Authenticate` challenges of a 401: `['Basic realm="dci"', 'Bearer']`. */
  challenges: string[]
  /** OpenAPI security schemes by name (`{ basic: { type: 'http', scheme: 'basic' } }`), required on every operation but the public ones. */
  securitySchemes?: Record<string, Record<string, unknown>>
}

/** What an authenticator may use: the engine's database and resources. */
export interface AuthenticatorHost {
  readonly db: Knex
  /** A resource's definition (table, fields, owner). */
  definition(resource: string): ResourceDefinition
}

/** What a plugin's `setup` may add to the engine it is installed in. */
export interface PluginApi {
  /** Hooks on one resource (singular name), or on every resource with `'*'`. */
  hooks(resource: string, hooks: HookSet): void
  /** A resource from a schema file the plugin brings (its table needs a migration, as any). */
  resource(schemaFile: string): void
  /** A custom operation (see {@link ActionDefinition}). */
  action(action: ActionDefinition<any>): void
  /** Hooks around every action (access checks, audit...). */
  actionHooks(hooks: ActionHooks): void
  /** A keyword schema files may then use (`x-...`). */
  keyword(keyword: SchemaKeyword): void
  /** How HTTP requests are authenticated (one plugin at most; see {@link Authenticator}). */
  authenticator(authenticator: Authenticator): void
  /** An error code and its status (401, 403, 429...), documented in openapi.json. */
  errorCode(code: string, status: number, description: string): void
  /** The engine's error codes: `api.errors.create('code', message)` makes an error hooks may throw. */
  readonly errors: ErrorRegistry
  /** Fields an after hook adds to a resource's answers, documented in its OpenAPI output schema. */
  outputFields(resource: string, fields: Record<string, JsonSchema>): void
  /** The engine's logger (its `logger` option), for what a plugin must report (failed logins...). */
  readonly logger: EngineLogger
}

/**
 * An app-level plugin: a name, the plugins it needs installed first, and a setup that adds hooks,
 * resources, actions, schema keywords and error codes. A missing dependency or a cycle stops
 * start-up with a message naming the plugins.
 */
export interface Plugin {
  name: string
  dependencies?: string[]
  setup(api: PluginApi): void
}

/** Declares a plugin (an identity function that gives it its type). */
export function definePlugin(plugin: Plugin): Plugin {
  return plugin
}

/**
 * The per-resource form: the rules of one resource that its schema cannot say. Sugar for a plugin
 * named after the schema that hooks that resource and adds its actions.
 */
export interface ResourcePlugin<T extends object = Record<string, unknown>> {
  /** The schema file this plugin belongs to (its name without `.json`). */
  schema: string
  hooks?: HookSet<T>
  actions?: ActionDefinition<any>[]
  /** Fields its after hooks add to answers (see {@link PluginApi.outputFields}). */
  outputFields?: Record<string, JsonSchema>
  dependencies?: string[]
}

/** Declares a per-resource plugin; it becomes a {@link Plugin} named `<schema>`. */
export function defineResource<T extends object = Record<string, unknown>>(plugin: ResourcePlugin<T>): Plugin {
  return {
    name: plugin.schema,
    dependencies: plugin.dependencies,
    setup(api) {
      if (plugin.hooks) api.hooks(plugin.schema, plugin.hooks as HookSet)
      for (const action of plugin.actions ?? []) api.action(action)
      if (plugin.outputFields) api.outputFields(plugin.schema, plugin.outputFields)
    },
  }
}

/** Plugins in the order they are installed: each after its dependencies, else in the order given. */
export function orderPlugins(plugins: readonly Plugin[]): Plugin[] {
  const byName = new Map<string, Plugin>()
  for (const plugin of plugins) {
    if (byName.has(plugin.name)) throw new Error(`plugin '${plugin.name}' is registered twice`)
    byName.set(plugin.name, plugin)
  }
  for (const plugin of plugins) {
    for (const dep of plugin.dependencies ?? []) {
      if (!byName.has(dep)) throw new Error(`plugin '${plugin.name}' needs plugin '${dep}', which is not registered`)
    }
  }
  const ordered: Plugin[] = []
  const state = new Map<string, 'visiting' | 'done'>()
  const visit = (plugin: Plugin, path: string[]) => {
    const seen = state.get(plugin.name)
    if (seen === 'done') return
    if (seen === 'visiting') {
      const cycle = [...path.slice(path.indexOf(plugin.name)), plugin.name]
      throw new Error(`plugins depend on each other in a cycle: ${cycle.join(' -> ')}`)
    }
    state.set(plugin.name, 'visiting')
    for (const dep of plugin.dependencies ?? []) visit(byName.get(dep)!, [...path, plugin.name])
    state.set(plugin.name, 'done')
    ordered.push(plugin)
  }
  for (const plugin of plugins) visit(plugin, [])
  return ordered
}
