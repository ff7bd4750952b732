import crypto from 'node:crypto'
import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose'
import type { EngineLogger } from '../http/frame'
import type { Authenticator, AuthenticatorHost } from '../plugins/plugin'
import type { TransportRequest } from '../service/types'
import { APIKEYS_TABLE, TOKEN_PREFIX, tokenDigest } from './apikeys'
import { callerFromRow, type Caller } from './caller'
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
  /** How long a verified Basic credential is remembered (default 5 minutes). */
  basicCacheMs?: number
}

/** Most Basic credentials remembered at once. */
const BASIC_CACHE_SIZE = 10_000
/** A key's `last_used_at` is written at most this often. */
const LAST_USED_EVERY_MS = 60_000
const BASIC = /^Basic +([A-Za-z0-9+/]+=*) *$/i
const BEARER = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

/**
 * Credentials of HTTP requests:
 * - `Basic` with a user's name or email and password (Argon2id; a verified credential is remembered
 *   for a few minutes, keyed by a digest of the header and valid only while the stored hash is the
 *   same one, so a changed password or a removed user fails at once, on every process);
 * - `Bearer` with an API key's token (one indexed query that also reads the holder's row);
 * - `Bearer` with a JWT signed by a key of the configured JWKS, naming a user by a claim.
 * Every request reads the caller's row, so a changed role or team applies to the next request.
 */
export function identityAuthenticator(options: AuthenticatorOptions): Authenticator {
  const basicCache = new Map<string, { hash: string; until: number }>()
  const cacheMs = options.basicCacheMs ?? 5 * 60_000
  const jwks: JWTVerifyGetKey | undefined = options.jwt ? createRemoteJWKSet(new URL(options.jwt.jwksUrl)) : undefined
  const challenges = ['Basic realm="dci"', 'Bearer realm="dci"']

  const failed = (request: TransportRequest, scheme: string, details: Record<string, unknown> = {}) => {
    options.logger.warn?.({ client: request.ip, scheme, request_id: request.id, ...details }, 'authentication failed')
    return undefined
  }

  async function basic(request: TransportRequest, host: AuthenticatorHost, header: string, encoded: string): Promise<Caller | undefined> {
    const decoded = Buffer.from(encoded, 'base64')
    const text = new TextDecoder('utf-8', { fatal: false }).decode(decoded)
    const colon = text.indexOf(':')
    // A NUL cannot be in any stored name (PostgreSQL text refuses it, and the query would fail).
    if (colon <= 0 || text.includes('\uFFFD') || text.slice(0, colon).includes('\u0000')) return failed(request, 'basic', { reason: 'malformed' })
    const login = text.slice(0, colon).normalize('NFC')
    const password = text.slice(colon + 1)
    if (login.length > 255 || password.length > 1024) return failed(request, 'basic', { reason: 'too long' })
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
    const key = crypto.createHash('sha256').update(header).digest('base64')
    const cached = basicCache.get(key)
    const now = Date.now()
    if (!(cached && cached.hash === stored && cached.until > now)) {
      if (!(await verifyPassword(stored, password))) return failed(request, 'basic', { login })
      if (basicCache.size >= BASIC_CACHE_SIZE) basicCache.delete(basicCache.keys().next().value!)
      basicCache.set(key, { hash: stored, until: now + cacheMs })
    }
    return callerFromRow('user', row, 'team')
  }

  async function apiKey(request: TransportRequest, host: AuthenticatorHost, token: string): Promise<Caller | undefined> {
    // One query: the key, and its holder's row from the holder's own table.
    const holders = options.keyHolders.map((kind, i) => ({ kind, alias: `h${i}`, def: host.definition(kind) }))
    const db = host.db
    const query = db(`${APIKEYS_TABLE} as k`).select('k.id', 'k.holder_kind', 'k.last_used_at').where('k.token_hash', tokenDigest(token)).first()
    for (const h of holders) {
      query.leftJoin(`${h.def.plural} as ${h.alias}`, (join) => join.on(`${h.alias}.id`, 'k.holder_id').andOn('k.holder_kind', db.raw('?', [h.kind])))
      query.select(db.raw('to_jsonb(??) as ??', [h.alias, h.alias]))
    }
    const key = (await query) as Record<string, any> | undefined
    const holder = key && holders.find((h) => h.kind === key.holder_kind)
    const row = holder && key[holder.alias]
    if (!key || !holder || !row) return failed(request, 'bearer', { reason: 'unknown key' })
    const lastUsed = key.last_used_at ? new Date(key.last_used_at).getTime() : 0
    if (Date.now() - lastUsed > LAST_USED_EVERY_MS) {
      db(APIKEYS_TABLE)
        .update({ last_used_at: db.fn.now() })
        .where('id', key.id)
        .catch((err: Error) => options.logger.warn?.({ err: err.message }, 'could not record the use of an API key'))
    }
    return callerFromRow(holder.kind, row, holder.def.owner)
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
