/**
 * `npm run db:provision -- ...`: fills the server's database (DATABASE_URL when set, else the
 * embedded one under DATA_DIR, default `data`), migrated first, with a demo set:
 *
 * - 3 teams, each with one user of every team role (admin, user), and one super_admin;
 * - 2 remotecis per team, each with an API key;
 * - 5 componenttypes and 300 components (60 of each type).
 *
 * It prints the users' passwords (generated, or --password for all) and the remotecis' API keys,
 * once. Every row goes through the services and actions, so the schemas check the values and the
 * identity plugin hashes the passwords and stores the keys as digests; it all happens in one
 * transaction: a failure leaves the database as it was.
 *
 * The names are fixed: on a database that already holds one of the demo teams, users or
 * componenttypes, it refuses (naming them) and changes nothing. `--reset` empties every resource
 * table (users, audits, API keys included; tables and migrations are kept) first, in the same
 * transaction, and only with `--yes-i-really-want-to-lose-all-my-data`.
 *
 * Exit codes: 0 done; 1 refused (demo rows exist, invalid value) or failed; 2 wrong usage.
 */
import crypto from 'node:crypto'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { ApiError, createEngine, type Engine, migrateLatest, openDatabase, type Transaction } from '../core'
import { APIKEYS_TABLE, generatePassword, USER_ROLES } from '../core/identity'
import { serverPlugins } from '../resources'

const root = path.resolve(__dirname, '..')

const CONFIRM = 'yes-i-really-want-to-lose-all-my-data'

const USAGE = `usage:
  npm run db:provision -- [--password <password>] [--reset --${CONFIRM}]
Fills the database with demo teams, users, remotecis (with API keys), componenttypes and components,
and prints the credentials. --password gives every demo user that password (else each gets a
generated one). --reset first deletes every row of every resource table (teams, users, audits,
API keys...): BEWARE, it erases all the data of the database, and runs only with --${CONFIRM}.`

/** A mistake in the command line: exit code 2, with the usage. */
class UsageError extends Error {}

interface Command {
  reset: boolean
  password?: string
  help: boolean
}

