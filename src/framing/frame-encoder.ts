import { HEADER_BYTES } from './frame.js';

/** Writes a value's bytes at `pos` in `buf`; returns the end offset, or a negative number if it did not fit. */
export type BodyWriter<T> = (value: T, buf: Buffer, pos: number) => number;

const MIN_ARENA_BYTES = 64 * 1024;

/**
 * Encodes frames back to back into an arena buffer, so a tick's worth of frames leaves as one
 * `subarray` and one socket write, with no per-frame allocation and no concatenation. Bytes handed
 * out by {@link take} are never written again: the arena moves on past them.
 */
export class FrameEncoder {
  private arena: Buffer = Buffer.allocUnsafe(MIN_ARENA_BYTES);
  private start = 0;
  private pos = 0;
  /** Completed batches that had to leave an arena early because it filled up. */
  private readonly spilled: Buffer[] = [];
  private spilledBytes = 0;

  /** Bytes encoded and not yet taken. */
  get pendingBytes(): number {
    return this.spilledBytes + (this.pos - this.start);
  }

  /**
   * Appends one frame. `write` encodes the body directly into the arena; when it reports that it did
   * not fit, the arena is replaced by one large enough and the body is encoded again.
   * `write` may throw (an invalid value): nothing is appended then.
   */
  frame<T>(type: number, flags: number, id: number, value: T, write: BodyWriter<T>): void {
    let bodyStart = this.pos + HEADER_BYTES;
    let end = bodyStart <= this.arena.length ? write(value, this.arena, bodyStart) : 0;
    if (end <= 0) {
      // avsc reports minus the missing byte count, which gives the exact body size.
      let size = bodyStart <= this.arena.length ? this.arena.length - bodyStart - end : 1024;
      do {
        this.grow(HEADER_BYTES + size);
        bodyStart = HEADER_BYTES;
        end = write(value, this.arena, bodyStart);
        size *= 2;
      } while (end <= 0);
    }
    this.header(this.pos, end - bodyStart, type, flags, id);
    this.pos = end;
  }

  /** Appends a frame whose body is already bytes (copied into the arena). */
  raw(type: number, flags: number, id: number, body: Buffer | null): void {
    const len = body === null ? 0 : body.length;
    if (this.pos + HEADER_BYTES + len > this.arena.length) this.grow(HEADER_BYTES + len);
    this.header(this.pos, len, type, flags, id);
    if (body !== null) body.copy(this.arena, this.pos + HEADER_BYTES);
    this.pos += HEADER_BYTES + len;
  }

  /** Appends bytes with no framing (the connection preface). */
  bytes(data: Buffer): void {
    if (this.pos + data.length > this.arena.length) this.grow(data.length);
    data.copy(this.arena, this.pos);
    this.pos += data.length;
  }

  /** Hands out everything encoded since the last call, as few buffers as possible (usually one). */
  take(): Buffer[] {
    const out = this.spilled.length > 0 ? this.spilled.splice(0) : [];
    if (this.pos > this.start) out.push(this.arena.subarray(this.start, this.pos));
    this.start = this.pos;
    this.spilledBytes = 0;
    return out;
  }

  private header(at: number, bodyLen: number, type: number, flags: number, id: number): void {
    const a = this.arena;
    a.writeUInt32BE(bodyLen, at);
    a[at + 4] = type;
    a[at + 5] = flags;
    a.writeUInt32BE(id, at + 6);
  }

  /** Moves pending bytes aside and starts a fresh arena with at least `need` free bytes. */
  private grow(need: number): void {
    if (this.pos > this.start) {
      const pending = this.arena.subarray(this.start, this.pos);
      this.spilled.push(pending);
      this.spilledBytes += pending.length;
    }
    this.arena = Buffer.allocUnsafe(Math.max(MIN_ARENA_BYTES, need));
    this.start = 0;
    this.pos = 0;
  }
}
