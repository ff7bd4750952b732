import type { Hook, HookContext, HookSet, ServiceMethod } from './types'

/** The hooks of one resource and method, in the order they run, and what they need of a write. */
export interface MethodHooks {
  before: Hook[]
  after: Hook[]
  error: Hook[]
  /** A write runs in a transaction (some set of hooks did not say `needs: { transaction: false }`). */
  transaction: boolean
  /** update and remove: whether the hooks of this call need `ctx.before` (then in a transaction). */
  needsBefore(ctx: HookContext): boolean
}

const list = (hooks: Hook | Hook[] | undefined): Hook[] => (hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks])

/**
 * Every registered hook, and the order they run in: before hooks on every resource first, then the
 * resource's own; after and error hooks the resource's own first, then those on every resource (an
 * onion). Within each group `all` runs before the method's hooks, in registration order (plugins in
 * start-up order: dependencies first, then the order given).
 */
export class HookRegistry {
  private readonly entries: Array<{ target: string; hooks: HookSet; plugin: string }> = []

  /** Registers hooks on one resource, or on every resource with `'*'`; `plugin` names who did. */
  add(target: string, hooks: HookSet, plugin: string): void {
    this.entries.push({ target, hooks, plugin })
  }

  /** The resources hooks were registered on by name, and by which plugin (to refuse unknown ones). */
  targets(): Array<{ target: string; plugin: string }> {
    return this.entries.filter((e) => e.target !== '*').map(({ target, plugin }) => ({ target, plugin }))
  }

  /** The hooks of one resource and method, in order. */
  compile(resource: string, method: ServiceMethod): MethodHooks {
    const types = ['before', 'after', 'error'] as const
    const hooksOf = (set: HookSet, type: (typeof types)[number]) => [...list(set[type]?.all), ...list(set[type]?.[method])]
    const of = (target: string, type: (typeof types)[number]) => this.entries.filter((e) => e.target === target).flatMap((e) => hooksOf(e.hooks, type))
    // What the sets that hook this method need; a set with no hook for it needs nothing of it.
    const needs = this.entries
      .filter((e) => (e.target === '*' || e.target === resource) && types.some((type) => hooksOf(e.hooks, type).length > 0))
      .map((e) => e.hooks.needs ?? {})
    const before = needs.map((n) => n.before ?? true)
    return {
      before: [...of('*', 'before'), ...of(resource, 'before')],
      after: [...of(resource, 'after'), ...of('*', 'after')],
      error: [...of(resource, 'error'), ...of('*', 'error')],
      transaction: needs.some((n) => n.transaction !== false),
      needsBefore: (ctx) => before.some((b) => (typeof b === 'function' ? b(ctx) : b)),
    }
  }
}
