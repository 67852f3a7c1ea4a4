import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, createClient, createHmacAuth, createServer, loadProtocol, type Protocol, type Server } from '../../src/index.js';
import { FrameType, HEADER_BYTES, PREFACE } from '../../src/framing/frame.js';
import { helloBytes, requestBytes, until } from '../helpers/raw-peer.js';
import { seeded as prng } from '../helpers/prng.js';
import { repoPath } from '../helpers/repo.js';

/**
 * Issue 5, hostile input: a real client session is recorded through a TCP proxy, then thousands of
 * mutated copies are replayed to a real server over fresh sockets, alongside sockets that never speak,
 * while a well-behaved client keeps calling. Deterministic from its seed: AVRPC_FUZZ_SEED=<n> replays
 * a failing run. Bounded by case counts (about 30 s on a busy 2-core machine), not by a clock.
 */
const test = suite('security: fuzz');
const SEED = Number(process.env['AVRPC_FUZZ_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
const MUTATED_CASES = Number(process.env['AVRPC_FUZZ_CASES'] ?? 8000);
const SILENT_SOCKETS = 300;
const PARALLEL = 48;
/** A bad connection must be closed by then (hang guard: the server's own timeouts are 300 ms). */
const CLOSE_GUARD_MS = 15_000;


type Delivery = 'whole' | 'chunks' | 'bytes';
interface Case {
  index: number;
  kind: string;
  bytes: Buffer;
  delivery: Delivery;
  /** Half-close after sending (else wait for the server's timeouts). */
  end: boolean;
  /** Chunk boundaries for 'chunks'. */
  cuts: number[];
}

/** Offsets of the frame headers of a client stream (after the preface). */
function frameOffsets(stream: Buffer): number[] {
  const out: number[] = [];
  let p = PREFACE.length;
  while (p + HEADER_BYTES <= stream.length) {
    out.push(p);
    p += HEADER_BYTES + stream.readUInt32BE(p);
  }
  return out;
}

function mutate(seed: Buffer, rnd: () => number, index: number): Case {
  const int = (n: number) => Math.floor(rnd() * n);
  let b = Buffer.from(seed);
  let kind = '';
  const steps = 1 + int(3);
  for (let s = 0; s < steps; s++) {
    const offsets = frameOffsets(b);
    switch (int(9)) {
      case 0: { // bit flips
        for (let i = 1 + int(8); i > 0; i--) { const at = int(b.length); b[at]! ^= 1 << int(8); }
        kind += 'flip,';
        break;
      }
      case 1: { // overwrite a length field
        if (offsets.length === 0) break;
        const at = offsets[int(offsets.length)]!;
        const old = b.readUInt32BE(at);
        const choices = [0, 1, old - 1, old + 1, old * 2, 0x7fffffff, 0xffffffff, 16 * 1024 * 1024, int(2 ** 32)];
        // A first fragment (MORE) also declares its message's total after the header: lie there too.
        const total = (b[at + 5]! & 0x80) !== 0 && old >= 4 && at + 14 <= b.length && rnd() < 0.5;
        b.writeUInt32BE(choices[int(choices.length)]! >>> 0, total ? at + 10 : at);
        kind += 'length,';
        break;
      }
      case 2: { // truncate
        b = b.subarray(0, int(b.length));
        kind += 'truncate,';
        break;
      }
      case 3: { // insert random bytes
        const at = int(b.length + 1);
        const junk = Buffer.from(Array.from({ length: 1 + int(64) }, () => int(256)));
        b = Buffer.concat([b.subarray(0, at), junk, b.subarray(at)]);
        kind += 'insert,';
        break;
      }
      case 4: { // duplicate a span (often a whole frame)
        const from = offsets.length > 0 && rnd() < 0.5 ? offsets[int(offsets.length)]! : int(b.length);
        const len = offsets.includes(from) ? HEADER_BYTES + b.readUInt32BE(from) : 1 + int(64);
        const span = Buffer.from(b.subarray(from, from + len));
        const at = int(b.length + 1);
        b = Buffer.concat([b.subarray(0, at), span, ...(rnd() < 0.3 ? [span, span] : []), b.subarray(at)]);
        kind += 'duplicate,';
        break;
      }
      case 5: { // frame header fields: type, flags, id
        if (offsets.length === 0) break;
        const at = offsets[int(offsets.length)]!;
        const field = int(3);
        if (field === 0) b[at + 4] = int(12);
        else if (field === 1) b[at + 5] = int(256);
        else b.writeUInt32BE(rnd() < 0.5 ? 0 : int(2 ** 32) >>> 0, at + 6);
        kind += 'header,';
        break;
      }
      case 6: { // overwrite a run with one byte value (0x00, 0xff, 0x80: varint traps)
        const at = int(b.length);
        b.fill([0, 0xff, 0x80, 0x7f][int(4)]!, at, Math.min(b.length, at + 1 + int(16)));
        kind += 'fill,';
        break;
      }
      case 7: { // pure random bytes, with or without a valid preface
        const junk = Buffer.from(Array.from({ length: int(512) }, () => int(256)));
        b = rnd() < 0.5 ? Buffer.concat([PREFACE, junk]) : junk;
        kind += 'random,';
        break;
      }
      default: { // delete a span
        const at = int(b.length);
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + int(32)))]);
        kind += 'delete,';
      }
    }
  }
  const r = rnd();
  const delivery: Delivery = r < 0.05 && b.length <= 1500 ? 'bytes' : r < 0.35 ? 'chunks' : 'whole';
  const cuts = Array.from({ length: 1 + int(6) }, () => int(b.length)).sort((x, y) => x - y);
  return { index, kind: kind.slice(0, -1), bytes: b, delivery, end: rnd() < 0.8, cuts };
}

