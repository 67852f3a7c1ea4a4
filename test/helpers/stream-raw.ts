/**
 * Test helper: the frames of streams (SPEC.md section 13) a raw client peer sends, and a peer that
 * offers streams in its handshake, for tests that drive a real server frame by frame.
 */
import * as assert from 'uvu/assert';
import type { Protocol, RpcError } from '../../src/index.js';
import { writeCredit } from '../../src/framing/bodies.js';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';
import { STREAMS_META_KEY } from '../../src/framing/extensions.js';
import { FrameType } from '../../src/framing/frame.js';
import { RawPeer, type RawFrame } from './raw-peer.js';

/** A connected raw peer whose HELLO offered streams with window `s` (none when `s` is 0). */
export async function streamPeer(port: number, protocol: Protocol, s = 4): Promise<RawPeer> {
  const peer = await RawPeer.connect(port);
  const meta: Record<string, Buffer> = {};
  if (s > 0) {
    const window = Buffer.alloc(4);
    window.writeUInt32BE(s);
    meta[STREAMS_META_KEY] = window;
  }
  const welcome = await peer.handshake(protocol, meta);
  assert.is(welcome.type, FrameType.WELCOME);
  return peer;
}

/** One frame's bytes. */
export function frameBytes<T>(type: number, flags: number, id: number, value: T, write: (v: T, b: Buffer, p: number) => number): Buffer {
  const enc = new FrameEncoder();
  enc.frame(type, flags, id, value, write);
  return Buffer.concat(enc.take());
}

const nothing = (_v: undefined, _b: Buffer, p: number): number => p;

/** A frame with an empty body: END, CANCEL, PING. */
export const emptyFrame = (type: number, id: number): Buffer => frameBytes(type, 0, id, undefined, nothing);

/** CREDIT `n` for stream `id`. */
export const creditFrame = (id: number, n: number): Buffer => frameBytes(FrameType.CREDIT, 0, id, n, writeCredit);

/** The REQUEST of a client or bidi stream: the head only (u16 index, no deadline, no metadata). */
export const headFrame = (protocol: Protocol, id: number, message: string): Buffer =>
  frameBytes(FrameType.REQUEST, 0, id, protocol.message(message)!.index, (i, b, p) => (b.writeUInt16BE(i, p), p + 2));

/** Frames until (and without) the PONG of a PING sent now: what the server had sent before it read the PING. */
export async function untilPong(peer: RawPeer, pingId = 0x77): Promise<RawFrame[]> {
  peer.socket.write(emptyFrame(FrameType.PING, pingId));
  const frames: RawFrame[] = [];
  for (;;) {
    const f = await peer.frame();
    if (f.type === FrameType.PONG && f.id === pingId) return frames;
    frames.push(f);
  }
}

/** Every element of a stream, then the error that ended it (undefined when it ended well). */
export async function collect<T>(it: AsyncIterable<T>): Promise<{ items: T[]; error: RpcError | undefined }> {
  const items: T[] = [];
  try {
    for await (const x of it) items.push(x);
  } catch (err) {
    return { items, error: err as RpcError };
  }
  return { items, error: undefined };
}
