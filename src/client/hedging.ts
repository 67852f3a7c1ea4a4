import type { MessageDef } from '../codec/protocol.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { ClientCall } from './call-table.js';

/**
 * Hedged requests (Finagle's backup requests, gRPC's hedging policy): an idempotent unary call that has
 * no answer after a delay is sent a second time, to another endpoint; the first answer wins and the other
 * attempt is cancelled (CANCEL on the wire). Each hedge spends a retry-budget token, so hedges and retries
 * together add at most the budget's share of load. The delay is fixed, or the observed p95 latency of
 * that message: then about 5% of calls hedge, and a call stuck on a slow server is answered at
 * about p95 plus a fast answer.
 */

/** `hedgeDelayMs`: a fixed delay in ms, or `'p95'`: the observed 95th percentile latency of each message. */
export type HedgeDelay = number | 'p95';

/** Latencies a message's p95 is taken over (the most recent ones). */
const WINDOW = 1000;
/** Answers a message needs before its p95 is trusted: until then its calls do not hedge. */
export const MIN_SAMPLES = 100;
/** The p95 is recomputed after this many new answers (a sort of {@link WINDOW} numbers). */
const RECOMPUTE_EVERY = 100;

/** Recent latencies of one message, and their 95th percentile. */
export class LatencyWindow {
  private readonly samples = new Float64Array(WINDOW);
  private count = 0;
  private sinceRecompute = 0;
  private p95 = Infinity;

  /** Records one answered call's latency in ms. */
  record(ms: number): void {
    this.samples[this.count % WINDOW] = ms;
    this.count++;
    if (this.count < MIN_SAMPLES) return;
    if (++this.sinceRecompute >= RECOMPUTE_EVERY || this.p95 === Infinity) {
      this.sinceRecompute = 0;
      const n = Math.min(this.count, WINDOW);
      const sorted = this.samples.slice(0, n).sort();
      this.p95 = sorted[Math.min(n - 1, Math.ceil(n * 0.95) - 1)]!;
    }
  }

  /** The 95th percentile in ms; `Infinity` until {@link MIN_SAMPLES} answers were recorded. */
  get value(): number {
    return this.p95;
  }
}

/**
 * Which calls hedge, and after how long: pure (no timers, no sockets), so tests feed it latencies.
 * Only idempotent unary calls (not one-way, not streams, no header/trailer hooks) are hedged.
 */
export class HedgePolicy {
  private readonly windows: Array<LatencyWindow | undefined> = [];

  constructor(
    private readonly delay: HedgeDelay,
    private readonly idempotent: ReadonlySet<string>,
  ) {}

  /** Whether calls to `msg` go through a {@link HedgedCall} at all (then their latencies are recorded). */
  covers(msg: MessageDef): boolean {
    return msg.stream === undefined && !msg.oneWay && (msg.idempotent || this.idempotent.has(msg.name));
  }

  /** The hedge delay of a call to `msg` in ms now; `Infinity`: do not hedge (yet). */
  delayFor(msg: MessageDef): number {
    if (typeof this.delay === 'number') return this.delay;
    return this.windows[msg.index]?.value ?? Infinity;
  }

  /** Records the latency of an answered call to `msg` (only `'p95'` keeps them). */
  record(msg: MessageDef, ms: number): void {
    if (this.delay !== 'p95') return;
    (this.windows[msg.index] ??= new LatencyWindow()).record(ms);
  }
}

/** What a {@link HedgedCall} needs of the call runner. */
export interface HedgeHost {
  /** Sends an attempt (picks its connection, queues or fails it as any call). */
  dispatch(attempt: ClientCall): void;
  /** Settles an attempt locally, cancelling it on its server. */
  abandon(attempt: ClientCall, error: RpcError): void;
  /** Spends one retry-budget token; false when none is left. */
  withdraw(): boolean;
  /** True when a connection to an endpoint other than `key` is ready now. */
  otherEndpointReady(key: string | undefined): boolean;
}

/** Makes an attempt of the hedged call (deadline and cancellation armed), settling into the given callbacks. */
export type AttemptFactory = (resolve: (value: unknown) => void, reject: (error: RpcError) => void) => ClientCall;

