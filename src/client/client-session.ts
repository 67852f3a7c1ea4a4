import type { ServerLimits } from '../framing/limits.js';
import { invalidRequest } from '../codec/invalid-value.js';
import type { PeerCodec } from '../codec/peer-codec.js';
import type { FramedSocket } from '../connection/framed-socket.js';
import { decodeExact, readRemoteError } from '../connection/payload.js';
import { Code } from '../errors/code.js';
import { protocolError } from '../errors/protocol-error.js';
import { RpcError } from '../errors/rpc-error.js';
import { requestFlags, writeRequest, type RequestDraft } from '../framing/bodies.js';
import { Flag, FrameType } from '../framing/frame.js';
import type { CallTable, ClientCall, WriteFence } from './call-table.js';
import { CancelledIds } from './cancelled-ids.js';
import type { ClientStream } from './client-stream.js';
import { msUntil } from './deadline-queue.js';
import type { CallInfo } from '../observability/call-info.js';
import type { EndpointHealth } from './endpoint-health.js';
import { StreamFrames } from './stream-frames.js';

/**
 * A deadline timer this late (or later than half the call's budget) means our own event loop was
 * stalled: the timeout is not held against the server.
 */
const OWN_STALL_MS = 100;
/** Largest `timeoutMs` a REQUEST can carry (u32); a caller allowing more sends none (SPEC.md section 4). */
const MAX_WIRE_TIMEOUT_MS = 0xffffffff;
/** The request record of a client or bidi stream's REQUEST: nothing (its requests go as DATA, SPEC.md section 13). */
const NO_RECORD = { encode: (_value: unknown, _buf: Buffer, pos: number): number => pos } as unknown as RequestDraft['type'];

/**
 * The calls of one connection once its handshake completed: writes REQUESTs with the negotiated
 * `codec`, matches RESPONSE and ERROR frames to calls by id, drops answers that crossed our CANCEL
 * (barrier PINGs, see `CancelledIds`) and fails the connection on any other stray answer, and reports
 * each call's outcome to the endpoint's health. Whether the connection may still end is its owner's
 * concern: each entry point returns, and the owner checks.
 */
export class ClientSession {
  /** Ids we sent CANCEL for whose answers may still arrive: dropped unread. Any other unknown id is a protocol error. */
  private readonly cancelled = new CancelledIds();
  /** One-way calls queued on the socket and not yet written: they settle once they are (SPEC.md section 4). */
  private unwritten: ClientCall[] = [];
  private readonly draft: RequestDraft = {
    index: 0,
    timeoutMs: -1,
    metadata: undefined,
    maxMetadataBytes: undefined,
    type: null!,
    value: null,
  };
  /** The stream frames of this connection (SPEC.md section 13). */
  readonly streams: StreamFrames;

  constructor(
    /** The connection calls are on (`ClientCall.conn`). */
    private readonly conn: object,
    private readonly framed: FramedSocket,
    private readonly calls: CallTable,
    private readonly health: EndpointHealth,
    /** How to write our requests and read the server's answers; fixed by the handshake. */
    readonly codec: PeerCodec,
    /** The limits the server advertised (SPEC.md section 11.4): requests that break them fail here, unsent. */
    private readonly limits?: ServerLimits,
    /** The server's `S` from the handshake; 0 when streams (and headers, trailers) were not negotiated. */
    peerStreamWindow = 0,
  ) {
    this.streams = new StreamFrames(framed, calls, codec, this, peerStreamWindow);
  }

