import { deflateRawSync } from 'node:zlib';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createClient, createServer, parseProtocol, type Client, type Server, type ServerOptions } from '../../src/index.js';
import { COMPRESSION_META_KEY, FRAGMENTS_META_KEY } from '../../src/framing/extensions.js';
import { Flag, FrameType, PREFACE } from '../../src/framing/frame.js';
import { readErrorHead, readGoaway } from '../../src/framing/bodies.js';
import { rawFrame } from '../helpers/raw-client.js';
import { RawPeer, helloBytes, requestBytes, until, type RawFrame } from '../helpers/raw-peer.js';
import { largeProtocol, pattern } from '../helpers/large.js';
import { MemoryBudget } from '../../src/server/memory-budget.js';

/**
 * Issue 14, "no process-wide memory bound": each attack pinned hundreds of MB on a server with default
 * options. Here each runs against a real server on 127.0.0.1 with a small `maxBufferedBytes`: the server
 * refuses or sheds with RESOURCE_EXHAUSTED (or PERMISSION_DENIED from a request's start), its
 * `bufferedBytes` returns to 0 once the attackers leave, and a well-behaved client is answered throughout.
 */
const test = suite('security: server-wide memory budget');
const MiB = 1024 * 1024;

const opened: Array<Server | Client> = [];
const peers: RawPeer[] = [];
test.after.each(async () => {
  for (const p of peers.splice(0)) p.destroy();
  for (const x of opened.splice(0).reverse()) await x.close({ graceMs: 100 });
});

const handlers = {
  echo: (req: { data: Buffer }) => req.data,
  download: (req: { size: number }) => Buffer.alloc(req.size, 7),
  upload: (req: { data: Buffer }) => req.data.length,
  ping: (req: { s: string }) => req.s,
  drop: () => undefined,
};

async function serve(options: Partial<ServerOptions>): Promise<{ server: Server; port: number }> {
  const server = createServer({ protocol: largeProtocol, handlers, ...options });
  opened.push(server);
  return { server, port: (await server.listen()).port };
}

function client(port: number, options: { credentials?: () => string } = {}): Client {
  const c = createClient({ protocol: largeProtocol, endpoints: [`127.0.0.1:${port}`], ...options });
  opened.push(c);
  return c;
}

async function peer(port: number): Promise<RawPeer> {
  const p = await RawPeer.connect(port);
  peers.push(p);
  return p;
}

/** HELLO meta offering fragments with our `P` and `W`. */
function fragmentsOffer(p: number, w: number): Record<string, Buffer> {
  const v = Buffer.alloc(8);
  v.writeUInt32BE(p, 0);
  v.writeUInt32BE(w, 4);
  return { [FRAGMENTS_META_KEY]: v };
}

/** Reads frames (all but WINDOW and PONG) into a list until the socket closes. */
function collect(p: RawPeer): { frames: RawFrame[]; closed: boolean } {
  const out = { frames: [] as RawFrame[], closed: false };
  void (async () => {
    for (;;) {
      try {
        const f = await p.frame(60_000);
        if (f.type !== FrameType.WINDOW && f.type !== FrameType.PONG) out.frames.push(f);
      } catch {
        out.closed = true;
        return;
      }
    }
  })();
  return out;
}

function codeOf(f: RawFrame): number {
  return f.type === FrameType.GOAWAY ? readGoaway(f.body).code : readErrorHead(f.flags, f.body).code;
}

function messageOf(f: RawFrame): string {
  return f.type === FrameType.GOAWAY ? readGoaway(f.body).message : readErrorHead(f.flags, f.body).message;
}

/** The first fragment of the REQUEST in `whole` (a frame from requestBytes) carrying `n` bytes of it, and the rest cut into CONTINUATIONs. */
function fragments(whole: Buffer, n: number): { first: Buffer; rest: Buffer[] } {
  const flags = whole[5]!;
  const id = whole.readUInt32BE(6);
  const m = whole.subarray(10);
  const total = Buffer.alloc(4);
  total.writeUInt32BE(m.length);
  const first = rawFrame(FrameType.REQUEST, flags | Flag.MORE, id, Buffer.concat([total, m.subarray(0, n)]));
  const rest: Buffer[] = [];
  for (let at = n; at < m.length; at += 64 * 1024) {
    const end = Math.min(at + 64 * 1024, m.length);
    rest.push(rawFrame(FrameType.CONTINUATION, end === m.length ? 0 : Flag.MORE, id, m.subarray(at, end)));
  }
  return { first, rest };
}

