import { defineAction, defineResource, type Page } from '../../core'

/**
 * `GET /componenttypes/:id/components`: the components of one type, with the usual list parameters
 * (`where`, `sort`, `limit`, `offset`, `embed`, `count`). An unknown type is a 404, not an empty list.
 */
const listTypeComponents = defineAction({
  name: 'list_componenttype_components',
  method: 'GET',
  path: '/componenttypes/:id/components',
  summary: 'List the components of one componenttype',
  description: 'A missing componenttype answers 404, not an empty list.',
  pathParams: { id: { resource: 'componenttype', description: 'Id of a componenttype.' } },
  list: 'component',
  async handler(ctx): Promise<Page> {
    await ctx.service('componenttype').get(ctx.path.id)
    const where = [ctx.query.where, `componenttype:${ctx.path.id}`].filter(Boolean).join(',')
    return ctx.service('component').find({ query: { ...ctx.query, where } })
  },
})

export default defineResource({ schema: 'component', actions: [listTypeComponents] })
