import type { Identity, Params } from '../service/types'

/** The roles of users; other callers (remotecis...) have their kind as role. */
export const USER_ROLES = ['super_admin', 'admin', 'user'] as const

/** Who calls, as the identity plugin fills `params.identity` (and `GET /identity` answers it). */
export interface Caller {
  /** `user`, or the resource of another key holder (`remoteci`). */
  kind: string
  id: string
  name: string
  /** A user's role, or the kind for other key holders. */
  role: string
  /** The caller's team. */
  team: string | null
  email?: string | null
}

/** The caller of a call whose identity the identity plugin made; undefined for server code. */
export function callerOf(params: Params): Caller | undefined {
  const identity = params.identity as Partial<Caller> | undefined
  return identity && typeof identity.role === 'string' && typeof identity.id === 'string' ? (identity as Caller) : undefined
}

/** The identity of a key holder's row: a user's role is its own, another holder's is its kind. */
export function callerFromRow(kind: string, row: Record<string, unknown>, ownerField: string | undefined): Caller {
  if (kind === 'user') {
    return {
      kind,
      id: String(row.id),
      name: String(row.name),
      email: (row.email as string | null) ?? null,
      role: typeof row.role === 'string' ? row.role : 'user',
      team: (row.team as string | null) ?? null,
    }
  }
  return {
    kind,
    id: String(row.id),
    name: String(row.name ?? ''),
    role: kind,
    team: ownerField ? ((row[ownerField] as string | null) ?? null) : null,
  }
}

export type { Identity }
