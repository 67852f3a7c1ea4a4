import { HEADER_BYTES } from './frame.js';
import { splicing, type Splice } from './splices.js';

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
  /** Where the last frame appended by {@link frame} starts in the arena. */
  private lastStart = -1;
  /** Body length of the last frame appended by {@link frame}. */
  private lastBodyLen = 0;
  /**
   * When the last frame had values spliced in (see splices.ts): where its parts begin in `spilled`
   * (its header and first body bytes, then the values and the arena bytes between them); -1 otherwise.
   */
  private lastSpilledFrom = -1;
  /** True when the last frame appended by {@link frame} carries values by reference (see splices.ts). */
  lastSpliced = false;
  /** Reused list of the splices of the frame being encoded. */
  private readonly splices: Splice[] = [];

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
    const splices = this.splices;
    // Left over only when a previous write threw. (Setting an array's length is a runtime call.)
    if (splices.length > 0) splices.length = 0;
    splicing.into = splices;
    let bodyStart = this.pos + HEADER_BYTES;
    let end: number;
    try {
      end = bodyStart <= this.arena.length ? write(value, this.arena, bodyStart) : 0;
      if (end <= 0) {
        bodyStart = HEADER_BYTES;
        end = this.writeGrown(value, write, -end);
      }
    } finally {
      splicing.into = undefined;
    }
    this.lastStart = bodyStart - HEADER_BYTES;
    this.lastSpilledFrom = -1;
    this.lastSpliced = splices.length > 0;
    const bodyLen = this.lastSpliced ? this.commitSplices(end - bodyStart) : end - bodyStart;
    this.header(this.lastStart, bodyLen, type, flags, id);
    this.lastBodyLen = bodyLen;
    this.pos = end;
  }

  /**
   * Encodes the body again in a fresh arena large enough for it (the current one lacked `missing`
   * bytes, as avsc reports); returns its end. Rare: off the per-frame path.
   */
  private writeGrown<T>(value: T, write: BodyWriter<T>, missing: number): number {
    const bodyStart = this.pos + HEADER_BYTES;
    let size = bodyStart <= this.arena.length ? this.arena.length - bodyStart + missing : 1024;
    let end: number;
    do {
      // Setting an array's length is a runtime call: only here, off the per-frame path.
      if (this.splices.length > 0) this.splices.length = 0;
      this.grow(HEADER_BYTES + size);
      end = write(value, this.arena, HEADER_BYTES);
      size *= 2;
    } while (end <= 0);
    return end;
  }

  /**
   * Sends the frame just encoded (header at `lastStart`) with its spliced values as buffers of their
   * own: the arena up to each value, then the value; the arena bytes after the last one stay pending.
   * Returns the body length, values included. Empties the splice list.
   */
  private commitSplices(arenaBodyLen: number): number {
    const splices = this.splices;
    let bodyLen = arenaBodyLen;
    this.pos = this.lastStart;
    this.spill();
    this.lastSpilledFrom = this.spilled.length;
    for (let i = 0; i < splices.length; i++) {
      const s = splices[i]!;
      bodyLen += s.data.length;
      this.push(this.arena.subarray(this.start, s.at));
      this.push(s.data);
      this.start = s.at;
    }
    splices.length = 0;
    return bodyLen;
  }

  /** Body length of the frame just appended by {@link frame}. */
  get lastBodyLength(): number {
    return this.lastBodyLen;
  }

  /**
   * Takes back the frame just appended by {@link frame} and returns its body, as one or more buffers
   * (several when large values were spliced in), which stay valid: a large body keeps its bytes where
   * they are (the arena is given up to it, no copy), a small one is copied out. Used to fragment or
   * compress a message after encoding it.
   */
  detachLast(): Buffer[] {
    const bodyStart = this.lastStart + HEADER_BYTES;
    if (this.lastSpilledFrom >= 0) {
      const parts = this.spilled.splice(this.lastSpilledFrom);
      for (let i = 0; i < parts.length; i++) this.spilledBytes -= parts[i]!.length;
      parts[0] = parts[0]!.subarray(HEADER_BYTES);
      if (this.pos > this.start) parts.push(this.arena.subarray(this.start, this.pos));
      this.lastSpilledFrom = -1;
      this.lastStart = -1;
      // The parts view the arena from bodyStart on: never write there again.
      this.start = this.pos = bodyStart - HEADER_BYTES;
      this.grow(0);
      return parts.filter((p) => p.length > 0);
    }
    const len = this.pos - bodyStart;
    this.pos = this.lastStart;
    this.lastStart = -1;
    if (len < MIN_ARENA_BYTES / 4) {
      const copy = Buffer.allocUnsafe(len);
      this.arena.copy(copy, 0, bodyStart, bodyStart + len);
      return [copy];
    }
    const body = this.arena.subarray(bodyStart, bodyStart + len);
    this.grow(0);
    return [body];
  }

  /**
   * Appends a frame whose body is `prefix` (an optional u32, -1 for none) followed by `data` (one
   * buffer or several, in order), which is not copied: it goes out as buffers of its own, so it must
   * not change until written.
   */
  view(type: number, flags: number, id: number, prefix: number, data: Buffer | readonly Buffer[]): void {
    const extra = prefix < 0 ? 0 : 4;
    let len = 0;
    if (Buffer.isBuffer(data)) len = data.length;
    else for (let i = 0; i < data.length; i++) len += data[i]!.length;
    if (this.pos + HEADER_BYTES + extra > this.arena.length) this.grow(HEADER_BYTES + extra);
    this.header(this.pos, extra + len, type, flags, id);
    if (extra > 0) this.arena.writeUInt32BE(prefix, this.pos + HEADER_BYTES);
    this.pos += HEADER_BYTES + extra;
    if (len < 512 && this.pos + len <= this.arena.length) {
      // Small data: a copy is cheaper than one more buffer to write.
      if (Buffer.isBuffer(data)) data.copy(this.arena, this.pos);
      else for (let i = 0, at = this.pos; i < data.length; at += data[i]!.length, i++) data[i]!.copy(this.arena, at);
      this.pos += len;
      return;
    }
    this.spill();
    if (Buffer.isBuffer(data)) this.push(data);
    else for (let i = 0; i < data.length; i++) this.push(data[i]!);
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

  /**
   * Everything taken was handed over and the socket holds none of it (its `writableLength` is 0 after
   * the write: the kernel has the bytes): the arena is written from its start again. It stays in the
   * CPU's cache, and a busy connection no longer takes a fresh 64 KiB arena every few hundred frames.
   * Only between writes: never while a frame just appended may still be detached.
   */
  recycle(): void {
    if (this.spilled.length > 0 || this.start !== this.pos) return;
    this.start = this.pos = 0;
    this.lastStart = -1;
  }

  private header(at: number, bodyLen: number, type: number, flags: number, id: number): void {
    const a = this.arena;
    a.writeUInt32BE(bodyLen, at);
    a[at + 4] = type;
    a[at + 5] = flags;
    a.writeUInt32BE(id, at + 6);
  }

  /** Adds a buffer to go out after everything spilled so far. */
  private push(buf: Buffer): void {
    if (buf.length === 0) return;
    this.spilled.push(buf);
    this.spilledBytes += buf.length;
  }

  /** Moves the arena's pending bytes to the spilled list; the arena goes on after them. */
  private spill(): void {
    if (this.pos > this.start) {
      const pending = this.arena.subarray(this.start, this.pos);
      this.spilled.push(pending);
      this.spilledBytes += pending.length;
    }
    this.start = this.pos;
  }

  /** Moves pending bytes aside and starts a fresh arena with at least `need` free bytes. */
  private grow(need: number): void {
    this.spill();
    this.lastStart = -1;
    this.arena = Buffer.allocUnsafe(Math.max(MIN_ARENA_BYTES, need));
    this.start = 0;
    this.pos = 0;
  }
}
