import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { protocolError } from '../errors/protocol-error.js';
import { Flag, FrameType } from './frame.js';

/** Limits of a {@link Reassembler}. */
export interface ReassemblerLimits {
  /** Largest message accepted, in bytes; a larger declared total refuses the call. */
  maxMessageBytes: number;
  /** Fragmented messages that may be open at once (the `P` this side advertised). */
  maxPartialMessages: number;
  /**
   * Where buffer bytes are asked for (a server's memory budget): a first buffer or a growth it refuses
   * refuses the message RESOURCE_EXHAUSTED, and nothing more of it is buffered. Default: unbounded.
   */
  budget?: ReassemblyBudget | undefined;
  /**
   * Bytes of a REQUEST's start (index, deadline, metadata) handed to {@link ReassemblerSink.head} once
   * received, before the rest: its owner may refuse the call from them. Default: no such check.
   */
  headBytes?: number | undefined;
}

/** The part of a memory account the reassembler uses (structurally a connection's `MemoryAccount`). */
export interface ReassemblyBudget {
  reserve(bytes: number): boolean;
  credit(bytes: number): void;
}

/** Receives reassembly outcomes. */
export interface ReassemblerSink {
  /** A whole message: the first frame's type, its flags without MORE, and the message bytes. */
  message(type: number, flags: number, id: number, body: Buffer): void;
  /** The message is refused (too large); nothing more of it is buffered. */
  refused(type: number, flags: number, id: number, error: RpcError): void;
  /**
   * The first `headBytes` (or fewer: all but the last of a shorter message) of an uncompressed REQUEST
   * still arriving. False: its owner refused the call (and answered it); the rest is discarded unbuffered.
   */
  head?(type: number, flags: number, id: number, start: Buffer): boolean;
}

interface Partial {
  type: number;
  flags: number;
  /** Grows (doubling) up to `total` as bytes arrive. */
  buf: Buffer;
  fill: number;
  total: number;
  /** `fill` at the last {@link Reassembler.stalled} check; -1 before the first. */
  mark: number;
  /** True once the head was handed to `ReassemblerSink.head` (or needs not be). */
  headSeen: boolean;
}

/**
 * First buffer of a message being reassembled; it doubles as fragments arrive, up to the total. 1 MiB
 * so that messages up to 1 MiB are copied once (64 KiB cost 15/16 of an extra copy in regrowth), while
 * a first fragment claiming a huge total still pins at most this much.
 */
const FIRST_BUFFER_BYTES = 1024 * 1024;

/**
 * Size of a buffer holding at least `need` bytes of a message of `total`: `want`, or the total when
 * `want` is at least half of it (a 1 MiB payload plus its few bytes of Avro framing would otherwise
 * fill 1 MiB and be copied once more into a 2 MiB buffer just for its last bytes).
 */
function sizeFor(want: number, need: number, total: number): number {
  const size = Math.max(want, need);
  return size * 2 >= total ? total : size;
}

/**
 * Rebuilds fragmented messages (SPEC.md section 12.2) from frames. The first fragment declares the
 * total size, which is checked against `maxMessageBytes` before anything is allocated; the buffer then
 * grows by doubling as fragments arrive (memory follows the bytes received, not the total a peer
 * claims: a 14-byte first fragment announcing 64 MiB costs 1 MiB, one announcing at most 2 MiB its total), and each fragment is copied into
 * place. Rule violations throw an `RpcError` (a protocol error for the connection). Pure: no sockets.
 */
export class Reassembler {
  private readonly open = new Map<number, Partial>();

  constructor(
    private readonly limits: ReassemblerLimits,
    private readonly sink: ReassemblerSink,
  ) {}

  /** Messages being reassembled. */
  get size(): number {
    return this.open.size;
  }

  /** Ids of the messages being reassembled. */
  ids(): IterableIterator<number> {
    return this.open.keys();
  }

  /** Bytes allocated for messages being reassembled. */
  get bufferedBytes(): number {
    let n = 0;
    for (const p of this.open.values()) n += p.buf.length;
    return n;
  }

  /**
   * Takes a first fragment (REQUEST/RESPONSE/DATA with MORE). One id has one message open at a time;
   * a stream's next DATA of the same id may start once the previous one is whole.
   */
  first(type: number, flags: number, id: number, body: Buffer): void {
    if (body.length < 4) throw protocolError(`first fragment of id ${id} is shorter than its 4-byte total`);
    if (this.open.has(id)) throw protocolError(`id ${id} started a second fragmented message`);
    if (this.open.size >= this.limits.maxPartialMessages) {
      throw new RpcError(Code.RESOURCE_EXHAUSTED, `protocol error: more than ${this.limits.maxPartialMessages} fragmented messages open`);
    }
    const total = body.readUInt32BE(0);
    const messageFlags = flags & ~Flag.MORE;
    if (total > this.limits.maxMessageBytes) {
      const error = new RpcError(
        Code.RESOURCE_EXHAUSTED,
        `message of ${total} bytes exceeds maxMessageBytes (${this.limits.maxMessageBytes})`,
      );
      return this.sink.refused(type, messageFlags, id, error);
    }
    const data = body.length - 4;
    if (data > total) throw protocolError(`fragments of id ${id} exceed their total of ${total} bytes`);
    const size = sizeFor(FIRST_BUFFER_BYTES, data, total);
    if (this.limits.budget !== undefined && !this.limits.budget.reserve(size))
      return this.sink.refused(type, messageFlags, id, overBudget());
    const buf = Buffer.allocUnsafe(size);
    body.copy(buf, 0, 4);
    // Compressed: its start is deflated, the owner reads it only once inflated.
    const headSeen = this.sink.head === undefined || type !== FrameType.REQUEST || (messageFlags & Flag.COMPRESSED) !== 0;
    const p: Partial = { type, flags: messageFlags, buf, fill: data, total, mark: -1, headSeen };
    this.open.set(id, p);
    if (!headSeen) this.checkHead(id, p);
  }