  /**
   * Writes the REQUEST of a call already in the call table. `countCalls`: every other call in the table
   * is outstanding on the server, so the advertised `maxConcurrentCalls` can be judged here.
   */
  send(call: ClientCall, countCalls = true): void {
    const d = this.draft;
    const msg = call.msg;
    const reading = this.codec.responses[msg.index]!;
    if (reading.incompatible !== undefined) {
      // The server could not read the request, or we could not read its answer: refuse before it runs.
      this.calls.take(call.id);
      call.reject(new RpcError(Code.FAILED_PRECONDITION, `message ${msg.name}: ${reading.incompatible}`));
      return;
    }
    const kind = msg.stream;
    if (kind !== undefined && this.streams.peerWindow === 0) {
      this.calls.take(call.id);
      return call.reject(new RpcError(Code.UNIMPLEMENTED, `message ${msg.name}: server does not support streams`), false);
    }
    if (this.limits !== undefined) {
      const refusal = this.refusal(this.limits, call, countCalls);
      if (refusal !== undefined) {
        this.calls.take(call.id);
        return call.reject(refusal);
      }
    }
    d.index = msg.index;
    // One clock reading for both (the encode between them takes a microsecond): the one taken as the
    // call was made, when it is sent at once.
    const now = call.clockAt >= 0 ? call.clockAt : performance.now();
    call.clockAt = -1;
    let timeoutMs = call.deadline < 0 ? -1 : Math.max(1, msUntil(call.deadline, now));
    if (timeoutMs > MAX_WIRE_TIMEOUT_MS) timeoutMs = -1;
    d.timeoutMs = timeoutMs;
    d.metadata = call.metadata;
    // Checked as the map is written (a refusal would otherwise measure it first).
    d.maxMetadataBytes = this.limits?.maxMetadataBytes;
    // A client or bidi stream's body ends after the head.
    const record = kind === undefined || kind === 'server';
    d.type = record ? msg.request : NO_RECORD;
    d.value = record ? call.request : null;
    let spliced: boolean;
    try {
      spliced = this.framed.message(FrameType.REQUEST, requestFlags(d) | (msg.oneWay ? Flag.ONE_WAY : 0), call.id, d, writeRequest);
    } catch (err) {
      this.calls.take(call.id);
      // Over the server's advertised limits (OutgoingMessages), else a value its schema cannot encode.
      call.reject(err instanceof RpcError && err.code === Code.RESOURCE_EXHAUSTED ? err : invalidRequest(msg, call.request, err)!);
      return;
    } finally {
      d.value = null;
    }
    call.sent = true;
    call.sentAt = now;
    if (call.info !== undefined) observeSent(call.info, this.health.key, this.framed.lastBodyLength);
    // A retry's earlier socket may still be writing the same Buffers: wait for both.
    if (spliced)
      call.writer = call.writer === undefined || call.writer === this.framed ? this.framed : bothWritten(call.writer, this.framed);
    // Its id stays taken until the flush wrote the REQUEST; resolving now would claim a write not made.
    if (msg.oneWay) this.unwritten.push(call);
    else this.framed.expectReply();
    // Last: a client or bidi stream's first requests may go out now, and fail the call.
    if (kind !== undefined) (call.ext as ClientStream).started(this.streams, call.id, this.streams.peerWindow);
  }

  /**
   * Why the server would refuse `call` before any handler ran, judged from the limits it advertised
   * and what is known before encoding (SPEC.md section 11.4): `maxConcurrentCalls` two-way calls
   * already outstanding here (a lower bound: the server also counts calls we cannot see). Metadata
   * over its `maxMetadataBytes` fails as it is encoded (`writeRequest`), the body's size once encoded
   * (`OutgoingMessages`).
   */
  private refusal(limits: ServerLimits, call: ClientCall, countCalls: boolean): RpcError | undefined {
    // The table holds this call too.
    if (countCalls && !call.msg.oneWay && this.calls.size - 1 >= limits.maxConcurrentCalls) {
      return new RpcError(Code.RESOURCE_EXHAUSTED, `too many concurrent calls (the server's max ${limits.maxConcurrentCalls})`, {
        mayHaveRun: false,
      });
    }
    return undefined;
  }

  /** After a flush: one-way calls whose REQUEST is now on the socket resolve, and free their id. Returns whether any waited. */
  settleWritten(): boolean {
    if (this.unwritten.length === 0) return false;
    // A fresh list: settling runs observer hooks, which may start calls (and push here).
    const list = this.unwritten;
    this.unwritten = [];
    for (let i = 0; i < list.length; i++) {
      const call = list[i]!;
      // Settled meanwhile (deadline, cancel), or failed with the connection and sent elsewhere.
      if (call.conn !== this.conn) continue;
      if (this.framed.isWriting(call.id)) {
        this.unwritten.push(call);
        continue;
      }
      this.calls.take(call.id);
      call.resolve(undefined);
    }
    return true;
  }

