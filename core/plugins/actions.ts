import type { Knex } from 'knex'
import type { ErrorRegistry } from '../errors'
import { errors } from '../errors'
import type { RawQuery } from '../query/list-query'
import type { ResourceDefinition } from '../schema/types'
import { isUuid, schemaAjv } from '../schema/vocabulary'
import { callParams, dbOf, isTransaction, nestedParams, withParams } from '../service/service'
import type { Page, Params, ResourceService } from '../service/types'
import { validator } from '../service/validate'
import type { ActionContext, ActionDefinition, ActionHookContext, ActionHooks } from './plugin'

/** What a caller gives an action: path parameters, query parameters and the body. */
export interface ActionInput {
  path?: Record<string, string>
  query?: RawQuery
  body?: unknown
}

/** An action ready to run: from HTTP or in-process (`engine.action(name).call(...)`). */
export interface CompiledAction {
  readonly definition: ActionDefinition<any>
  /** The list's resource plural, when the action answers a page. */
  readonly listKey?: string
  call(input: ActionInput, params?: Params): Promise<Page | Record<string, unknown> | void>
}

/** What running an action needs from the engine. */
export interface ActionHost {
  knex: Knex
  errors: ErrorRegistry
  service(name: string): ResourceService
  /** The list-query check of a resource (throws the 400 of a bad parameter). */
  checkList(resource: string, query: RawQuery): void
  plural(resource: string): string
  /** Hooks around every action, in plugin order. */
  hooks: readonly ActionHooks[]
  definition(resource: string): ResourceDefinition
  /** Every registered resource's definition. */
  definitions(): readonly ResourceDefinition[]
}

/** The resource an action belongs to: named, or its first resource path parameter's, or its list's. */
export function actionResource(action: ActionDefinition<any>): string | undefined {
  if (action.resource) return action.resource
  const param = Object.values(action.pathParams ?? {}).find((p) => 'resource' in p)
  return param && 'resource' in param ? param.resource : action.list
}

/**
 * Compiles an action once: its input validator and path parameter checks. A call checks the path
 * parameters (an id that cannot be one answers 404), the list parameters (`list`) and the body
 * (`input`), then runs the handler, in a transaction unless the action says otherwise.
 */
export function compileAction(action: ActionDefinition<any>, host: ActionHost): CompiledAction {
  const ajv = schemaAjv({ allErrors: true, coerceTypes: false, removeAdditional: false, useDefaults: false })
  const checkBody = action.input ? validator(ajv.compile(action.input)) : undefined
  const idParams = Object.entries(action.pathParams ?? {}).flatMap(([name, p]) => ('resource' in p ? [[name, p.resource] as const] : []))
  const listKey = action.list ? host.plural(action.list) : undefined
  const resource = actionResource(action)
  const before = host.hooks.flatMap((h) => (h.before ? [h.before] : []))
  const after = host.hooks.flatMap((h) => (h.after ? [h.after] : []))
  return {
    definition: action,
    listKey,
    async call(input, params = {}) {
      const path = input.path ?? {}
      const query = input.query ?? {}
      for (const [name, resource] of idParams) if (!isUuid(path[name] ?? '')) throw errors.notFound(resource)
      if (action.list) host.checkList(action.list, query)
      const body = checkBody ? checkBody(input.body ?? {}) : {}
      type Result = Page | Record<string, unknown> | void
      const run = async (db: Knex | Knex.Transaction): Promise<Result> => {
        const full = callParams(params)
        const nested = nestedParams(full, db)
        const ctx: ActionContext = {
          path,
          query,
          body,
          params: full,
          db,
          errors: host.errors,
          service: (name) => withParams(host.service(name), nested),
          definitions: () => host.definitions(),
        }
        if (before.length + after.length === 0) return action.handler(ctx)
        const hooked: ActionHookContext = {
          ...ctx,
          action,
          resource,
          definition: (name = resource) => {
            if (!name) throw new Error(`action '${action.name}' belongs to no resource`)
            return host.definition(name)
          },
        }
        for (const hook of before) await hook(hooked)
        hooked.result = await action.handler(ctx)
        for (const hook of after) await hook(hooked)
        return hooked.result
      }
      const db = dbOf(params.transaction, host.knex)
      if (action.transaction === false || isTransaction(db)) return run(db)
      return host.knex.transaction<Result>((trx) => run(trx))
    },
  }
}
