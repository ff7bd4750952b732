import type { Knex } from 'knex'
import type { Model, ModelClass } from 'objection'
import { modelFor } from '../data/model'
import { consoleLogger, type EngineLogger } from '../http/frame'
import { Repository, type ResponseBudget } from '../data/repository'
import { ErrorRegistry } from '../errors'
import { compileListQuery, type ListLimits, type ListQueryParser } from '../query/list-query'
import { bodySchema, type ByteLimits, constraintMeanings, fieldAliases, fieldByteCaps, hiddenKeys, maxRowBytes } from '../schema/derive'
import type { JsonSchema, ResourceDefinition } from '../schema/types'
import { SCHEMA_KEYWORDS, schemaAjv, type SchemaKeyword } from '../schema/vocabulary'
import { HookRegistry, type MethodHooks } from '../service/hooks'
import { Service, type ServiceHost } from '../service/service'
import { SERVICE_METHODS, type ResourceService, type ServiceMethod } from '../service/types'
import { textRules, validator } from '../service/validate'
import { orderPlugins, type ActionDefinition, type ActionHooks, type Authenticator, type Plugin } from './plugin'

/** A registered resource: its definition and everything built from it once, at start-up. */
export interface Resource {
  name: string
  plural: string
  def: ResourceDefinition
  /**
   * An objection model of the resource's table (JSON columns declared), for plugins' own queries:
   * `resource.model.query(engine.db)`. These skip the service: no validation, no hooks.
   */
  model: ModelClass<Model>
  /** The service every transport and in-process caller goes through. */
  service: ResourceService
  /** The compiled parser of list and detail query strings. */
  query: ListQueryParser
  /** Fields after hooks add to answers, as plugins declared them (documented in openapi.json). */
  outputFields: Record<string, JsonSchema>
  /** The methods some before hook of a plugin may change the input of. */
  hooked: readonly ServiceMethod[]
  /** The largest JSON text, in bytes, a write may store per field (`x-max-bytes` or the engine's default), for the fields it applies to. */
  maxBytes: Readonly<Record<string, number>>
}

/** How many bytes fields and answers may take (see `EngineOptions.maxFieldBytes` and `maxResponseBytes`). */
export interface SizeLimits extends ByteLimits {
  maxResponseBytes: number
}

/** What the plugins added, gathered before the schemas are loaded. */
export interface PluginContributions {
  /** Installed plugins, in order. */
  plugins: Plugin[]
  hooks: HookRegistry
  schemaFiles: string[]
  actions: ActionDefinition<any>[]
  actionHooks: ActionHooks[]
  keywords: SchemaKeyword[]
  errors: ErrorRegistry
  outputFields: Map<string, Record<string, JsonSchema>>
  /** The authenticator a plugin installed, and which plugin. */
  authenticator?: { by: string; authenticator: Authenticator }
}

/** Runs every plugin's setup in dependency order and gathers what they add. */
export function collectPlugins(plugins: readonly Plugin[], logger: EngineLogger = consoleLogger): PluginContributions {
  const out: PluginContributions = {
    plugins: orderPlugins(plugins),
    hooks: new HookRegistry(),
    schemaFiles: [],
    actions: [],
    actionHooks: [],
    keywords: [],
    errors: new ErrorRegistry(),
    outputFields: new Map(),
  }
  for (const plugin of out.plugins) {
    const where = `plugin '${plugin.name}'`
    plugin.setup({
      hooks: (resource, hooks) => {
        for (const type of Object.keys(hooks)) {
          if (type === 'needs') {
            const unknown = Object.keys(hooks.needs ?? {}).filter((k) => k !== 'transaction' && k !== 'before')
            if (unknown.length) throw new Error(`${where}: hooks need 'transaction' or 'before', not '${unknown.join("', '")}'`)
            continue
          }
          if (!['before', 'after', 'error'].includes(type)) throw new Error(`${where}: hooks run 'before', 'after' or 'error', not '${type}'`)
          for (const method of Object.keys(hooks[type as 'before' | 'after' | 'error'] ?? {})) {
            if (method !== 'all' && !(SERVICE_METHODS as readonly string[]).includes(method)) {
              throw new Error(`${where}: '${method}' is not a service method (${SERVICE_METHODS.join(', ')}, all)`)
            }
          }
        }
        out.hooks.add(resource, hooks, plugin.name)
      },
      resource: (file) => void out.schemaFiles.push(file),
      action: (action) => {
        const clash = out.actions.find((a) => a.name === action.name || (a.method === action.method && a.path === action.path))
        if (clash) throw new Error(`${where}: action '${action.name}' (${action.method} ${action.path}) clashes with action '${clash.name}'`)
        out.actions.push(action)
      },
      actionHooks: (hooks) => void out.actionHooks.push(hooks),
      keyword: (keyword) => {
        if (!/^x-[a-z][a-z0-9-]*$/.test(keyword.name)) throw new Error(`${where}: schema keyword '${keyword.name}' must look like x-name`)
        if ((SCHEMA_KEYWORDS as readonly string[]).includes(keyword.name)) throw new Error(`${where}: schema keyword '${keyword.name}' is the engine's own`)
        if (out.keywords.some((k) => k.name === keyword.name)) throw new Error(`${where}: schema keyword '${keyword.name}' is already added`)
        out.keywords.push(keyword)
      },
      authenticator: (authenticator) => {
        if (out.authenticator) throw new Error(`${where}: plugin '${out.authenticator.by}' already installed an authenticator`)
        out.authenticator = { by: plugin.name, authenticator }
      },
      errorCode: (code, status, description) => out.errors.define(code, status, description),
      errors: out.errors,
      logger,
      outputFields: (resource, fields) => void out.outputFields.set(resource, { ...out.outputFields.get(resource), ...fields }),
    })
  }
  return out
}