  /** A sent call taken back (deadline, cancel): the server is told to stop, and its id remembered, since its answer may cross our CANCEL. */
  cancel(
    call: ClientCall,
    reason: RpcError | undefined,
    judge: (id: number, index: number, budgetMs: number, lateMs: number) => void,
  ): void {
    if (this.framed.isClosed) return;
    this.framed.signal(FrameType.CANCEL, call.id);
    this.cancelled.add(call.id, call.msg.stream !== undefined);
    // A stream's deadline covers however long it streams: not a measure of the server's speed.
    if (reason?.code === Code.DEADLINE_EXCEEDED && !call.msg.oneWay && call.msg.stream === undefined) {
      // Judged, and the barrier PING sent, after this turn's I/O: if our own loop was blocked, the answer may be waiting unread.
      setImmediate(judge, call.id, call.msg.index, call.deadline - call.sentAt, performance.now() - call.deadline);
    } else {
      this.sendBarrier();
    }
  }

  /**
   * A call timed out `lateMs` after its deadline, sent with `budgetMs` to go; this turn's I/O is read.
   * Not the server's failure if its answer was among what we read (our loop was late) or our deadline
   * timer itself was late; otherwise the endpoint's health judges (`EndpointHealth.timedOut`).
   */
  timedOut(id: number, index: number, budgetMs: number, lateMs: number): void {
    this.sendBarrier();
    if (this.cancelled.answered(id) || lateMs > Math.max(OWN_STALL_MS, budgetMs / 2)) return;
    this.health.timedOut(index, budgetMs, this.framed.unanswered);
  }

  /** A RESPONSE: of a call, or of a client stream; flag METADATA: the trailers precede the value. */
  onResponse(flags: number, id: number, body: Buffer): void {
    const call = this.calls.take(id);
    if (call === undefined) return this.stray(id, true);
    const kind = call.msg.stream;
    let offset = 0;
    if ((flags & Flag.METADATA) !== 0 || kind !== undefined) {
      offset = this.trailersOf(call, flags, body);
      if (offset < 0) return;
    } else {
      this.health.answered(call.msg.index, this.framed.clock.now() - call.sentAt);
    }
    if (call.info !== undefined) call.info.responseBytes = body.length;
    try {
      call.resolve(decodeExact(call.msg.response, body, offset, this.codec.responses[call.msg.index]!.response));
    } catch (err) {
      call.reject(new RpcError(Code.INTERNAL, `cannot decode response of ${call.msg.name}: ${(err as Error).message}`, { cause: err }));
    }
  }

  /**
   * The rare parts of a RESPONSE: a client stream's (its queued requests are dropped: the server may
   * answer before our END), trailers before the value. Returns where the value starts, or -1 when the
   * frame broke the protocol (the call failed, and the connection is failing).
   */
  private trailersOf(call: ClientCall, flags: number, body: Buffer): number {
    const kind = call.msg.stream;
    if (kind !== undefined) {
      this.framed.discard(call.id);
      if (kind !== 'client') {
        const e = protocolError(`RESPONSE for request id ${call.id}, a ${kind} stream`);
        call.reject(e);
        this.framed.fail(e);
        return -1;
      }
    }
    if ((flags & Flag.METADATA) === 0) return 0;
    const trailers = this.streams.responseTrailers(body);
    if (trailers === undefined) {
      call.reject(protocolError(`malformed RESPONSE trailers for request id ${call.id}`));
      return -1;
    }
    call.ext?.gotTrailers(trailers.value);
    return trailers.end;
  }

