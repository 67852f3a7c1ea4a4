import { MAX_ID } from '../framing/frame.js';
import type { MessageDef } from '../codec/protocol.js';
import type { Metadata } from '../framing/bodies.js';
import type { RpcError } from '../errors/rpc-error.js';
import type { CallHooks } from './call-hooks.js';
import type { CallInfo } from '../observability/call-info.js';
import type { Deadlined, DeadlineQueue } from './deadline-queue.js';

/**
 * Decides what happens to a call whose attempt failed on a connection: retry it elsewhere or reject
 * it. `mayHaveRun` is false when the server certainly did not process it (never written, or refused
 * with UNAVAILABLE after GOAWAY), which makes even a non-idempotent call safe to send again.
 */
export interface CallOwner {
  attemptFailed(call: ClientCall, error: RpcError, mayHaveRun: boolean): void;
}

/** A socket that can tell when what was appended so far has been written (see `FramedSocket.afterWrites`). */
export interface WriteFence {
  afterWrites(cb: () => void): void;
}

/**
 * One client call, across all its attempts. A connection owns it while an attempt is on that
 * connection (`conn` and `id` set); the client owns it in between. Settles exactly once.
 */
export class ClientCall implements Deadlined {
  /** Request id of the current attempt; 0 when not on a connection. */
  id = 0;
  /** The connection of the current attempt (typed loosely to keep this module below it). */
  conn: { detach(call: ClientCall, reason?: RpcError): void; readonly endpointKey: string } | null = null;
  /** True once the current attempt's REQUEST frame was queued on its socket. */
  sent = false;
  /** Attempts started so far. */
  attempts = 0;
  /** True once an earlier attempt failed in a way that may have run it on its server. */
  mayHaveRun = false;
  /** Endpoint of the last failed attempt: a retry prefers another one. */
  avoidEndpoint: string | undefined = undefined;
  /**
   * Waits for a connection while every endpoint is known down (`waitForReady`), instead of failing
   * UNAVAILABLE at once.
   */
  waitForReady = false;
  /** `performance.now()` when the current attempt was sent (for the latency EWMA). */
  sentAt = 0;
  /**
   * A `performance.now()` reading taken as the call was made, for its first send when that follows
   * at once (a call that waits for a connection reads the clock again); -1 once used or stale.
   */
  clockAt = -1;
  /** The deadline queue's links (see `DeadlineQueue`), set while the call waits in it. */
  dlPrev: Deadlined | undefined = undefined;
  dlNext: Deadlined | undefined = undefined;
  dlLane: Deadlined['dlLane'] = undefined;
  dlQueue: DeadlineQueue | undefined = undefined;
  signal: AbortSignal | undefined = undefined;
  onAbort: (() => void) | undefined = undefined;
  done = false;
  /**
   * Set when the request went out with the caller's own Buffers in it (framing/splices.ts): the call
   * settles only once the socket has written them, so a caller may reuse its Buffer once the call
   * settled, even after an abort, a deadline or an early refusal.
   */
  writer: WriteFence | undefined = undefined;
  /**
   * What the call has beyond a unary call: the caller's `onHeader`/`onTrailer`, and for a stream its
   * state (a `ClientStream`). Undefined for a plain call, which allocates nothing for it.
   */
  ext: CallHooks | undefined = undefined;
  /** What the observer is told about this call (sizes, peer, attempts); undefined without an observer. */
  info: CallInfo | undefined = undefined;

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

  /** Settles with a value; leaves the deadline queue and releases the abort listener. */
  resolve(value: unknown): void {
    if (!this.release()) return;
    if (this.ext !== undefined) this.ext.ended(undefined);
    if (this.writer === undefined) return this.onResolve(value);
    this.writer.afterWrites(() => this.onResolve(value));
  }

  /**
   * Settles with an error; leaves the deadline queue and releases the abort listener. `attemptMayHaveRun` says whether
   * the current attempt may have run (default: once its REQUEST was queued); the error tells the caller
   * whether any attempt may have (`RpcError.mayHaveRun`).
   */
  reject(error: RpcError, attemptMayHaveRun = this.sent): void {
    if (!this.release()) return;
    // Errors can be shared (a connection's close error, for all its calls): copied when it says otherwise.
    error = error.withMayHaveRun(this.mayHaveRun || attemptMayHaveRun);
    if (this.ext !== undefined) this.ext.ended(error);
    if (this.writer === undefined) return this.onReject(error);
    this.writer.afterWrites(() => this.onReject(error));
  }

  private release(): boolean {
    if (this.done) return false;
    this.done = true;
    this.conn = null;
    if (this.dlLane !== undefined) this.dlQueue!.remove(this);
    if (this.onAbort !== undefined) this.signal!.removeEventListener('abort', this.onAbort);
    return true;
  }
}

