/** The resource engine: register JSON Schema resources, serve them as a REST API from any koa app. */
export { createEngine, type Engine, type EngineOptions } from './engine'
export { openDatabase, migrateLatest, isEmbedded, FolderMigrationSource, type DatabaseOptions } from './db'
export { defineResource, type ResourcePlugin, type HookContext } from './resource'
export { ApiError, errors, isConnectionError, unavailableError, type ErrorBody } from './errors'
export { SchemaError, loadSchemas, type ResourceDefinition, type FieldDefinition } from './schema-loader'
export { checkSchemaDrift, SchemaDriftError } from './schema-drift'
export { generateMigration, type GenerateOptions, type GenerateResult } from './migration-generator'
export { COLUMN_TYPES } from './column-types'
export type { Resource } from './registry'
export type { Row } from './repository'
export type { ListQuery } from './list-query'
export { requestLog, type EngineLogger } from './middleware'
export { sendList } from './routes'
export { buildOpenApiDocument, type OpenApiDocument, type OpenApiBuilder, type OpenApiInfo, type OpenApiPathItem } from './openapi'
export {
  createClient, ApiRequestError, PreconditionFailedError,
  type Client, type ClientOptions, type ResourceClient, type ResourceType, type ResourceTypes, type ListParams, type ListPage, type Updated,
} from './client'
export type { RawQuery } from './list-query'
