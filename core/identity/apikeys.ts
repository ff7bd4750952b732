import crypto from 'node:crypto'
import type { Knex } from 'knex'
import { defineAction, type ActionDefinition } from '../plugins/plugin'
import { isUuid } from '../schema/vocabulary'
import { changedHere } from './changes'

/** The table of API keys: one row per key, its token stored as a SHA-256 digest (see the migration). */
export const APIKEYS_TABLE = 'apikeys'

/** Tokens start with this, so a Bearer token is told from a JWT (and found by secret scanners). */
export const TOKEN_PREFIX = 'dci_'

/** A new token: 32 random bytes. Stored only as {@link tokenDigest}; answered once. */
export function newToken(): string {
  return `${TOKEN_PREFIX}${crypto.randomBytes(32).toString('base64url')}`
}

/**
 * The stored form of a token. A token is 256 random bits, so a fast digest is enough (no password
 * hash needed: nothing to guess), and a lookup is one indexed query.
 */
export function tokenDigest(token: string): string {
  // One-shot where node has it (20.12+): no Hash object per request.
  return typeof crypto.hash === 'function' ? crypto.hash('sha256', token, 'hex') : crypto.createHash('sha256').update(token).digest('hex')
}

/** A key as listed: never its token. */
const KEY_FIELDS = ['id', 'name', 'created_at', 'last_used_at'] as const

const keySchema = {
  type: 'object',
  properties: {
    id: { type: 'string', format: 'uuid' },
    name: { type: ['string', 'null'] },
    created_at: { type: 'string', format: 'date-time' },
    last_used_at: { type: ['string', 'null'], format: 'date-time', description: 'Updated at most once a minute.' },
  },
  required: ['id', 'name', 'created_at', 'last_used_at'],
  additionalProperties: false,
}

/**
 * The three actions of one key holder resource (`user`, `remoteci`...): create a key (its token is
 * in that answer only), list the keys, revoke one. The holder's row must be visible to the caller
 * (404 otherwise); who may act is the holder resource's `update` rule, or the holder itself.
 */
export function apiKeyActions(holder: string, plural: string): ActionDefinition<any>[] {
  const pathParams = { id: { resource: holder, description: `Id of a ${holder}.` } }
  const holderOf = async (ctx: { service(name: string): { get(id: string): Promise<unknown> }; path: Record<string, string> }) => {
    await ctx.service(holder).get(ctx.path.id)
  }
  const keys = (db: Knex | Knex.Transaction) => db(APIKEYS_TABLE)
  return [
    defineAction<{ name?: string | null }>({
      name: `create_${holder}_apikey`,
      method: 'POST',
      path: `/${plural}/:id/apikeys`,
      summary: `Create an API key of a ${holder}`,
      description: 'The token is in this answer only: it is stored as a digest. Send it as `Authorization: Bearer <token>`.',
      pathParams,
      input: {
        type: 'object',
        properties: { name: { type: ['string', 'null'], maxLength: 255, description: 'What the key is for.' } },
        additionalProperties: false,
      },
      output: {
        type: 'object',
        properties: {
          apikey: { ...keySchema, properties: { ...keySchema.properties, token: { type: 'string' } }, required: [...keySchema.required, 'token'] },
        },
        required: ['apikey'],
        additionalProperties: false,
      },
      status: 201,
      async handler(ctx) {
        await holderOf(ctx)
        const token = newToken()
        const [row] = await keys(ctx.db)
          .insert({ holder_kind: holder, holder_id: ctx.path.id, token_hash: tokenDigest(token), name: ctx.body.name ?? null })
          .returning([...KEY_FIELDS])
        return { apikey: { ...row, token } }
      },
    }),
    defineAction({
      name: `list_${holder}_apikeys`,
      method: 'GET',
      path: `/${plural}/:id/apikeys`,
      summary: `List the API keys of a ${holder}`,
      description: 'Without their tokens.',
      pathParams,
      output: {
        type: 'object',
        properties: { apikeys: { type: 'array', items: keySchema } },
        required: ['apikeys'],
        additionalProperties: false,
      },
      transaction: false,
      async handler(ctx) {
        await holderOf(ctx)
        const rows = await keys(ctx.db).select(KEY_FIELDS).where({ holder_kind: holder, holder_id: ctx.path.id }).orderBy('created_at').orderBy('id')
        return { apikeys: rows }
      },
    }),
    defineAction({
      name: `delete_${holder}_apikey`,
      method: 'DELETE',
      path: `/${plural}/:id/apikeys/:keyid`,
      summary: `Revoke an API key of a ${holder}`,
      description: 'At once, on every server process: each request looks its key up.',
      pathParams: { ...pathParams, keyid: { schema: { type: 'string', format: 'uuid' }, description: 'Id of the key.' } },
      status: 204,
      errors: ['not_found'],
      async handler(ctx) {
        await holderOf(ctx)
        if (!isUuid(ctx.path.keyid)) throw ctx.errors.create('not_found', 'apikey not found')
        // The deleted rows rather than a count: the same answer whatever the database client resolves a delete to.
        const removed = await keys(ctx.db).where({ id: ctx.path.keyid, holder_kind: holder, holder_id: ctx.path.id }).delete().returning('id')
        if (removed.length === 0) throw ctx.errors.create('not_found', 'apikey not found')
        changedHere()
      },
    }),
  ]
}
