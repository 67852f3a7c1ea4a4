/**
 * Test helper: a hand-driven avrpc client on a raw socket, for tests that must send what a real
 * client never would (no reads, oversized frames, requests before the handshake...).
 */
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import type { Protocol } from '../../src/index.js';
import { readErrorHead, readGoaway, writeRequest, requestFlags, type Metadata } from '../../src/framing/bodies.js';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';
import { FrameType, PREFACE } from '../../src/framing/frame.js';
import { helloType, writeHandshake } from '../../src/framing/handshake.js';
import { SocketReader } from './socket-reader.js';

/** One decoded frame. */
export interface RawFrame {
  type: number;
  flags: number;
  id: number;
  body: Buffer;
}

/** Preface and HELLO (protocol text included, so any server knows it) with `meta`. */
export function helloBytes(protocol: Protocol, meta: Record<string, Buffer> = {}): Buffer {
  const enc = new FrameEncoder();
  enc.bytes(PREFACE);
  enc.frame(
    FrameType.HELLO,
    0,
    0,
    { fingerprint: protocol.fingerprint, protocol: protocol.text, knownServerFingerprint: null, meta },
    writeHandshake(helloType),
  );
  return Buffer.concat(enc.take());
}

/** One REQUEST frame for `message` of `protocol`. */
export function requestBytes(
  protocol: Protocol,
  id: number,
  message: string,
  request: unknown,
  metadata?: Metadata,
  timeoutMs = -1,
): Buffer {
  const msg = protocol.message(message);
  if (msg === undefined) throw new Error(`no message ${message}`);
  const enc = new FrameEncoder();
  const draft = { index: msg.index, timeoutMs, metadata, type: msg.request, value: request };
  enc.frame(FrameType.REQUEST, requestFlags(draft), id, draft, writeRequest);
  return Buffer.concat(enc.take());
}

/** A raw socket with a frame reader. */
export class RawPeer {
  readonly reader: SocketReader;
  /** Resolves once the socket is closed, whoever closed it. */
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    this.reader = new SocketReader(socket);
    socket.on('error', () => {});
    this.closed = once(socket, 'close').then(() => undefined);
  }

  /** Connects to 127.0.0.1:`port`. */
  static async connect(port: number): Promise<RawPeer> {
    const socket = connect({ host: '127.0.0.1', port });
    await once(socket, 'connect');
    return new RawPeer(socket);
  }

  /** Sends preface and HELLO and returns the WELCOME (or whatever the server answered). */
  async handshake(protocol: Protocol, meta: Record<string, Buffer> = {}): Promise<RawFrame> {
    this.socket.write(helloBytes(protocol, meta));
    return this.frame();
  }

  /** Reads one frame. Rejects if the socket closes first. */
  async frame(timeoutMs = 10_000): Promise<RawFrame> {
    const f = await this.reader.frame(timeoutMs);
    return { type: f[4]!, flags: f[5]!, id: f.readUInt32BE(6), body: f.subarray(10) };
  }

  /** Reads frames until the socket closes; returns them. */
  async rest(timeoutMs = 10_000): Promise<RawFrame[]> {
    const frames: RawFrame[] = [];
    for (;;) {
      try {
        frames.push(await this.frame(timeoutMs));
      } catch (err) {
        if (/socket closed/.test((err as Error).message)) return frames;
        throw err;
      }
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** The code of an ERROR or GOAWAY frame. */
export function frameCode(f: RawFrame): number {
  if (f.type === FrameType.ERROR) return readErrorHead(f.flags, f.body).code;
  if (f.type === FrameType.GOAWAY) return readGoaway(f.body).code;
  throw new Error(`frame type ${f.type} carries no code`);
}

/** The message of an ERROR or GOAWAY frame. */
export function frameMessage(f: RawFrame): string {
  if (f.type === FrameType.ERROR) return readErrorHead(f.flags, f.body).message;
  if (f.type === FrameType.GOAWAY) return readGoaway(f.body).message;
  throw new Error(`frame type ${f.type} carries no message`);
}

/** Polls `predicate` until true; rejects after `timeoutMs` (a hang guard, not a timing assertion). */
export async function until(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!predicate()) {
    if (Date.now() - started > timeoutMs) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
