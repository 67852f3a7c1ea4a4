import { Flag, FrameType, HEADER_BYTES } from '../framing/frame.js';
import type { FrameEncoder } from '../framing/frame-encoder.js';
import type { MemoryAccount } from './memory-account.js';
import { outgoing, take, type Outgoing } from './outgoing-message.js';

/**
 * What discarding an outgoing message did: `'none'` held nothing of it (written in full, or never
 * queued), `'unwritten'` dropped it before any byte went out (the peer never saw it), `'partial'`
 * dropped the rest after some fragments went out (the peer holds a partial message).
 */
export type DiscardResult = 'none' | 'unwritten' | 'partial';

/**
 * Large messages waiting to go out in fragments (SPEC.md section 12.2). Each {@link round} appends one
 * fragment to the encoder, so small frames queued between rounds overtake large messages,
 * and keeps at most `maxOpen` messages open (the `P` the peer advertised); the others wait their turn
 * in arrival order. Fragment bytes also spend `credit` (the peer's window, section 12.3): without
 * credit nothing goes out until the peer acknowledges, which keeps the bytes queued ahead of a small
 * frame (in kernel buffers too) to about one window. While {@link shallow}, it keeps only
 * `shallowBytes` unacknowledged (small messages share the connection: they would wait behind the
 * rest); otherwise it uses the whole window, so a bulk transfer streams like one large write.
 * Fragments are views of the message: no copy. One id may queue several messages (a stream's DATA,
 * then its END): they go out in order, one open at a time, as the peer reassembles one per id.
 */
export class Outbox {
  private queue: Outgoing[] = [];
  /** Per id, its first queued message (the others follow it through `behind`). */
  private readonly byId = new Map<number, Outgoing>();
  private openCount = 0;
  /** Bytes of queued messages not yet sent, kept as we go: the socket checks it per appended frame. */
  private unsent = 0;
  /** The peer's `P`; set once the handshake negotiated fragments. */
  maxOpen = 0;
  /** Fragment body bytes we may still send before the peer acknowledges more. */
  credit = 0;
  /** True: keep at most `shallowBytes` unacknowledged, whatever the peer's window allows. */
  shallow = false;
  private fragmentBytes: number;
  private shallowBytes: number;
  /** The peer's `W`. */
  private window = 0;
  /** Rounds so far, to give the oldest message every fourth one. */
  private turns = 0;

  constructor(
    fragmentBytes: number,
    shallowBytes: number,
    private readonly account?: MemoryAccount,
  ) {
    this.fragmentBytes = fragmentBytes;
    this.shallowBytes = shallowBytes;
  }

  /** Fragment bytes sent and not yet acknowledged by the peer's WINDOW. */
  get unacknowledged(): number {
    return Math.max(0, this.window - this.credit);
  }

  /** Applies what the handshake negotiated: the peer's `P` and `W` (fragments never exceed `W`). */
  configure(maxOpen: number, windowBytes: number, peerMaxFrameBytes = Infinity): void {
    this.maxOpen = maxOpen;
    this.credit = windowBytes;
    this.window = windowBytes;
    // No fragment longer than the window, nor than the largest frame the peer reads (SPEC.md section 11.4).
    this.fragmentBytes = Math.min(this.fragmentBytes, windowBytes, peerMaxFrameBytes);
    // At least one fragment, or a shallow outbox could never send.
    this.shallowBytes = Math.min(windowBytes, Math.max(this.shallowBytes, this.fragmentBytes));
  }

  /** Messages queued, open or not. */
  get size(): number {
    return this.queue.length;
  }

  /** Ids with messages queued: {@link size} counts each of a stream's DATA, this its stream once. */
  get ids(): number {
    return this.byId.size;
  }

  /** Bytes still to send. */
  get pendingBytes(): number {
    return this.unsent;
  }

  /**
   * Bytes still to send, less those of the id with the most left: what waits beyond one answer (or
   * one stream's elements, queued one behind another), which may alone be larger than a queue cap and
   * still stream. Walks the queue when it holds two or more.
   */
  get pendingBeyondLargest(): number {
    if (this.queue.length < 2) return 0;
    let largest = 0;
    for (const first of this.byId.values()) {
      let left = 0;
      for (let m: Outgoing | undefined = first; m !== undefined; m = m.behind) left += m.length - m.sent;
      largest = Math.max(largest, left);
    }
    return this.unsent - largest;
  }

  /** True while the message of `id` has fragments left to send. */
  has(id: number): boolean {
    return this.byId.has(id);
  }

  /**
   * Ids none of whose messages went out yet: the first queued is unstarted, and is not a stream's DATA
   * nor a frame queued behind (something of that id went out before it).
   */
  unstartedIds(): number[] {
    const ids: number[] = [];
    for (const m of this.byId.values()) if (!m.started && !m.whole && m.type !== FrameType.DATA) ids.push(m.id);
    return ids;
  }

