import type { PeerCodec } from '../codec/peer-codec.js';
import { Code } from '../errors/code.js';
import { readRequestHead, type Metadata } from '../framing/bodies.js';
import { Flag } from '../framing/frame.js';
import type { Authorizer } from '../security/auth.js';
import type { PeerInfo } from './call-context.js';
import { Refusal, metadataRefusal, unknownIndex } from './request-admission.js';

/** What a head's verdict acts through: the session's refusal, and the framing's discard. */
export interface HeadSink {
  /** Answers the request REFUSED, no handler having seen it. */
  refuse(id: number, oneWay: boolean, refusal: Refusal): void;
  /** Drops what arrived of a request (its fragments, its inflation). */
  discard(id: number): void;
  /** Whether requests are taken now (false while draining: those are refused whole, not judged early). */
  readonly accepting: boolean;
  /** Whether a two-way call with this id runs: a request reusing it is a protocol error, judged once whole. */
  isRunning(id: number): boolean;
}

/**
 * Authorization of requests judged from their start (index, metadata) while their body still arrives
 * in fragments or inflates: a call `authorize` refuses, for an unknown message, or with metadata over
 * the limit is answered at once (REFUSED) and the rest of it is discarded unbuffered. The verdict is
 * kept for the whole request: `true` (allowed), or the pending `authorize` promise; it is then used,
 * not a second call. Only when `authorize` is set.
 */
export class HeadAuthorization {
  private readonly verdicts = new Map<number, true | Promise<boolean>>();

  constructor(
    private readonly authorize: Authorizer,
    private readonly codec: PeerCodec,
    private readonly maxMetadataBytes: number,
    /** The peer, its principal known (the session's). */
    private readonly peer: PeerInfo,
    private readonly sink: HeadSink,
  ) {}

  /**
   * Judges a request's start: false when it was refused (its rest is dropped), true to go on. A start
   * that does not parse yet is left to the whole request.
   */
  check(flags: number, id: number, start: Buffer): boolean {
    // Id 0 and a running id are protocol errors, not refusals: left to the whole request.
    if (!this.sink.accepting || id === 0 || this.sink.isRunning(id)) return true;
    const oneWay = (flags & Flag.ONE_WAY) !== 0;
    let name: string;
    let metadata: Metadata;
    try {
      const head = readRequestHead(flags, start, this.maxMetadataBytes);
      if (head.metadataBytes > this.maxMetadataBytes) return this.refused(id, oneWay, metadataRefusal(this.maxMetadataBytes));
      const local = this.codec.requests[head.index]?.local;
      if (local === undefined || local === null) return this.refused(id, oneWay, unknownIndex(head.index));
      name = local.name;
      metadata = head.metadata;
    } catch {
      return true;
    }
    let verdict: unknown;
    try {
      verdict = this.authorize(this.peer.principal, name, metadata);
    } catch {
      verdict = false;
    }
    if (verdict === true) {
      this.verdicts.set(id, true);
      return true;
    }
    const thenable = verdict !== null && typeof verdict === 'object' && typeof (verdict as Promise<unknown>).then === 'function';
    if (!thenable) return this.refused(id, oneWay, denial(name));
    const pending = Promise.resolve(verdict).then(
      (v) => v === true,
      () => false,
    );
    this.verdicts.set(id, pending);
    void pending.then((allowed) => {
      // Still ours (the request is not whole yet, nor cancelled): refuse it and drop what arrived.
      if (allowed || this.verdicts.get(id) !== pending) return;
      this.sink.discard(id);
      this.sink.refuse(id, oneWay, denial(name));
    });
    return true;
  }

  /** The verdict on a request now whole, if its head was judged; forgets it. */
  take(id: number): true | Promise<boolean> | undefined {
    if (this.verdicts.size === 0) return undefined;
    const verdict = this.verdicts.get(id);
    if (verdict !== undefined) this.verdicts.delete(id);
    return verdict;
  }

  /** The request was answered or cancelled: a pending verdict no longer refuses it. */
  forget(id: number): void {
    if (this.verdicts.size > 0) this.verdicts.delete(id);
  }

  /** The connection closed. */
  clear(): void {
    this.verdicts.clear();
  }

  private refused(id: number, oneWay: boolean, refusal: Refusal): false {
    this.sink.refuse(id, oneWay, refusal);
    return false;
  }
}

/** `authorize` said no. */
export function denial(name: string): Refusal {
  return new Refusal(Code.PERMISSION_DENIED, `not allowed to call ${name}`);
}
