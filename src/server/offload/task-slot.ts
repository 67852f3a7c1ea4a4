import { Code } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import type { CallContext } from '../call-context.js';

/**
 * One of the `workers.maxTasks` places an offloaded call holds until its worker answers. Made once per
 * slot and reused, so a call allocates no listener of its own. It does two things:
 *
 * - relays the call's end (cancel, deadline, disconnect) to the worker through the slot's Int32 in the
 *   shared flags, so the handler can stop by itself (`ctx.cancelled`, `ctx.signal`): cheap, the worker
 *   and its loaded module live on;
 * - `abandonGraceMs` later, if the worker still has not answered, aborts the piscina task. The slot is
 *   the task's abort signal (piscina takes an EventEmitter-style object with `aborted`, `once` and `removeListener`):
 *   piscina drops a queued task, and terminates and replaces the thread of a running one, so a handler
 *   that ignores cancellation cannot keep a thread forever.
 */
export class TaskSlot {
  /** Read by piscina when the task is submitted. */
  aborted = false;
  /** Why the task was aborted (piscina puts it in its AbortError's cause). */
  reason: unknown = undefined;
  private listener: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private ctx: CallContext | undefined;
  private signal: AbortSignal | undefined;
  private flagged = false;
  /** Called instead of piscina's listener when the grace period ends with no task running (a started stream). */
  private abandoned: (() => void) | undefined;

  constructor(
    /** Index of this slot's Int32 in `flags`. */
    readonly index: number,
    private readonly flags: Int32Array,
    private readonly graceMs: number,
    /** Told when a task is aborted after the grace period, before piscina is. */
    private readonly onAbandon: (message: string) => void,
  ) {}

  /** Piscina's abort listener (EventEmitter style). */
  once(_event: 'abort', listener: () => void): void {
    this.listener = listener;
  }

  removeListener(_event: 'abort', listener: () => void): void {
    if (this.listener === listener) this.listener = undefined;
  }

  /** Piscina's types name `off`; its code calls `removeListener`. */
  off(event: 'abort', listener: () => void): void {
    this.removeListener(event, listener);
  }

  /**
   * Takes the slot for a call: clears its flag and follows the call's signal. `abandoned` is what a
   * stream does when its grace period ends after its start task returned (no piscina task to abort).
   */
  begin(ctx: CallContext, abandoned?: () => void): void {
    Atomics.store(this.flags, this.index, 0);
    this.aborted = false;
    this.reason = undefined;
    this.flagged = false;
    this.abandoned = abandoned;
    this.ctx = ctx;
    const signal = ctx.signal;
    this.signal = signal;
    if (signal.aborted) this.onCancel();
    else signal.addEventListener('abort', this.onCancel, { once: true });
  }

  /** The worker answered (or failed): stop following the call. */
  end(): void {
    this.signal?.removeEventListener('abort', this.onCancel);
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.signal = undefined;
    this.ctx = undefined;
    this.listener = undefined;
    this.abandoned = undefined;
  }

  private readonly onCancel = (): void => {
    const reason: unknown = this.signal?.reason;
    this.cancel(reason instanceof RpcError ? reason.code : Code.CANCELLED);
  };

  /**
   * The call is over for the main thread (its signal aborted, or a stream's producer was closed): the
   * worker's flag says `code`, and the grace period starts. Once per call.
   */
  cancel(code: Code): void {
    if (this.flagged || this.ctx === undefined) return;
    this.flagged = true;
    Atomics.store(this.flags, this.index, code);
    Atomics.notify(this.flags, this.index);
    this.timer = setTimeout(this.abandon, this.graceMs);
    // Never what keeps a process alive: `end` or the pool's destroy settles the task anyway.
    this.timer.unref();
  }

  private readonly abandon = (): void => {
    this.timer = undefined;
    this.aborted = true;
    this.reason = new RpcError(Code.CANCELLED, `worker task abandoned ${this.graceMs} ms after its call ended`);
    if (this.ctx !== undefined) this.onAbandon(this.ctx.message);
    const listener = this.listener ?? this.abandoned;
    this.listener = undefined;
    this.abandoned = undefined;
    listener?.();
  };
}
