import { expect } from 'chai'
import { ApiError } from '../core'
import { clientOf, makeWorld, type Transport, type World } from './helpers/callers'

// Aliases (x-alias) with the identity plugin on: the access rules read the owner field `team`; a body
// naming it `team_id` is renamed before any hook runs, so the same rules apply to it. The generic
// behaviour of aliases (writes, answers, where, sort, embed) is in the conformance suite.
describe('x-alias: team_id under the access rules, and trusted server code', function () {
  this.timeout(180_000)
  let world: World
  before(async () => {
    world = await makeWorld()
  })
  // PostgreSQL answers counts as bigint strings.
  const countOf = async (table: string, where: Record<string, unknown>) => Number((await world.db(table).where(where).count({ n: '*' }))[0].n)

  for (const transport of ['http', 'services'] as Transport[]) {
    describe(`through ${transport}`, () => {
      const remotecis = () => `${world.engine.prefix}/remotecis`

      it('an admin creating a remoteci of another team by team_id gets the same 403 as by team; of its own team, 201 with team and team_id', async () => {
        const admin = clientOf(world, world.users.adminA, transport)
        const byName = await admin('POST', remotecis(), { body: { name: `x-${transport}`, team: world.teams.B.id } })
        const byAlias = await admin('POST', remotecis(), { body: { name: `x-${transport}`, team_id: world.teams.B.id } })
        expect(byName.status).to.equal(403)
        expect(byAlias.body).to.deep.equal(byName.body)
        expect(await countOf('remotecis', { name: `x-${transport}` })).to.equal(0)
        const made = await admin('POST', remotecis(), { body: { name: `own-${transport}`, team_id: world.teams.A.id } })
        expect(made.status, made.text).to.equal(201)
        expect(made.body.remoteci).to.include({ team: world.teams.A.id, team_id: world.teams.A.id })
      })

      it('an admin moving a remoteci of its team to another team by team_id gets the same 403 as by team, and nothing changes', async () => {
        const admin = clientOf(world, world.users.adminA, transport)
        const row = await world.engine.service('remoteci').create({ name: `move-${transport}`, team: world.teams.A.id }, { trusted: true })
        const url = `${remotecis()}/${row.id}`
        const byName = await admin('PUT', url, { body: { team: world.teams.B.id }, headers: { 'If-Match': `"${row.etag}"` } })
        const byAlias = await admin('PUT', url, { body: { team_id: world.teams.B.id }, headers: { 'If-Match': `"${row.etag}"` } })
        expect(byName.status).to.equal(403)
        expect(byAlias.body).to.deep.equal(byName.body)
        expect(await world.db('remotecis').where({ id: row.id }).first()).to.include({ team: world.teams.A.id, etag: row.etag })
      })

      it('nobody changes their own team by team_id either; users are answered with team and team_id, never the password', async () => {
        const user = clientOf(world, world.users.userA, transport)
        const url = `${world.engine.prefix}/users/${world.users.userA.row.id}`
        const self = await user('GET', url)
        expect(self.status, self.text).to.equal(200)
        expect(self.body.user.team_id).to.equal(world.teams.A.id)
        expect(self.body.user.team).to.equal(world.teams.A.id)
        expect(self.body.user).to.not.have.any.keys('password')
        const moved = await user('PUT', url, { body: { team_id: world.teams.B.id }, headers: { 'If-Match': `"${self.body.user.etag}"` } })
        expect(moved.status).to.equal(403)
        expect(moved.body.message).to.match(/own role or team/)
        expect((await world.db('users').where({ id: world.users.userA.row.id }).first()).team).to.equal(world.teams.A.id)
      })
    })
  }

  it('trusted server code may name a field by its alias; both names with different values are refused with the 400 of a client', async () => {
    const type = await world.engine.service('componenttype').create({ name: 'alias-trusted' }, { trusted: true })
    const other = await world.engine.service('componenttype').create({ name: 'alias-trusted-2' }, { trusted: true })
    const row = await world.engine.service('component').create({ name: 'c', componenttype_id: type.id }, { trusted: true })
    expect(row).to.include({ componenttype: type.id, componenttype_id: type.id })
    const updated = await world.engine.service('component').update(row.id, { componenttype_id: other.id }, { trusted: true })
    expect(updated).to.include({ componenttype: other.id, componenttype_id: other.id })
    const refused = await world.engine
      .service('component')
      .create({ name: 'd', componenttype: type.id, componenttype_id: other.id }, { trusted: true })
      .then(
        () => undefined,
        (err: unknown) => err,
      )
    expect(refused).to.be.instanceOf(ApiError)
    expect((refused as ApiError).toJSON()).to.deep.include({ status_code: 400, code: 'validation_failed' })
    expect((refused as ApiError).toJSON().payload.errors).to.have.all.keys('componenttype_id')
    expect(await countOf('components', { name: 'd' })).to.equal(0)
  })
})
