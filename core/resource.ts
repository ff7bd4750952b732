import type Router from '@koa/router'
import type { Context } from 'koa'
import type { Engine } from './engine'
import type { OpenApiBuilder, OpenApiPathItem } from './openapi'

/** What a hook is told about the request it runs in. */
export interface HookContext {
  /** The engine, for the trusted internal API of any resource (`engine.resource(name).repository`). */
  engine: Engine
  /** The koa context of the HTTP request. */
  http: Context
}

/**
 * A resource plugin: the rules of one resource that its schema cannot say. Hooks run in the public,
 * validating layer, after the body matched the schema; they may change the data or throw an
 * {@link ApiError}. `T` is the resource's generated type.
 */
export interface ResourcePlugin<T = Record<string, unknown>> {
  /** The schema file this plugin belongs to (its name without `.json`). */
  schema: string
  hooks?: {
    beforeCreate?(data: T, ctx: HookContext): void | Promise<void>
    beforeUpdate?(id: string, patch: Partial<T>, ctx: HookContext): void | Promise<void>
    beforeDelete?(id: string, ctx: HookContext): void | Promise<void>
  }
  /** Extra routes, mounted under the engine's prefix beside the generated ones. */
  routes?(router: Router, engine: Engine): void
  /**
   * Describes the extra routes for the OpenAPI document: paths relative to the prefix, in OpenAPI
   * form (`/componenttypes/{id}/components`), built with the same pieces as the generated routes.
   */
  openapi?(spec: OpenApiBuilder): Record<string, OpenApiPathItem>
}

/** Declares a resource plugin (an identity function that gives the plugin its type). */
export function defineResource<T = Record<string, unknown>>(plugin: ResourcePlugin<T>): ResourcePlugin<T> {
  return plugin
}
