import crypto from 'node:crypto'
import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose'
import type { EngineLogger } from '../http/frame'
import type { Authenticator, AuthenticatorHost } from '../plugins/plugin'
import type { TransportRequest } from '../service/types'
import { APIKEYS_TABLE, TOKEN_PREFIX, tokenDigest } from './apikeys'
import { callerFromRow, type Caller } from './caller'
import { identityChanges, type IdentityChanges } from './changes'
import { verifyNothing, verifyPassword } from './password'

/** A JWT issuer the server trusts (like the original server's SSO). */
export interface JwtOptions {
  /** The issuer's JSON Web Key Set (`JWT_JWKS_URL`). */
  jwksUrl: string
  /** The `iss` a token must have (`JWT_ISSUER`), when set. */
  issuer?: string
  /** The `aud` a token must have (`JWT_AUDIENCE`), when set. */
  audience?: string
  /** The claim holding the user's name (`JWT_CLAIM`, default `sub`). */
  claim?: string
}

export interface AuthenticatorOptions {
  /** Resources whose rows may hold API keys (`user` and others: their kind is their role). */
  keyHolders: readonly string[]
  jwt?: JwtOptions
  logger: EngineLogger
  /** How long a verified credential (Basic or API key) is remembered (default 5 minutes; see {@link identityAuthenticator}). */
  cacheMs?: number
}

/** Most credentials remembered at once. */
const CACHE_SIZE = 10_000
/** A key's `last_used_at` is written at most this often. */
const LAST_USED_EVERY_MS = 60_000
const BASIC = /^Basic +([A-Za-z0-9+/]+=*) *$/i
const BEARER = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/
/** SHA-256 in base64, one-shot where node has `crypto.hash` (20.12+): the key of a remembered Basic credential. */
const sha256: (text: string) => string =
  typeof crypto.hash === 'function' ? (text) => crypto.hash('sha256', text, 'base64') : (text) => crypto.createHash('sha256').update(text).digest('base64')

/** Decodes Basic credentials (invalid bytes become U+FFFD, which is refused). */
const UTF8 = new TextDecoder('utf-8', { fatal: false })

/** A verified credential: its caller, the generation of identity changes it was read in (see {@link IdentityChanges}). */
interface Remembered {
  caller: Caller
  generation: number
  until: number
  /** Basic: the stored password hash the password was verified against. */
  hash?: string
  /** Bearer: the API key's id. */
  keyId?: string
}

/**
 * Credentials of HTTP requests:
 * - `Basic` with a user's name or email and password (Argon2id);
 * - `Bearer` with an API key's token (one indexed query that also reads the holder's row);
 * - `Bearer` with a JWT signed by a key of the configured JWKS, naming a user by a claim.
 * A verified Basic or API key credential is remembered for `cacheMs` (keyed by a digest of the header
 * or the token), and answered without reading the database as long as no user, key holder or API key
 * changed since it was read: the migration's triggers notify every process of each change at its
 * commit ({@link IdentityChanges}), so a changed password, role or team, a removed user and a revoked
 * key apply to the next request on every process. While a process cannot listen for those changes,
 * every request reads its caller's row (and a Basic password is verified again only when its stored
 * hash changed).
 */
