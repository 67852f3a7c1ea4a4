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
  /** A plain frame held {@link Inflations.behind} compressed messages of its id, now its turn. */
  plain(type: number, flags: number, id: number, body: Buffer): void;
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
  /**
   * Messages and frames one id may have waiting here (see {@link Inflations.behind}); more is a
   * protocol error. A stream's sender keeps to our window `S`, so `S` and a few frames (END, ERROR)
   * suffice. Default {@link MAX_HELD_PER_ID}.
   */
  maxPerId?: number | undefined;
}

/** A message of an id in order: compressed (inflating, or waiting to), or a plain frame held behind one. */
interface Entry {
  type: number;
  flags: number;
  id: number;
  body: Buffer;
  /** True for a plain frame: delivered as it is, once those before it are. */
  plain: boolean;
  /** Set once inflated or failed; the entry is handed on once those of its id before it are. */
  result: { out: Buffer } | { err: unknown } | undefined;
  /** Its inflation, once started: abandoned, it stops (no more output is made or counted). */
  inflation: Inflation | undefined;
}

/** Default of {@link InflationLimits.maxPerId}: the default stream window (64) and a few frames more. */
export const MAX_HELD_PER_ID = 68;

/**
 * The compressed messages of one connection on their way to the sink: at most {@link INFLATE_AT_ONCE}
 * inflating, the others waiting in arrival order, at most `max` in all (the caller refuses beyond).
 * One id may have several (a stream's DATA): they reach the sink in the order they came, and so do
 * the plain frames of that id that came meanwhile ({@link behind}), so an END never overtakes a DATA.
 * An id abandoned (its call ended) is dropped from the wait, and its results if already inflating.
 */
export class Inflations {
  /** Per id, its entries in arrival order; the first is handed on once it has a result. */
  private readonly byId = new Map<number, Entry[]>();
  private readonly waiting: Entry[] = [];
  private running = 0;
  /** Compressed entries not yet handed on (what {@link size} counts). */
  private compressed = 0;

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
   * Refused by the budget, the sink hears `failed` (RESOURCE_EXHAUSTED), in its turn, and true is returned.
   */
  add(type: number, flags: number, id: number, body: Buffer): boolean {
    if (this.running + this.waiting.length >= this.max) return false;
    const e: Entry = { type, flags, id, body, plain: false, result: undefined, inflation: undefined };
    if (this.limits.budget !== undefined && !this.limits.budget.reserve(body.length)) {
      e.result = { err: new RpcError(Code.RESOURCE_EXHAUSTED, budgetExhausted('compressed message')) };
      e.body = EMPTY;
    }
    this.compressed++;
    this.push(e);
    if (e.result !== undefined) this.drain(id);
    else if (this.running < INFLATE_AT_ONCE) this.start(e);
    // A small body may be a view of a 64 KiB read: keep only its own bytes while it waits.
    else {
      if (body.buffer.byteLength > 2 * body.length) e.body = Buffer.from(body);
      this.waiting.push(e);
    }
    return true;
  }

  /**
   * Holds a plain (uncompressed, whole) frame of `id` behind its compressed messages, to reach
   * `sink.plain` after them. False when `id` has none: the caller hands it on itself. Its bytes are
   * charged to the budget until then (a frame already received cannot be refused). Throws a protocol
   * error (RESOURCE_EXHAUSTED) when `id` has `maxPerId` waiting already: a peer ignoring its credit.
   */
  behind(type: number, flags: number, id: number, body: Buffer): boolean {
    const list = this.byId.get(id);
    if (list === undefined) return false;
    const max = this.limits.maxPerId ?? MAX_HELD_PER_ID;
    if (list.length >= max) {
      throw new RpcError(
        Code.RESOURCE_EXHAUSTED,
        `protocol error: more than ${max} frames of id ${id} waiting behind its compressed messages`,
      );
    }
    // Like a waiting body: not pinning a whole read for a few bytes.
    const own = body.buffer.byteLength > 2 * body.length ? Buffer.from(body) : body;
    this.limits.budget?.charge(own.length);
    list.push({ type, flags, id, body: own, plain: true, result: undefined, inflation: undefined });
    return true;
  }