const OPTIONS = {
  reset: { type: 'boolean' },
  [CONFIRM]: { type: 'boolean' },
  password: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

function parse(argv: string[]): Command {
  const { values, positionals } = (() => {
    try {
      return parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true })
    } catch (err) {
      throw new UsageError((err as Error).message)
    }
  })()
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`)
  const confirmed = values[CONFIRM] === true
  if (values.reset && !confirmed) {
    throw new UsageError(`--reset deletes ALL the data of the database (every team, user, remoteci, component...); add --${CONFIRM} if that is what you want`)
  }
  if (confirmed && !values.reset) throw new UsageError(`--${CONFIRM} goes with --reset only`)
  return { reset: values.reset === true, password: values.password, help: values.help === true }
}

// ---- The demo set: fixed names, so that a second run finds the first one's rows. ----

interface DemoTeam {
  name: string
  /** The users' names and e-mail addresses are made of this. */
  slug: string
  domain: string
  remotecis: Array<{ name: string; data: Record<string, unknown> }>
}

const TEAMS: DemoTeam[] = [
  {
    name: 'demo-acme',
    slug: 'acme',
    domain: 'acme.example.com',
    remotecis: [
      { name: 'acme-rhel-lab', data: { location: 'Boston', arch: 'x86_64', hosts: 12 } },
      { name: 'acme-openshift-lab', data: { location: 'Boston', arch: 'x86_64', hosts: 6, cluster: 'ocp-baremetal' } },
    ],
  },
  {
    name: 'demo-globex',
    slug: 'globex',
    domain: 'globex.example.com',
    remotecis: [
      { name: 'globex-openstack-lab', data: { location: 'Brno', arch: 'x86_64', hosts: 20 } },
      { name: 'globex-arm-lab', data: { location: 'Brno', arch: 'aarch64', hosts: 4 } },
    ],
  },
  {
    name: 'demo-initech',
    slug: 'initech',
    domain: 'initech.example.com',
    remotecis: [
      { name: 'initech-edge-lab', data: { location: 'Bangalore', arch: 'x86_64', hosts: 3, network: 'telco-5g' } },
      { name: 'initech-ci-lab', data: { location: 'Bangalore', arch: 'x86_64', hosts: 8 } },
    ],
  },
]

/** The super_admin of the demo set (in the first team: a user needs one). */
const SUPER_ADMIN = { name: 'demo-superadmin', email: 'superadmin@demo.example.com' }

/** One user per role in each team (a super_admin sees every team: one in all, {@link SUPER_ADMIN}). */
const TEAM_ROLES = USER_ROLES.filter((role) => role !== 'super_admin')

interface DemoUser {
  name: string
  email: string
  role: string
  team: DemoTeam
}

const USERS: DemoUser[] = [
  { ...SUPER_ADMIN, role: 'super_admin', team: TEAMS[0] },
  ...TEAMS.flatMap((team) => TEAM_ROLES.map((role) => ({ name: `${team.slug}-${role}`, email: `${role}@${team.domain}`, role, team }))),
]

const COMPONENTS_PER_TYPE = 60

/** A deterministic commit hash: the same component gets the same sha on every run. */
const sha1 = (text: string) => crypto.createHash('sha1').update(text).digest('hex')

/** The day `i` days after 2024-01-08, as `YYYYMMDD`. */
function day(i: number): string {
  const date = new Date(Date.UTC(2024, 0, 8) + i * 86_400_000)
  return date.toISOString().slice(0, 10).replaceAll('-', '')
}

/** The componenttypes and how their i-th component (0 to 59) looks. */
const COMPONENTTYPES: Array<{ name: string; component(i: number): Record<string, unknown> }> = [
  {
    // Nightly composes of two minor releases.
    name: 'rhel',
    component(i) {
      const release = `RHEL-9.${3 + (i % 2)}`
      const name = `${release}.0-${day(i >> 1)}.n.${i % 3}`
      return {
        name,
        canonical_project_name: release,
        title: `${name} nightly compose`,
        url: `https://download.example.com/rhel-9/nightly/${release}/${name}/compose/`,
        data: { arch: ['x86_64', 'aarch64', 'ppc64le', 's390x'], variants: ['BaseOS', 'AppStream'] },
      }
    },
  },
  {
    // Z-stream releases of three minor versions.
    name: 'openshift',
    component(i) {
      const minor = 14 + (i % 3)
      const version = `4.${minor}.${Math.floor(i / 3)}`
      return {
        name: `OpenShift ${version}`,
        canonical_project_name: `OpenShift 4.${minor}`,
        title: `OpenShift Container Platform ${version}`,
        message: `Release ${version} of the 4.${minor} channel.\n\nSee the release notes for the fixed bugs.`,
        url: `https://mirror.example.com/pub/openshift-v4/x86_64/clients/ocp/${version}/`,
        ref: `release-4.${minor}`,
        data: { channel: `stable-4.${minor}`, arch: 'x86_64' },
      }
    },
  },
  {
    // Puddles of two releases.
    name: 'openstack',
    component(i) {
      const release = i % 2 === 0 ? '17.1' : '18.0'
      const name = `RHOS-${release}-RHEL-9-${day(i >> 1)}.n.${i % 4}`
      return {
        name,
        canonical_project_name: `RHOS-${release}`,
        title: `Red Hat OpenStack Platform ${release} puddle ${name}`,
        url: `https://download.example.com/rcm-guest/puddles/OpenStack/${release}-RHEL-9/${name}/`,
        data: { release, tag: i % 5 === 0 ? 'passed_phase2' : 'latest' },
      }
    },
  },
  {
    // Commits of an agent's main branch.
    name: 'dci-openshift-agent',
    component(i) {
      const sha = sha1(`dci-openshift-agent ${i}`)
      const subject = COMMIT_SUBJECTS[i % COMMIT_SUBJECTS.length]
      return {
        name: `dci-openshift-agent-0.${5 + Math.floor(i / 20)}.0-1.${day(i)}git${sha.slice(0, 8)}`,
        canonical_project_name: 'dci-openshift-agent',
        sha,
        title: subject,
        message: `${subject}\n\nChange-Id: I${sha1(`change ${i}`)}`,
        url: `https://github.com/redhat-cip/dci-openshift-agent/commit/${sha}`,
        git: 'https://github.com/redhat-cip/dci-openshift-agent.git',
        ref: 'refs/heads/master',
      }
    },
  },
  {
    // Tagged releases of a tool.
    name: 'ansible',
    component(i) {
      const version = `2.${15 + Math.floor(i / 20)}.${i % 20}`
      const sha = sha1(`ansible ${version}`)
      return {
        name: `ansible-core ${version}`,
        canonical_project_name: 'ansible-core',
        sha,
        title: `ansible-core ${version} release`,
        message: `New release v${version}`,
        url: `https://github.com/ansible/ansible/releases/tag/v${version}`,
        git: 'https://github.com/ansible/ansible.git',
        ref: `refs/tags/v${version}`,
      }
    },
  },
]

