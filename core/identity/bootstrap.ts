import crypto from 'node:crypto'
import { ApiError } from '../errors'
import type { EngineLogger } from '../http/frame'
import type { Row } from '../data/repository'
import { hashPassword } from './password'

/** What bootstrapping needs of an engine (a structural subset of `Engine`). */
interface EngineLike {
  service(name: string): {
    find(params?: Record<string, unknown>): Promise<{ items: Row[] }>
    create(data: Record<string, unknown>, params?: Record<string, unknown>): Promise<Row>
    update(id: string, data: Record<string, unknown>, params?: Record<string, unknown>): Promise<Row>
  }
}

const conflict = (err: unknown) => err instanceof ApiError && err.status === 409

/** A new random password: 18 random bytes, 24 URL-safe characters (given to a person once). */
export function generatePassword(): string {
  return crypto.randomBytes(18).toString('base64url')
}

/** The team of this name, created if missing (two processes may race: the loser reads the winner's). */
export async function ensureTeam(engine: EngineLike, name: string): Promise<Row> {
  const find = async () => (await engine.service('team').find({ trusted: true, query: { where: { name }, limit: 1 } })).items[0]
  const found = await find()
  if (found) return found
  try {
    return await engine.service('team').create({ name })
  } catch (err) {
    if (!conflict(err)) throw err
    return (await find())!
  }
}

/**
 * On a database with no users: creates team `admin` and user `admin` (super_admin) with `password`,
 * or with a generated one that is logged once, on one line. Returns the password it set, or
 * undefined when there were users already (then `password` changes nothing: use `npm run user`).
 */
export async function ensureAdmin(engine: EngineLike, options: { password?: string; logger?: EngineLogger } = {}): Promise<string | undefined> {
  const users = await engine.service('user').find({ trusted: true, query: { limit: 1 } })
  if (users.items.length > 0) return undefined
  const team = await ensureTeam(engine, 'admin')
  const password = options.password || generatePassword()
  try {
    // Through the service: the body is checked and the password hashed by the identity plugin's hooks.
    await engine.service('user').create({ name: 'admin', role: 'super_admin', team: team.id, password })
  } catch (err) {
    if (conflict(err)) return undefined // another process bootstrapped at the same time
    throw err
  }
  if (!options.password) {
    options.logger?.warn?.(
      { user: 'admin', password },
      `created user admin (super_admin) with the generated password ${password}; change it, or set ADMIN_PASSWORD before the first start`,
    )
  } else {
    options.logger?.info?.({ user: 'admin' }, 'created user admin (super_admin) with the password of ADMIN_PASSWORD')
  }
  return password
}

/** Sets a user's password (found by name), through the service so that it is checked and hashed. */
export async function setPassword(engine: EngineLike, name: string, password: string): Promise<Row> {
  const [user] = (await engine.service('user').find({ trusted: true, query: { where: { name }, limit: 1 } })).items
  if (!user) throw new Error(`no user named '${name}'`)
  return engine.service('user').update(user.id, { password }, { ifMatch: '*' })
}

export { hashPassword }
