/**
 * Clock readings shared by the frames of one socket read. The frames of a chunk arrived together, so
 * one reading of each clock serves them all: the arrival time of a response (its latency) and of a
 * request (the start of its deadline). A reading costs about 0.1 µs here, as much as the rest of a
 * small frame's parsing, and at 64 calls in flight a chunk carries dozens of frames.
 *
 * Outside a read (a timer, a caller's own code) every call reads the clock afresh: a reading is
 * never kept past the read it was taken in.
 */
export class ReadClock {
  private reading = false;
  private mono = -1;
  private epoch = -1;

  /** A socket read begins: readings from now on are taken at most once until {@link end}. */
  begin(): void {
    this.reading = true;
    this.mono = -1;
    this.epoch = -1;
  }

  /** The read is over: the readings are dropped. */
  end(): void {
    this.reading = false;
    this.mono = -1;
    this.epoch = -1;
  }

  /** `performance.now()`, as of the current read's first reading (a fresh one outside a read). */
  now(): number {
    if (!this.reading) return performance.now();
    if (this.mono < 0) this.mono = performance.now();
    return this.mono;
  }

  /** `Date.now()`, as of the current read's first reading (a fresh one outside a read). */
  epochNow(): number {
    if (!this.reading) return Date.now();
    if (this.epoch < 0) this.epoch = Date.now();
    return this.epoch;
  }
}
