/**
 * The tuned raw floor: the least a multiplexing echo over Node's `net` can cost. Frames are
 * `u32 length | u32 id | body`, with no codec, no handshake and no error handling; the body is the
 * Avro encoding of the benchmark Item, encoded once. What makes it a floor, not a strawman:
 * - every frame of one event-loop turn goes out in one `socket.write` (the server's at the end of the
 *   chunk it answers, the client's at the end of the turn that made the calls);
 * - frames are parsed in place in the chunk that carries them (a copy only for one that spans chunks);
 * - nothing is allocated per call but the caller's promise: callers wait in a ring indexed by id,
 *   frames are encoded into a reused arena.
 * `floorPeer(16)` is the same echo writing a turn's first 16 frames at once, as avrpc's
 * `earlyWriteFrames` does (bench/peers/floor-early.ts): the two processes then work at the same time.
 * With a codec (bench/peers/floor-codec.ts) it also encodes and decodes every call's Avro record.
 */
import { connect, createServer, type Socket } from 'node:net';
import { once } from 'node:events';
import avro from 'avsc';
import type { Peer, PeerClient, PeerServer } from './peer.js';
import { listenLoopback } from './support.js';
import { benchItem } from '../payload.js';

const HEADER = 8;
const ARENA_BYTES = 64 * 1024;
/** Callers in flight at most (ids wrap modulo this). */
const RING = 1 << 16;

/**
 * Frames into an arena and writes a whole batch at once; reuses the arena once the kernel took it.
 * With `earlyFrames` > 0 the turn's first that many frames are written as soon as they are framed.
 */
class Batch {
  private arena = Buffer.allocUnsafe(ARENA_BYTES);
  private start = 0;
  private pos = 0;
  private framesThisTurn = 0;

  constructor(
    private readonly socket: Socket,
    private readonly earlyFrames: number,
  ) {}

  /** Appends one frame whose body is `src[from, to)`. */
  frame(id: number, src: Buffer, from: number, to: number): void {
    const need = HEADER + to - from;
    if (this.pos + need > this.arena.length) {
      this.flush();
      // The old arena may still be queued in the socket: move to a fresh one.
      if (this.pos + need > this.arena.length) {
        this.arena = Buffer.allocUnsafe(Math.max(ARENA_BYTES, need));
        this.start = this.pos = 0;
      }
    }
    const a = this.arena;
    const p = this.pos;
    a.writeUInt32BE(to - from, p);
    a.writeUInt32BE(id, p + 4);
    src.copy(a, p + HEADER, from, to);
    this.pos = p + need;
    if (++this.framesThisTurn === this.earlyFrames) this.write();
  }

  /** Appends one frame whose body is `value` encoded with `type` (the codec floor). */
  encoded(id: number, type: avro.Type, value: unknown): void {
    let end = this.pos + HEADER <= this.arena.length ? type.encode(value, this.arena, this.pos + HEADER) : -1;
    if (end < 0) {
      // Did not fit: what is framed goes out, and the value is encoded again in a fresh arena large
      // enough (avsc reports the bytes it lacked as a negative end).
      this.flush();
      for (let size = ARENA_BYTES; end < 0; size = Math.max(size * 2, HEADER - end)) {
        this.arena = Buffer.allocUnsafe(size);
        this.start = this.pos = 0;
        end = type.encode(value, this.arena, HEADER);
      }
    }
    const a = this.arena;
    const p = this.pos;
    a.writeUInt32BE(end - p - HEADER, p);
    a.writeUInt32BE(id, p + 4);
    this.pos = end;
    if (++this.framesThisTurn === this.earlyFrames) this.write();
  }

  /** Writes everything framed since the last flush as one buffer; the turn is over. */
  flush(): void {
    this.framesThisTurn = 0;
    this.write();
  }

  private write(): void {
    if (this.pos === this.start) return;
    this.socket.write(this.arena.subarray(this.start, this.pos));
    // Written through at once (the usual case on loopback): the arena is free again.
    if (this.socket.writableLength === 0) this.start = this.pos = 0;
    else this.start = this.pos;
  }
}

/**
 * Splits a byte stream into frames, calling `onFrame(id, buf, from, to)` with the body's place in the
 * chunk itself; only a frame that spans chunks is copied, once, into a held buffer.
 */
class Reader {
  private held: Buffer | null = null;

  constructor(private readonly onFrame: (id: number, buf: Buffer, from: number, to: number) => void) {}

  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.held !== null) {
      // Rare: a frame spanned chunks. Joined once, then parsed as one chunk.
      buf = Buffer.concat([this.held, chunk]);
      this.held = null;
    }
    const len = buf.length;
    let pos = 0;
    while (len - pos >= HEADER) {
      const bodyLen = buf.readUInt32BE(pos);
      const end = pos + HEADER + bodyLen;
      if (end > len) break;
      this.onFrame(buf.readUInt32BE(pos + 4), buf, pos + HEADER, end);
      pos = end;
    }
    if (pos < len) this.held = Buffer.from(buf.subarray(pos));
  }
}

