import { MAX_ID } from '../framing/frame.js';
import type { MessageDef } from '../codec/protocol.js';
import type { Metadata } from '../framing/bodies.js';
import type { RpcError } from '../errors/rpc-error.js';

/** One outstanding client call. Holds its request only until it is written. */
export class PendingCall {
  timer: NodeJS.Timeout | undefined = undefined;
  signal: AbortSignal | undefined = undefined;
  onAbort: (() => void) | undefined = undefined;
  /** True once the REQUEST frame was queued on the socket. */
  sent = false;

  constructor(
    readonly id: number,
    readonly msg: MessageDef,
    public request: unknown,
    readonly metadata: Metadata | undefined,
    /** Absolute deadline on the `performance.now()` clock, or -1. */
    readonly deadline: number,
    readonly resolve: (value: unknown) => void,
    readonly reject: (error: RpcError) => void,
  ) {}

  /** Releases the timer and the abort listener; call exactly once when the call settles. */
  release(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.onAbort !== undefined) this.signal!.removeEventListener('abort', this.onAbort);
    this.request = undefined;
  }
}

/**
 * Outstanding calls by request id. Ids are u32, start at 1, wrap around, and skip ids still in use
 * (0 is reserved for connection-level frames).
 */
export class CallTable {
  private readonly calls = new Map<number, PendingCall>();
  private lastId = 0;

  /** Number of calls in flight (what the balancer counts). */
  get size(): number {
    return this.calls.size;
  }

  /** The next free id. */
  nextId(): number {
    let id = this.lastId;
    do {
      id = id >= MAX_ID ? 1 : id + 1;
    } while (this.calls.has(id));
    this.lastId = id;
    return id;
  }

  add(call: PendingCall): void {
    this.calls.set(call.id, call);
  }

  /** Removes and returns the call with this id, or `undefined` (a late answer to a settled call). */
  take(id: number): PendingCall | undefined {
    const call = this.calls.get(id);
    if (call !== undefined) {
      this.calls.delete(id);
      call.release();
    }
    return call;
  }

  /** Calls not yet written (queued while the connection was being set up). */
  unsent(): PendingCall[] {
    const out: PendingCall[] = [];
    for (const call of this.calls.values()) if (!call.sent) out.push(call);
    return out;
  }

  /** Rejects every call with `error`: the one place a dying connection fails its calls. */
  failAll(error: RpcError): void {
    const calls = [...this.calls.values()];
    this.calls.clear();
    for (const call of calls) {
      call.release();
      call.reject(error);
    }
  }

  /** For tests: forces the id counter (to exercise wrap-around). */
  setLastId(id: number): void {
    this.lastId = id;
  }
}
