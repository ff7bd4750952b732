import type { Hook, HookSet, ServiceMethod } from './types'

/** The hooks of one resource and method, in the order they run. */
export interface MethodHooks {
  before: Hook[]
  after: Hook[]
  error: Hook[]
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
    const of = (target: string, type: keyof HookSet) =>
      this.entries.filter((e) => e.target === target).flatMap((e) => [...list(e.hooks[type]?.all), ...list(e.hooks[type]?.[method])])
    return {
      before: [...of('*', 'before'), ...of(resource, 'before')],
      after: [...of(resource, 'after'), ...of('*', 'after')],
      error: [...of(resource, 'error'), ...of('*', 'error')],
    }
  }
}
