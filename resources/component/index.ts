import { defineResource, errors, sendList, type RawQuery } from '../../core'
import type { ComponentInput } from '../types'

/**
 * Adds `GET /componenttypes/:id/components`: the components of one type, with the usual list
 * parameters (`where`, `sort`, `limit`, `offset`, `embed`). An unknown type is a 404, not an empty list.
 */
export default defineResource<ComponentInput>({
  schema: 'component',
  routes(router, engine) {
    const components = engine.resource('component')
    const componenttypes = engine.resource('componenttype')
    router.get(`/${componenttypes.plural}/:id/${components.plural}`, async (ctx) => {
      const q = components.query.parseList(ctx.query as RawQuery)
      if (!(await componenttypes.repository.get(ctx.params.id))) throw errors.notFound(componenttypes.name)
      q.where.push(['componenttype', ctx.params.id])
      const { items, meta } = await components.repository.list(q)
      sendList(ctx, { [components.plural]: items, _meta: meta })
    })
  },
  openapi(spec) {
    const components = spec.engine.resource('component')
    const componenttypes = spec.engine.resource('componenttype')
    return {
      [`/${componenttypes.plural}/{id}/${components.plural}`]: {
        get: spec.listOperation('component', {
          operationId: `list_${componenttypes.name}_${components.plural}`,
          summary: `List the ${components.plural} of one ${componenttypes.name}`,
          description: `A missing ${componenttypes.name} answers 404, not an empty list.`,
          parameters: [spec.idParameter('componenttype')],
          errors: [404],
        }),
      },
    }
  },
})