/**
 * One hedged call: its first attempt, at most one hedge after `delayMs`, and which answer the caller gets.
 * An attempt's failure that another attempt may still turn into an answer (UNAVAILABLE, once that
 * attempt's own retries are spent) waits for the other; any other outcome settles the call at once.
 */
export class HedgedCall {
  private readonly attempts: ClientCall[] = [];
  private timer: NodeJS.Timeout | undefined;
  private outcome: { ok: true; value: unknown } | { ok: false; error: RpcError } | undefined;
  /** Attempts whose callbacks have not run: the caller is told only when none is left (see `deliver`). */
  private open = 0;
  /** The caller was told: a loser abandoned from inside the winner's `settled` reaches `deliver` first. */
  private delivered = false;
  private readonly started = performance.now();

  constructor(
    private readonly host: HedgeHost,
    private readonly policy: HedgePolicy,
    private readonly msg: MessageDef,
    private readonly make: AttemptFactory,
    private readonly resolve: (value: unknown) => void,
    private readonly reject: (error: RpcError) => void,
  ) {}

  /** Sends the first attempt and arms the hedge. */
  start(): void {
    this.launch(undefined);
    const delayMs = this.policy.delayFor(this.msg);
    if (delayMs !== Infinity && this.outcome === undefined) this.timer = setTimeout(onHedgeTimer, delayMs, this);
  }

  /** The delay passed without an answer (and this turn's I/O is read): a second attempt, elsewhere, if the budget allows. */
  hedge(): void {
    this.timer = undefined;
    const first = this.attempts[0]!;
    if (this.outcome !== undefined || first.done) return;
    const key = first.conn?.endpointKey;
    // Only to another server: a second attempt on the one that is slow would rarely be faster.
    if (!this.host.otherEndpointReady(key) || !this.host.withdraw()) return;
    this.launch(key);
  }

  private launch(avoid: string | undefined): void {
    const attempt = this.make(
      (value) => this.settled(attempt, { ok: true, value }),
      (error) => this.settled(attempt, { ok: false, error }),
    );
    attempt.avoidEndpoint = avoid;
    this.attempts.push(attempt);
    this.open++;
    this.host.dispatch(attempt);
  }

  private settled(attempt: ClientCall, result: NonNullable<HedgedCall['outcome']>): void {
    this.open--;
    if (this.outcome === undefined) {
      const others = this.attempts.filter((a) => a !== attempt && !a.done);
      if (!result.ok && result.error.code === Code.UNAVAILABLE && others.length > 0) return;
      if (!result.ok && this.attempts.some((a) => a !== attempt && (a.sent || a.mayHaveRun))) {
        result = { ok: false, error: result.error.withMayHaveRun(true) };
      }
      this.outcome = result;
      if (this.timer !== undefined) clearTimeout(this.timer);
      if (result.ok) this.policy.record(this.msg, performance.now() - this.started);
      // (An error captures a stack: made only when there is an attempt to cancel.)
      if (others.length > 0) {
        const lost = new RpcError(Code.CANCELLED, `hedged ${this.msg.name}: another attempt answered first`);
        for (const other of others) this.host.abandon(other, lost);
      }
    }
    this.deliver();
  }

  /**
   * Tells the caller once every attempt's callbacks ran: an attempt that carried the caller's own
   * Buffers settles only once its socket wrote them, and the caller may reuse them once the call settled.
   */
  private deliver(): void {
    const o = this.outcome;
    if (o === undefined || this.open > 0 || this.delivered) return;
    this.delivered = true;
    if (o.ok) this.resolve(o.value);
    else this.reject(o.error);
  }
}

/**
 * The hedge delay passed: decided after this turn's I/O is read (timers run before it). After a stall of
 * our own loop every call in flight is past its delay, and many of their answers are waiting unread: a
 * hedge for each would add load for nothing.
 */
function onHedgeTimer(call: HedgedCall): void {
  setImmediate(hedgeNow, call);
}

function hedgeNow(call: HedgedCall): void {
  call.hedge();
}