/** The echo message's request and response types, for the codec floor (floor-codec.ts): each side encodes and decodes every call. */
export interface FloorCodec {
  request: avro.Type;
  response: avro.Type;
}

function decodeExact(type: avro.Type, buf: Buffer, from: number, to: number): unknown {
  const r = type.decode(buf.subarray(from, to), 0);
  if (r.offset !== to - from) throw new Error('malformed body');
  return r.value;
}

async function startServer(earlyFrames: number, delayMs: number, codec?: FloorCodec): Promise<PeerServer> {
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    const out = new Batch(socket, earlyFrames);
    // The answer to one request: its bytes back, or (codec floor) its item decoded and encoded again.
    const answer: (id: number, buf: Buffer, from: number, to: number) => void =
      codec === undefined
        ? (id, buf, from, to) => out.frame(id, buf, from, to)
        : (id, buf, from, to) => out.encoded(id, codec.response, (decodeExact(codec.request, buf, from, to) as { item: unknown }).item);
    const reader = new Reader(
      delayMs > 0
        ? (id, buf, from, to) => {
            const body = Buffer.from(buf.subarray(from, to));
            setTimeout(() => {
              answer(id, body, 0, body.length);
              out.flush();
            }, delayMs);
          }
        : answer,
    );
    socket.on('data', (chunk: Buffer) => {
      reader.push(chunk);
      // One write for every answer to this chunk.
      out.flush();
    });
    socket.on('error', () => socket.destroy());
  });
  // Its connections end when the client process exits.
  return listenLoopback(server);
}

async function connectClient(earlyFrames: number, port: number, codec?: FloorCodec): Promise<PeerClient> {
  const body = avro.Type.forValue(benchItem).toBuffer(benchItem);
  const request = { item: benchItem };
  const socket = connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await once(socket, 'connect');
  const waiting: (((n: unknown) => void) | undefined)[] = new Array(RING).fill(undefined);
  const out = new Batch(socket, earlyFrames);
  let nextId = 0;
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    out.flush();
  };
  socket.on(
    'data',
    (
      (reader) => (chunk: Buffer) =>
        reader.push(chunk)
    )(
      new Reader((id, buf, from, to) => {
        const slot = id & (RING - 1);
        const resolve = waiting[slot];
        if (resolve === undefined) return;
        waiting[slot] = undefined;
        resolve(codec === undefined ? to - from : decodeExact(codec.response, buf, from, to));
      }),
    ),
  );
  socket.on('error', () => socket.destroy());
  // One executor for every call (no closure per call): it parks the resolver at the id being sent.
  let slot = 0;
  const park = (resolve: (n: unknown) => void) => {
    waiting[slot] = resolve;
  };
  return {
    call() {
      const id = (nextId = (nextId + 1) >>> 0);
      slot = id & (RING - 1);
      if (waiting[slot] !== undefined) return Promise.reject(new Error(`more than ${RING} calls in flight`));
      const answer = new Promise<unknown>(park);
      if (codec === undefined) out.frame(id, body, 0, body.length);
      else out.encoded(id, codec.request, request);
      if (!scheduled) {
        scheduled = true;
        // After the callers of this turn have all called: one write for all of them.
        process.nextTick(flush);
      }
      return answer;
    },
    close() {
      socket.destroy();
    },
  };
}

/**
 * The tuned raw floor as a benchmark peer; `earlyFrames` > 0: a turn's first that many frames are
 * written at once, the rest at the turn's end.
 */
export function floorPeer(earlyFrames: number, codec?: () => Promise<FloorCodec>): Peer {
  const early = earlyFrames > 0;
  const writes = `the first ${earlyFrames} frames of a turn are written at once (as avrpc's earlyWriteFrames does), the rest at the turn's end`;
  return {
    id: codec !== undefined ? 'floor-codec' : early ? 'floor-early' : 'floor',
    label: codec !== undefined ? 'raw floor + Avro codec' : early ? 'raw floor, early writes' : 'raw floor (tuned)',
    description:
      codec !== undefined
        ? `The raw floor with early writes (${writes}) that also encodes every request and response with avrpc's Avro codec (avsc with avrpc's string and bytes types) and decodes them into objects: what the codec alone adds to the floor, with no call table, deadlines, metadata or error handling. No target is set against it.`
        : early
          ? `The tuned raw floor, except that ${writes}: the two processes work at the same time instead of taking turns. No target is set against it.`
          : 'Raw length-prefixed echo over node:net with id multiplexing, no codec and no handshake: the writes of one event-loop turn batched into one socket.write, frames parsed in place, nothing allocated per call but the promise; the body is the Item pre-encoded in Avro.',
    startServer: async ({ delayMs }) => startServer(earlyFrames, delayMs, await codec?.()),
    connect: async (port) => connectClient(earlyFrames, port, await codec?.()),
  };
}

/** The tuned raw floor, as a benchmark peer. */
export const peer: Peer = floorPeer(0);
