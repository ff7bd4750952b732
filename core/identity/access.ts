import type { Row } from '../data/repository'
import { ApiError, errors } from '../errors'
import type { ActionHookContext, ActionHooks } from '../plugins/plugin'
import { filterHops } from '../query/filter'
import { embeddedAt, embedTarget } from '../query/list-query'
import type { AccessOperation } from '../schema/vocabulary'
import type { ResourceDefinition } from '../schema/types'
import type { HookContext, HookSet, Page } from '../service/types'
import { callerOf, type Caller } from './caller'
import { hashPassword } from './password'

/**
 * The roles allowed to do `operation` on a resource: its `x-access` entry, else the defaults: reads,
 * any authenticated caller; writes to a team-owned resource (an `x-owner` field), the team's admins;
 * writes to anything else, super_admin only. super_admin is always allowed.
 */
export function allowedRoles(def: ResourceDefinition, operation: string, fallback: AccessOperation): readonly string[] | 'anyone' {
  const declared = def.access[operation] ?? def.access[fallback]
  if (declared) return declared
  if (fallback === 'read') return 'anyone'
  return def.owner && def.owner !== 'id' ? ['admin'] : ['super_admin']
}

export function mayDo(caller: Caller, def: ResourceDefinition, operation: string, fallback: AccessOperation): boolean {
  if (caller.role === 'super_admin') return true
  const roles = allowedRoles(def, operation, fallback)
  return roles === 'anyone' || roles.includes(caller.role)
}

/** What a caller may do on one resource, as far as the role goes (see {@link permissionsOf}). */
export interface ResourcePermissions {
  read: boolean
  create: boolean
  update: boolean
  delete: boolean
}

/**
 * What the caller's role may do on each resource, by plural, as the access hooks decide it: the
 * `x-access` rules (or their defaults), everything for super_admin, no write to an `x-read-only`
 * resource for anyone. Row rules are not said: `update` and `delete` mean "on the rows the caller can
 * see" (a team admin, on the team's rows), a user's own password and email are theirs to change
 * whatever `update` says, and a create naming another team is refused to all but super_admin. Without
 * a caller (server code, not checked), everything but writes to read-only resources.
 */
export function permissionsOf(caller: Caller | undefined, defs: readonly ResourceDefinition[]): Record<string, ResourcePermissions> {
  const may = (def: ResourceDefinition, operation: AccessOperation) => caller === undefined || mayDo(caller, def, operation, operation)
  const write = (def: ResourceDefinition, operation: AccessOperation) => !def.readOnly && may(def, operation)
  return Object.fromEntries(
    defs.map((def) => [def.plural, { read: may(def, 'read'), create: write(def, 'create'), update: write(def, 'update'), delete: write(def, 'delete') }]),
  )
}

const OPERATION_OF = { find: 'read', get: 'read', create: 'create', update: 'update', remove: 'delete' } as const

/** The column that says which team owns a row (`id` for the team resource), when the caller is scoped to one. */
function scopeOf(caller: Caller, def: ResourceDefinition): string | undefined {
  return caller.role === 'super_admin' ? undefined : def.owner
}

/**
 * True when the caller may see the row (super_admins see every row; others, their team's). The owner
 * field may hold the embedded team row (a detail with `embed=team`) instead of its id.
 */
export function visible(caller: Caller, def: ResourceDefinition, row: Record<string, unknown>): boolean {
  const column = scopeOf(caller, def)
  if (column === undefined) return true
  const owner = row[column]
  const team = owner !== null && typeof owner === 'object' ? (owner as Row).id : owner
  return caller.team !== null && team === caller.team
}

/**
 * The checks of an action on rows of its own resource (path parameters naming one, such as the
 * holder of API keys), for a caller who is not super_admin, each row read once:
 * - `visible`: throws 404 when a row of a team-owned resource is missing or of another team, as
 *   a missing row does (a 403 would tell that it exists); run before any role check;
 * - `superAdmins`: the users' rule: only a super_admin (or the user) acts on a super_admin's row (a
 *   key made by a team admin for a super_admin would make that admin one).
 */
export async function actionRowRules(ctx: ActionHookContext, caller: Caller) {
  const def = ctx.resource && caller.role !== 'super_admin' ? ctx.definition() : undefined
  const column = def && scopeOf(caller, def)
  const rows: Array<Record<string, unknown> | undefined> = []
  if (def && (column !== undefined || def.name === 'user')) {
    const columns = ['id', ...(column !== undefined ? [column] : []), ...(def.name === 'user' ? ['role'] : [])]
    for (const [param, spec] of Object.entries(ctx.action.pathParams ?? {})) {
      if ('resource' in spec && spec.resource === def.name) rows.push(await ctx.db(def.plural).first(columns).where({ id: ctx.path[param] }))
    }
  }
  return {
    visible() {
      if (column === undefined) return
      for (const row of rows) if (!row || !visible(caller, def!, row)) throw errors.notFound(def!.name)
    },
    superAdmins(self: boolean) {
      if (!self && rows.some((row) => row?.role === 'super_admin')) throw forbidden('Only a super_admin may act on a super_admin')
    },
  }
}

