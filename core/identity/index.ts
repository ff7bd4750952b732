import fs from 'node:fs'
import path from 'node:path'
import { errors } from '../errors'
import { type Authenticator, defineAction, definePlugin, type Plugin } from '../plugins/plugin'
import { accessHooks, actionRowRules, auditHooks, mayDo, permissionsOf } from './access'
import { APIKEYS_TABLE, apiKeyActions } from './apikeys'
import { changedHere } from './changes'
import { identityAuthenticator, type JwtOptions } from './authenticator'
import { callerOf } from './caller'

export { ensureAdmin, ensureTeam, generatePassword, setPassword } from './bootstrap'
export { callerOf, USER_ROLES, type Caller } from './caller'
export { hashPassword, verifyPassword } from './password'
export { APIKEYS_TABLE, tokenDigest } from './apikeys'
export type { JwtOptions } from './authenticator'

export interface IdentityOptions {
  /**
   * Resources besides users whose rows may hold API keys, by singular name with their plural
   * (`{ remoteci: 'remotecis' }`): such a caller's role is its kind, its team the row's `x-owner`.
   */
  keyHolders?: Record<string, string>
  /** Accept Bearer JWTs of this issuer (see {@link JwtOptions}). */
  jwt?: JwtOptions
  /**
   * How long a verified credential (Basic or API key) is remembered (default 5 minutes). A change to
   * users, key holders or API keys forgets them all at once, on every process (see the migration's
   * triggers); this bounds how long a process that missed one may use them.
   */
  cacheMs?: number
  /**
   * A host's own credentials, replacing Basic, API keys and JWTs: its identities (`{ kind, id, name,
   * role, team }`, see {@link Caller}) get the same access rules, scoping and audit rows.
   */
  authenticator?: Authenticator
}

// Compiled (dist/core/identity/), this file has no schemas beside it (tsc copies no JSON): they stay
// in the source tree, as the project's schemas do for server.ts.
const SCHEMAS = [path.join(__dirname, 'schemas'), path.resolve(__dirname, '..', '..', '..', 'core', 'identity', 'schemas')].find((dir) => fs.existsSync(dir))!

/**
 * Identity and access: the `users` and `audits` resources, Basic, API key and JWT credentials on
 * every request (the index and openapi.json stay public), `x-owner` and `x-access` enforced on every
 * service call made with a caller's identity, an audit row per write, and `GET /identity`.
 * Needs a `team` resource that owns itself (`"x-owner": "id"`) and the `apikeys` table (see the
 * migrations). Server code calling services without an identity is not checked.
 */
export function identityPlugin(options: IdentityOptions = {}): Plugin {
  const holders: Record<string, string> = { user: 'users', ...options.keyHolders }
  const keyActions = Object.entries(holders).flatMap(([holder, plural]) => apiKeyActions(holder, plural))
  const selfActions = new Set(keyActions.map((a) => a.name))
  return definePlugin({
    name: 'identity',
    setup(api) {
      api.resource(path.join(SCHEMAS, 'user.json'))
      api.resource(path.join(SCHEMAS, 'audit.json'))
      api.authenticator(
        options.authenticator ?? identityAuthenticator({ keyHolders: Object.keys(holders), jwt: options.jwt, logger: api.logger, cacheMs: options.cacheMs }),
      )
      api.hooks('*', accessHooks())
      const audit = auditHooks()
      api.hooks('*', audit.hooks)
      // Who may run an action: the x-access entry of its name, else its resource's read rule (GET)
      // or update rule; a key holder manages its own keys.
      api.actionHooks({
        async before(ctx) {
          const caller = callerOf(ctx.params)
          if (!caller || !ctx.resource) return
          // An action on a row the caller cannot see (another team's) answers 404 as a missing row
          // does, before any role check: a 403 would tell that it exists.
          const rows = await actionRowRules(ctx, caller)
          rows.visible()
          const self = selfActions.has(ctx.action.name) && caller.kind === ctx.resource && caller.id === ctx.path.id
          const fallback = ctx.action.method === 'GET' && !selfActions.has(ctx.action.name) ? 'read' : 'update'
          if (!self && !mayDo(caller, ctx.definition(), ctx.action.name, fallback)) {
            throw errors.forbidden(`The role ${caller.role} may not run ${ctx.action.name}`)
          }
          rows.superAdmins(self)
        },
      })
      api.actionHooks(audit.actions)
      for (const action of keyActions) api.action(action)
      // A removed holder's keys go with it, in the same transaction.
      for (const holder of Object.keys(holders)) {
        api.hooks(holder, {
          after: {
            remove: async (ctx) => {
              await ctx.db(APIKEYS_TABLE).where({ holder_kind: holder, holder_id: ctx.id }).delete()
              changedHere()
            },
          },
        })
        // This process forgets remembered callers as soon as it changed one (others, at the NOTIFY).
        api.hooks(holder, { after: { update: () => changedHere() }, needs: { transaction: false, before: false } })
      }
      api.action(
        defineAction({
          name: 'get_identity',
          method: 'GET',
          path: '/identity',
          summary: 'Who the caller is',
          description:
            'The user (or remoteci...) the request authenticated as: id, kind, name, role, team; and `permissions`, what its role may do on each resource. ' +
            'Row rules are not in `permissions`: `update` and `delete` mean on the rows the caller can see (a team admin: the rows of the team), ' +
            'and anyone may change their own password and email whatever `users.update` says.',
          output: {
            type: 'object',
            properties: {
              identity: {
                type: 'object',
                properties: {
                  id: { type: 'string', format: 'uuid' },
                  kind: { type: 'string', description: 'user, or the kind of key holder (remoteci...).' },
                  name: { type: 'string' },
                  email: { type: ['string', 'null'] },
                  role: { type: 'string', description: 'super_admin, admin, user, or the kind of key holder.' },
                  team: { type: ['string', 'null'], format: 'uuid' },
                },
                required: ['id', 'kind', 'name', 'role', 'team'],
                additionalProperties: false,
              },
              permissions: {
                type: 'object',
                description:
                  "By resource plural: whether the caller's role may read, create, update and delete its rows (an `x-read-only` resource: no create, update or delete for anyone).",
                additionalProperties: {
                  type: 'object',
                  properties: { read: { type: 'boolean' }, create: { type: 'boolean' }, update: { type: 'boolean' }, delete: { type: 'boolean' } },
                  required: ['read', 'create', 'update', 'delete'],
                  additionalProperties: false,
                },
              },
            },
            required: ['identity', 'permissions'],
            additionalProperties: false,
          },
          transaction: false,
          handler: (ctx) => ({ identity: ctx.params.identity, permissions: permissionsOf(callerOf(ctx.params), ctx.definitions()) }),
        }),
      )
    },
  })
}