  /** Hands a REQUEST's start to the sink once enough of it arrived; discards the message if refused. */
  private checkHead(id: number, p: Partial): void {
    if (p.fill < Math.min(p.total, this.limits.headBytes ?? 0) || p.fill === p.total) return;
    p.headSeen = true;
    if (!this.sink.head!(p.type, p.flags, id, p.buf.subarray(0, p.fill))) this.discard(id);
  }

  /**
   * Makes room for `need` bytes in `p.buf`, keeping what it holds. False when the budget refused the
   * growth: the message is then refused and dropped.
   */
  private ensure(id: number, p: Partial, need: number): boolean {
    if (p.buf.length >= need) return true;
    const size = sizeFor(p.buf.length * 2, need, p.total);
    const budget = this.limits.budget;
    if (budget !== undefined && !budget.reserve(size - p.buf.length)) {
      this.discard(id);
      this.sink.refused(p.type, p.flags, id, overBudget());
      return false;
    }
    const grown = Buffer.allocUnsafe(size);
    p.buf.copy(grown, 0, 0, p.fill);
    p.buf = grown;
    return true;
  }

  /**
   * For the frame decoder: the place in its message where a CONTINUATION body of `len` bytes goes, so
   * the decoder fills it directly; undefined when it has none (the decoder then allocates).
   */
  target(type: number, id: number, len: number): Buffer | undefined {
    if (type !== FrameType.CONTINUATION) return undefined;
    const p = this.open.get(id);
    if (p === undefined || p.fill + len > p.total) return undefined;
    if (!this.ensure(id, p, p.fill + len)) return undefined;
    return p.buf.subarray(p.fill, p.fill + len);
  }

  /** Takes a CONTINUATION frame. One for an id with nothing open is ignored (refused or cancelled). */
  next(flags: number, id: number, body: Buffer): void {
    const p = this.open.get(id);
    if (p === undefined) return;
    if (p.fill + body.length > p.total) {
      throw protocolError(`fragments of id ${id} exceed their total of ${p.total} bytes`);
    }
    if (!this.ensure(id, p, p.fill + body.length)) return;
    // Already in place when the decoder filled the target we gave it.
    if (body.buffer !== p.buf.buffer || body.byteOffset !== p.buf.byteOffset + p.fill) body.copy(p.buf, p.fill);
    p.fill += body.length;
    if ((flags & Flag.MORE) !== 0) {
      if (!p.headSeen) this.checkHead(id, p);
      return;
    }
    this.open.delete(id);
    this.limits.budget?.credit(p.buf.length);
    if (p.fill !== p.total) {
      throw protocolError(`last fragment of id ${id} leaves ${p.total - p.fill} of ${p.total} bytes missing`);
    }
    this.sink.message(p.type, p.flags, id, p.buf);
  }

  /** Drops the message being reassembled for `id`, if any (a CANCEL, a call given up). */
  discard(id: number): void {
    const p = this.open.get(id);
    if (p === undefined) return;
    this.open.delete(id);
    this.limits.budget?.credit(p.buf.length);
  }

  /** Drops every message being reassembled (the connection is gone). */
  clear(): void {
    for (const id of [...this.open.keys()]) this.discard(id);
  }

  /**
   * Ids of the messages that received no byte since the previous call (a first call only marks them),
   * with their type and flags; the caller drops or keeps them. `reset` marks all as fresh instead.
   */
  stalled(reset: boolean): { id: number; type: number; flags: number }[] {
    const out: { id: number; type: number; flags: number }[] = [];
    for (const [id, p] of this.open) {
      if (!reset && p.mark === p.fill) out.push({ id, type: p.type, flags: p.flags });
      p.mark = reset ? -1 : p.fill;
    }
    return out;
  }
}

function overBudget(): RpcError {
  return new RpcError(Code.RESOURCE_EXHAUSTED, 'server memory budget exhausted (maxBufferedBytes): fragmented message refused');
}

/** True for a frame the reassembler must see: a CONTINUATION, or a REQUEST/RESPONSE/DATA with MORE. */
export function isFragment(type: number, flags: number): boolean {
  return (
    type === FrameType.CONTINUATION ||
    ((flags & Flag.MORE) !== 0 && (type === FrameType.REQUEST || type === FrameType.RESPONSE || type === FrameType.DATA))
  );
}