  /** An ERROR for a call (`id` not 0). */
  onError(flags: number, id: number, body: Buffer): void {
    const call = this.calls.take(id);
    if (call === undefined) return this.stray(id, true);
    const error = readRemoteError(flags, body, call.msg, this.codec.responses[call.msg.index]);
    if (call.info !== undefined) call.info.responseBytes = body.length;
    call.conn = null;
    // An ERROR's metadata carries the trailers (SPEC.md section 13).
    if (call.ext !== undefined) call.ext.gotTrailers(error.metadata);
    // A refusal may come while the request is still going out in fragments: stop sending it.
    this.framed.discard(id);
    if (error.code === Code.UNAVAILABLE || error.code === Code.INTERNAL) this.health.failed();
    else this.health.erred(call.msg.index, this.framed.clock.now() - call.sentAt);
    call.avoidEndpoint = this.health.key;
    const refused = (flags & Flag.REFUSED) !== 0;
    // Only a REFUSED error says no handler ran: a handler may throw UNAVAILABLE itself (a downstream
    // outage) after side effects, so any other UNAVAILABLE may have run.
    if (error.code === Code.UNAVAILABLE) call.owner.attemptFailed(call, error, !refused);
    // Our credentials expired on this connection (SPEC.md section 11.2) as the call crossed the server's
    // GOAWAY: it did not run, and a new connection authenticates afresh (or is refused UNAUTHENTICATED).
    else if (error.code === Code.UNAUTHENTICATED && refused) {
      call.owner.attemptFailed(
        call,
        new RpcError(Code.UNAVAILABLE, `${error.message}: the call did not run`, { cause: error, isRemote: true }),
        false,
      );
    } else call.reject(error, !refused);
  }

  /** A response refused before decoding (too large, does not inflate): the call fails, the server stops. */
  onRefused(id: number, error: RpcError): void {
    const call = this.calls.take(id);
    if (call === undefined) return;
    call.conn = null;
    this.framed.discard(id);
    this.framed.signal(FrameType.CANCEL, id);
    // The rest of the refused answer may still come (its fragments): dropped as those of a cancelled call.
    this.cancelled.add(id, call.msg.stream !== undefined);
    this.sendBarrier();
    call.reject(error);
  }

  /**
   * Whether a fragment, compressed or oversized answer for `id` may be reassembled or inflated: only
   * for a call in flight here. Else {@link stray} drops it or fails the connection, before any buffer
   * is allocated for it or any byte inflated.
   */
  admits(type: number, flags: number, id: number): boolean {
    if (this.calls.has(id)) return true;
    // A DATA never ends its stream, even whole; nor does the last fragment of any message of a stream.
    this.stray(id, type !== FrameType.DATA && (flags & Flag.MORE) === 0 && !this.cancelled.isStream(id));
    return false;
  }

  /** A response the session cannot take (see {@link onRefused}); for {@link StreamFrames}. */
  refuse(id: number, error: RpcError): void {
    this.onRefused(id, error);
  }

  /** A PONG: the next barrier PING goes, if cancelled ids wait for one. */
  onPong(id: number): void {
    const next = this.cancelled.pong(id);
    if (next < 0 || this.framed.isClosed) return;
    this.framed.signal(FrameType.PING, next);
  }

  /** The connection closed: one-way calls waiting for their write are settled with the rest. */
  closed(): void {
    this.unwritten = [];
  }

  /**
   * An answer frame (`last`: it ends its message) for an id with no call here. Dropped unread if we
   * cancelled that id and its answer has not ended yet (it crossed our CANCEL); otherwise the server
   * answered an id we never sent, or one already answered: a protocol error (SPEC.md section 4).
   */
  stray(id: number, last: boolean): void {
    if (this.cancelled.expects(id)) {
      if (last) this.cancelled.ended(id);
      return;
    }
    this.framed.fail(protocolError(`server sent an answer for request id ${id}, which is not in flight on this connection`));
  }

  /** Sends a barrier PING when cancelled ids wait for one (see `CancelledIds`). */
  private sendBarrier(): void {
    const ping = this.cancelled.barrier();
    if (ping >= 0) this.framed.signal(FrameType.PING, ping);
  }
}

/** A fence that passes once both `a` and `b` have written what they were given. */
function bothWritten(a: WriteFence, b: WriteFence): WriteFence {
  return { afterWrites: (cb) => a.afterWrites(() => b.afterWrites(cb)) };
}

/** An attempt went out: the observer's view of the call is where and how large. */
function observeSent(info: CallInfo, endpoint: string, requestBytes: number): void {
  info.peer = endpoint;
  info.requestBytes = requestBytes;
  // Every attempt sent counts: retries, and a hedged call's attempts (each a ClientCall of its own).
  info.attempts++;
}