/** Keeps `c` calling `ping` until `stop()`, which resolves to the number answered or rejects with the first failure. */
function steadyPings(c: Client): { stop: () => Promise<number> } {
  let running = true;
  let answered = 0;
  const loop = (async () => {
    while (running) {
      if ((await c.call('ping', { s: 'still here' })) !== 'still here') throw new Error('wrong answer');
      answered++;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  // Not left unhandled if the test fails before stop(); stop() still sees the failure.
  loop.catch(() => {
    running = false;
  });
  return {
    stop: async () => {
      running = false;
      await loop;
      return answered;
    },
  };
}

test('policy: reservations past the budget are refused, charges past it shed the biggest holders to the low-water mark', async () => {
  const budget = new MemoryBudget(1000);
  const shed: string[] = [];
  const a = budget.account(() => shed.push('a'));
  const b = budget.account(() => shed.push('b'));
  const c = budget.account(() => shed.push('c'));
  // Connections in their handshake share an eighth of the budget.
  assert.ok(a.reserve(100));
  assert.not.ok(b.reserve(100), "beyond the handshakes' share");
  assert.not.ok(b.frame(100), 'a frame buffer too, in a handshake');
  for (const x of [a, b, c]) x.handshakeDone();
  assert.ok(b.frame(100), 'always, once accepted');
  b.credit(100);
  assert.ok(a.reserve(500));
  assert.not.ok(b.reserve(500), 'beyond the budget');
  assert.ok(b.reserve(300));
  assert.is(budget.bufferedBytes, 900);
  c.charge(50);
  await new Promise((r) => setImmediate(r));
  assert.equal(shed, [], 'refusals and charges within the budget shed nobody');
  c.charge(200); // 1150 > 1000: shed the biggest until at most 750 is left
  await new Promise((r) => setImmediate(r));
  assert.equal(shed, ['a']);
  a.close();
  assert.is(budget.bufferedBytes, 550);
  a.charge(100);
  a.credit(999);
  assert.is(budget.bufferedBytes, 550, 'a closed account counts nothing');
  b.credit(300);
  c.close();
  b.close();
  assert.is(budget.bufferedBytes, 0);
});

test('unauthenticated sockets sending an unfinished 1 MiB HELLO are refused from the header, before it is buffered', async () => {
  // Before: the whole HELLO (up to maxHandshakeBytes, about 1 MiB) was buffered before the token was checked.
  const { server, port } = await serve({
    maxBufferedBytes: 4 * MiB,
    authenticate: ({ token }) => {
      if (token !== 'good') throw new Error('bad token');
      return 'user';
    },
  });
  const good = client(port, { credentials: () => 'good' });
  const pings = steadyPings(good);
  const attackers = await Promise.all(Array.from({ length: 20 }, () => peer(port)));
  const seen = attackers.map(collect);
  const header = Buffer.alloc(10);
  header.writeUInt32BE(MiB, 0);
  header[4] = FrameType.HELLO;
  for (const a of attackers) a.socket.write(Buffer.concat([PREFACE, header, Buffer.alloc(200 * 1024)]));
  await until(() => seen.every((s) => s.closed), 'every attacker refused');
  for (const s of seen) {
    assert.equal(
      s.frames.map((f) => [f.type, codeOf(f)]),
      [[FrameType.GOAWAY, Code.RESOURCE_EXHAUSTED]],
    );
    assert.match(messageOf(s.frames[0]!), 'before authentication');
  }
  assert.ok((await pings.stop()) > 0);
  await until(() => server.bufferedBytes === 0, 'budget back to 0');
});

/** `n` raw peers, each sending the header of a 1 MiB HELLO and then 768 KiB of it, never the rest. */
async function partialHellos(
  port: number,
  n: number,
): Promise<{ attackers: Awaited<ReturnType<typeof peer>>[]; seen: ReturnType<typeof collect>[] }> {
  const attackers = await Promise.all(Array.from({ length: n }, () => peer(port)));
  const seen = attackers.map(collect);
  const header = Buffer.alloc(10);
  header.writeUInt32BE(MiB, 0);
  header[4] = FrameType.HELLO;
  for (const a of attackers) {
    a.socket.write(Buffer.concat([PREFACE, header]));
    for (let i = 0; i < 12; i++) a.socket.write(Buffer.alloc(64 * 1024));
  }
  return { attackers, seen };
}

test('without authenticate, handshakes in progress count toward maxBufferedBytes: past it, a large HELLO is refused', async () => {
  const { server, port } = await serve({ maxBufferedBytes: 2 * MiB, maxProtocolBytes: 2 * MiB });
  const good = client(port);
  assert.is(await good.call('ping', { s: 'before' }), 'before');
  const pings = steadyPings(good);
  const { attackers, seen } = await partialHellos(port, 8);
  await until(() => seen.filter((s) => s.closed).length >= 4, 'attackers beyond the budget refused');
  const refused = seen.filter((s) => s.closed);
  for (const s of refused) {
    assert.equal(
      s.frames.map((f) => [f.type, codeOf(f)]),
      [[FrameType.GOAWAY, Code.RESOURCE_EXHAUSTED]],
    );
    assert.match(messageOf(s.frames[0]!), 'maxBufferedBytes');
  }
  assert.ok(server.bufferedBytes <= 2 * MiB + 8 * 64 * 1024, `${server.bufferedBytes} bytes held`);
  assert.ok((await pings.stop()) > 0);
  for (const a of attackers) a.destroy();
  await until(() => server.bufferedBytes === 0, 'budget back to 0');
});

test("connections in their handshake hold at most an eighth of the budget: an accepted client's upload still fits", async () => {
  const { server, port } = await serve({ maxBufferedBytes: 8 * MiB, maxMessageBytes: 16 * MiB, maxProtocolBytes: 2 * MiB });
  const { attackers, seen } = await partialHellos(port, 6);
  await until(() => seen.filter((s) => s.closed).length >= 3, 'strangers beyond their share refused');
  assert.ok(server.bufferedBytes <= MiB + 6 * 64 * 1024, `${server.bufferedBytes} bytes held by handshakes`);
  // Before, the strangers could hold all 8 MiB and this 6 MiB upload was refused.
  const good = client(port);
  assert.is(await good.call('upload', { data: pattern(6 * MiB) }), 6 * MiB);
  for (const a of attackers) a.destroy();
  await until(() => server.bufferedBytes === 0, 'budget back to 0');
});

test('a protocol text larger than the HELLO floor goes only in a second HELLO: refused up front, the reference client connects and reconnects', async () => {
  const fields = Array.from({ length: 700 }, (_, i) => `string field_number_${i};`).join('\n');
  const bigProtocol = parseProtocol(`@namespace("avrpc.test")
protocol Large {
  record Big { ${fields} }
  bytes echo(bytes data);
  bytes download(int size);
  int upload(bytes data);
  string ping(string s);
  void drop(bytes data) oneway;
  string big(Big b);
}`);
  assert.ok(Buffer.byteLength(bigProtocol.text) > 16 * 1024);
  let authenticated = 0;
  const { server, port } = await serve({
    idleTimeoutMs: 50,
    resolverCacheSize: 1,
    authenticate: () => {
      authenticated++;
      return 'user';
    },
  });
  // A first HELLO carrying that text is refused from its header: a stranger gets a small HELLO only.
  const raw = await peer(port);
  raw.socket.write(helloBytes(bigProtocol, { 'avrpc.token': Buffer.from('token') }));
  const refused = await raw.rest();
  assert.equal(
    refused.map((f) => [f.type, codeOf(f)]),
    [[FrameType.GOAWAY, Code.RESOURCE_EXHAUSTED]],
  );
  assert.is(authenticated, 0);
  // The reference client sends it only in a second HELLO, once NEED_PROTOCOL says it is authenticated.
  const c = createClient({ protocol: bigProtocol, endpoints: [`127.0.0.1:${port}`], credentials: () => 'token' });
  opened.push(c);
  assert.is(await c.call('ping', { s: 'first' }), 'first');
  // The idle server drains us; the next call reconnects, now knowing the server needs our text.
  await until(() => server.connections === 0, 'drained for idleness', 5000);
  assert.is(await c.call('ping', { s: 'second' }), 'second');
  assert.ok(authenticated >= 2, `${authenticated} handshakes`);
});

test('compression bombs: inflations are refused RESOURCE_EXHAUSTED at the budget, and the connection keeps serving', async () => {
  // Before: 100 MiB inflations cost 935 MB and 16 s of CPU for 31 MB sent.
  const { server, port } = await serve({ maxBufferedBytes: 8 * MiB, maxMessageBytes: 64 * MiB, compressAboveBytes: 1024 });
  const good = client(port);
  const pings = steadyPings(good);
  const p = await peer(port);
  assert.is((await p.handshake(largeProtocol, { [COMPRESSION_META_KEY]: Buffer.from('deflate') })).type, FrameType.WELCOME);
  const plain = requestBytes(largeProtocol, 1, 'echo', { data: Buffer.alloc(32 * MiB) });
  const bomb = deflateRawSync(plain.subarray(10));
  const seen = collect(p);
  for (let id = 1; id <= 6; id++) p.socket.write(rawFrame(FrameType.REQUEST, plain[5]! | Flag.COMPRESSED, id, bomb));
  await until(() => seen.frames.length === 6, 'six answers');
  for (const f of seen.frames) {
    assert.is(f.type, FrameType.ERROR);
    assert.is(codeOf(f), Code.RESOURCE_EXHAUSTED);
    assert.match(messageOf(f), 'maxBufferedBytes');
  }
  p.socket.write(requestBytes(largeProtocol, 7, 'ping', { s: 'same connection' }));
  await until(() => seen.frames.length === 7, 'ping answered');
  assert.is(seen.frames[6]!.type, FrameType.RESPONSE);
  assert.ok((await pings.stop()) > 0);
  await until(() => server.bufferedBytes === 0, 'budget back to 0');
});

test('a compressed request the ACL refuses is answered PERMISSION_DENIED from its start, without inflating the rest', async () => {
  // Before: authorization ran only once the request was inflated (here: beyond maxMessageBytes, RESOURCE_EXHAUSTED).
  const { server, port } = await serve({ maxMessageBytes: MiB, compressAboveBytes: 1024, authorize: (_p, message) => message !== 'echo' });
  const p = await peer(port);
  assert.is((await p.handshake(largeProtocol, { [COMPRESSION_META_KEY]: Buffer.from('deflate') })).type, FrameType.WELCOME);
  const plain = requestBytes(largeProtocol, 1, 'echo', { data: Buffer.alloc(32 * MiB) });
  p.socket.write(rawFrame(FrameType.REQUEST, plain[5]! | Flag.COMPRESSED, 1, deflateRawSync(plain.subarray(10))));
  const answer = await p.frame();
  assert.is(answer.type, FrameType.ERROR);
  assert.is(codeOf(answer), Code.PERMISSION_DENIED);
  assert.is(answer.flags & Flag.REFUSED, Flag.REFUSED);
  await until(() => server.bufferedBytes === 0, 'budget back to 0');
});

test('a fragmented upload the ACL refuses is answered PERMISSION_DENIED at its first fragment; the rest is not buffered', async () => {
  const { server, port } = await serve({ authorize: (_p, message) => message !== 'upload' });
  const p = await peer(port);
  assert.is((await p.handshake(largeProtocol, fragmentsOffer(4, MiB))).type, FrameType.WELCOME);
  const { first, rest } = fragments(requestBytes(largeProtocol, 1, 'upload', { data: pattern(4 * MiB) }), 64 * 1024);
  p.socket.write(first);
  let answer = await p.frame();
  while (answer.type === FrameType.WINDOW) answer = await p.frame();
  assert.is(answer.type, FrameType.ERROR);
  assert.is(codeOf(answer), Code.PERMISSION_DENIED);
  assert.is(answer.flags & Flag.REFUSED, Flag.REFUSED);
  assert.is(server.bufferedBytes, 0);
  // The rest of it is discarded as it comes; the connection serves on.
  for (const f of rest) p.socket.write(f);
  p.socket.write(requestBytes(largeProtocol, 3, 'ping', { s: 'after' }));
  do answer = await p.frame();
  while (answer.type === FrameType.WINDOW);
  assert.is(answer.type, FrameType.RESPONSE);
  assert.is(server.bufferedBytes, 0);
});

test('stalled fragmented uploads are refused after stallTimeoutMs, their buffers freed, the connection kept', async () => {
  // Before: uploads stalled at 60 of 64 MiB were held until the idle timer (about 29 min by default).
  const { server, port } = await serve({ stallTimeoutMs: 100 });
  const p = await peer(port);
  assert.is((await p.handshake(largeProtocol, fragmentsOffer(4, 8 * MiB))).type, FrameType.WELCOME);
  const seen = collect(p);
  for (const id of [1, 3]) {
    const { first, rest } = fragments(requestBytes(largeProtocol, id, 'upload', { data: pattern(4 * MiB) }), 64 * 1024);
    p.socket.write(first);
    for (const f of rest.slice(0, 16)) p.socket.write(f);
  }
  await until(() => seen.frames.length === 2, 'both uploads refused');
  assert.equal(
    seen.frames.map((f) => [f.type, f.id, codeOf(f)]).sort((a, b) => a[1]! - b[1]!),
    [
      [FrameType.ERROR, 1, Code.RESOURCE_EXHAUSTED],
      [FrameType.ERROR, 3, Code.RESOURCE_EXHAUSTED],
    ],
  );
  assert.match(messageOf(seen.frames[0]!), 'stallTimeoutMs');
  assert.is(server.bufferedBytes, 0);
  p.socket.write(requestBytes(largeProtocol, 5, 'ping', { s: 'kept' }));
  await until(() => seen.frames.length === 3, 'ping answered');
  assert.is(seen.frames[2]!.type, FrameType.RESPONSE);
});

test('fragmented uploads beyond maxBufferedBytes are refused RESOURCE_EXHAUSTED while small calls are answered', async () => {
  const { server, port } = await serve({ maxBufferedBytes: 4 * MiB, stallTimeoutMs: 0 });
  const good = client(port);
  const pings = steadyPings(good);
  const attackers = await Promise.all(Array.from({ length: 3 }, () => peer(port)));
  for (const a of attackers) assert.is((await a.handshake(largeProtocol, fragmentsOffer(4, 16 * MiB))).type, FrameType.WELCOME);
  const seen = attackers.map(collect);
  for (const a of attackers) {
    for (const id of [1, 3]) {
      const { first, rest } = fragments(requestBytes(largeProtocol, id, 'upload', { data: pattern(8 * MiB) }), 64 * 1024);
      a.socket.write(first);
      for (const f of rest.slice(0, 24)) a.socket.write(f);
    }
  }
  await until(() => seen.some((s) => s.frames.length > 0), 'an upload refused');
  const refusals = seen.flatMap((s) => s.frames);
  for (const f of refusals) {
    assert.is(codeOf(f), Code.RESOURCE_EXHAUSTED);
    assert.match(messageOf(f), 'maxBufferedBytes');
  }
  assert.ok(server.bufferedBytes <= 4 * MiB + 3 * 64 * 1024, `${server.bufferedBytes} bytes held`);
  assert.ok((await pings.stop()) > 0);
  for (const a of attackers) a.destroy();
  await until(() => server.bufferedBytes === 0, 'budget back to 0');
});

test('clients that take fragmented answers and never acknowledge them: the biggest holders are shed at the budget', async () => {
  // Before: the largest queued answer was exempt from maxQueuedBytes, and nothing bounded the sum (717 MB).
  const { server, port } = await serve({ maxBufferedBytes: 4 * MiB, stallTimeoutMs: 0 });
  const good = client(port);
  const pings = steadyPings(good);
  const attackers = await Promise.all(Array.from({ length: 3 }, () => peer(port)));
  const seen: ReturnType<typeof collect>[] = [];
  for (const a of attackers) {
    assert.is((await a.handshake(largeProtocol, fragmentsOffer(4, 1024))).type, FrameType.WELCOME);
    seen.push(collect(a));
    for (const id of [1, 3, 5]) a.socket.write(requestBytes(largeProtocol, id, 'download', { size: MiB }));
  }
  await until(() => seen.filter((s) => s.closed).length >= 2, 'the biggest holders shed');
  for (const s of seen.filter((x) => x.closed)) {
    const goaway = s.frames.find((f) => f.type === FrameType.GOAWAY)!;
    assert.is(codeOf(goaway), Code.RESOURCE_EXHAUSTED);
    assert.match(messageOf(goaway), 'maxBufferedBytes');
  }
  assert.ok((await pings.stop()) > 0);
  for (const a of attackers) a.destroy();
  await until(() => server.bufferedBytes === 0, 'budget back to 0');
});

test('a client that never acknowledges a fragmented answer is cut off after stallTimeoutMs', async () => {
  const { server, port } = await serve({ stallTimeoutMs: 100 });
  const p = await peer(port);
  assert.is((await p.handshake(largeProtocol, fragmentsOffer(4, 1024))).type, FrameType.WELCOME);
  const seen = collect(p);
  p.socket.write(requestBytes(largeProtocol, 1, 'download', { size: MiB }));
  await until(() => seen.closed, 'connection ended');
  const goaway = seen.frames.find((f) => f.type === FrameType.GOAWAY)!;
  assert.is(codeOf(goaway), Code.RESOURCE_EXHAUSTED);
  assert.match(messageOf(goaway), 'stallTimeoutMs');
  await until(() => server.bufferedBytes === 0, 'budget back to 0');
});

test.run();