const NO_TEAM = '00000000-0000-0000-0000-000000000000'

/** The fields a user may change on their own row. */
const SELF_SERVICE = new Set(['password', 'email'])

function forbidden(message: string) {
  return errors.forbidden(message)
}

/**
 * The rules of the users resource on top of the generic ones: anyone may change their own password
 * and email; nobody changes their own role or team; only a super_admin makes or changes a super_admin.
 */
function userRules(ctx: HookContext, caller: Caller): 'self' | undefined {
  const data = ctx.data ?? {}
  const self = caller.kind === 'user' && ctx.id === caller.id
  if (ctx.method === 'create' || ctx.method === 'update') {
    if (data.role === 'super_admin' && caller.role !== 'super_admin' && !(self && ctx.before?.role === 'super_admin')) {
      throw forbidden('Only a super_admin may make a super_admin')
    }
  }
  if ((ctx.method === 'update' || ctx.method === 'remove') && ctx.before?.role === 'super_admin' && caller.role !== 'super_admin') {
    throw forbidden('Only a super_admin may change a super_admin')
  }
  if (ctx.method === 'update' && self) {
    const before = ctx.before!
    const changed = Object.keys(data).filter((f) => f === 'password' || data[f] !== before[f])
    if (changed.includes('role') || changed.includes('team')) throw forbidden('Nobody may change their own role or team')
    if (changed.every((f) => SELF_SERVICE.has(f))) return 'self'
  }
  return undefined
}

/**
 * A relation set to another team's row is refused as one to a missing row (422 `related_not_found`,
 * the body the database's foreign key gives): accepting it would tell the caller that the row exists.
 * Relations to resources without an owner, the owner field (its own rules) and unchanged values are
 * not looked up.
 */
async function checkRelations(ctx: HookContext, def: ResourceDefinition, owner: string | undefined): Promise<void> {
  for (const field of def.fields) {
    const value = ctx.data![field.name]
    if (!field.relation || field.name === owner || typeof value !== 'string') continue
    if (ctx.method === 'update' && ctx.before?.[field.name] === value) continue
    const target = ctx.definition(field.relation.resource)
    if (!target.owner) continue
    const seen = await ctx
      .service(target.name)
      .get(value)
      .then(
        () => true,
        (err: unknown) => {
          if (err instanceof ApiError && (err.status === 404 || err.status === 403)) return false
          throw err
        },
      )
    if (!seen) throw errors.relatedNotFound(`A related ${target.name} does not exist`, { fields: [field.name] })
  }
}

/**
 * Hooks on every resource that enforce `x-owner` and `x-access` for calls whose identity the
 * identity plugin made (server code without one is not checked), hash users' passwords, and keep
 * other teams' rows out of answers: 404 on a row, absent from lists, counts and embeds.
 */
