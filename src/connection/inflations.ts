import { HEAD_REFUSED, inflate, type Inflation } from './compression.js';
import { budgetExhausted, type MemoryAccount } from './memory-account.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { FrameType } from '../framing/frame.js';

/**
 * Inflations running at once per connection; the others wait their turn. Each may grow to
 * `maxMessageBytes` (a small bomb inflates to that), so this bounds what one burst of compressed
 * messages makes us allocate; libuv's default thread pool runs 4 jobs at a time anyway.
 */
export const INFLATE_AT_ONCE = 4;

/** Where inflated messages go, or why they did not inflate. */
export interface InflationSink {
  inflated(type: number, flags: number, id: number, out: Buffer): void;
  /** `err` is an RpcError (RESOURCE_EXHAUSTED: beyond `maxBytes` or the budget) or zlib's error (corrupt data). */
  failed(type: number, flags: number, id: number, err: unknown): void;
  /**
   * The first `headBytes` inflated of a REQUEST (see `InflateOptions.head`): false when its owner
   * refused the call (and answered it); the inflation then stops.
   */
  head?(type: number, flags: number, id: number, start: Buffer): boolean;
}

/** How inflations count their memory and show a request's start early. */
export interface InflationLimits {
  /** Asked for the compressed bytes of each message taken, and for its output as it inflates. */
  budget?: MemoryAccount | undefined;
  /** Bytes of a REQUEST's output its sink's `head` sees first. */
  headBytes?: number | undefined;
}

/** A compressed message waiting for its turn. */
interface Waiting {
  type: number;
  flags: number;
  id: number;
  body: Buffer;
  token: object;
}

/**
 * The compressed messages of one connection on their way to the sink: at most {@link INFLATE_AT_ONCE}
 * inflating, the others waiting in arrival order, at most `max` in all (the caller refuses beyond).
 * An id abandoned (its call ended) is dropped from the wait, and its result if already inflating.
 */
export class Inflations {
  /** Per id, the token of its current message: a result whose token is no longer there is dropped. */
  private readonly tokens = new Map<number, object>();
  /** Per token, its inflation once started: abandoned, it stops (no more output is made or counted). */
  private readonly runningByToken = new Map<object, Inflation>();
  private readonly waiting: Waiting[] = [];
  private running = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly max: number,
    private readonly sink: InflationSink,
    /** True once the connection is gone: results are dropped, nothing more starts. */
    private readonly gone: () => boolean,
    private readonly limits: InflationLimits = {},
  ) {}

  /**
   * Inflates `body` (now or in its turn) for the sink. Returns false, doing nothing, when `max`
   * messages are already running or waiting: running ones count even if abandoned, as they hold memory.
   * Refused by the budget, the sink hears `failed` (RESOURCE_EXHAUSTED) at once, and true is returned.
   */
  add(type: number, flags: number, id: number, body: Buffer): boolean {
    if (this.running + this.waiting.length >= this.max) return false;
    if (this.limits.budget !== undefined && !this.limits.budget.reserve(body.length)) {
      this.sink.failed(type, flags, id, new RpcError(Code.RESOURCE_EXHAUSTED, budgetExhausted('compressed message')));
      return true;
    }
    const token = {};
    this.tokens.set(id, token);
    if (this.running < INFLATE_AT_ONCE) this.start(type, flags, id, body, token);
    // A small body may be a view of a 64 KiB read: keep only its own bytes while it waits.
    else this.waiting.push({ type, flags, id, body: body.buffer.byteLength > 2 * body.length ? Buffer.from(body) : body, token });
    return true;
  }

  /** Forgets the message of `id`: out of the wait, its result dropped. */
  abandon(id: number): void {
    if (this.tokens.size === 0) return;
    const token = this.tokens.get(id);
    if (token === undefined) return;
    this.tokens.delete(id);
    this.runningByToken.get(token)?.stop();
    if (this.waiting.length === 0) return;
    // Not left waiting with its bytes: CANCELs would let a peer queue compressed messages without end.
    const i = this.waiting.findIndex((w) => w.id === id);
    if (i >= 0) this.limits.budget?.credit(this.waiting.splice(i, 1)[0]!.body.length);
  }

  /** Messages inflating or waiting to. */
  get size(): number {
    return this.tokens.size;
  }

  /** Ids of the messages inflating or waiting to. */
  ids(): IterableIterator<number> {
    return this.tokens.keys();
  }

  /** Drops everything (the connection is gone); running inflations end unheard. */
  clear(): void {
    this.tokens.clear();
    for (const r of [...this.runningByToken.values()]) r.stop();
    for (const w of this.waiting) this.limits.budget?.credit(w.body.length);
    this.waiting.length = 0;
  }

  private start(type: number, flags: number, id: number, body: Buffer, token: object): void {
    this.running++;
    const budget = this.limits.budget;
    const mine = (): boolean => {
      this.running--;
      this.runningByToken.delete(token);
      budget?.credit(body.length);
      const next = this.waiting.shift();
      if (next !== undefined && !this.gone()) this.start(next.type, next.flags, next.id, next.body, next.token);
      else if (next !== undefined) budget?.credit(next.body.length);
      if (this.tokens.get(id) !== token || this.gone()) return false;
      this.tokens.delete(id);
      return true;
    };
    const head =
      this.sink.head !== undefined && type === FrameType.REQUEST && this.limits.headBytes !== undefined
        ? (start: Buffer) => this.sink.head!(type, flags, id, start)
        : undefined;
    const inflation = inflate(body, this.maxBytes, { budget, headBytes: this.limits.headBytes, head });
    this.runningByToken.set(token, inflation);
    inflation.done.then(
      (out) => {
        if (mine()) this.sink.inflated(type, flags, id, out);
      },
      (err: unknown) => {
        if (mine() && err !== HEAD_REFUSED) this.sink.failed(type, flags, id, err);
      },
    );
  }
}
