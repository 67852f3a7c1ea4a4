import type { PeerCodec } from '../codec/peer-codec.js';
import type { FramedSocket } from '../connection/framed-socket.js';
import { decodeExact } from '../connection/payload.js';
import { Code } from '../errors/code.js';
import { protocolError } from '../errors/protocol-error.js';
import { RpcError } from '../errors/rpc-error.js';
import { NO_METADATA, readCredit, readMetadata, writeCredit, type Metadata } from '../framing/bodies.js';
import type { BodyWriter } from '../framing/frame-encoder.js';
import { Flag, FrameType } from '../framing/frame.js';
import type { CallTable, ClientCall } from './call-table.js';
import type { ClientStream, StreamWire } from './client-stream.js';

/** What {@link StreamFrames} needs of its session. */
export interface StreamFramesHost {
  /** A frame for an id not in flight (`last`: it ends its message): dropped if we cancelled it, else a protocol error. */
  stray(id: number, last: boolean): void;
  /** Fails a call in flight whose answer we cannot take: CANCEL to the server, the call rejects with `error`. */
  refuse(id: number, error: RpcError): void;
}

/** An empty body: our half-close END. */
const writeNothing: BodyWriter<null> = (_value, _buf, pos) => pos;

/**
 * The stream frames of one client session (SPEC.md section 13): writes DATA, END and CREDIT for its
 * streams, and takes the server's HEADERS, DATA, END and CREDIT, checking each against the call it
 * names (its kind, our window) before the stream sees it. Any frame that breaks the protocol fails
 * the connection.
 */
export class StreamFrames implements StreamWire {
  constructor(
    private readonly framed: FramedSocket,
    private readonly calls: CallTable,
    private readonly codec: PeerCodec,
    private readonly host: StreamFramesHost,
    /** The server's `S` (0: streams, headers and trailers are off on this connection). */
    readonly peerWindow: number,
  ) {}

  data(id: number, value: object, write: BodyWriter<object>): void {
    // framed.message, not frame: a large element goes in fragments like a REQUEST.
    this.framed.message(FrameType.DATA, 0, id, value, write);
  }

  end(id: number): void {
    if (!this.framed.isClosed) this.framed.frame(FrameType.END, 0, id, null, writeNothing);
  }

  credit(id: number, n: number): void {
    if (!this.framed.isClosed) this.framed.frame(FrameType.CREDIT, 0, id, n, writeCredit);
  }

  /** HEADERS: for any call kind, before its first answer frame. */
  onHeaders(id: number, body: Buffer): void {
    const call = this.calls.get(id);
    if (call === undefined) return this.host.stray(id, false);
    const headers = this.metadata(body, 0, 'HEADERS');
    if (headers === undefined) return;
    if (headers.end !== body.length) return this.framed.fail(protocolError(`HEADERS for request id ${id} has trailing bytes`));
    call.ext?.gotHeaders(headers.value);
  }

  /** DATA: one response element of a server or bidi stream, within the window we advertised. */
  onData(_flags: number, id: number, body: Buffer): void {
    const call = this.calls.get(id);
    if (call === undefined) return this.host.stray(id, false);
    const stream = this.stream(call, 'DATA', false);
    if (stream === undefined) return;
    if (stream.outstanding >= stream.window) {
      return this.framed.fail(
        new RpcError(
          Code.RESOURCE_EXHAUSTED,
          `protocol error: DATA for request id ${id} beyond the ${stream.window} elements of our window`,
        ),
      );
    }
    let value: unknown;
    try {
      value = decodeExact(call.msg.response, body, 0, this.codec.responses[call.msg.index]!.response);
    } catch (err) {
      return this.host.refuse(
        id,
        new RpcError(Code.INTERNAL, `cannot decode stream element of ${call.msg.name}: ${(err as Error).message}`, { cause: err }),
      );
    }
    stream.received(value, body.length);
  }

  /** END from the server: a server or bidi stream ended OK, with trailers when flagged METADATA. Frees the id. */
  onEnd(flags: number, id: number, body: Buffer): void {
    const call = this.calls.get(id);
    if (call === undefined) return this.host.stray(id, true);
    const stream = this.stream(call, 'END', false);
    if (stream === undefined) return;
    let trailers: Metadata = NO_METADATA;
    if ((flags & Flag.METADATA) !== 0) {
      const t = this.metadata(body, 0, 'END');
      if (t === undefined) return;
      trailers = t.value;
    }
    this.calls.take(id);
    call.conn = null;
    // Requests still queued for a server that stopped reading are dropped (SPEC.md section 13).
    this.framed.discard(id);
    stream.gotTrailers(trailers);
    if (call.info !== undefined) call.info.responseBytes = body.length;
    call.resolve(undefined);
  }

  /** CREDIT: the server takes `n` more request elements of a client or bidi stream. */
  onCredit(id: number, body: Buffer): void {
    const call = this.calls.get(id);
    if (call === undefined) return this.host.stray(id, false);
    const stream = this.stream(call, 'CREDIT', true);
    if (stream === undefined) return;
    let n: number;
    try {
      n = readCredit(body);
    } catch (err) {
      return this.framed.fail(protocolError(`for request id ${id}: ${(err as Error).message}`));
    }
    stream.granted(n);
  }

  /**
   * The trailers before a RESPONSE's value (flag METADATA) and where the value starts, or `undefined`
   * when the frame broke the protocol (the connection is failing).
   */
  responseTrailers(body: Buffer): { value: Metadata; end: number } | undefined {
    return this.metadata(body, 0, 'RESPONSE');
  }

  /** The stream state of `call` when a frame `what` fits its kind (`requests`: the frame is about our requests); else fails the connection. */
  private stream(call: ClientCall, what: string, requests: boolean): ClientStream | undefined {
    const kind = call.msg.stream;
    const fits = kind === 'bidi' || (requests ? kind === 'client' : kind === 'server');
    if (fits) return call.ext as ClientStream;
    this.framed.fail(protocolError(`${what} for request id ${call.id}, a ${kind === undefined ? 'unary call' : `${kind} stream`}`));
    return undefined;
  }

  private metadata(body: Buffer, pos: number, what: string): { value: Metadata; end: number } | undefined {
    if (this.peerWindow === 0) {
      this.framed.fail(protocolError(`${what} frame on a connection that did not negotiate streams`));
      return undefined;
    }
    try {
      const r = readMetadata(body, pos, body.length);
      if (r !== undefined) return r;
    } catch {
      // Reported below.
    }
    this.framed.fail(protocolError(`malformed metadata map in ${what}`));
    return undefined;
  }
}
