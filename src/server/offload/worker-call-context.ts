import { Code } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import type { Metadata } from '../../framing/bodies.js';
import { CallContext, type PeerInfo } from '../call-context.js';

/**
 * The call context of a handler running in a worker. Cancellation crosses threads through one Int32
 * slot of a SharedArrayBuffer per call: the main thread stores a `Code` there and notifies. Reading
 * `cancelled` or `signal` checks the slot synchronously (so a CPU-bound loop can stop), and while an
 * async handler is pending, `Atomics.waitAsync` wakes the worker to abort `signal` the moment the
 * flag is set. The deadline is enforced here too, with the worker's own timer (same epoch clock).
 */
export class WorkerCallContext extends CallContext {
  private released = false;

  constructor(
    message: string,
    metadata: Metadata,
    deadline: number,
    peer: PeerInfo,
    private readonly flags: Int32Array,
    private readonly slot: number,
  ) {
    super(message, metadata, deadline, peer);
  }

  override get cancelled(): boolean {
    this.poll();
    return super.cancelled;
  }

  override get signal(): AbortSignal {
    this.poll();
    return super.signal;
  }

  /** Wakes on the main thread's notify while an async handler runs. */
  watch(): void {
    const wait = (Atomics as unknown as AtomicsWaitAsync).waitAsync(this.flags, this.slot, 0);
    if (!wait.async) return this.poll();
    void wait.value.then(() => this.poll());
  }

  /** The handler is done: stop watching (the pending wait is woken and then ignored) and clear timers. */
  release(): void {
    this.released = true;
    this.finish();
    Atomics.notify(this.flags, this.slot);
  }

  private poll(): void {
    if (this.released || super.cancelled) return;
    const code = Atomics.load(this.flags, this.slot);
    if (code === 0) return;
    this.cancel(new RpcError(code as Code, code === Code.DEADLINE_EXCEEDED ? 'deadline exceeded' : 'call cancelled by the client'));
  }
}

/** `Atomics.waitAsync` (Node >= 16) is missing from the ES2022 lib this project compiles against. */
interface AtomicsWaitAsync {
  waitAsync(array: Int32Array, index: number, value: number): { async: false; value: string } | { async: true; value: Promise<string> };
}
