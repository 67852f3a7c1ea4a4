// Issue 14 (client hardening) measurement, not part of `npm run bench`: a hostile server that pins a
// client's memory with fragmented answers to ids the client never used. Loopback only, bounded (60 s).
// Hostile avrpc server (child process): negotiates fragments, then answers the client's first REQUEST
// with P=4 fragmented answers to ids the client never used, each announcing 60 MiB and sent up to
// 60 MiB - 64 KiB (never finished). Loopback only; exits when the client is gone.
import { createServer } from 'node:net';
const dist = process.argv[2];
const { extensionVectors } = await import(`${dist}/test/helpers/spec-vectors.js`);
const { FrameDecoder } = await import(`${dist}/src/framing/frame-decoder.js`);
const MiB = 1024 * 1024,
  CHUNK = 64 * 1024,
  TOTAL = 60 * MiB,
  IDS = Number(process.argv[3] ?? 4);
const frame = (type, flags, id, body) => {
  const h = Buffer.alloc(10);
  h.writeUInt32BE(body.length, 0);
  h[4] = type;
  h[5] = flags;
  h.writeUInt32BE(id, 6);
  return [h, body];
};
const zeros = Buffer.alloc(CHUNK);
const server = createServer((socket) => {
  socket.on('error', () => {});
  let started = false;
  const dec = new FrameDecoder({ maxFrameBytes: 64 * MiB, expectPreface: true }, async (type) => {
    if (type === 1) socket.write(extensionVectors().welcome);
    if (type === 3 && !started) {
      started = true;
      let sent = 0;
      for (let i = 0; i < IDS; i++) {
        const first = Buffer.alloc(4 + CHUNK);
        first.writeUInt32BE(TOTAL, 0);
        for (const b of frame(0x04, 0x80, 1001 + i, first)) socket.write(b);
      }
      for (let n = CHUNK; n < TOTAL - CHUNK && !socket.destroyed; n += CHUNK) {
        for (let i = 0; i < IDS && !socket.destroyed; i++) {
          let ok = true;
          for (const b of frame(0x0a, 0x80, 1001 + i, zeros)) ok = socket.write(b);
          sent += CHUNK;
          if (!ok)
            await new Promise((r) => {
              socket.once('drain', r);
              socket.once('close', r);
            });
        }
      }
      process.send?.({ sent });
    }
  });
  socket.on('data', (c) => {
    try {
      dec.push(c);
    } catch {
      socket.destroy();
    }
  });
  socket.on('close', () => process.exit(0));
});
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
process.on('disconnect', () => process.exit(0));
setTimeout(() => process.exit(0), 90_000).unref();