/** The server authenticates with HMAC tokens and authorizes with an ACL, so those paths are fuzzed too. */
const hmac = createHmacAuth({ secret: 'fuzzing needs a secret of 32+ bytes', ttlMs: 3_600_000 });
const TOKEN = hmac.issue('fuzzer', ['tester']);

/** Records what a real client writes, through a proxy to a real server. */
async function recordSession(protocol: Protocol, serverPort: number): Promise<Buffer> {
  const recorded: Buffer[] = [];
  const sockets: Socket[] = [];
  const proxy = createNetServer((down) => {
    const up = connect({ host: '127.0.0.1', port: serverPort });
    sockets.push(down, up);
    down.on('data', (d: Buffer) => { recorded.push(Buffer.from(d)); up.write(d); });
    up.on('data', (d: Buffer) => down.write(d));
    down.on('close', () => up.destroy());
    up.on('close', () => down.destroy());
    down.on('error', () => {});
    up.on('error', () => {});
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  // Small fragments and compression (SPEC section 12) so that the recording has CONTINUATIONs and a COMPRESSED flag.
  const client = createClient({
    protocol, endpoints: [`127.0.0.1:${(proxy.address() as AddressInfo).port}`], credentials: TOKEN,
    fragmentBytes: 200, compressAboveBytes: 600,
  });
  const item = { id: 12345678901, name: 'fuzz seed', tags: ['a', 'bb', 'ccc'], score: -2.5, blob: Buffer.from('0001feff', 'hex') };
  await client.call('echo', { item });
  await client.call('echo', { item }, { timeoutMs: 5000, metadata: { tenant: 'blue', trace: 'x'.repeat(20) } });
  await client.call('fail', { reason: 'recorded' }).catch(() => undefined);
  await client.call('notify', { item });
  await client.call('echo', { item: { ...item, tags: Array.from({ length: 120 }, (_, i) => `tag-${i % 7}`) } });
  await client.call('echo', { item: { ...item, blob: Buffer.from(Array.from({ length: 1500 }, (_, i) => (i * 7919) % 251)) } });
  const aborted = new AbortController();
  const pending = client.call('echo', { item: { ...item, tags: Array.from({ length: 50 }, (_, i) => `t${i}`) } }, { signal: aborted.signal });
  aborted.abort();
  await pending.catch(() => undefined);
  await client.call('echo', { item });
  await client.close();
  for (const s of sockets) s.destroy();
  proxy.close();
  await once(proxy, 'close');
  return Buffer.concat(recorded);
}

/** Sends one case; resolves with what came back once the server closed the connection. */
async function replay(port: number, c: Case): Promise<{ frames: number[]; codes: number[] }> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  const received: Buffer[] = [];
  socket.on('data', (d: Buffer) => received.push(d));
  // A reset is one of the ways a server may end a bad connection: errors just lead to 'close'.
  let connectError: Error | undefined;
  socket.on('error', (err) => { connectError ??= socket.connecting ? err : undefined; });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const connected = new Promise<void>((resolve) => { socket.once('connect', () => resolve()); socket.once('close', () => resolve()); });
  let guard: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    guard = setTimeout(() => reject(new Error(`case ${c.index} (${c.kind}, ${c.delivery}, end=${c.end}) was never closed; seed ${SEED}`)), CLOSE_GUARD_MS);
  });
  try {
    await Promise.race([connected, hung]);
    if (connectError !== undefined) throw new Error(`case ${c.index}: cannot connect (${connectError.message}); seed ${SEED}`);
    if (c.delivery === 'whole') socket.write(c.bytes);
    else {
      const cuts = c.delivery === 'bytes' ? Array.from({ length: c.bytes.length }, (_, i) => i + 1) : [...c.cuts, c.bytes.length];
      let from = 0;
      for (const to of cuts) {
        if (socket.destroyed) break;
        if (to > from) socket.write(c.bytes.subarray(from, to));
        from = Math.max(from, to);
        await new Promise((r) => setImmediate(r));
      }
    }
    if (c.end && !socket.destroyed) socket.end();
    await Promise.race([closed, hung]);
  } finally {
    clearTimeout(guard);
    socket.destroy();
  }
  // Walk the frames the server sent, for the report.
  const all = Buffer.concat(received);
  const frames: number[] = [];
  const codes: number[] = [];
  for (let p = 0; p + HEADER_BYTES <= all.length; p += HEADER_BYTES + all.readUInt32BE(p)) {
    const type = all[p + 4]!;
    frames.push(type);
    if (type === FrameType.GOAWAY && p + 15 <= all.length) codes.push(all[p + 14]!);
    if (type === FrameType.ERROR && p + 11 <= all.length) codes.push(all[p + 10]!);
  }
  return { frames, codes };
}