export function accessHooks(): HookSet {
  const check = (ctx: HookContext, caller: Caller, self: boolean) => {
    if (self) return
    const def = ctx.definition()
    const operation = OPERATION_OF[ctx.method]
    if (!mayDo(caller, def, operation, operation)) throw forbidden(`The role ${caller.role} may not ${operation} ${def.plural}`)
  }
  const before = async (ctx: HookContext) => {
    const caller = callerOf(ctx.params)
    const def = ctx.definition()
    if (caller) {
      const column = scopeOf(caller, def)
      // Another team's row first answers 404, as a missing one: a 403 would tell that it exists.
      if (column !== undefined && ctx.before && !visible(caller, def, ctx.before)) throw errors.notFound(def.name)
      const self = ctx.resource === 'user' ? userRules(ctx, caller) === 'self' : false
      // A scoped get checks the role once the row is read and known to be visible (after hook).
      if (!(ctx.method === 'get' && column !== undefined)) check(ctx, caller, self)
      if (column !== undefined && ctx.method === 'find') ctx.query!.where.push([column, caller.team ?? NO_TEAM])
      // A `query` that follows a relation reads the related resource: the same role check, and the
      // caller's team's rows only, as listing that resource would.
      if (ctx.method === 'find') {
        for (const hop of filterHops(ctx.query!.filter)) {
          const target = ctx.definition(hop.resource)
          if (!mayDo(caller, target, 'read', 'read')) throw forbidden(`The role ${caller.role} may not read ${target.plural}`)
          const scope = scopeOf(caller, target)
          if (scope !== undefined) hop.scope = [scope, caller.team ?? NO_TEAM]
        }
      }
      // Embedding reads the related resources: the role check of reading them, at every depth.
      const embedded = ctx.query?.embed ?? ctx.embed
      if (embedded) {
        for (const path of embedded) {
          const target = embedTarget(def, path, (name) => ctx.definition(name))
          if (!mayDo(caller, target, 'read', 'read')) throw forbidden(`The role ${caller.role} may not read ${target.plural}`)
        }
      }
      const owner = def.owner !== 'id' ? def.owner : undefined
      if (owner && ctx.data) {
        // An omitted owner is the caller's team; another team is for super_admins only.
        if (ctx.method === 'create' && ctx.data[owner] == null) ctx.data[owner] = caller.team
        const target = ctx.data[owner]
        if (caller.role !== 'super_admin' && target !== undefined) {
          if (ctx.method === 'create' && target !== caller.team) throw forbidden(`The role ${caller.role} may not create rows of another team`)
          if (ctx.method === 'update' && target !== ctx.before?.[owner]) throw forbidden('An update may not move a row to another team')
        }
      }
      if (ctx.data && caller.role !== 'super_admin') await checkRelations(ctx, def, owner)
    }
    if (ctx.resource === 'user' && typeof ctx.data?.password === 'string') ctx.data.password = await hashPassword(ctx.data.password)
  }
  const after = (ctx: HookContext) => {
    const caller = callerOf(ctx.params)
    if (!caller || caller.role === 'super_admin') return
    const def = ctx.definition()
    if (ctx.method === 'get' && scopeOf(caller, def) !== undefined) {
      if (!visible(caller, def, ctx.result as Row)) throw errors.notFound(def.name)
      check(ctx, caller, false)
    }
    // Embedded rows of another team are answered as null, as a missing one is, at every depth (a
    // parent before its children: nothing is looked at below a row answered as null).
    const embedded = ctx.query?.embed ?? ctx.embed ?? []
    for (const path of embedded) {
      const target = embedTarget(def, path, (name) => ctx.definition(name))
      if (!target.owner) continue
      const dot = path.lastIndexOf('.')
      const field = dot < 0 ? path : path.slice(dot + 1)
      const parentPath = dot < 0 ? '' : path.slice(0, dot)
      const rows = ctx.method === 'find' ? (ctx.result as Page).items : [ctx.result as Row]
      for (const row of rows) {
        const parent = dot < 0 ? row : embeddedAt(row, parentPath)
        const related = parent?.[field] as Row | null | undefined
        if (related && typeof related === 'object' && !visible(caller, target, related)) parent![field] = null
      }
    }
  }
  // The row before an update or remove matters to the users' rules and to every check of a caller who
  // is not super_admin (team scoping, a missing row's 404 before a 403); a super_admin's write to
  // another resource, or server code's, runs as one statement.
  const needsBefore = (ctx: HookContext) => {
    const caller = callerOf(ctx.params)
    return caller !== undefined && (ctx.resource === 'user' || caller.role !== 'super_admin')
  }
  return { before: { all: before }, after: { find: after, get: after }, needs: { transaction: false, before: needsBefore } }
}

/**
 * Appends one `audits` row per successful write: who, what, which row, its new ETag, the request id.
 * A write's row is inserted by the write's own statement (`insertWith`), so that it exists if and only
 * if the write does, with no transaction or round trip of its own; an action's, in its transaction.
 */
export function auditHooks(): { hooks: HookSet; actions: ActionHooks } {
  const who = (params: HookContext['params'], action: string, resource: string) => {
    const caller = callerOf(params)
    return {
      identity_id: caller?.id ?? null,
      identity_kind: caller?.kind ?? 'server',
      identity_name: caller?.name ?? null,
      action,
      resource,
      request_id: params.request?.id ?? (params.requestId as string | undefined) ?? null,
    }
  }
  const append = async (ctx: Pick<HookContext, 'params' | 'service'>, action: string, resource: string, rowId: unknown) => {
    const row = { ...who(ctx.params, action, resource), row_id: typeof rowId === 'string' ? rowId : null, row_etag: null }
    await ctx.service('audit').create(row, { trusted: true })
  }
  const written = (action: string) => (ctx: HookContext) => {
    if (ctx.resource === 'audit') return
    // The written row's id, and its new ETag (none after a delete).
    ctx.insertWith('audit', who(ctx.params, action, ctx.resource), action === 'delete' ? { row_id: 'id' } : { row_id: 'id', row_etag: 'etag' })
  }
  return {
    hooks: { before: { create: written('create'), update: written('update'), remove: written('delete') }, needs: { transaction: false, before: false } },
    actions: {
      async after(ctx) {
        if (ctx.action.method === 'GET') return
        await append(ctx, ctx.action.name, ctx.resource ?? '', ctx.path.id)
      },
    },
  }
}
