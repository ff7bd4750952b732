/**
 * `npm run user -- ...`: creates users and resets passwords, on the server's database
 * (DATABASE_URL when set, else the embedded one under DATA_DIR, default `data`), migrated first.
 *
 *   npm run user -- create <name> --team <team name> [--role user|admin|super_admin] [--email <email>] [--password <password>]
 *   npm run user -- password <name> [--password <password>]
 *
 * The password is --password, else the environment's USER_PASSWORD (kept out of the process list),
 * else a generated one, printed once. The team of `create` is created when missing. Everything goes
 * through the services, so the identity plugin's hooks check the values and hash the password.
 * Exit codes: 0 done; 1 refused (invalid value, name taken, no such user) or failed; 2 wrong usage.
 */
import path from 'node:path'
import { parseArgs } from 'node:util'
import { ApiError, createEngine, migrateLatest, openDatabase, type Engine } from '../core'
import { generatePassword, setPassword, USER_ROLES } from '../core/identity'
import { serverPlugins } from '../resources'

const root = path.resolve(__dirname, '..')

const USAGE = `usage:
  npm run user -- create <name> --team <team name> [--role ${USER_ROLES.join('|')}] [--email <email>] [--password <password>]
  npm run user -- password <name> [--password <password>]
The password is --password, else $USER_PASSWORD, else a generated one (printed once).`

/** A mistake in the command line: exit code 2, with the usage. */
class UsageError extends Error {}

interface Command {
  command: 'create' | 'password'
  name: string
  team?: string
  role?: string
  email?: string
  password?: string
}

const OPTIONS = {
  team: { type: 'string' },
  role: { type: 'string' },
  email: { type: 'string' },
  password: { type: 'string' },
} as const

function parse(argv: string[]): Command {
  const parsed = (() => {
    try {
      return parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true })
    } catch (err) {
      throw new UsageError((err as Error).message)
    }
  })()
  const { values, positionals } = parsed
  const [command, name, ...rest] = positionals
  if (command !== 'create' && command !== 'password') throw new UsageError(command ? `unknown command '${command}'` : 'no command given')
  if (!name) throw new UsageError(`${command}: the user's name is missing`)
  if (rest.length) throw new UsageError(`${command}: unexpected argument '${rest[0]}'`)
  if (command === 'create') {
    if (!values.team) throw new UsageError('create: --team is required')
  } else {
    for (const option of ['team', 'role', 'email'] as const) if (values[option] !== undefined) throw new UsageError(`password: --${option} belongs to create`)
  }
  return { command, name, team: values.team, role: values.role, email: values.email, password: values.password }
}

/** The service's refusal as one readable line: its message and each invalid field. */
function describe(err: unknown): string {
  if (!(err instanceof ApiError)) return (err as Error)?.message ?? String(err)
  const fields = err.payload.errors as Record<string, string> | undefined
  const details = fields ? Object.entries(fields).map(([field, problem]) => `${field}: ${problem}`) : []
  if (fields?.role) details.push(`(roles: ${USER_ROLES.join(', ')})`)
  return [err.message, ...details].join('; ')
}

async function create(engine: Engine, cmd: Command, password: string): Promise<void> {
  // One transaction: a user that cannot be created leaves no new team behind.
  const { user, team, teamCreated } = await engine.transaction(async (tx) => {
    const existing = (await tx.service('team').find({ query: { where: { name: cmd.team! }, limit: 1 } })).items[0]
    const team = existing ?? (await tx.service('team').create({ name: cmd.team! }))
    const data: Record<string, unknown> = { name: cmd.name, team: team.id, password }
    if (cmd.role !== undefined) data.role = cmd.role
    if (cmd.email !== undefined) data.email = cmd.email
    return { user: await tx.service('user').create(data), team, teamCreated: !existing }
  })
  if (teamCreated) console.log(`created team '${team.name}' (${team.id})`)
  console.log(`created user '${user.name}' (${user.id}), role ${user.role}, team '${team.name}'`)
}

async function main(): Promise<number> {
  let cmd: Command
  try {
    cmd = parse(process.argv.slice(2))
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    console.error(`user: ${err.message}\n${USAGE}`)
    return 2
  }
  const generated = cmd.password === undefined && !process.env.USER_PASSWORD
  const password = cmd.password ?? (process.env.USER_PASSWORD || generatePassword())

  const url = process.env.DATABASE_URL || undefined
  // knex's warnings on one line each, without their stacks: the final error says what failed.
  const logger = { warn: (_details: Record<string, unknown>, message: string) => console.error(message.split('\n')[0]) }
  const db = openDatabase({ url, dataDir: url ? undefined : path.resolve(process.env.DATA_DIR ?? 'data'), logger })
  try {
    await migrateLatest(db, path.join(root, 'migrations'))
    const engine = await createEngine({ db, schemasDir: path.join(root, 'schemas'), plugins: serverPlugins() })
    if (cmd.command === 'create') {
      await create(engine, cmd, password)
    } else {
      await setPassword(engine, cmd.name, password)
      console.log(`changed the password of user '${cmd.name}'`)
    }
    if (generated) console.log(`generated password of '${cmd.name}' (shown once): ${password}`)
    return 0
  } catch (err) {
    console.error(`user ${cmd.command} '${cmd.name}' failed: ${describe(err)}`)
    return 1
  } finally {
    await db.destroy()
  }
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (err) => {
    console.error(`user: ${err?.message ?? err}`)
    process.exitCode = 1
  },
)
