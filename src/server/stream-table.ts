import { IdMap } from '../connection/id-map.js';
import { Code } from '../errors/code.js';
import { protocolError } from '../errors/protocol-error.js';
import { RpcError } from '../errors/rpc-error.js';
import { readCredit } from '../framing/bodies.js';
import { FrameType } from '../framing/frame.js';
import type { ServerStream } from './server-stream.js';

/**
 * The streams of one session (SPEC.md section 13): by id, for the client's DATA, END and CREDIT,
 * while they run; and how many hold a slot of `maxConcurrentStreams`, which a cancelled stream keeps
 * until its handler has ended.
 */
export class StreamTable {
  private readonly byId = new IdMap<ServerStream>();
  private held = 0;

  /** Streams whose handlers still run, cancelled ones included. */
  get count(): number {
    return this.held;
  }

  /** The running stream with this id, if any. */
  get(id: number): ServerStream | undefined {
    return this.byId.get(id);
  }

  /** A stream was admitted. */
  add(stream: ServerStream): void {
    this.byId.set(stream.id, stream);
    this.held++;
  }

  /** The stream's call is over (its handler ended, or never ran): no more frames, its slot is free. Once. */
  end(stream: ServerStream): void {
    if (stream.released) return;
    stream.released = true;
    this.forget(stream);
    this.held--;
    void stream.close(undefined);
  }

  /** The stream was cancelled (`code`, CANCELLED if OK): no more frames; its producer closes, then its call ends. */
  abort(stream: ServerStream, code: Code): void {
    this.forget(stream);
    void stream.close(new RpcError(code === Code.OK ? Code.CANCELLED : code, 'stream cancelled'));
  }

  /** The connection closed: every running stream is closed with `reason`. */
  closeAll(reason: RpcError): void {
    for (const stream of this.byId.values()) void stream.close(reason);
    this.byId.clear();
  }

  private forget(stream: ServerStream): void {
    if (this.byId.get(stream.id) === stream) this.byId.delete(stream.id);
  }
}

/**
 * Hands a client's DATA, END or CREDIT frame to its stream; one for an id that is no longer a
 * running stream crossed the answer or the cancel and is ignored. Returns the protocol error to fail
 * the connection with, for a body no frame of the type can have.
 */
export function routeStreamFrame(stream: ServerStream | undefined, type: number, body: Buffer): RpcError | undefined {
  if (type === FrameType.CREDIT) {
    let n: number;
    try {
      n = readCredit(body);
    } catch (err) {
      return protocolError((err as Error).message);
    }
    stream?.onCredit(n);
    return undefined;
  }
  if (type === FrameType.END) {
    if (body.length !== 0) return protocolError(`END from a client with a ${body.length}-byte body`);
    stream?.onEnd();
    return undefined;
  }
  stream?.onData(body);
  return undefined;
}
