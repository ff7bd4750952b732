import { defineResource, errors, type HookContext } from '../../core'

/**
 * Component type names are unique; surrounding spaces would make "rhel" and "rhel " two types that
 * look alike, so names are stored trimmed and the unique key applies to what people see.
 */
function trimName(ctx: HookContext): void {
  const data = ctx.data!
  if (typeof data.name !== 'string') return
  const value = data.name.trim()
  if (value === '') throw errors.validation({ name: 'must not be blank' })
  data.name = value
}

export default defineResource({
  schema: 'componenttype',
  hooks: { before: { create: trimName, update: trimName } },
})