export function identityAuthenticator(options: AuthenticatorOptions): Authenticator {
  const remembered = new Map<string, Remembered>()
  const cacheMs = options.cacheMs ?? 5 * 60_000
  /** When this process last wrote each key's `last_used_at`. */
  const lastUsed = new Map<string, number>()
  const remember = (key: string, entry: Remembered) => {
    if (remembered.size >= CACHE_SIZE && !remembered.has(key)) remembered.delete(remembered.keys().next().value!)
    remembered.set(key, entry)
  }
  /** The tracker of changes of the tables callers are read from (every key holder's, and the keys'), per database. */
  let tracked: { db: AuthenticatorHost['db']; changes: IdentityChanges } | undefined
  const changesOf = (host: AuthenticatorHost): IdentityChanges => {
    if (tracked?.db !== host.db) {
      const tables = [...options.keyHolders.map((kind) => host.definition(kind).plural), APIKEYS_TABLE]
      tracked = { db: host.db, changes: identityChanges(host.db, tables, options.logger) }
    }
    // A knex destroyed and initialised again gets a new tracker (the old one stopped with its pool).
    if (tracked.changes.stopped) tracked = undefined
    return tracked ? tracked.changes : changesOf(host)
  }
  const jwks: JWTVerifyGetKey | undefined = options.jwt ? createRemoteJWKSet(new URL(options.jwt.jwksUrl)) : undefined
  const challenges = ['Basic realm="dci"', 'Bearer realm="dci"']

  const failed = (request: TransportRequest, scheme: string, details: Record<string, unknown> = {}) => {
    options.logger.warn?.({ client: request.ip, scheme, request_id: request.id, ...details }, 'authentication failed')
    return undefined
  }

  /**
   * Basic credentials being checked now, by key: requests that bring the same credential meanwhile
   * wait for that one check instead of each running its own Argon2id (a client opening many
   * connections at once would otherwise cost one hash each, tens of milliseconds of CPU apiece).
   */
  const checking = new Map<string, Promise<Caller | undefined>>()

  async function basic(request: TransportRequest, host: AuthenticatorHost, header: string, encoded: string): Promise<Caller | undefined> {
    // A credential verified since the last change of callers: nothing to decode, read or verify.
    const key = `basic:${sha256(header)}`
    const changes = changesOf(host)
    const known = remembered.get(key)
    const now = Date.now()
    if (known && known.until > now && changes.current(known.generation)) return known.caller
    const pending = checking.get(key)
    if (pending) return (await pending) ?? failed(request, 'basic', { reason: 'refused to a concurrent request with the same credential' })
    const check = checkBasic(request, host, encoded, key, known, now, changes)
    checking.set(key, check)
    try {
      return await check
    } finally {
      checking.delete(key)
    }
  }

  async function checkBasic(
    request: TransportRequest,
    host: AuthenticatorHost,
    encoded: string,
    key: string,
    known: Remembered | undefined,
    now: number,
    changes: IdentityChanges,
  ): Promise<Caller | undefined> {
    const decoded = Buffer.from(encoded, 'base64')
    const text = UTF8.decode(decoded)
    const colon = text.indexOf(':')
    // A NUL cannot be in any stored name (PostgreSQL text refuses it, and the query would fail).
    if (colon <= 0 || text.includes('\uFFFD') || text.slice(0, colon).includes('\u0000')) return failed(request, 'basic', { reason: 'malformed' })
    const login = text.slice(0, colon).normalize('NFC')
    const password = text.slice(colon + 1)
    if (login.length > 255 || password.length > 1024) return failed(request, 'basic', { reason: 'too long' })
    const generation = changes.generation
    const def = host.definition('user')
    const rows: Array<Record<string, unknown>> = await host
      .db(def.plural)
      .select('id', 'name', 'email', 'role', 'team', 'password')
      .where('name', login)
      .orWhere('email', login)
      .limit(2)
    const row = rows.find((r) => r.name === login) ?? rows[0]
    const stored = typeof row?.password === 'string' ? row.password : undefined
    if (!row || !stored) {
      await verifyNothing(password)
      return failed(request, 'basic', { login })
    }
    // The password was verified against this very hash a moment ago: no second Argon2id.
    const verified = known?.hash === stored && known.until > now
    if (!verified && !(await verifyPassword(stored, password))) return failed(request, 'basic', { login })
    const caller = callerFromRow('user', row, 'team')
    remember(key, { caller, generation, until: verified ? known!.until : now + cacheMs, hash: stored })
    return caller
  }

  /** Writes a key's `last_used_at`, at most once a minute per process, without waiting for it. */
  function used(host: AuthenticatorHost, keyId: string, now: number): void {
    if (now - (lastUsed.get(keyId) ?? 0) <= LAST_USED_EVERY_MS) return
    if (lastUsed.size >= CACHE_SIZE) lastUsed.delete(lastUsed.keys().next().value!)
    lastUsed.set(keyId, now)
    host
      .db(APIKEYS_TABLE)
      .update({ last_used_at: host.db.fn.now() })
      .where('id', keyId)
      .catch((err: Error) => options.logger.warn?.({ err: err.message }, 'could not record the use of an API key'))
  }

  async function apiKey(request: TransportRequest, host: AuthenticatorHost, token: string): Promise<Caller | undefined> {
    const digest = tokenDigest(token)
    const changes = changesOf(host)
    const known = remembered.get(`bearer:${digest}`)
    const now = Date.now()
    if (known && known.until > now && changes.current(known.generation)) {
      used(host, known.keyId!, now)
      return known.caller
    }
    const generation = changes.generation
    // One query: the key, and its holder's row from the holder's own table.
    const holders = options.keyHolders.map((kind, i) => ({ kind, alias: `h${i}`, def: host.definition(kind) }))
    const db = host.db
    const query = db(`${APIKEYS_TABLE} as k`).select('k.id', 'k.holder_kind', 'k.last_used_at').where('k.token_hash', digest).first()
    for (const h of holders) {
      query.leftJoin(`${h.def.plural} as ${h.alias}`, (join) => join.on(`${h.alias}.id`, 'k.holder_id').andOn('k.holder_kind', db.raw('?', [h.kind])))
      query.select(db.raw('to_jsonb(??) as ??', [h.alias, h.alias]))
    }
    const key = (await query) as Record<string, any> | undefined
    const holder = key && holders.find((h) => h.kind === key.holder_kind)
    const row = holder && key[holder.alias]
    if (!key || !holder || !row) return failed(request, 'bearer', { reason: 'unknown key' })
    // Written by another process (or before a restart) within the minute: not again yet.
    if (key.last_used_at && !lastUsed.has(key.id)) lastUsed.set(key.id, new Date(key.last_used_at).getTime())
    used(host, key.id, now)
    const caller = callerFromRow(holder.kind, row, holder.def.owner)
    remember(`bearer:${digest}`, { caller, generation, until: now + cacheMs, keyId: key.id })
    return caller
  }

  async function jwt(request: TransportRequest, host: AuthenticatorHost, token: string): Promise<Caller | undefined> {
    if (!jwks || !options.jwt) return failed(request, 'bearer', { reason: 'JWTs are not accepted (no JWT_JWKS_URL)' })
    let name: unknown
    try {
      const { payload } = await jwtVerify(token, jwks, { issuer: options.jwt.issuer, audience: options.jwt.audience })
      name = payload[options.jwt.claim ?? 'sub']
    } catch (err) {
      return failed(request, 'jwt', { reason: (err as { code?: string }).code ?? 'invalid' })
    }
    if (typeof name !== 'string' || name === '' || name.includes('\u0000')) return failed(request, 'jwt', { reason: 'no user claim' })
    const def = host.definition('user')
    const row = await host.db(def.plural).first('id', 'name', 'email', 'role', 'team').where('name', name.normalize('NFC'))
    if (!row) return failed(request, 'jwt', { login: name })
    return callerFromRow('user', row, 'team')
  }

  return {
    challenges,
    securitySchemes: {
      basic: { type: 'http', scheme: 'basic', description: "A user's name (or email) and password." },
      bearer: { type: 'http', scheme: 'bearer', description: 'An API key (POST .../apikeys), or a JWT of the configured issuer.' },
    },
    async identify(request, host) {
      const header = request.headers.authorization
      if (typeof header !== 'string') return undefined
      if (header.length > 4096) return failed(request, 'unknown', { reason: 'header too long' })
      const b = BASIC.exec(header)
      if (b) return (await basic(request, host, header, b[1])) as Caller | undefined as Record<string, unknown> | undefined
      const t = BEARER.exec(header)
      if (!t) return failed(request, 'unknown')
      const token = t[1]
      const caller = token.startsWith(TOKEN_PREFIX)
        ? await apiKey(request, host, token)
        : JWT_SHAPE.test(token)
          ? await jwt(request, host, token)
          : failed(request, 'bearer')
      return caller as Record<string, unknown> | undefined
    },
  }
}
