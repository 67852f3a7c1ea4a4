/**
 * Test helper: a hand-driven client socket that speaks the wire protocol byte by byte, for tests that
 * need frames the real client never sends (no CANCEL after a deadline, undecodable payloads, unknown
 * message indexes, chunked writes). The handshake replays the SPEC.md vector bytes.
 */
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import type { Protocol } from '../../src/index.js';
import { readErrorHead, requestFlags, writeRequest, type Metadata } from '../../src/framing/bodies.js';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';
import { Flag, FrameType } from '../../src/framing/frame.js';
import { SocketReader } from './socket-reader.js';
import { namedVectors, sameWelcomeButLimits } from './spec-vectors.js';

/** One frame as read from the socket. */
export interface RawFrame {
  type: number;
  flags: number;
  id: number;
  body: Buffer;
}

/** Builds the bytes of one REQUEST frame for `message` of `protocol`. */
export function requestFrame(
  protocol: Protocol,
  id: number,
  message: string,
  request: unknown,
  opts: { timeoutMs?: number; metadata?: Metadata; oneWay?: boolean } = {},
): Buffer {
  const msg = protocol.message(message);
  if (msg === undefined) throw new Error(`no message ${message}`);
  const draft = { index: msg.index, timeoutMs: opts.timeoutMs ?? -1, metadata: opts.metadata, type: msg.request, value: request };
  const enc = new FrameEncoder();
  enc.frame(FrameType.REQUEST, requestFlags(draft) | (opts.oneWay ? Flag.ONE_WAY : 0), id, draft, writeRequest);
  return Buffer.concat(enc.take());
}

/** Builds one frame from raw parts. */
export function rawFrame(type: number, flags: number, id: number, body: Buffer | null): Buffer {
  const enc = new FrameEncoder();
  enc.raw(type, flags, id, body);
  return Buffer.concat(enc.take());
}

/** The code and message of an ERROR frame. */
export function errorOf(frame: RawFrame): { code: number; message: string } {
  if (frame.type !== FrameType.ERROR) throw new Error(`expected ERROR, got frame type ${frame.type}`);
  const head = readErrorHead(frame.flags, frame.body);
  return { code: head.code, message: head.message };
}

/** A connected raw client that has completed the handshake for protocol/echo.avdl. */
export class RawClient {
  private constructor(
    readonly socket: Socket,
    private readonly reader: SocketReader,
  ) {}

  /** Connects to 127.0.0.1:`port`, sends the SPEC HELLO and checks the SPEC WELCOME comes back. */
  static async connect(port: number): Promise<RawClient> {
    const v = namedVectors();
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('error', () => socket.destroy());
    const reader = new SocketReader(socket);
    await once(socket, 'connect');
    const client = new RawClient(socket, reader);
    socket.write(v.hello);
    const welcome = await reader.frame();
    // The server's own limits may differ from the vector's defaults.
    if (!sameWelcomeButLimits(welcome, v.welcome)) throw new Error('unexpected WELCOME bytes');
    return client;
  }

  /** Writes bytes as they are. */
  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Reads the next frame. */
  async frame(timeoutMs = 5000): Promise<RawFrame> {
    const f = await this.reader.frame(timeoutMs);
    return { type: f[4]!, flags: f[5]!, id: f.readUInt32BE(6), body: f.subarray(10) };
  }

  /** Destroys the socket and waits for it to close. */
  async close(): Promise<void> {
    if (this.socket.closed) return;
    const closed = once(this.socket, 'close');
    this.socket.destroy();
    await closed;
  }
}
