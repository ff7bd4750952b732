import { createClient, type Client, type ClientOptions } from '../core'
import type { Component, ComponentInput, Componenttype, ComponenttypeInput, Remoteci, RemoteciInput, Team, TeamInput } from './types'

/**
 * The Distributed CI resources by route, typed by the types generated from their schemas
 * (`resources/types/`, `npm run types:generate`). Only the route -> types link is written here.
 */
export interface DciResources {
  componenttypes: { item: Componenttype; input: ComponenttypeInput }
  components: { item: Component; input: ComponentInput }
  teams: { item: Team; input: TeamInput }
  remotecis: { item: Remoteci; input: RemoteciInput }
}

/** A typed client of the Distributed CI API: `createDciClient({ baseUrl: 'http://127.0.0.1:5000/api/v1' })`. */
export function createDciClient(options: ClientOptions): Client<DciResources> {
  return createClient<DciResources>(options)
}
