import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, Protocol, RpcError, createClient, createHmacAuth, createServer, loadProtocol, type Server } from '../../src/index.js';
import { readRequestHead } from '../../src/framing/bodies.js';
import { FrameDecoder } from '../../src/framing/frame-decoder.js';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';
import { Flag, FrameType, HEADER_BYTES, PREFACE } from '../../src/framing/frame.js';
import { welcomeType, writeHandshake } from '../../src/framing/handshake.js';
import { KINDS, gen, genType, lyingValue, mutateBytes, varint, type Schema } from '../helpers/avro-gen.js';
import { rawServer } from '../helpers/echo-fixture.js';
import { rawFrame } from '../helpers/raw-client.js';
import { RawPeer, frameCode, frameMessage, helloBytes, requestBytes, until, type RawFrame } from '../helpers/raw-peer.js';
import { seeded as prng } from '../helpers/prng.js';
import { repoPath } from '../helpers/repo.js';
import { FUZZ_LIMITS, HOLD_NAME, HOSTILE_KINDS, hostile, type Case, type Delivery } from './fuzz-hostile.js';

/**
 * Issue 5, hostile input: a real client session is recorded through a TCP proxy, then thousands of
 * mutated copies are replayed to a real server over fresh sockets, alongside sockets that never speak
 * and generated hostile sessions (one case in 25: see fuzz-hostile.ts), while a well-behaved client
 * keeps calling. Deterministic from its seed: AVRPC_FUZZ_SEED=<n> replays
 * a failing run. Bounded by case counts (about 30 s on a busy 2-core machine), not by a clock.
 */
const test = suite('security: fuzz');
const SEED = Number(process.env['AVRPC_FUZZ_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
const MUTATED_CASES = Number(process.env['AVRPC_FUZZ_CASES'] ?? 8000);
const SILENT_SOCKETS = 300;
const PARALLEL = 48;
/** A bad connection must be closed by then (hang guard: the server's own timeouts are 300 ms). */
const CLOSE_GUARD_MS = 15_000;

/** Every this many cases, one is a generated hostile session instead of a mutation (see fuzz-hostile.ts). */
const HOSTILE_EVERY = 25;
/** The fuzz servers' cap on bytes queued for a peer, small so that hogs reach it fast. */
const MAX_QUEUED_BYTES = 256 * 1024;

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
      case 0: {
        // bit flips
        for (let i = 1 + int(8); i > 0; i--) {
          const at = int(b.length);
          b[at]! ^= 1 << int(8);
        }
        kind += 'flip,';
        break;
      }
      case 1: {
        // overwrite a length field
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
      case 2: {
        // truncate
        b = b.subarray(0, int(b.length));
        kind += 'truncate,';
        break;
      }
      case 3: {
        // insert random bytes
        const at = int(b.length + 1);
        const junk = Buffer.from(Array.from({ length: 1 + int(64) }, () => int(256)));
        b = Buffer.concat([b.subarray(0, at), junk, b.subarray(at)]);
        kind += 'insert,';
        break;
      }
      case 4: {
        // duplicate a span (often a whole frame)
        const from = offsets.length > 0 && rnd() < 0.5 ? offsets[int(offsets.length)]! : int(b.length);
        const len = offsets.includes(from) ? HEADER_BYTES + b.readUInt32BE(from) : 1 + int(64);
        const span = Buffer.from(b.subarray(from, from + len));
        const at = int(b.length + 1);
        b = Buffer.concat([b.subarray(0, at), span, ...(rnd() < 0.3 ? [span, span] : []), b.subarray(at)]);
        kind += 'duplicate,';
        break;
      }
      case 5: {
        // frame header fields: type, flags, id
        if (offsets.length === 0) break;
        const at = offsets[int(offsets.length)]!;
        const field = int(3);
        if (field === 0) b[at + 4] = int(12);
        else if (field === 1) b[at + 5] = int(256);
        else b.writeUInt32BE(rnd() < 0.5 ? 0 : int(2 ** 32) >>> 0, at + 6);
        kind += 'header,';
        break;
      }
      case 6: {
        // overwrite a run with one byte value (0x00, 0xff, 0x80: varint traps)
        const at = int(b.length);
        b.fill([0, 0xff, 0x80, 0x7f][int(4)]!, at, Math.min(b.length, at + 1 + int(16)));
        kind += 'fill,';
        break;
      }
      case 7: {
        // pure random bytes, with or without a valid preface
        const junk = Buffer.from(Array.from({ length: int(512) }, () => int(256)));
        b = rnd() < 0.5 ? Buffer.concat([PREFACE, junk]) : junk;
        kind += 'random,';
        break;
      }
      default: {
        // delete a span
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
/** A principal without the role the ACL asks for `fail`. */
const GUEST_TOKEN = hmac.issue('guest', []);

/** The fuzz servers' echo: an item named HOLD_NAME is held until its call is cancelled (or 10 s pass). */
function echo(req: { item: { name: string } }, ctx: { signal: AbortSignal }): unknown {
  if (req.item.name !== HOLD_NAME) return req.item;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(req.item), 10_000);
    ctx.signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve(req.item);
      },
      { once: true },
    );
  });
}

