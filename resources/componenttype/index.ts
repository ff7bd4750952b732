import { defineResource, errors } from '../../core'
import type { ComponenttypeInput } from '../types'

function trimmed(name: string): string {
  const value = name.trim()
  if (value === '') throw errors.validation({ name: 'must not be blank' })
  return value
}

/**
 * Component type names are unique; surrounding spaces would make "rhel" and "rhel " two types that
 * look alike, so names are stored trimmed and the unique key applies to what people see.
 */
export default defineResource<ComponenttypeInput>({
  schema: 'componenttype',
  hooks: {
    beforeCreate(data) {
      data.name = trimmed(data.name)
    },
    beforeUpdate(_id, patch) {
      if (typeof patch.name === 'string') patch.name = trimmed(patch.name)
    },
  },
})
