/**
 * The floor of issue 10's server-stream benchmark: a raw length-prefixed stream over `net`, with no
 * codec, no handshake, no credit and no error handling. The client asks for `count` elements with one
 * frame `u32 4 | u32 count`; the server answers with `count` frames `u32 length | body` (body: the Avro
 * encoding of the benchmark Item, encoded once) and a frame of length 0 for the end.
 *
 * The server copies each element into an arena one by one, as a producer handing over elements would,
 * sends each event-loop turn's frames with one `socket.write`, and honours backpressure: after a write
 * that returns false it waits for `drain`. The client parses frames in place in each chunk (a header cut
 * between two chunks is carried in a number), allocating nothing per element.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';

/** Bytes one turn gathers before it writes: about 580 Items. */
const BATCH_BYTES = 64 * 1024;

/** Sends `count` copies of `body` as frames, then the end frame; one write per turn, waiting on `drain`. */
function produce(socket: Socket, body: Buffer, count: number): void {
  const frame = 4 + body.length;
  let left = count;
  let ended = false;
  const turn = (): void => {
    if (socket.destroyed) return;
    const arena = Buffer.allocUnsafe(Math.max(BATCH_BYTES, frame + 4));
    let pos = 0;
    // One element at a time, each copied into the arena: the per-element work any producer has.
    while (left > 0 && pos + frame <= arena.length) {
      arena.writeUInt32BE(body.length, pos);
      body.copy(arena, pos + 4);
      pos += frame;
      left--;
    }
    if (left === 0 && pos + 4 <= arena.length) {
      arena.writeUInt32BE(0, pos);
      pos += 4;
      ended = true;
    }
    const flowing = socket.write(arena.subarray(0, pos));
    if (ended) return;
    if (flowing) setImmediate(turn);
    else socket.once('drain', turn);
  };
  turn();
}

/** Reads the request frames of one connection: each `u32 4 | u32 count` starts a stream (one at a time). */
function requestReader(onRequest: (count: number) => void): (chunk: Buffer) => void {
  let rest = Buffer.alloc(0);
  return (chunk) => {
    let buf = rest.length === 0 ? chunk : Buffer.concat([rest, chunk]);
    while (buf.length >= 8) {
      onRequest(buf.readUInt32BE(4));
      buf = buf.subarray(8);
    }
    rest = Buffer.from(buf);
  };
}

/** Starts the floor's server on 127.0.0.1 port 0; every stream sends `body` as each element. */
export async function startFloorServer(body: Buffer): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((socket) => {
    socket.setNoDelay(true);
    socket.on(
      'data',
      requestReader((count) => produce(socket, body, count)),
    );
    socket.on('error', () => socket.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  return { port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** A floor client: `stream(count)` asks for `count` elements and resolves with how many came before the end frame. */
export async function floorClient(
  port: number,
  elementBytes: number,
): Promise<{ stream(count: number, timeoutMs: number): Promise<number>; close(): void }> {
  const socket = connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await once(socket, 'connect');
  let header = 0; // header bytes read so far of a header cut between chunks
  let headerValue = 0;
  let skip = 0; // body bytes of the current element still to come
  let elements = 0;
  let done: ((n: number) => void) | undefined;
  let fail: ((err: Error) => void) | undefined;
  const bad = (len: number): void => fail?.(new Error(`floor: frame of ${len} bytes, expected ${elementBytes}`));
  socket.on('data', (chunk: Buffer) => {
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      if (skip > 0) {
        const take = Math.min(skip, end - pos);
        skip -= take;
        pos += take;
        if (skip === 0) elements++;
        continue;
      }
      let len: number;
      if (header === 0 && end - pos >= 4) {
        len = chunk.readUInt32BE(pos);
        pos += 4;
      } else {
        headerValue = headerValue * 256 + chunk[pos++]!;
        if (++header < 4) continue;
        len = headerValue;
        header = headerValue = 0;
      }
      if (len === 0) {
        const n = elements;
        elements = 0;
        done?.(n);
        continue;
      }
      if (len !== elementBytes) bad(len);
      if (end - pos >= len) {
        pos += len;
        elements++;
      } else skip = len;
    }
  });
  return {
    stream(count, timeoutMs) {
      return new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`floor: stream of ${count} not done in ${timeoutMs} ms`)), timeoutMs);
        done = (n) => {
          clearTimeout(timer);
          resolve(n);
        };
        fail = (err) => {
          clearTimeout(timer);
          reject(err);
        };
        const req = Buffer.allocUnsafe(8);
        req.writeUInt32BE(4, 0);
        req.writeUInt32BE(count, 4);
        socket.write(req);
      });
    },
    close() {
      socket.destroy();
    },
  };
}
