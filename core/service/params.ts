import { Cancellation } from '../data/cancellation'
import type { Params } from './types'

/** Where params keep the call's {@link Cancellation} (copied by spreads, as own symbol keys are). */
export const CANCELLATION = Symbol('dci.cancellation')

type WithCancellation = Params & { [CANCELLATION]?: Cancellation }

/**
 * Params whose `signal` is made when first read, from their cancellation (see core/data/cancellation.ts):
 * the HTTP transport's. An object spread of them reads `signal`, which makes it: the engine copies
 * them with {@link extendParams} instead. Assigning `signal` gives the params a signal of their own.
 */
class LazySignalParams {
  [key: string]: unknown
  get signal(): AbortSignal | undefined {
    return (this as WithCancellation)[CANCELLATION]?.signal
  }
  set signal(value: AbortSignal | undefined) {
    Object.defineProperty(this, 'signal', { value, writable: true, enumerable: true, configurable: true })
  }
}

/** Params of a call that `cancellation` can abort, whose `signal` is made only if read. */
export function cancellableParams(cancellation: Cancellation | undefined, params: Params): Params {
  if (!cancellation) return params
  const made = Object.assign(new LazySignalParams(), params) as WithCancellation
  made[CANCELLATION] = cancellation
  return made
}

/** `{ ...params, ...extra }`, without making the AbortSignal of lazy params. */
export function extendParams(params: Params, extra: Params): Params {
  if (!(params instanceof LazySignalParams) || Object.hasOwn(params, 'signal')) return { ...params, ...extra }
  return Object.assign(new LazySignalParams(), params, extra)
}

/** The cancellation of a call: its params' own, or that of the signal it was given. */
export function cancellationOf(params: Params): Cancellation | undefined {
  const own = (params as WithCancellation)[CANCELLATION]
  if (own && !Object.hasOwn(params, 'signal')) return own
  const signal = params.signal
  return signal ? Cancellation.of(signal) : own
}