const COMMIT_SUBJECTS = [
  'Add support for disconnected installs',
  'Fix the mirroring of operator catalogs',
  'Bump the default OCP version',
  'Retry the cluster health check',
  'Collect the must-gather on failure',
  'Use the new DCI job tags',
  'Document the pipeline settings',
  'Remove the deprecated inventory variables',
]

// ---- Provisioning ----

interface Provisioned {
  users: Array<{ name: string; email: string; team: string; role: string; password: string }>
  keys: Array<{ remoteci: string; team: string; token: string }>
  counts: Record<string, number>
}

/** The service's refusal as one readable line: its message and each invalid field. */
function describe(err: unknown): string {
  if (!(err instanceof ApiError)) return (err as Error)?.message ?? String(err)
  const fields = err.payload.errors as Record<string, string> | undefined
  const details = fields ? Object.entries(fields).map(([field, problem]) => `${field}: ${problem}`) : []
  return [err.message, ...details].join('; ')
}

/** A refusal of the whole run (exit code 1), its message as is. */
class Refused extends Error {}

/** `in(field,"a","b")` of the query language. */
const inList = (field: string, values: string[]) => `in(${field},${values.map((v) => JSON.stringify(v)).join(',')})`

/** The rows the demo set would collide with, described (`team 'demo-acme'`...). */
async function conflicts(tx: Transaction): Promise<string[]> {
  // By id: a user whose name and email both collide is named once.
  const found = new Map<string, string>()
  const look = async (resource: string, field: string, values: string[]) => {
    const page = await tx.service(resource).find({ query: { query: inList(field, values), limit: values.length, sort: [field] } })
    for (const row of page.items) if (!found.has(row.id as string)) found.set(row.id as string, `${resource} '${row[field]}' (${row.id})`)
  }
  await look(
    'team',
    'name',
    TEAMS.map((t) => t.name),
  )
  await look(
    'user',
    'name',
    USERS.map((u) => u.name),
  )
  await look(
    'user',
    'email',
    USERS.map((u) => u.email),
  )
  await look(
    'componenttype',
    'name',
    COMPONENTTYPES.map((t) => t.name),
  )
  return [...found.values()]
}

/** Deletes every row of every resource table and of the API keys, keeping the tables; returns the counts deleted. */
async function empty(engine: Engine, tx: Transaction): Promise<Record<string, number>> {
  const tables = [...[...engine.resources.values()].map((r) => r.model.tableName), APIKEYS_TABLE]
  const counts: Record<string, number> = {}
  for (const table of tables) {
    const [{ n }] = await tx.knex(table).count({ n: '*' })
    counts[table] = Number(n)
  }
  // One statement for all: foreign keys between them need no order, and the identity triggers
  // (TRUNCATE included) tell running servers to forget the callers they remember.
  await tx.knex.raw(`TRUNCATE TABLE ${tables.map(() => '??').join(', ')}`, tables)
  return counts
}

