/**
 * Cancelling the statements of a call whose answer is no longer wanted (the HTTP client hung up, or
 * the request ran past its deadline). Each running statement registers its cancel with the call's
 * {@link Cancellation}, whose abort calls them.
 *
 * The HTTP transport makes one Cancellation per request. It is a plain object: the AbortSignal that
 * `params.signal` shows hooks and actions is made only when one of them reads it. An AbortSignal costs
 * about 3 microseconds to make in Node 20, and its garbage made every collection of the young
 * generation about three times as long (measured on the detail GET of the benchmark: 1.5 ms against
 * 0.5 ms, bench/RESULTS.md).
 */
export class Cancellation {
  aborted = false
  reason: unknown = undefined
  private controller: AbortController | undefined = undefined
  private given: AbortSignal | undefined = undefined
  private cancels: Set<() => void> | undefined = undefined

  /** An AbortSignal that aborts with this call, made on first use. */
  get signal(): AbortSignal {
    if (this.given) return this.given
    if (!this.controller) {
      this.controller = new AbortController()
      if (this.aborted) this.controller.abort(this.reason)
      following.set(this.controller.signal, this)
    }
    return this.controller.signal
  }

  /** Aborts the call: its signal, if one was made, and every statement running under it. */
  abort(reason: unknown): void {
    if (this.aborted) return
    this.aborted = true
    this.reason = reason
    this.controller?.abort(reason)
    if (this.cancels) for (const cancel of this.cancels) cancel()
  }

  /** Registers a running statement's cancel, called if the call aborts before {@link remove}. */
  add(cancel: () => void): void {
    ;(this.cancels ??= new Set()).add(cancel)
  }

  remove(cancel: () => void): void {
    this.cancels?.delete(cancel)
  }

  /** The cancellation of a caller's own AbortSignal: it aborts when the signal does (one listener per signal). */
  static of(signal: AbortSignal): Cancellation {
    const known = following.get(signal)
    if (known) return known
    const made = new Cancellation()
    made.given = signal
    following.set(signal, made)
    if (signal.aborted) made.abort(signal.reason)
    else signal.addEventListener('abort', () => made.abort(signal.reason), { once: true })
    return made
  }
}

/** The cancellation each signal made or seen here belongs to. */
const following = new WeakMap<AbortSignal, Cancellation>()