/** First slot count of a {@link CallTable}; it doubles when half full. */
const FIRST_SLOTS = 64;

/**
 * The calls on one connection by request id. Ids are u32, start at 1, wrap around, and skip ids
 * still in use (0 is reserved for connection-level frames).
 *
 * Calls sit in slot `id & mask`, and a new id also skips ids whose slot is taken, so there are no
 * collisions and no probing. Not a `Map`: under call churn V8 rehashes a Map's backing table every
 * few dozen calls, and each obsolete table keeps a link to its successor and the settled calls it
 * held; once one of them was promoted, every later table and the calls in it survived scavenges
 * too, and the client spent its time promoting garbage (5-12 ms scavenges, Mark-Compacts every
 * ~200 ms at 64 calls in flight).
 */
export class CallTable {
  private slots: Array<ClientCall | undefined> = new Array<ClientCall | undefined>(FIRST_SLOTS).fill(undefined);
  /** Id of the call in each slot (a call's own `id` moves on when it is retried elsewhere). */
  private ids = new Float64Array(FIRST_SLOTS);
  private mask = FIRST_SLOTS - 1;
  private count = 0;
  private lastId = 0;

  /** Number of calls in flight (what the balancer counts). */
  get size(): number {
    return this.count;
  }

  /** Gives the call a free id and adds it. */
  add(call: ClientCall): void {
    if (this.count * 2 >= this.slots.length) this.grow();
    let id = this.lastId;
    do {
      id = id >= MAX_ID ? 1 : id + 1;
    } while (this.slots[id & this.mask] !== undefined);
    this.lastId = id;
    call.id = id;
    this.slots[id & this.mask] = call;
    this.ids[id & this.mask] = id;
    this.count++;
  }

  /** Removes and returns the call with this id, or `undefined` (a late answer to a settled call). */
  take(id: number): ClientCall | undefined {
    const slot = id & this.mask;
    const call = this.slots[slot];
    if (call === undefined || this.ids[slot] !== id) return undefined;
    this.slots[slot] = undefined;
    this.count--;
    return call;
  }

  /** The call with this id, left in the table (stream frames that do not end it), or `undefined`. */
  get(id: number): ClientCall | undefined {
    const slot = id & this.mask;
    const call = this.slots[slot];
    return call !== undefined && this.ids[slot] === id ? call : undefined;
  }

  /** True when a call has this id (without taking it). */
  has(id: number): boolean {
    const slot = id & this.mask;
    return this.slots[slot] !== undefined && this.ids[slot] === id;
  }

  /** The stream calls (`ext` a stream), oldest first. Rare: not on the call path. */
  streams(): ClientCall[] {
    const out: ClientCall[] = [];
    this.each((call) => {
      if (call.msg.stream !== undefined && call.ext !== undefined) out.push(call);
    });
    return out;
  }

  /** Calls not yet written (queued while the connection was being set up), oldest first. */
  unsent(): ClientCall[] {
    const out: ClientCall[] = [];
    this.each((call) => {
      if (!call.sent) out.push(call);
    });
    return out;
  }

  /** Removes and returns every call, oldest first: the one place a dying connection collects its calls. */
  drain(): ClientCall[] {
    const calls: ClientCall[] = [];
    this.each((call) => calls.push(call));
    this.slots.fill(undefined);
    this.count = 0;
    return calls;
  }

  /** For tests: forces the id counter (to exercise wrap-around). */
  setLastId(id: number): void {
    this.lastId = id;
  }

  /** Visits the calls oldest first: in id order, ids counted back from the newest (they wrap). Rare: not on the call path. */
  private each(visit: (call: ClientCall) => void): void {
    const slots: number[] = [];
    for (let i = 0; i < this.slots.length; i++) if (this.slots[i] !== undefined) slots.push(i);
    const age = (slot: number): number => (this.lastId - this.ids[slot]!) >>> 0;
    slots.sort((a, b) => age(b) - age(a));
    for (const slot of slots) visit(this.slots[slot]!);
  }

  /** Doubles the slots; ids that differed in the old mask's bits still differ, so no two collide. */
  private grow(): void {
    const n = this.slots.length * 2;
    const slots = new Array<ClientCall | undefined>(n).fill(undefined);
    const ids = new Float64Array(n);
    const mask = n - 1;
    for (let i = 0; i < this.slots.length; i++) {
      const call = this.slots[i];
      if (call === undefined) continue;
      const id = this.ids[i]!;
      slots[id & mask] = call;
      ids[id & mask] = id;
    }
    this.slots = slots;
    this.ids = ids;
    this.mask = mask;
  }
}
