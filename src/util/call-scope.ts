import { AsyncLocalStorage } from 'node:async_hooks';

/** What a call made inside a handler inherits from the call being handled. */
export interface InheritedCall {
  /** Deadline as epoch ms (`Date.now()` clock), or Infinity. */
  readonly deadline: number;
  /** Aborts when the incoming call is cancelled, times out, or loses its connection. */
  readonly signal: AbortSignal;
}

/**
 * The incoming call whose handler is running, across `await`s: the server enters it around each
 * handler, the client reads it to cap deadlines and chain cancellation, so a cancelled request
 * cancels its whole call tree. Process-wide by nature (it must join server and client code).
 */
export const callScope = new AsyncLocalStorage<InheritedCall>();

/**
 * True once this thread created a client: only then can a handler make calls that inherit from its
 * call, so servers enter {@link callScope} only then. A process that only serves pays nothing for it
 * (an AsyncLocalStorage in use puts a hook on every promise the process creates, a few % of a call).
 */
export const scopeWanted = { value: false };
