import { defineResource, errors, type HookContext } from '../../core'
import type { ComponenttypeInput } from '../types'

/**
 * Component type names are unique; surrounding spaces would make "rhel" and "rhel " two types that
 * look alike, so names are stored trimmed and the unique key applies to what people see.
 */
function trimName(ctx: HookContext<ComponenttypeInput>): void {
  const name = ctx.data?.name
  if (typeof name !== 'string') return
  const value = name.trim()
  if (value === '') throw errors.validation({ name: 'must not be blank' })
  ctx.data!.name = value
}

export default defineResource<ComponenttypeInput>({
  schema: 'componenttype',
  hooks: { before: { create: trimName, update: trimName } },
})
