/**
 * Test helper: a raw avrpc server on 127.0.0.1:0 that negotiates streams (`avrpc.streams` in its
 * WELCOME) and lets the test answer each frame by hand: HEADERS, DATA, END, CREDIT, RESPONSE with
 * trailers, ERROR. For the client's stream tests before (and beside) a real server: what the client
 * sends is recorded frame by frame, and the server does exactly what the test says.
 */
import type { Socket } from 'node:net';
import type { Protocol } from '../../src/codec/protocol.js';
import { loadProtocol } from '../../src/index.js';
import {
  errorFlags,
  readRequestHead,
  writeCredit,
  writeError,
  writeGoaway,
  writeMetadata,
  writeTrailed,
  type Metadata,
} from '../../src/framing/bodies.js';
import { STREAMS_META_KEY } from '../../src/framing/extensions.js';
import { FrameDecoder } from '../../src/framing/frame-decoder.js';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';
import { Flag, FrameType } from '../../src/framing/frame.js';
import { welcomeType, writeHandshake } from '../../src/framing/handshake.js';
import { rawServer, type RawServer } from '../helpers/echo-fixture.js';
import { repoPath } from '../helpers/repo.js';

/** protocol/stream.avdl. */
export function loadStream(): Promise<Protocol> {
  return loadProtocol(repoPath('protocol', 'stream.avdl'));
}

/** A Stream Item. */
export function streamItem(i: number): { id: number; name: string; tags: string[]; score: number; blob: Buffer } {
  return { id: i, name: `item-${i}`, tags: [], score: i, blob: Buffer.alloc(1, i & 0xff) };
}

/** One frame the client sent. */
export interface SentFrame {
  type: number;
  flags: number;
  id: number;
  body: Buffer;
}

/** One accepted connection of a {@link StreamPeer}: what the client sent, and ways to answer. */
export class PeerConn {
  readonly frames: SentFrame[] = [];
  constructor(
    readonly socket: Socket,
    private readonly protocol: Protocol,
  ) {}

  private write<T>(type: number, flags: number, id: number, value: T, w: (v: T, b: Buffer, p: number) => number): void {
    const enc = new FrameEncoder();
    enc.frame(type, flags, id, value, w);
    if (!this.socket.destroyed) this.socket.write(Buffer.concat(enc.take()));
  }

  /** Frames of `type` (and `id`, if given) the client sent so far. */
  of(type: number, id?: number): SentFrame[] {
    return this.frames.filter((f) => f.type === type && (id === undefined || f.id === id));
  }

  /** The message name of a REQUEST. */
  messageOf(f: SentFrame): string {
    return this.protocol.messages[readRequestHead(f.flags, f.body).index]!.name;
  }

  headers(id: number, headers: Metadata): void {
    this.write(FrameType.HEADERS, 0, id, headers, writeMetadata);
  }

  /** DATA: one response element of `message`. */
  data(id: number, message: string, value: unknown): void {
    const type = this.protocol.message(message)!.response;
    this.write(FrameType.DATA, 0, id, value, (v, b, p) => type.encode(v, b, p));
  }

  /** A raw DATA body (malformed on purpose). */
  dataBytes(id: number, body: Buffer): void {
    this.write(FrameType.DATA, 0, id, body, (v, b, p) => (p + v.length > b.length ? -64 : p + v.copy(b, p)));
  }

  end(id: number, trailers?: Metadata): void {
    if (trailers === undefined) this.write(FrameType.END, 0, id, null, (_v, _b, p) => p);
    else this.write(FrameType.END, Flag.METADATA, id, trailers, writeMetadata);
  }

  credit(id: number, n: number): void {
    this.write(FrameType.CREDIT, 0, id, n, writeCredit);
  }

  response(id: number, message: string, value: unknown, trailers?: Metadata): void {
    const type = this.protocol.message(message)!.response;
    this.write(FrameType.RESPONSE, trailers === undefined ? 0 : Flag.METADATA, id, { trailers, type, value }, writeTrailed);
  }

  /** ERROR `code`, with metadata and a declared StreamError when given. */
  error(id: number, message: string, code: number, text: string, metadata?: Metadata, declared?: unknown, refused = false): void {
    const msg = this.protocol.message(message)!;
    const d = { code, message: text, metadata, declared: declared === undefined ? undefined : { type: msg.errors, value: declared } };
    this.write(FrameType.ERROR, errorFlags(d) | (refused ? Flag.REFUSED : 0), id, d, writeError);
  }

  goaway(lastId: number): void {
    this.write(FrameType.GOAWAY, 0, 0, { lastId, code: 0, message: 'bye' }, writeGoaway);
  }
}

/** The raw server and its connections. */
export interface StreamPeer {
  readonly raw: RawServer;
  readonly endpoint: string;
  readonly conns: PeerConn[];
  close(): Promise<void>;
}

/** Options of {@link streamPeer}. */
export interface StreamPeerOptions {
  /** The `S` in the WELCOME; 0 leaves streams out of it. Default 4. */
  window?: number;
  /** Called for each frame after the handshake (PINGs are answered here). */
  onFrame?: (conn: PeerConn, f: SentFrame) => void;
}

/** Starts a stream peer for protocol/stream.avdl clients. */
export async function streamPeer(protocol: Protocol, options: StreamPeerOptions = {}): Promise<StreamPeer> {
  const window = options.window ?? 4;
  const conns: PeerConn[] = [];
  const raw = await rawServer((socket) => {
    const conn = new PeerConn(socket, protocol);
    conns.push(conn);
    const decoder = new FrameDecoder({ maxFrameBytes: 64 * 1024 * 1024, expectPreface: true }, (type, flags, id, body) => {
      if (type === FrameType.HELLO) {
        const meta: Record<string, Buffer> = {};
        if (window > 0) {
          meta[STREAMS_META_KEY] = Buffer.alloc(4);
          meta[STREAMS_META_KEY].writeUInt32BE(window, 0);
        }
        const enc = new FrameEncoder();
        const welcome = { status: 'OK' as const, fingerprint: protocol.fingerprint, protocol: protocol.text, meta };
        enc.frame(FrameType.WELCOME, 0, 0, welcome, writeHandshake(welcomeType));
        socket.write(Buffer.concat(enc.take()));
        return;
      }
      if (type === FrameType.PING) {
        const pong = Buffer.alloc(10);
        pong[4] = FrameType.PONG;
        pong.writeUInt32BE(id, 6);
        socket.write(pong);
        return;
      }
      const f = { type, flags, id, body: Buffer.from(body) };
      conn.frames.push(f);
      options.onFrame?.(conn, f);
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch {
        socket.destroy();
      }
    });
  });
  return { raw, endpoint: raw.endpoint, conns, close: () => raw.close() };
}