/** Records what a real client writes, through a proxy to a real server. */
async function recordSession(protocol: Protocol, serverPort: number): Promise<Buffer> {
  const recorded: Buffer[] = [];
  const sockets: Socket[] = [];
  const proxy = createNetServer((down) => {
    const up = connect({ host: '127.0.0.1', port: serverPort });
    sockets.push(down, up);
    down.on('data', (d: Buffer) => {
      recorded.push(Buffer.from(d));
      up.write(d);
    });
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
    protocol,
    endpoints: [`127.0.0.1:${(proxy.address() as AddressInfo).port}`],
    credentials: TOKEN,
    fragmentBytes: 200,
    compressAboveBytes: 600,
  });
  const item = { id: 12345678901, name: 'fuzz seed', tags: ['a', 'bb', 'ccc'], score: -2.5, blob: Buffer.from('0001feff', 'hex') };
  await client.call('echo', { item });
  await client.call('echo', { item }, { timeoutMs: 5000, metadata: { tenant: 'blue', trace: 'x'.repeat(20) } });
  await client.call('fail', { reason: 'recorded' }).catch(() => undefined);
  await client.call('notify', { item });
  await client.call('echo', { item: { ...item, tags: Array.from({ length: 120 }, (_, i) => `tag-${i % 7}`) } });
  await client.call('echo', { item: { ...item, blob: Buffer.from(Array.from({ length: 1500 }, (_, i) => (i * 7919) % 251)) } });
  const aborted = new AbortController();
  const pending = client.call(
    'echo',
    { item: { ...item, tags: Array.from({ length: 50 }, (_, i) => `t${i}`) } },
    { signal: aborted.signal },
  );
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
async function replay(port: number, c: Case): Promise<{ frames: number[]; codes: number[]; whole: RawFrame[] }> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  const received: Buffer[] = [];
  const answered = new Promise<void>((resolve) => socket.once('data', () => resolve()));
  socket.on('data', (d: Buffer) => received.push(d));
  // A reset is one of the ways a server may end a bad connection: errors just lead to 'close'.
  let connectError: Error | undefined;
  socket.on('error', (err) => {
    connectError ??= socket.connecting ? err : undefined;
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const connected = new Promise<void>((resolve) => {
    socket.once('connect', () => resolve());
    socket.once('close', () => resolve());
  });
  let guard: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    guard = setTimeout(
      () => reject(new Error(`case ${c.index} (${c.kind}, ${c.delivery}, end=${c.end}) was never closed; seed ${SEED}`)),
      CLOSE_GUARD_MS,
    );
  });
  try {
    await Promise.race([connected, hung]);
    if (connectError !== undefined) throw new Error(`case ${c.index}: cannot connect (${connectError.message}); seed ${SEED}`);
    if (c.delivery === 'whole' && c.pauseAt === undefined) socket.write(c.bytes);
    else {
      const cuts =
        c.delivery === 'bytes'
          ? Array.from({ length: c.bytes.length }, (_, i) => i + 1)
          : [...(c.delivery === 'chunks' ? c.cuts : []), c.bytes.length];
      if (c.pauseAt !== undefined) cuts.push(c.pauseAt);
      cuts.sort((x, y) => x - y);
      let from = 0;
      for (const to of cuts) {
        if (socket.destroyed) break;
        if (to > from) socket.write(c.bytes.subarray(from, to));
        from = Math.max(from, to);
        // Authentication is asynchronous: what follows HELLO waits for its WELCOME.
        if (to === c.pauseAt) await Promise.race([answered, closed, hung]);
        else await new Promise((r) => setImmediate(r));
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
  const whole: RawFrame[] = [];
  for (let p = 0; p + HEADER_BYTES <= all.length; p += HEADER_BYTES + all.readUInt32BE(p)) {
    const type = all[p + 4]!;
    frames.push(type);
    if (type === FrameType.GOAWAY && p + 15 <= all.length) codes.push(all[p + 14]!);
    if (type === FrameType.ERROR && p + 11 <= all.length) codes.push(all[p + 10]!);
    const end = p + HEADER_BYTES + all.readUInt32BE(p);
    if (end <= all.length) whole.push({ type, flags: all[p + 5]!, id: all.readUInt32BE(p + 6), body: all.subarray(p + HEADER_BYTES, end) });
  }
  return { frames, codes, whole };
}

/** True when the server refused the connection at accept, for its caps on connections in handshake. */
function refusedAtAccept(frames: readonly RawFrame[]): boolean {
  const first = frames[0];
  return (
    first !== undefined &&
    first.type === FrameType.GOAWAY &&
    frameCode(first) === Code.UNAVAILABLE &&
    /maxHandshaking/.test(frameMessage(first))
  );
}

async function silent(port: number, index: number): Promise<void> {
  await replay(port, { index, kind: 'silent', bytes: Buffer.alloc(0), delivery: 'whole', end: false, cuts: [] });
}

test(`thousands of mutated sessions and silent sockets never crash or bloat the server (seed ${SEED})`, async () => {
  console.log(`\n  fuzz seed ${SEED} (AVRPC_FUZZ_SEED=${SEED} to replay), ${MUTATED_CASES} cases`);
  const protocol = await loadProtocol(repoPath('protocol/echo.avdl'));
  let crashes = 0;
  const onCrash = (err: unknown) => {
    if (crashes++ < 3) console.error('  CRASH', err, (err as Error).stack);
  };
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  const servers: Server[] = [];
  const stats = { goawayOrError: 0, closedWithoutFrame: 0, answeredThenClosed: 0, codes: new Map<number, number>() };
  try {
    // Two servers: one open (most mutations reach the request paths), one with authentication and an
    // ACL (a request pipelined behind HELLO meets a pending authentication there).
    for (const secured of [false, true]) {
      servers.push(
        createServer({
          protocol,
          handshakeTimeoutMs: 300,
          idleTimeoutMs: 300,
          maxQueuedBytes: MAX_QUEUED_BYTES,
          fragmentBytes: 200,
          compressAboveBytes: 600,
          // maxCancels 64, stallTimeoutMs 200, maxMessageBytes 1 MiB: generated attacks stay small and fast.
          ...FUZZ_LIMITS,
          ...(secured ? { authenticate: hmac.authenticate, acl: { '*': ['*'], fail: ['role:tester'] } } : {}),
          handlers: {
            echo,
            fail: (req: { reason: string }) => {
              throw new RpcError(Code.UNKNOWN, req.reason, { details: { reason: req.reason } });
            },
            notify: () => {},
          },
        }),
      );
    }
    const ports: number[] = [];
    for (const server of servers) ports.push((await server.listen()).port);
    const recorded = await recordSession(protocol, ports[1]!);
    const withText = Buffer.concat([
      helloBytes(protocol, { 'avrpc.token': Buffer.from(TOKEN) }),
      requestBytes(
        protocol,
        1,
        'echo',
        {
          item: { id: 1, name: 'n', tags: ['x'], score: 1, blob: Buffer.alloc(3) },
        },
        { k: 'v' },
        100,
      ),
    ]);
    assert.ok(recorded.subarray(0, PREFACE.length).equals(PREFACE), 'the recording starts with the preface');
    console.log(
      '  recorded frame types',
      frameOffsets(recorded)
        .map((o) => recorded[o + 4])
        .join(','),
    );
    assert.ok(frameOffsets(recorded).length >= 10, 'HELLO, the requests and their fragments were recorded');
    assert.ok(
      frameOffsets(recorded).some((o) => recorded[o + 4] === FrameType.CONTINUATION),
      'fragments were recorded',
    );

    const rnd = prng(SEED);
    const env = { protocol, token: TOKEN, guestToken: GUEST_TOKEN };
    const cases: Case[] = [];
    for (let i = 0; i < MUTATED_CASES; i++) {
      cases.push(i % HOSTILE_EVERY === HOSTILE_EVERY - 1 ? hostile(env, rnd, i) : mutate(rnd() < 0.8 ? recorded : withText, rnd, i));
    }

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
          (r: { name: string }) => {
            if (r.name !== item.name) goodFailures.push(new Error(`wrong answer ${r.name}`));
          },
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
    let hogsClosed = 0;
    const unexpected: string[] = [];
    const worker = async () => {
      while (next < cases.length) {
        const c = cases[next++]!;
        const port = ports[(c.secured ?? c.index % 4 === 0) ? 1 : 0]!;
        let r = await replay(port, c);
        // A checked session (or one expecting a code) the handshake caps turned away at accept (the silent sockets hold up to
        // maxHandshakingPerAddress at first) never reached the server: it is sent again.
        for (let tries = 0; (c.check !== undefined || c.expect !== undefined) && refusedAtAccept(r.whole) && tries < 100; tries++) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          r = await replay(port, c);
        }
        if (c.kind === 'window-hog') hogsClosed++;
        if (c.expect !== undefined && !r.codes.includes(c.expect)) {
          unexpected.push(
            `case ${c.index} (${c.kind}, ${c.bytes.length} bytes) got codes [${r.codes.join(',')}], frames [${r.frames.join(',')}], not ${c.expect}`,
          );
        }
        const wrong = c.check?.(r.whole);
        if (wrong !== undefined) unexpected.push(`case ${c.index} (${c.kind}, ${c.delivery}, ${c.bytes.length} bytes): ${wrong}`);
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
    const codes = [...stats.codes]
      .sort((a, b) => b[1] - a[1])
      .map(([c, n]) => `${c}:${n}`)
      .join(' ');
    console.log(
      `  ${MUTATED_CASES} cases: ${stats.goawayOrError} got GOAWAY/ERROR, ${stats.closedWithoutFrame} closed without a frame, ` +
        `${stats.answeredThenClosed} answered then closed; codes ${codes}; ${SILENT_SOCKETS} silent sockets closed; ` +
        `${goodCalls} good calls; peak heap+buffers growth ${(peakGrowth / 1e6).toFixed(1)} MB`,
    );
    const kinds = HOSTILE_KINDS.map((k) => `${k} x${cases.filter((c) => c.kind === k).length}`).join(', ');
    console.log(
      `  of which ${cases.filter((c) => (HOSTILE_KINDS as readonly string[]).includes(c.kind)).length} generated hostile sessions (${kinds}), ${hogsClosed} of them peers never sending WINDOW (all dropped)`,
    );
    assert.equal(goodFailures, [], 'every well-behaved call succeeded');
    assert.equal(unexpected.slice(0, 5), [], 'every generated hostile session got the code it must');
    assert.ok(goodCalls > 0);
    assert.is(crashes, 0, 'no uncaught exception or unhandled rejection');
    assert.ok(peakGrowth < 200e6, `memory grew by ${peakGrowth} bytes`);
    assert.ok(stats.goawayOrError > MUTATED_CASES / 4, 'most broken sessions are told why');
    for (const server of servers) await until(() => server.connections === 0, 'every bad connection is gone');
    // Every partial frame, upload, inflation and queued answer of the cases was given back.
    for (const server of servers)
      await until(() => server.bufferedBytes === 0, `server-wide budget back to 0 (${server.bufferedBytes} bytes held)`);
  } finally {
    for (const server of servers) await server.close({ graceMs: 100 });
    process.off('uncaughtException', onCrash);
    process.off('unhandledRejection', onCrash);
  }
});

/**
 * Issue 14: crafted peer protocols, not only mutated bytes. Each case is a protocol with an extra field
 * of a generated type (every Avro kind, nested) that the other side lacks, so its resolution skips the
 * field, and a message whose value there lies about its size (2^40 items, negative counts with huge or
 * negative sizes, huge string lengths) or is a mutated true value. In a HELLO to a real server: the
 * request is answered (ERROR or RESPONSE) and the server then answers a normal call. In a WELCOME from
 * a fake server to a real client, with lying responses and declared errors: each call settles with a
 * result or a coded RpcError, and a true answer after it still arrives.
 */
const PROTOCOL_CASES = Number(process.env['AVRPC_FUZZ_PROTOCOL_CASES'] ?? 300);
const EXTRA_KINDS = KINDS.filter((k) => k !== 'null');

type ProtocolJson = { types: Array<{ name: string; fields: object[] }>; messages: Record<string, { request: object[] }> };
function crafted(base: Protocol, change: (json: ProtocolJson) => void): Protocol | undefined {
  const json = JSON.parse(base.text) as ProtocolJson;
  change(json);
  try {
    return new Protocol(JSON.stringify(json));
  } catch {
    return undefined; // a generated corner Avro refuses: not a case
  }
}

/** A value of `type` (a true one, mutated, or one that lies about its size). */
function craftedValue(g: ReturnType<typeof gen>, type: Schema, protocolType: { toBuffer(v: unknown): Buffer; random(): unknown }): Buffer {
  return g.rnd() < 0.7 ? lyingValue(g, type) : mutateBytes(g, protocolType.toBuffer(protocolType.random()));
}

const MINIMAL_ITEM = Buffer.alloc(12); // id 0, name "", tags [], score 0.0, blob ""

test(`crafted peer protocols: a server refuses or answers each lying request and serves on; a client settles each lying answer with a code (seed ${SEED})`, async () => {
  const protocol = await loadProtocol(repoPath('protocol/echo.avdl'));
  const rnd = prng(SEED ^ 0x5eed);
  const server = createServer({
    protocol,
    handlers: {
      echo: (req: { item: unknown }) => req.item,
      fail: (req: { reason: string }) => {
        throw new RpcError(Code.UNKNOWN, req.reason);
      },
      notify: () => {},
    },
  });
  const { port } = await server.listen();
  const good = createClient({ protocol, endpoints: [`127.0.0.1:${port}`] });
  const outcomes = new Map<string, number>();
  const count = (what: string) => outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
  let skipped = 0;
  try {
    // To the server: HELLO with a protocol whose echo request has an extra field x, and whose Item may
    // have one too (a union with a default, so the client could read the server's Item back).
    for (let i = 0; i < PROTOCOL_CASES; i++) {
      const g = gen(rnd, `Fz${i}_`);
      const x = genType(g, 0, EXTRA_KINDS[Math.floor(rnd() * EXTRA_KINDS.length)]);
      const inItem = rnd() < 0.3;
      const y = genType(g, 1);
      const peer = crafted(protocol, (json) => {
        json.messages['echo']!.request.push({ name: 'x', type: x });
        if (inItem) json.types[0]!.fields.push({ name: 'y', type: ['null', y], default: null });
      });
      if (peer === undefined) {
        skipped++;
        continue;
      }
      const request = peer.message('echo')!.request as unknown as {
        fields: Array<{ type: { toBuffer(v: unknown): Buffer; random(): unknown } }>;
      };
      const itemBytes = inItem
        ? Buffer.concat([MINIMAL_ITEM, rnd() < 0.5 ? Buffer.from([0]) : Buffer.concat([varint(1), lyingValue(g, y)])])
        : MINIMAL_ITEM;
      const body = Buffer.concat([Buffer.from([0, peer.message('echo')!.index]), itemBytes, craftedValue(g, x, request.fields[1]!.type)]);
      const raw = await RawPeer.connect(port);
      try {
        const welcome = await raw.handshake(peer);
        assert.is(welcome.type, FrameType.WELCOME, `case ${i}: handshake`);
        raw.socket.write(rawFrame(FrameType.REQUEST, 0, 1, body));
        const answer = await raw.frame(10_000);
        if (answer.type === FrameType.RESPONSE) count('server: RESPONSE');
        else {
          assert.is(answer.type, FrameType.ERROR, `case ${i}: the request is answered`);
          count(`server: ERROR ${frameCode(answer)}`);
          if (frameCode(answer) !== Code.INVALID_ARGUMENT) console.log(`  case ${i}: ${frameMessage(answer)}`);
        }
      } finally {
        raw.destroy();
      }
      const item = { id: i, name: `after-${i}`, tags: [], score: 0, blob: Buffer.alloc(0) };
      assert.is(
        (await good.call<{ name: string }>('echo', { item }, { timeoutMs: 10_000 })).name,
        item.name,
        `case ${i}: the server serves on`,
      );
    }

    // To a client: a fake server whose WELCOME protocol adds a field to Item and to EchoError (with a
    // default, so it can read the client's requests) and whose answers lie in it.
    let lie: { proto: Protocol; welcome: Buffer; response: Buffer; error: Buffer } | undefined;
    const fake = await rawServer((socket) => {
      const c = lie!;
      let echoes = 0;
      const decoder = new FrameDecoder({ maxFrameBytes: 1 << 20, expectPreface: true }, (type, flags, id, body) => {
        if (type === FrameType.HELLO) return void socket.write(c.welcome);
        if (type !== FrameType.REQUEST) return;
        const name = protocol.messages[readRequestHead(flags, body).index]!.name;
        if (name === 'fail') return void socket.write(rawFrame(FrameType.ERROR, Flag.DECLARED, id, c.error));
        const answer =
          echoes++ === 0
            ? c.response
            : c.proto.message('echo')!.response.toBuffer({ id: 1, name: 'true', tags: [], score: 0, blob: Buffer.alloc(0), x: null });
        socket.write(rawFrame(FrameType.RESPONSE, 0, id, answer));
      });
      socket.on('data', (chunk: Buffer) => {
        try {
          decoder.push(chunk);
        } catch {
          socket.destroy();
        }
      });
    });
    try {
      for (let i = 0; i < PROTOCOL_CASES / 2; i++) {
        const g = gen(rnd, `Fy${i}_`);
        const x = genType(g, 0, EXTRA_KINDS[Math.floor(rnd() * EXTRA_KINDS.length)]);
        const e = genType(g, 0);
        const proto = crafted(protocol, (json) => {
          json.types[0]!.fields.push({ name: 'x', type: ['null', x], default: null });
          json.types[1]!.fields.push({ name: 'x', type: ['null', e], default: null });
        });
        if (proto === undefined) {
          skipped++;
          continue;
        }
        const enc = new FrameEncoder();
        enc.frame(
          FrameType.WELCOME,
          0,
          0,
          { status: 'OK', fingerprint: proto.fingerprint, protocol: proto.text, meta: {} },
          writeHandshake(welcomeType),
        );
        const itemType = proto.message('echo')!.response as unknown as { toBuffer(v: unknown): Buffer; random(): unknown };
        const response =
          rnd() < 0.7 ? Buffer.concat([MINIMAL_ITEM, varint(1), lyingValue(g, x)]) : mutateBytes(g, itemType.toBuffer(itemType.random()));
        // UNKNOWN, message "no", then the declared error: branch 1 (EchoError), reason "", x.
        const error = Buffer.concat([Buffer.from([Code.UNKNOWN, 4]), Buffer.from('no'), varint(1), varint(0), varint(1), lyingValue(g, e)]);
        lie = { proto, welcome: Buffer.concat(enc.take()), response, error };
        const client = createClient({ protocol, endpoints: [fake.endpoint] });
        try {
          for (const call of ['echo', 'fail', 'echo'] as const) {
            const request = call === 'echo' ? { item: { id: 1, name: 'n', tags: [], score: 0, blob: Buffer.alloc(0) } } : { reason: 'r' };
            const outcome = await client.call(call, request, { timeoutMs: 10_000 }).then(
              () => 'result',
              (err: unknown) => {
                assert.instance(err, RpcError, `case ${i}: a coded RpcError`);
                return `RpcError ${(err as RpcError).codeName}`;
              },
            );
            count(`client ${call}: ${outcome}`);
          }
        } finally {
          await client.close();
        }
      }
    } finally {
      await fake.close();
    }
    console.log(
      `\n  crafted protocols: ${[...outcomes].map(([k, n]) => `${k} x${n}`).join(', ')}; ${skipped} generated protocols not valid Avro`,
    );
    assert.ok(
      (outcomes.get(`server: ERROR ${Code.INVALID_ARGUMENT}`) ?? 0) > PROTOCOL_CASES / 3,
      'most lying requests are refused INVALID_ARGUMENT',
    );
    assert.ok((outcomes.get('client echo: RpcError DEADLINE_EXCEEDED') ?? 0) === 0, 'no lying answer left a call hanging');
  } finally {
    await good.close();
    await server.close({ graceMs: 100 });
  }
});

test.run();
