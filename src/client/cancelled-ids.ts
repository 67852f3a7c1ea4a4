/**
 * Request ids a client gave up on after their REQUEST went out (deadline, cancel, a refused answer):
 * it sent CANCEL, but the server may have answered before it read the CANCEL, so frames for these ids
 * may still arrive. They are dropped unread: never reassembled, never inflated. Any other answer for
 * an id not in flight is a protocol error (SPEC.md section 4, "Request ids").
 *
 * How long an id stays here: a server sends nothing for an id once it has read its CANCEL (SPEC.md
 * section 6) and answers PINGs in order, so after the CANCEL we send a *barrier* PING; its PONG proves
 * that everything the server sent for the ids cancelled before it has arrived, and they are forgotten.
 * One barrier is in flight at a time (at most one PING per round trip, and only while calls are being
 * given up); ids cancelled meanwhile wait for the next one. A server that never answers the barrier is
 * bounded by {@link MAX_CANCELLED_IDS} (and, with keepalive on, declared dead).
 */

/** Barrier PINGs have this bit set; keepalive PINGs count up from 1 and would need 2^31 PINGs to reach it. */
export const BARRIER_PING_BIT = 0x80000000;

/** Cancelled ids remembered per connection at most; beyond it the oldest is forgotten (about 2.6 MB worst case). */
export const MAX_CANCELLED_IDS = 65536;

/**
 * The cancelled ids of one connection. Each maps to the generation of the barrier that releases it,
 * stored as `g` while its answer may still come, `-(g + 1)` once its last frame came (then nothing more
 * may arrive for it, but a deadline judgement made this turn can still see that it was answered).
 */
export class CancelledIds {
  private readonly ids = new Map<number, number>();
  /** Which of {@link ids} are streams: their answer has many messages, so the end of one (a last fragment) ends nothing. */
  private readonly streams = new Set<number>();
  /** Generation given to ids added now: that of the next barrier PING. */
  private generation = 0;
  /** Id of the barrier PING awaiting its PONG, or -1. */
  private barrierId = -1;
  /** Ids added since the last barrier PING. */
  private waiting = 0;

  /** Ids remembered. */
  get size(): number {
    return this.ids.size;
  }

  /**
   * Remembers `id`. Send a barrier PING (see {@link barrier}) after its CANCEL: at once, or, for a call
   * whose deadline passed, once this turn's I/O was read (its late answer may be unread in the socket,
   * and the barrier's PONG must not overtake it).
   */
  add(id: number, stream = false): void {
    // Insertion order is generation order (the release below relies on it): a re-used id moves to the end.
    this.forget(id);
    if (this.ids.size >= MAX_CANCELLED_IDS) this.forget(this.ids.keys().next().value!);
    this.ids.set(id, this.generation);
    if (stream) this.streams.add(id);
    this.waiting++;
  }

  /** The id of a barrier PING to send now, or -1: none is needed, or one is on its way (its PONG sends the next). */
  barrier(): number {
    if (this.barrierId !== -1 || this.waiting === 0) return -1;
    this.waiting = 0;
    this.barrierId = (BARRIER_PING_BIT | (this.generation & 0x7fffffff)) >>> 0;
    this.generation++;
    return this.barrierId;
  }

  /** True when frames for `id` may still arrive (cancelled, its last frame not yet seen). */
  expects(id: number): boolean {
    const g = this.ids.get(id);
    return g !== undefined && g >= 0;
  }

  /** True when cancelled `id` was a stream (SPEC.md section 13): only its END, RESPONSE or ERROR ends it. */
  isStream(id: number): boolean {
    return this.streams.size > 0 && this.streams.has(id);
  }

  /** The last frame for `id` arrived (a whole RESPONSE or ERROR, or a last fragment): nothing more may. */
  ended(id: number): void {
    const g = this.ids.get(id);
    if (g !== undefined && g >= 0) this.ids.set(id, -(g + 1));
  }

  /** True when the answer of cancelled `id` arrived after all (our own loop was late, not the server). */
  answered(id: number): boolean {
    const g = this.ids.get(id);
    return g !== undefined && g < 0;
  }

  /**
   * A PONG arrived. For our barrier: forgets the ids cancelled before it was sent, and returns the id of
   * the next barrier PING to send (ids were cancelled since), or -1. Any other PONG changes nothing.
   */
  pong(id: number): number {
    if (id !== this.barrierId) return -1;
    this.barrierId = -1;
    const released = this.generation - 1;
    for (const [k, v] of this.ids) {
      if ((v >= 0 ? v : -v - 1) > released) break;
      this.forget(k);
    }
    return this.barrier();
  }

  private forget(id: number): void {
    this.ids.delete(id);
    if (this.streams.size > 0) this.streams.delete(id);
  }
}
