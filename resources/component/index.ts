import { defineResource, errors, sendList, type RawQuery } from '../../core'

/**
 * Adds `GET /componenttypes/:id/components`: the components of one type, with the usual list
 * parameters (`where`, `sort`, `limit`, `offset`, `embed`). An unknown type is a 404, not an empty list.
 */
export default defineResource({
  schema: 'component',
  routes(router, engine) {
    const components = engine.resource('component')
    const componenttypes = engine.resource('componenttype')
    router.get(`/${componenttypes.plural}/:id/${components.plural}`, async (ctx) => {
      const q = components.query.parseList(ctx.query as RawQuery)
      if (!(await componenttypes.repository.get(ctx.params.id))) throw errors.notFound(componenttypes.name)
      q.where.push(['componenttype', ctx.params.id])
      const { items, count } = await components.repository.list(q)
      sendList(ctx, { [components.plural]: items, _meta: { count } })
    })
  },
})
