import { type Client, type Credentials, q } from '../../client'
import type { Resources } from '../../resources/types'
import type { Actions } from '../../resources/types/actions'

const MISSING = '00000000-0000-4000-8000-000000000000'

/**
 * Compile-time checks of the client's types, verified by `npm run typecheck` (never run): each
 * `@ts-expect-error` fails the type check if the line below it stops being an error.
 */
export function clientTypeChecks(client: Client<Resources, Actions>): void {
  // @ts-expect-error no such action
  void client.action('list_everything', { path: {} })
  // @ts-expect-error the action needs its path parameter
  void client.action('list_componenttype_components', { path: {} })
  // @ts-expect-error its query is typed by the listed resource
  void client.action('list_componenttype_components', { path: { id: MISSING }, query: { sort: ['nope'] } })
  // @ts-expect-error etag is not a filterable field
  void client.componenttypes.list({ where: { etag: 'x' } })
  // @ts-expect-error data (an object) cannot be filtered on
  void client.remotecis.list({ where: { data: 'x' } })
  // @ts-expect-error sort takes field names, with an optional leading '-'
  void client.components.list({ sort: ['+name'] })
  // @ts-expect-error name is required on create
  void client.componenttypes.create({})
  // @ts-expect-error the server sets id
  void client.componenttypes.update(MISSING, { id: MISSING }, { etag: '*' })
  // @ts-expect-error update needs an etag
  void client.componenttypes.update(MISSING, { name: 'x' }, {})
  // @ts-expect-error no such resource
  void client.jobs
  // @ts-expect-error audits are read-only (x-read-only): no create
  void client.audits.create({ identity_kind: 'user', action: 'create' })
  // @ts-expect-error no update of a read-only resource
  void client.audits.update(MISSING, {}, { etag: '*' })
  // @ts-expect-error no remove of a read-only resource
  void client.audits.remove(MISSING, { etag: '*' })
  void client.audits.list({ where: { resource: 'team' }, sort: ['-created_at'] })
  // @ts-expect-error the password is write-only: never answered, so not in the output type
  void client.users.get(MISSING).then((user) => user.password)
  // The password is in the input type: a create needs it, an update may change it.
  void client.users.create({ name: 'alice', password: 'long enough' })
  // @ts-expect-error a user's create needs the password
  void client.users.create({ name: 'alice' })
  void client.users.update(MISSING, { password: 'changed password' }, { etag: '*' })

  // Full-text search: q is text.
  void client.components.list({ q: 'rhel -beta', sort: ['name'], count: 'none' })
  // @ts-expect-error q is text, not a number
  void client.components.list({ q: 42 })
  // @ts-expect-error q is one text, not a list of words
  void client.components.list({ q: ['rhel', 'beta'] })
  // @ts-expect-error the q builder makes a query expression (query), not search words
  void client.components.list({ q: q.eq('name', 'rhel') })

  // The query builder: fields and values checked against the listed resource.
  void client.components.list({ query: q.and(q.eq('name', 'rhel'), q.gt('created_at', new Date('2024-01-01'))) })
  void client.components.list({ query: q.or(q.like('name', 'RHEL-%'), q.not(q.null('sha')), q.in('name', 'a', 'b')) })
  void client.components.list({ query: q.eq('componenttype.name', 'rhel') })
  void client.components.list({ query: 'eq(name,rhel)' })
  // @ts-expect-error no such field
  void client.components.list({ query: q.eq('nope', 'x') })
  // @ts-expect-error a component's name is text, not a number
  void client.components.list({ query: q.eq('name', 42) })
  // @ts-expect-error data (an object) is not compared
  void client.remotecis.list({ query: q.eq('data', 'x') })
  // @ts-expect-error a dotted path starts with a relation (text) field
  void client.componenttypes.list({ query: q.eq('nope.name', 'x') })
  // @ts-expect-error a query over components is not one over teams
  void client.teams.list({ query: q.eq<Parameters<typeof client.components.create>[0]>('name', 'x') })
  // @ts-expect-error in takes at least one value
  void client.components.list({ query: q.in('name') })
  // @ts-expect-error and takes at least one expression
  void client.components.list({ query: q.and() })

  // embed: a relation field, or a dotted path from one (the server checks the steps after the first);
  // the first field becomes the related row.
  void client.remotecis.get(MISSING, { embed: ['team'] }).then((r) => r.team?.name)
  void client.users.list({ embed: ['team.nope'] }).then((page) => page.items[0].team?.etag)
  // @ts-expect-error a dotted path starts with a relation (text) field
  void client.remotecis.list({ embed: ['data.team'] })
  // @ts-expect-error the embedded row is an object, not the id
  void client.components.get(MISSING, { embed: ['componenttype.x'] }).then((c): string => c.componenttype)
}

/** The forms credentials take, checked by `npm run typecheck` as above. */
export const credentialForms: Credentials[] = [
  { basic: { username: 'admin', password: 'secret' } },
  { bearer: 'dci_token' },
  () => 'Bearer dci_token',
  async () => undefined,
  // @ts-expect-error Basic needs a password
  { basic: { username: 'admin' } },
  // @ts-expect-error a Bearer token is a string
  { bearer: 42 },
  // @ts-expect-error the function answers the header, a string
  () => 42,
]
