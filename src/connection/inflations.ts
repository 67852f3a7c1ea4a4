import { decompress } from './compression.js';

/**
 * Inflations running at once per connection; the others wait their turn. Each may grow to
 * `maxMessageBytes` (a small bomb inflates to that), so this bounds what one burst of compressed
 * messages makes us allocate; libuv's default thread pool runs 4 jobs at a time anyway.
 */
export const INFLATE_AT_ONCE = 4;

/** Where inflated messages go, or why they did not inflate. */
export interface InflationSink {
  inflated(type: number, flags: number, id: number, out: Buffer): void;
  /** `err` is an RpcError (RESOURCE_EXHAUSTED: beyond `maxBytes`) or zlib's error (corrupt data). */
  failed(type: number, flags: number, id: number, err: unknown): void;
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
  private readonly waiting: Waiting[] = [];
  private running = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly max: number,
    private readonly sink: InflationSink,
    /** True once the connection is gone: results are dropped, nothing more starts. */
    private readonly gone: () => boolean,
  ) {}

  /**
   * Inflates `body` (now or in its turn) for the sink. Returns false, doing nothing, when `max`
   * messages are already running or waiting: running ones count even if abandoned, as they hold memory.
   */
  add(type: number, flags: number, id: number, body: Buffer): boolean {
    if (this.running + this.waiting.length >= this.max) return false;
    const token = {};
    this.tokens.set(id, token);
    if (this.running < INFLATE_AT_ONCE) this.start(type, flags, id, body, token);
    // A small body may be a view of a 64 KiB read: keep only its own bytes while it waits.
    else this.waiting.push({ type, flags, id, body: body.buffer.byteLength > 2 * body.length ? Buffer.from(body) : body, token });
    return true;
  }

  /** Forgets the message of `id`: out of the wait, its result dropped. */
  abandon(id: number): void {
    if (this.tokens.size === 0 || !this.tokens.delete(id) || this.waiting.length === 0) return;
    // Not left waiting with its bytes: CANCELs would let a peer queue compressed messages without end.
    const i = this.waiting.findIndex((w) => w.id === id);
    if (i >= 0) this.waiting.splice(i, 1);
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
    this.waiting.length = 0;
  }

  private start(type: number, flags: number, id: number, body: Buffer, token: object): void {
    this.running++;
    const mine = (): boolean => {
      this.running--;
      const next = this.waiting.shift();
      if (next !== undefined && !this.gone()) this.start(next.type, next.flags, next.id, next.body, next.token);
      if (this.tokens.get(id) !== token || this.gone()) return false;
      this.tokens.delete(id);
      return true;
    };
    decompress(body, this.maxBytes).then(
      (out) => { if (mine()) this.sink.inflated(type, flags, id, out); },
      (err: unknown) => { if (mine()) this.sink.failed(type, flags, id, err); },
    );
  }
}
