/** The resource engine: register JSON Schema resources, serve them as a REST API from any host. */
export { createEngine, DEFAULT_MAX_FIELD_BYTES, DEFAULT_MAX_RESPONSE_BYTES, type Engine, type EngineOptions, type Transaction } from './engine'
export {
  openDatabase,
  migrateLatest,
  listMigrations,
  rollbackMigrations,
  MissingMigrationFilesError,
  ensureMigrationLock,
  FolderMigrationSource,
  type DatabaseOptions,
} from './data/db'
export { databaseUrlProblem, fatalStartupMessage, isConnectionError, isPoolTimeout, unavailableError, isTransientStartupError } from './data/pg-errors'
export { EXACT_COUNT_UP_TO, type Row, type ListMeta } from './data/repository'
export { ApiError, ErrorRegistry, errors, type ErrorBody, type ErrorCode, type ErrorCodeDefinition } from './errors'
export { requestLog, type EngineLogger } from './http/frame'
export { clientErrorHandler, expectContinue, isLoopbackAddress, koaErrorLogger, LOOPBACK_HOSTS } from './http/edge'
export { healthRoutes, readiness, type HealthOptions } from './http/health'
export { createMetrics, metricsEndpoint, UNMATCHED_ROUTE, type EngineMetrics, type MetricsOptions } from './http/metrics'
export type { AdmissionOptions } from './http/admission'
export type { RateLimitOptions } from './http/rate-limit'
export type { HandlerOptions, NodeHandler } from './http/handler'
export { closeStalledAnswers, type StalledAnswer } from './http/write-timeout'
export { buildOpenApiDocument, type OpenApiDocument, type OpenApiInfo, type OpenApiPathItem } from './openapi/document'
export type { ActionInput, CompiledAction } from './plugins/actions'
export {
  defineAction,
  definePlugin,
  defineResource,
  type ActionContext,
  type Authenticator,
  type ActionDefinition,
  type ActionMethod,
  type Plugin,
  type PluginApi,
  type ResourcePlugin,
} from './plugins/plugin'
export type { Resource } from './plugins/registry'
export type { FindQuery, ListQuery, RawQuery } from './query/list-query'
export { SchemaError, loadSchemas } from './schema/loader'
export type { FieldDefinition, JsonSchema, ResourceDefinition } from './schema/types'
export { COLUMN_TYPES } from './schema/derive'
export type { SchemaKeyword } from './schema/vocabulary'
export {
  SERVICE_METHODS,
  type CompanionRow,
  type Hook,
  type HookContext,
  type HookMap,
  type HookNeeds,
  type HookSet,
  type Identity,
  type TransportRequest,
  type Page,
  type Params,
  type ResourceService,
  type ServiceMethod,
  type TransactionLike,
} from './service/types'
