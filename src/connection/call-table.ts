import { MAX_ID } from '../framing/frame.js';
import type { MessageDef } from '../codec/protocol.js';
import type { Metadata } from '../framing/bodies.js';
import type { RpcError } from '../errors/rpc-error.js';

/**
 * Decides what happens to a call whose attempt failed on a connection: retry it elsewhere or reject
 * it. `mayHaveRun` is false when the server certainly did not process it (never written, or refused
 * with UNAVAILABLE after GOAWAY), which makes even a non-idempotent call safe to send again.
 */
export interface CallOwner {
  attemptFailed(call: ClientCall, error: RpcError, mayHaveRun: boolean): void;
}

/**
 * One client call, across all its attempts. A connection owns it while an attempt is on that
 * connection (`conn` and `id` set); the client owns it in between. Settles exactly once.
 */
export class ClientCall {
  /** Request id of the current attempt; 0 when not on a connection. */
  id = 0;
  /** The connection of the current attempt (typed loosely to keep this module below it). */
  conn: { detach(call: ClientCall): void } | null = null;
  /** True once the current attempt's REQUEST frame was queued on its socket. */
  sent = false;
  /** Attempts started so far. */
  attempts = 0;
  /** Endpoint of the last failed attempt: a retry prefers another one. */
  avoidEndpoint: string | undefined = undefined;
  /** `performance.now()` when the current attempt was sent (for the latency EWMA). */
  sentAt = 0;
  timer: NodeJS.Timeout | undefined = undefined;
  signal: AbortSignal | undefined = undefined;
  onAbort: (() => void) | undefined = undefined;
  done = false;

  constructor(
    readonly msg: MessageDef,
    readonly request: unknown,
    readonly metadata: Metadata | undefined,
    /** Absolute deadline on the `performance.now()` clock, or -1. */
    readonly deadline: number,
    private readonly onResolve: (value: unknown) => void,
    private readonly onReject: (error: RpcError) => void,
    readonly owner: CallOwner,
  ) {}

  /** Settles with a value; releases the timer and the abort listener. */
  resolve(value: unknown): void {
    if (this.release()) this.onResolve(value);
  }

  /** Settles with an error; releases the timer and the abort listener. */
  reject(error: RpcError): void {
    if (this.release()) this.onReject(error);
  }

  private release(): boolean {
    if (this.done) return false;
    this.done = true;
    this.conn = null;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.onAbort !== undefined) this.signal!.removeEventListener('abort', this.onAbort);
    return true;
  }
}

/**
 * The calls on one connection by request id. Ids are u32, start at 1, wrap around, and skip ids
 * still in use (0 is reserved for connection-level frames).
 */
export class CallTable {
  private readonly calls = new Map<number, ClientCall>();
  private lastId = 0;

  /** Number of calls in flight (what the balancer counts). */
  get size(): number {
    return this.calls.size;
  }

  /** Gives the call a free id and adds it. */
  add(call: ClientCall): void {
    let id = this.lastId;
    do {
      id = id >= MAX_ID ? 1 : id + 1;
    } while (this.calls.has(id));
    this.lastId = id;
    call.id = id;
    this.calls.set(id, call);
  }

  /** Removes and returns the call with this id, or `undefined` (a late answer to a settled call). */
  take(id: number): ClientCall | undefined {
    const call = this.calls.get(id);
    if (call !== undefined) this.calls.delete(id);
    return call;
  }

  /** Calls not yet written (queued while the connection was being set up). */
  unsent(): ClientCall[] {
    const out: ClientCall[] = [];
    for (const call of this.calls.values()) if (!call.sent) out.push(call);
    return out;
  }

  /** Removes and returns every call: the one place a dying connection collects its calls. */
  drain(): ClientCall[] {
    const calls = [...this.calls.values()];
    this.calls.clear();
    return calls;
  }

  /** For tests: forces the id counter (to exercise wrap-around). */
  setLastId(id: number): void {
    this.lastId = id;
  }
}
