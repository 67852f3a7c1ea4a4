/**
 * Fakes for the server's unit tests: a writer that records what a handshake or a session writes
 * instead of framing it onto a socket, and the shared state of a server without one.
 */
import type { Protocol } from '../../src/index.js';
import { ResolverCache } from '../../src/codec/resolver-cache.js';
import type { DiscardResult } from '../../src/connection/framed-socket.js';
import { ReadClock } from '../../src/connection/read-clock.js';
import type { RpcError } from '../../src/errors/rpc-error.js';
import type { ExtensionSupport } from '../../src/framing/extensions.js';
import type { BodyWriter } from '../../src/framing/frame-encoder.js';
import { readErrorHead } from '../../src/framing/bodies.js';
import { Readiness } from '../../src/server/readiness.js';
import { MemoryBudget } from '../../src/server/memory-budget.js';
import { resolveServerOptions, type ServerOptions } from '../../src/server/server-options.js';
import type { ServerShared } from '../../src/server/server-shared.js';

/** One frame a fake writer was asked to write, its body encoded as the real writer would. */
export interface WrittenFrame {
  type: number;
  flags: number;
  id: number;
  value: unknown;
  body: Buffer;
}

/** Records frames, failures, ends and frame limits; satisfies the writers of handshake and session. */
export class FakeWriter {
  readonly frames: WrittenFrame[] = [];
  readonly limits: Array<[number, string]> = [];
  readonly discarded: number[] = [];
  failed: RpcError | undefined;
  ended: { error: RpcError | undefined } | undefined;
  isClosed = false;
  /** The real clock: outside a socket read it reads afresh each time. */
  readonly clock = new ReadClock();
  /** What `queuedBytes` reports: set it to hold a stream's producer. */
  queuedBytes = 0;
  /** Body length of the last frame written (what observers report as a response's size). */
  get lastBodyLength(): number {
    return this.frames.at(-1)?.body.length ?? 0;
  }
  /** Callbacks waiting for `afterWrites`; `written()` runs them. */
  readonly waitingWrites: Array<() => void> = [];
  support: ExtensionSupport = { maxPartialMessages: 0, windowBytes: 0, compression: false, streamWindow: 0 };

  frame<T>(type: number, flags: number, id: number, value: T, write: BodyWriter<T>): void {
    const buf = Buffer.alloc(1 << 20);
    this.frames.push({ type, flags, id, value, body: buf.subarray(0, write(value, buf, 0)) });
  }

  message<T>(type: number, flags: number, id: number, value: T, write: BodyWriter<T>): boolean {
    this.frame(type, flags, id, value, write);
    return false;
  }

  messageBytes(type: number, flags: number, id: number, body: Buffer): void {
    this.frames.push({ type, flags, id, value: body, body });
  }

  afterWrites(cb: () => void): void {
    this.waitingWrites.push(cb);
  }

  /** The socket wrote everything: `afterWrites` callbacks run. */
  written(): void {
    this.queuedBytes = 0;
    for (const cb of this.waitingWrites.splice(0)) cb();
  }

  discard(id: number): DiscardResult {
    this.discarded.push(id);
    return 'none';
  }

  fail(error: RpcError): void {
    this.failed ??= error;
    this.isClosed = true;
  }

  end(error?: RpcError): void {
    this.ended ??= { error };
    this.isClosed = true;
  }

  limitFrames(maxFrameBytes: number, limitName: string): void {
    this.limits.push([maxFrameBytes, limitName]);
  }

  /** The ERROR frames written: id, code, message, flags. */
  errors(): Array<{ id: number; code: number; message: string; flags: number }> {
    return this.frames.filter((f) => f.type === 0x05).map((f) => ({ id: f.id, flags: f.flags, ...pick(readErrorHead(f.flags, f.body)) }));
  }
}

function pick(head: { code: number; message: string }): { code: number; message: string } {
  return { code: head.code, message: head.message };
}

/** What a server's connections share, built as `createServer` does, with `options` for `protocol`. */
export function fakeShared(protocol: Protocol, options: Partial<ServerOptions> = {}): ServerShared {
  const resolved = resolveServerOptions({ protocol, handlers: {}, ...options });
  return {
    options: resolved,
    cache: new ResolverCache(resolved.protocol, resolved.resolverCacheSize, resolved.resolverCacheBytes),
    writers: resolved.protocol.messages.map((m) => (v: unknown, buf: Buffer, pos: number) => m.response.encode(v ?? null, buf, pos)),
    budget: new MemoryBudget(resolved.maxBufferedBytes),
    readiness: new Readiness(),
  };
}