  /**
   * Queues a message body (uncompressed or already compressed) to go out in fragments, or, `whole`,
   * a small frame that must follow the messages of its id queued before it. After those either way.
   */
  add(type: number, flags: number, id: number, parts: readonly Buffer[], whole = false): void {
    let length = 0;
    for (let i = 0; i < parts.length; i++) length += parts[i]!.length;
    const m = outgoing(type, flags, id, parts, length, whole);
    this.queue.push(m);
    let last = this.byId.get(id);
    if (last === undefined) this.byId.set(id, m);
    else {
      while (last.behind !== undefined) last = last.behind;
      last.behind = m;
      m.waiting = true;
    }
    this.unsent += length;
    // An answer already made cannot be refused: charged, the budget sheds the connections holding most.
    this.account?.charge(length);
  }

  /**
   * Drops what is left of every message of `id` (its call was cancelled), saying whether any of the
   * first went out (the others wait behind it, unstarted).
   */
  cancel(id: number): DiscardResult {
    const first = this.byId.get(id);
    if (first === undefined) return 'none';
    this.byId.delete(id);
    if (first.started) this.openCount--;
    for (let m: Outgoing | undefined = first; m !== undefined; m = m.behind) {
      this.unsent -= m.length - m.sent;
      this.account?.credit(m.length - m.sent);
    }
    this.queue = this.queue.filter((q) => q.id !== id);
    return first.started ? 'partial' : 'unwritten';
  }

  /** Drops everything (the connection is gone). */
  clear(): void {
    this.account?.credit(this.unsent);
    this.queue = [];
    this.byId.clear();
    this.openCount = 0;
    this.unsent = 0;
  }

  /**
   * Appends one fragment, as far as the credit goes: of the message with the fewest bytes left
   * (opening it if allowed), or every fourth round of the oldest one, so none starves. Not one
   * fragment of every open message per round: that made equal messages all finish together at the
   * end, leaving the reply direction idle meanwhile (1 MB echoes ran at 0.55x the raw floor).
   * Returns the fragment body bytes appended (0: waiting for credit or for the peer's `P`).
   */
  round(encoder: FrameEncoder): number {
    const q = this.queue;
    const oldest = (++this.turns & 3) === 0;
    const credit = this.shallow ? this.credit - (this.window - this.shallowBytes) : this.credit;
    let best = -1;
    let bestLeft = Infinity;
    for (let i = 0; i < q.length; i++) {
      const m = q[i]!;
      if (m.waiting) continue;
      if (m.whole) {
        // Small and costing no credit: it goes as soon as its id's earlier messages are out.
        best = i;
        break;
      }
      if ((!m.started && this.openCount >= this.maxOpen) || this.nextLength(m) > credit) continue;
      const left = m.length - m.sent;
      if (left < bestLeft) {
        best = i;
        bestLeft = left;
        if (oldest) break;
      }
    }
    if (best < 0) return 0;
    const m = q[best]!;
    if (m.whole) {
      encoder.view(m.type, m.flags, m.id, -1, m.parts);
      this.unsent -= m.length;
      this.account?.credit(m.length);
      q.splice(best, 1);
      this.next(m);
      return HEADER_BYTES + m.length;
    }
    const n = this.fragment(encoder, m);
    this.credit -= n;
    if (m.done) {
      q.splice(best, 1);
      this.openCount--;
      this.next(m);
    }
    return n;
  }

  /** `m`, the first of its id, is all out: the message queued behind it (if any) may go. */
  private next(m: Outgoing): void {
    const b = m.behind;
    if (b === undefined) this.byId.delete(m.id);
    else {
      b.waiting = false;
      this.byId.set(m.id, b);
    }
  }

  /** Body length of the next fragment of `m`. */
  private nextLength(m: Outgoing): number {
    if (!m.started) return 4 + Math.min(this.fragmentBytes - 4, m.length);
    return Math.min(this.fragmentBytes, m.length - m.sent);
  }

  private fragment(encoder: FrameEncoder, m: Outgoing): number {
    const total = m.length;
    if (!m.started) {
      // The first fragment's body is the u32 total then data, within fragmentBytes. It always has
      // MORE: a message that fits in it still ends with an empty CONTINUATION next round.
      const n = Math.min(this.fragmentBytes - 4, total);
      encoder.view(m.type, m.flags | Flag.MORE, m.id, total, take(m, n));
      this.openCount++;
      m.started = true;
      m.sent = n;
      this.unsent -= n;
      this.account?.credit(n);
      return n + 4;
    }
    const start = m.sent;
    const n = Math.min(this.fragmentBytes, total - start);
    m.sent = start + n;
    this.unsent -= n;
    this.account?.credit(n);
    m.done = m.sent === total;
    encoder.view(FrameType.CONTINUATION, m.done ? 0 : Flag.MORE, m.id, -1, take(m, n));
    return n;
  }
}
