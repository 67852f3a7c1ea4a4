import { MAX_TIMER_MS } from '../util/validate.js';

/** What a {@link DeadlineQueue} keeps of a call: its deadline, and its links in the queue. */
export interface Deadlined {
  /** Absolute deadline on the `performance.now()` clock. */
  readonly deadline: number;
  /** The queue's own links (undefined while not queued). */
  dlPrev: Deadlined | undefined;
  dlNext: Deadlined | undefined;
  dlLane: DeadlineLane | undefined;
  dlQueue: DeadlineQueue | undefined;
}

/** Calls of one timeout (rounded to the ms): queued in call order, so in deadline order. */
interface DeadlineLane {
  head: Deadlined | undefined;
  tail: Deadlined | undefined;
}

/**
 * Whole milliseconds from `now` to `deadline`, rounded up, where `deadline` was set as `now + timeoutMs`
 * on the same clock: without the nanosecond of slack, float round-off (706.46... + 1000 - 706.46... is
 * 1000.0000000000001) would round a call's 1000 ms up to 1001 on the wire.
 */
export function msUntil(deadline: number, now: number): number {
  return Math.ceil(deadline - now - 1e-6);
}

/** Lanes kept once empty, so that one call at a time does not build a lane per call. */
const MAX_IDLE_LANES = 16;

/**
 * The deadlines of a client's calls, on one timer instead of one per call: a `setTimeout` and its
 * `clearTimeout` cost more CPU than the rest of a small call's client side. Calls of the same timeout
 * expire in the order they were made, so each timeout has a FIFO lane, and adding or removing a call
 * is a few pointer writes; the one timer waits for the earliest head of all lanes. A call expires at
 * most a millisecond late (lanes round timeouts to the ms), as a timer of its own could.
 */
export class DeadlineQueue {
  private readonly lanes = new Map<number, DeadlineLane>();
  /** The lane of the last call queued: a client's calls mostly share one timeout (no Map lookup then). */
  private lastKey = NaN;
  private lastLane: DeadlineLane | undefined = undefined;
  /** Calls queued, in all lanes. */
  private count = 0;
  private timer: NodeJS.Timeout | undefined;
  /** When the timer fires (`performance.now()` clock); Infinity when none is armed. */
  private armedFor = Infinity;

  /** `expired` is called for each call whose deadline passed (already out of the queue). */
  constructor(private readonly expired: (call: Deadlined) => void) {}

  /** Queues `call`, made `now` (`performance.now()`), to expire at its deadline. */
  add(call: Deadlined, now: number): void {
    const key = msUntil(call.deadline, now);
    let lane = key === this.lastKey ? this.lastLane : this.lanes.get(key);
    if (lane === undefined) this.lanes.set(key, (lane = { head: undefined, tail: undefined }));
    this.lastKey = key;
    this.lastLane = lane;
    this.count++;
    call.dlQueue = this;
    call.dlLane = lane;
    call.dlPrev = lane.tail;
    call.dlNext = undefined;
    if (lane.tail === undefined) lane.head = call;
    else lane.tail.dlNext = call;
    lane.tail = call;
    if (call.deadline < this.armedFor) this.arm(call.deadline, now);
  }

  /** Takes `call` out of the queue (it settled); nothing if it is not queued. */
  remove(call: Deadlined): void {
    const lane = call.dlLane;
    if (lane === undefined) return;
    this.count--;
    const { dlPrev: prev, dlNext: next } = call;
    if (prev === undefined) lane.head = next;
    else prev.dlNext = next;
    if (next === undefined) lane.tail = prev;
    else next.dlPrev = prev;
    call.dlLane = call.dlPrev = call.dlNext = undefined;
    // The timer stays armed, even with no call left (a burst's answers often settle every call of a
    // connection at once, and the next burst would arm it again): firing early, it finds nothing due
    // and waits for the next head, or for the next call. Unref'd, it never holds the process.
  }

  /** Clears the timer (the client closed); queued calls are settled by their connections. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Infinity;
  }

  private arm(at: number, now: number): void {
    clearTimeout(this.timer);
    this.armedFor = at;
    // A pending call never needs it to keep the process alive: its socket (or its wait for one) does.
    this.timer = setTimeout(this.fire, Math.max(0, Math.min(at - now, MAX_TIMER_MS))).unref();
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    this.armedFor = Infinity;
    if (this.count === 0) return;
    // At least 1 ms left: not due (a timer may fire a fraction of a ms early by clock rounding).
    const due = performance.now() + 1;
    const expired: Deadlined[] = [];
    let next = Infinity;
    for (const [key, lane] of this.lanes) {
      for (let c = lane.head; c !== undefined && c.deadline < due; c = lane.head) {
        this.remove(c);
        expired.push(c);
      }
      if (lane.head !== undefined) next = Math.min(next, lane.head.deadline);
      else if (this.lanes.size > MAX_IDLE_LANES) {
        this.lanes.delete(key);
        if (key === this.lastKey) this.lastLane = undefined;
      }
    }
    if (next !== Infinity) this.arm(next, performance.now());
    for (const c of expired) this.expired(c);
  };
}
