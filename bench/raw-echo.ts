/**
 * The floor of the end-to-end benchmark: a raw length-prefixed, id-multiplexed echo over `net`, with
 * no codec, no handshake and no error handling. Frames are `u32 length | u32 id | body`. The server
 * copies every frame back, and the client matches answers to callers by id, as any multiplexing
 * client must. Payload bytes are the Avro encoding of the benchmark Item, pre-encoded once.
 *
 * Two variants: `batched = false` writes each frame with its own `socket.write` (the floor issue 2's
 * targets were calibrated on: ~90-110k calls/s at 64 in flight), `batched = true` gathers a tick's
 * frames into one write on both sides (what avrpc itself does: a much harder reference).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';

const HEADER = 8;

/** Frames into an arena; one write per frame, or one write per tick when `batched`. */
class Batcher {
  private arena = Buffer.allocUnsafe(64 * 1024);
  private start = 0;
  private pos = 0;
  private scheduled = false;

  constructor(
    private readonly socket: Socket,
    private readonly batched: boolean,
  ) {}

  frame(id: number, body: Buffer): void {
    const need = HEADER + body.length;
    if (this.pos + need > this.arena.length) {
      this.flush();
      this.arena = Buffer.allocUnsafe(Math.max(64 * 1024, need));
      this.start = this.pos = 0;
    }
    this.arena.writeUInt32BE(body.length, this.pos);
    this.arena.writeUInt32BE(id, this.pos + 4);
    body.copy(this.arena, this.pos + HEADER);
    this.pos += need;
    if (!this.batched) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.pos > this.start) this.socket.write(this.arena.subarray(this.start, this.pos));
    this.start = this.pos;
  };
}

/** Splits a byte stream into frames: views when a frame sits in one chunk, one copy when it spans. */
function frameReader(onFrame: (id: number, body: Buffer) => void): (chunk: Buffer) => void {
  let rest: Buffer | null = null;
  return (chunk) => {
    let buf = chunk;
    if (rest !== null) {
      buf = Buffer.concat([rest, chunk]);
      rest = null;
    }
    let pos = 0;
    while (buf.length - pos >= HEADER) {
      const len = buf.readUInt32BE(pos);
      if (buf.length - pos - HEADER < len) break;
      onFrame(buf.readUInt32BE(pos + 4), buf.subarray(pos + HEADER, pos + HEADER + len));
      pos += HEADER + len;
    }
    if (pos < buf.length) rest = Buffer.from(buf.subarray(pos));
  };
}

/** Starts the raw echo server on 127.0.0.1, port 0. */
export async function startRawServer(batched: boolean): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((socket) => {
    socket.setNoDelay(true);
    const out = new Batcher(socket, batched);
    socket.on(
      'data',
      frameReader((id, body) => out.frame(id, body)),
    );
    socket.on('error', () => socket.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Connections end when the client process exits.
      }),
  };
}

/** A raw multiplexing client: `call(body)` resolves with the echoed body. */
export async function rawClient(port: number, batched: boolean): Promise<{ call(body: Buffer): Promise<Buffer>; close(): void }> {
  const socket = connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await once(socket, 'connect');
  const pending = new Map<number, (body: Buffer) => void>();
  let nextId = 0;
  const out = new Batcher(socket, batched);
  socket.on(
    'data',
    frameReader((id, body) => {
      const resolve = pending.get(id);
      if (resolve === undefined) return;
      pending.delete(id);
      resolve(body);
    }),
  );
  return {
    call(body) {
      const id = (nextId = (nextId + 1) >>> 0);
      return new Promise<Buffer>((resolve) => {
        pending.set(id, resolve);
        out.frame(id, body);
      });
    },
    close() {
      socket.destroy();
    },
  };
}
