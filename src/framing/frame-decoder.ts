import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { protocolError } from '../errors/protocol-error.js';
import { HEADER_BYTES, PREFACE, type FrameSink } from './frame.js';

/** Options of {@link FrameDecoder}. */
export interface FrameDecoderOptions {
  /**
   * Largest body accepted, in bytes; a larger length prefix is refused before anything is allocated.
   * Read per frame: changing it takes effect at the next frame header.
   */
  maxFrameBytes: number;
  /** The option named when a frame is refused for its size. Default `maxFrameBytes`. */
  limitName?: string | undefined;
  /** When true, the stream must begin with the connection preface (the server side). */
  expectPreface: boolean;
  /**
   * Where to collect the body of a frame that spans chunks, instead of a new buffer: a fragment's
   * place in its reassembled message, so that its bytes are copied once. Undefined: a new buffer.
   */
  target?: ((type: number, flags: number, id: number, bodyLen: number) => Buffer | undefined) | undefined;
  /**
   * Where the bytes of a frame that spans chunks are counted (a server's memory budget): its first
   * buffer (at most 64 KiB) and each growth beyond are asked for (`frame`, `reserve`), and a refusal
   * fails the connection (RESOURCE_EXHAUSTED). Default: not counted.
   */
  budget?: { frame(bytes: number): boolean; reserve(bytes: number): boolean; credit(bytes: number): void } | undefined;
}

/** First buffer for a frame that spans chunks; it doubles as bytes arrive, up to the frame's size. */
const FIRST_BODY_BYTES = 64 * 1024;

/**
 * Streaming frame decoder. A frame that sits inside one chunk is handed out as a `subarray` view of
 * that chunk (no copy); a frame that spans chunks is copied into a buffer that grows by doubling as its
 * bytes arrive, so memory follows the bytes received, never the length a peer merely claims (a 10-byte
 * header announcing 16 MiB costs 64 KiB, not 16 MiB). The whole buffer is never re-concatenated.
 */
export class FrameDecoder {
  private readonly header = Buffer.allocUnsafe(HEADER_BYTES);
  private headerFill = 0;
  private prefaceLeft: number;
  private body: Buffer | null = null;
  private bodyFill = 0;
  private bodyLen = 0;
  private type = 0;
  private flags = 0;
  private id = 0;
  private failed = false;
  /** Bytes of `body` charged to the budget (0 for a target, which its owner counts). */
  private charged = 0;

  constructor(
    private readonly options: FrameDecoderOptions,
    private readonly sink: FrameSink,
  ) {
    this.prefaceLeft = options.expectPreface ? PREFACE.length : 0;
  }

  /**
   * Consumes one chunk, calling the sink for every complete frame. Throws an `RpcError` (INTERNAL for a
   * bad preface, RESOURCE_EXHAUSTED for an oversized frame); after that the decoder refuses input.
   */
  push(chunk: Buffer): void {
    if (this.failed) return;
    const len = chunk.length;
    let pos = 0;
    if (this.prefaceLeft > 0) pos = this.checkPreface(chunk);
    while (pos < len) {
      if (this.body !== null) {
        pos = this.fillBody(chunk, pos);
        continue;
      }
      let bodyLen: number;
      if (this.headerFill === 0 && len - pos >= HEADER_BYTES) {
        bodyLen = chunk.readUInt32BE(pos);
        this.type = chunk[pos + 4]!;
        this.flags = chunk[pos + 5]!;
        this.id = chunk.readUInt32BE(pos + 6);
        pos += HEADER_BYTES;
      } else {
        const n = Math.min(HEADER_BYTES - this.headerFill, len - pos);
        chunk.copy(this.header, this.headerFill, pos, pos + n);
        this.headerFill += n;
        pos += n;
        if (this.headerFill < HEADER_BYTES) return;
        this.headerFill = 0;
        bodyLen = this.header.readUInt32BE(0);
        this.type = this.header[4]!;
        this.flags = this.header[5]!;
        this.id = this.header.readUInt32BE(6);
      }
      if (bodyLen > this.options.maxFrameBytes) {
        this.failed = true;
        throw new RpcError(
          Code.RESOURCE_EXHAUSTED,
          `frame of ${bodyLen} bytes exceeds ${this.options.limitName ?? 'maxFrameBytes'} (${this.options.maxFrameBytes})`,
        );
      }
      if (len - pos >= bodyLen) {
        const end = pos + bodyLen;
        this.sink(this.type, this.flags, this.id, chunk.subarray(pos, end));
        pos = end;
      } else {
        const target = this.options.target?.(this.type, this.flags, this.id, bodyLen);
        if (target === undefined && this.options.budget !== undefined) {
          const first = Math.min(bodyLen, FIRST_BODY_BYTES);
          if (!this.options.budget.frame(first)) {
            this.failed = true;
            throw new RpcError(
              Code.RESOURCE_EXHAUSTED,
              `server memory budget exhausted (maxBufferedBytes): frame of ${bodyLen} bytes refused`,
            );
          }
          this.charged = first;
        }
        this.body = target ?? Buffer.allocUnsafe(Math.min(bodyLen, FIRST_BODY_BYTES));
        this.bodyLen = bodyLen;
        this.bodyFill = 0;
        pos = this.fillBody(chunk, pos);
      }
    }
  }

  /** Bytes held for a frame not yet complete (for memory accounting). */
  get bufferedBytes(): number {
    return this.headerFill + (this.body === null ? 0 : this.body.length);
  }

  private fillBody(chunk: Buffer, pos: number): number {
    let body = this.body!;
    if (this.bodyFill === body.length) {
      const size = Math.min(this.bodyLen, body.length * 2);
      const budget = this.options.budget;
      if (budget !== undefined) {
        if (!budget.reserve(size - body.length)) {
          this.failed = true;
          throw new RpcError(
            Code.RESOURCE_EXHAUSTED,
            `server memory budget exhausted (maxBufferedBytes): frame of ${this.bodyLen} bytes refused`,
          );
        }
        this.charged += size - body.length;
      }
      const grown = Buffer.allocUnsafe(size);
      body.copy(grown, 0, 0, this.bodyFill);
      this.body = body = grown;
    }
    const n = Math.min(body.length - this.bodyFill, chunk.length - pos);
    chunk.copy(body, this.bodyFill, pos, pos + n);
    this.bodyFill += n;
    if (this.bodyFill === this.bodyLen) {
      this.body = null;
      if (this.charged > 0) {
        this.options.budget?.credit(this.charged);
        this.charged = 0;
      }
      this.sink(this.type, this.flags, this.id, body);
    }
    return pos + n;
  }

  private checkPreface(chunk: Buffer): number {
    const offset = PREFACE.length - this.prefaceLeft;
    const n = Math.min(this.prefaceLeft, chunk.length);
    for (let i = 0; i < n; i++) {
      if (chunk[i] !== PREFACE[offset + i]) {
        this.failed = true;
        throw protocolError('bad connection preface (not an avrpc v1 client)');
      }
    }
    this.prefaceLeft -= n;
    return n;
  }
}