/**
 * Builds every resource from its definition and the plugins' contributions: model, repository,
 * validators, query parser, hooks and service, each once. Refuses hooks or output fields for a
 * resource that does not exist, naming the plugin.
 */
export function buildResources(
  defs: ResourceDefinition[],
  contributions: PluginContributions,
  knex: Knex,
  limits: ListLimits,
  sizes: SizeLimits,
): Map<string, Resource> {
  const names = new Set(defs.map((d) => d.name))
  for (const { target, plugin } of contributions.hooks.targets()) {
    if (!names.has(target)) throw new Error(`plugin '${plugin}' hooks resource '${target}', which no schema file declares`)
  }
  for (const resource of contributions.outputFields.keys()) {
    if (!names.has(resource)) throw new Error(`output fields are declared for resource '${resource}', which no schema file declares`)
  }
  // Bodies: every field's error, no coercion, unknown fields refused (not removed), no defaults filled.
  const ajv = schemaAjv(
    { allErrors: true, coerceTypes: false, removeAdditional: false, useDefaults: false },
    contributions.keywords.map((k) => k.name),
  )
  // `where` values: the first error is enough.
  const queryAjv = schemaAjv(
    {},
    contributions.keywords.map((k) => k.name),
  )

  const registry = new Map<string, Resource>()
  const host: ServiceHost = {
    knex,
    service: (name) => {
      const resource = registry.get(name)
      if (!resource) throw new Error(`no resource named '${name}'`)
      return resource.service
    },
    hiddenFields: (name) => hidden.get(name) ?? [],
    definition: (name) => {
      const def = defs.find((d) => d.name === name)
      if (!def) throw new Error(`no resource named '${name}'`)
      return def
    },
  }
  const hidden = new Map(defs.map((d) => [d.name, hiddenKeys(d)]))
  const repositories = new Map<string, Repository>()
  // Computed once: a list compares `limit` times its resource's bound with the budget.
  const rowBounds = new Map(defs.map((d) => [d.name, maxRowBytes(d, sizes)]))
  const budget: ResponseBudget = { maxResponseBytes: sizes.maxResponseBytes, maxRowBytes: (name) => rowBounds.get(name) ?? sizes.bodyLimitBytes }
  for (const def of defs) {
    const repository = new Repository(def, knex, (name) => repositories.get(name)!, constraintMeanings(def, defs), budget)
    repositories.set(def.name, repository)
    const query = compileListQuery(def, limits, queryAjv, (name) => defs.find((d) => d.name === name))
    const text = textRules(def.fields)
    const caps = fieldByteCaps(def, sizes.maxFieldBytes)
    const hooks = Object.fromEntries(SERVICE_METHODS.map((m) => [m, contributions.hooks.compile(def.name, m)])) as Record<ServiceMethod, MethodHooks>
    const service = new Service(
      {
        def,
        repository,
        query,
        validateCreate: validator(ajv.compile(bodySchema(def, 'create')), text, fieldAliases(def), caps),
        validateUpdate: validator(ajv.compile(bodySchema(def, 'update')), text, fieldAliases(def), caps),
        hooks,
      },
      host,
    )
    registry.set(def.name, {
      name: def.name,
      plural: def.plural,
      def,
      model: modelFor(def),
      service,
      query,
      outputFields: contributions.outputFields.get(def.name) ?? {},
      hooked: SERVICE_METHODS.filter((m) => hooks[m].before.length > 0),
      maxBytes: Object.fromEntries(caps),
    })
  }
  return registry
}