async function silent(port: number, index: number): Promise<void> {
  await replay(port, { index, kind: 'silent', bytes: Buffer.alloc(0), delivery: 'whole', end: false, cuts: [] });
}

test(`thousands of mutated sessions and silent sockets never crash or bloat the server (seed ${SEED})`, async () => {
  console.log(`\n  fuzz seed ${SEED} (AVRPC_FUZZ_SEED=${SEED} to replay), ${MUTATED_CASES} mutated cases`);
  const protocol = await loadProtocol(repoPath('protocol/echo.avdl'));
  let crashes = 0;
  const onCrash = (err: unknown) => { if (crashes++ < 3) console.error('  CRASH', err, (err as Error).stack); };
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  const servers: Server[] = [];
  const stats = { goawayOrError: 0, closedWithoutFrame: 0, answeredThenClosed: 0, codes: new Map<number, number>() };
  try {
    // Two servers: one open (most mutations reach the request paths), one with authentication and an
    // ACL (a request pipelined behind HELLO meets a pending authentication there).
    for (const secured of [false, true]) {
      servers.push(createServer({
        protocol,
        handshakeTimeoutMs: 300,
        idleTimeoutMs: 300,
        fragmentBytes: 200,
        compressAboveBytes: 600,
        ...(secured ? { authenticate: hmac.authenticate, acl: { '*': ['*'], fail: ['role:tester'] } } : {}),
        handlers: {
          echo: (req: { item: unknown }) => req.item,
          fail: (req: { reason: string }) => { throw new RpcError(Code.UNKNOWN, req.reason, { details: { reason: req.reason } }); },
          notify: () => {},
        },
      }));
    }
    const ports: number[] = [];
    for (const server of servers) ports.push((await server.listen()).port);
    const recorded = await recordSession(protocol, ports[1]!);
    const withText = Buffer.concat([helloBytes(protocol, { 'avrpc.token': Buffer.from(TOKEN) }), requestBytes(protocol, 1, 'echo', {
      item: { id: 1, name: 'n', tags: ['x'], score: 1, blob: Buffer.alloc(3) },
    }, { k: 'v' }, 100)]);
    assert.ok(recorded.subarray(0, PREFACE.length).equals(PREFACE), 'the recording starts with the preface');
    console.log('  recorded frame types', frameOffsets(recorded).map((o) => recorded[o + 4]).join(','));
    assert.ok(frameOffsets(recorded).length >= 10, 'HELLO, the requests and their fragments were recorded');
    assert.ok(frameOffsets(recorded).some((o) => recorded[o + 4] === FrameType.CONTINUATION), 'fragments were recorded');

    const rnd = prng(SEED);
    const cases: Case[] = [];
    for (let i = 0; i < MUTATED_CASES; i++) cases.push(mutate(rnd() < 0.8 ? recorded : withText, rnd, i));

    // The well-behaved client calls until the fuzzing is over; every call must succeed.
    const good = createClient({ protocol, endpoints: ports.map((p) => `127.0.0.1:${p}`), credentials: TOKEN, balancer: 'roundRobin' });
    let fuzzing = true;
    let goodCalls = 0;
    const goodFailures: unknown[] = [];
    const goodLoop = (async () => {
      while (fuzzing) {
        const n = goodCalls++;
        const item = { id: n, name: `good-${n}`, tags: ['t'], score: n / 3, blob: Buffer.alloc(n % 200, n) };
        await good.call('echo', { item }, { timeoutMs: 10_000 }).then(
          (r: { name: string }) => { if (r.name !== item.name) goodFailures.push(new Error(`wrong answer ${r.name}`)); },
          (e: unknown) => goodFailures.push(e),
        );
      }
    })();

    const baseline = process.memoryUsage();
    let peakGrowth = 0;
    const sample = () => {
      const m = process.memoryUsage();
      peakGrowth = Math.max(peakGrowth, m.heapUsed + m.arrayBuffers - baseline.heapUsed - baseline.arrayBuffers);
    };
    const sampler = setInterval(sample, 50);

    let next = 0;
    const worker = async () => {
      while (next < cases.length) {
        const c = cases[next++]!;
        const r = await replay(ports[c.index % 4 === 0 ? 1 : 0]!, c);
        if (r.codes.length > 0) stats.goawayOrError++;
        else if (r.frames.length === 0) stats.closedWithoutFrame++;
        else stats.answeredThenClosed++;
        for (const code of r.codes) stats.codes.set(code, (stats.codes.get(code) ?? 0) + 1);
      }
    };
    const silentRuns = Array.from({ length: SILENT_SOCKETS }, (_, i) => silent(ports[i % 2]!, MUTATED_CASES + i));
    try {
      await Promise.all([...Array.from({ length: PARALLEL }, worker), ...silentRuns]);
    } finally {
      fuzzing = false;
      clearInterval(sampler);
      await goodLoop;
      await good.close();
    }
    sample();
    const codes = [...stats.codes].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c}:${n}`).join(' ');
    console.log(`  ${MUTATED_CASES} mutated: ${stats.goawayOrError} got GOAWAY/ERROR, ${stats.closedWithoutFrame} closed without a frame, `
      + `${stats.answeredThenClosed} answered then closed; codes ${codes}; ${SILENT_SOCKETS} silent sockets closed; `
      + `${goodCalls} good calls; peak heap+buffers growth ${(peakGrowth / 1e6).toFixed(1)} MB`);
    assert.equal(goodFailures, [], 'every well-behaved call succeeded');
    assert.ok(goodCalls > 0);
    assert.is(crashes, 0, 'no uncaught exception or unhandled rejection');
    assert.ok(peakGrowth < 200e6, `memory grew by ${peakGrowth} bytes`);
    assert.ok(stats.goawayOrError > MUTATED_CASES / 4, 'most broken sessions are told why');
    for (const server of servers) await until(() => server.connections === 0, 'every bad connection is gone');
  } finally {
    for (const server of servers) await server.close({ graceMs: 100 });
    process.off('uncaughtException', onCrash);
    process.off('unhandledRejection', onCrash);
  }
});

test.run();