async function provision(engine: Engine, tx: Transaction, password: string | undefined): Promise<Provisioned> {
  const teams = new Map<DemoTeam, Record<string, unknown>>()
  for (const team of TEAMS) teams.set(team, await tx.service('team').create({ name: team.name }))

  const users: Provisioned['users'] = []
  for (const user of USERS) {
    const secret = password ?? generatePassword()
    await tx.service('user').create({ name: user.name, email: user.email, role: user.role, team: teams.get(user.team)!.id, password: secret })
    users.push({ name: user.name, email: user.email, team: user.team.name, role: user.role, password: secret })
  }

  const keys: Provisioned['keys'] = []
  const createKey = engine.action('create_remoteci_apikey')
  for (const team of TEAMS) {
    for (const remoteci of team.remotecis) {
      const row = await tx.service('remoteci').create({ name: remoteci.name, team: teams.get(team)!.id, data: remoteci.data })
      const result = (await createKey.call({ path: { id: row.id as string }, body: { name: 'demo key (db:provision)' } }, { transaction: tx })) as {
        apikey: { token: string }
      }
      keys.push({ remoteci: remoteci.name, team: team.name, token: result.apikey.token })
    }
  }

  let components = 0
  for (const type of COMPONENTTYPES) {
    const row = await tx.service('componenttype').create({ name: type.name })
    for (let i = 0; i < COMPONENTS_PER_TYPE; i++) {
      await tx.service('component').create({ ...type.component(i), componenttype: row.id })
      components++
    }
  }
  return {
    users,
    keys,
    counts: { teams: TEAMS.length, users: users.length, remotecis: keys.length, componenttypes: COMPONENTTYPES.length, components },
  }
}

/** Left-aligned columns, two spaces apart, each line indented by two. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells: string[]) => `  ${cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ')}`
  return [line(header), ...rows.map(line)].join('\n')
}

function report(done: Provisioned, emptied: Record<string, number> | undefined): string {
  const lines: string[] = []
  if (emptied) {
    const deleted = Object.entries(emptied).map(([table, n]) => `${n} ${table}`)
    lines.push(`reset: deleted ${deleted.join(', ')}`)
  }
  const c = done.counts
  lines.push(
    `created ${c.teams} teams, ${c.users} users, ${c.remotecis} remotecis with an API key each, ${c.componenttypes} componenttypes, ${c.components} components`,
    '',
    'Users (HTTP Basic with the name or the email; the passwords are shown once):',
    table(
      ['user', 'email', 'team', 'role', 'password'],
      done.users.map((u) => [u.name, u.email, u.team, u.role, u.password]),
    ),
    '',
    'Remoteci API keys (Authorization: Bearer <token>; shown once):',
    table(
      ['remoteci', 'team', 'token'],
      done.keys.map((k) => [k.remoteci, k.team, k.token]),
    ),
  )
  return `${lines.join('\n')}\n`
}

async function main(): Promise<number> {
  let cmd: Command
  try {
    cmd = parse(process.argv.slice(2))
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    console.error(`db:provision: ${err.message}\n${USAGE}`)
    return 2
  }
  if (cmd.help) {
    console.log(USAGE)
    return 0
  }

  const url = process.env.DATABASE_URL || undefined
  // knex's warnings on one line each, without their stacks: the final error says what failed.
  const logger = { warn: (_details: Record<string, unknown>, message: string) => console.error(message.split('\n')[0]) }
  const db = openDatabase({ url, dataDir: url ? undefined : path.resolve(process.env.DATA_DIR ?? 'data'), logger })
  try {
    await migrateLatest(db, path.join(root, 'migrations'))
    const engine = await createEngine({ db, schemasDir: path.join(root, 'schemas'), plugins: serverPlugins() })
    const { done, emptied } = await engine.transaction(async (tx) => {
      const emptied = cmd.reset ? await empty(engine, tx) : undefined
      const found = await conflicts(tx)
      if (found.length > 0) {
        const shown = found.length > 5 ? [...found.slice(0, 5), `and ${found.length - 5} more`] : found
        throw new Refused(
          [
            'db:provision refused: the database already holds rows of the demo set; nothing was changed:',
            ...shown.map((row) => `  ${row}`),
            `To replace everything in the database with the demo set: npm run db:provision -- --reset --${CONFIRM}`,
          ].join('\n'),
        )
      }
      return { done: await provision(engine, tx, cmd.password), emptied }
    })
    process.stdout.write(report(done, emptied))
    return 0
  } catch (err) {
    console.error(err instanceof Refused ? err.message : `db:provision failed, no row was changed: ${describe(err)}`)
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
    console.error(`db:provision: ${err?.message ?? err}`)
    process.exitCode = 1
  },
)