  /** True when messages of `id` are inflating or waiting to (its next frames go {@link behind} them). */
  has(id: number): boolean {
    return this.byId.size > 0 && this.byId.has(id);
  }

  /** Forgets the messages of `id`: out of the wait, their results dropped, frames held behind them too. */
  abandon(id: number): void {
    if (this.byId.size === 0) return;
    const list = this.byId.get(id);
    if (list === undefined) return;
    this.byId.delete(id);
    for (const e of list) this.forget(e);
    if (this.waiting.length === 0) return;
    // Not left waiting with their bytes: CANCELs would let a peer queue compressed messages without end.
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      if (this.waiting[i]!.id === id) this.limits.budget?.credit(this.waiting.splice(i, 1)[0]!.body.length);
    }
  }

  /** Compressed messages inflating or waiting to. */
  get size(): number {
    return this.compressed;
  }

  /** Ids of the messages inflating or waiting to. */
  ids(): IterableIterator<number> {
    return this.byId.keys();
  }

  /** Drops everything (the connection is gone); running inflations end unheard. */
  clear(): void {
    const lists = [...this.byId.values()];
    this.byId.clear();
    for (const list of lists) for (const e of list) this.forget(e);
    for (const w of this.waiting) this.limits.budget?.credit(w.body.length);
    this.waiting.length = 0;
  }

  private push(e: Entry): void {
    const list = this.byId.get(e.id);
    if (list === undefined) this.byId.set(e.id, [e]);
    else list.push(e);
  }

  /** Uncounts an entry dropped unheard, and stops its inflation (its end frees its slot). */
  private forget(e: Entry): void {
    if (e.plain) this.limits.budget?.credit(e.body.length);
    else this.compressed--;
    e.inflation?.stop();
  }

  /** Hands on the first entries of `id` that have a result, in order, up to one still inflating. */
  private drain(id: number): void {
    const list = this.byId.get(id);
    while (list !== undefined && this.byId.get(id) === list && (list[0]!.plain || list[0]!.result !== undefined)) {
      const e = list.shift()!;
      if (list.length === 0) this.byId.delete(id);
      if (e.plain) {
        this.limits.budget?.credit(e.body.length);
        this.sink.plain(e.type, e.flags, id, e.body);
        continue;
      }
      this.compressed--;
      const r = e.result!;
      if ('out' in r) this.sink.inflated(e.type, e.flags, id, r.out);
      else if (r.err !== HEAD_REFUSED) this.sink.failed(e.type, e.flags, id, r.err);
      if (this.gone()) return;
    }
  }

  private start(e: Entry): void {
    this.running++;
    const budget = this.limits.budget;
    const { type, flags, id, body } = e;
    const settled = (result: Entry['result']): void => {
      this.running--;
      e.inflation = undefined;
      budget?.credit(body.length);
      const next = this.waiting.shift();
      if (next !== undefined && !this.gone()) this.start(next);
      else if (next !== undefined) budget?.credit(next.body.length);
      // Abandoned meanwhile (its id's list no longer holds it), or the connection is gone.
      const list = this.byId.get(id);
      if (this.gone() || list === undefined || !list.includes(e)) return;
      e.result = result;
      if (list[0] === e) this.drain(id);
    };
    const head =
      this.sink.head !== undefined && type === FrameType.REQUEST && this.limits.headBytes !== undefined
        ? (start: Buffer) => this.sink.head!(type, flags, id, start)
        : undefined;
    const inflation = inflate(body, this.maxBytes, { budget, headBytes: this.limits.headBytes, head });
    e.inflation = inflation;
    inflation.done.then(
      (out) => settled({ out }),
      (err: unknown) => settled({ err }),
    );
  }
}

const EMPTY = Buffer.alloc(0);
