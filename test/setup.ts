import { closeTestDatabase } from './support'

/** Root hooks: the shared database is closed once every test file has run. */
export const mochaHooks = {
  async afterAll() {
    await closeTestDatabase()
  },
}
