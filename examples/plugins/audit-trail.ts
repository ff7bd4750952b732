/**
 * An app-level plugin that hooks every resource: each successful create, update and remove is reported
 * to `record` with who made it (the provider now, the identity once one is installed). Use it as it
 * is (`plugins: [auditTrail((entry) => logger.info(entry, 'audit')), ...]`) or as a pattern.
 */
import { definePlugin, type HookContext, type Identity, type Row } from '../../core'

/** One write: which row of which resource, how, and by whom. */
export interface AuditEntry {
  resource: string
  method: 'create' | 'update' | 'remove'
  id: string
  provider: string
  identity: Identity
  /** The row's ETag after the write (none after a remove). */
  etag?: string
  at: string
}

export function auditTrail(record: (entry: AuditEntry) => void) {
  // After hooks run only when the write succeeded; inside the write's transaction for update/remove.
  const after = (ctx: HookContext) => {
    const row = ctx.result as Row
    record({
      resource: ctx.resource,
      method: ctx.method as AuditEntry['method'],
      id: row.id,
      provider: ctx.params.provider,
      identity: ctx.params.identity,
      ...(ctx.method === 'remove' ? {} : { etag: row.etag }),
      at: new Date().toISOString(),
    })
  }
  return definePlugin({
    name: 'audit-trail',
    setup(api) {
      api.hooks('*', { after: { create: after, update: after, remove: after } })
    },
  })
}
