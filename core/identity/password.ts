import { hash, verify } from '@node-rs/argon2'

/**
 * Passwords are stored as Argon2id hashes (@node-rs/argon2, its defaults: 19 MiB of memory, 2
 * passes, as OWASP recommends). A hash costs tens of milliseconds on purpose, on libuv's thread pool.
 */
export function hashPassword(password: string): Promise<string> {
  return hash(password.normalize('NFC'))
}

/** True when `password` is the one `stored` was made from; false for anything else, a bad hash included. */
export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  try {
    return await verify(stored, password.normalize('NFC'))
  } catch {
    return false
  }
}

let decoy: Promise<string> | undefined

/**
 * Spends the time of one verification for a login name that does not exist, so that the answer's
 * timing does not tell which names do.
 */
export async function verifyNothing(password: string): Promise<false> {
  decoy ??= hash('decoy password, never matched')
  await verifyPassword(await decoy, password)
  return false
}
