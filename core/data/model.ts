import { Model, type ModelClass } from 'objection'
import { jsonFields } from '../schema/derive'
import type { ResourceDefinition } from '../schema/types'

/**
 * The objection model of a resource: table, id and the columns objection (de)serialises as JSON, for
 * plugins' own queries (`resource.model.query(engine.db)`). The engine's statements run through knex.
 */
export function modelFor(def: ResourceDefinition): ModelClass<Model> {
  const json = jsonFields(def)
  const model = class extends Model {
    static override tableName = def.plural
    static override jsonAttributes = json
  }
  Object.defineProperty(model, 'name', { value: `${def.name}Model` })
  return model
}
