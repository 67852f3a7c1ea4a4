import { createHash, randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createClient, parseProtocol, type Protocol } from '../../src/index.js';
import { PEER_PROTOCOL_LIMITS } from '../../src/codec/protocol-limits.js';
import { ResolverCache } from '../../src/codec/resolver-cache.js';
import { ParseBudget } from '../../src/server/parse-budget.js';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';
import { FrameType, PREFACE } from '../../src/framing/frame.js';
import { helloType, readHandshake, welcomeType, writeHandshake, type Welcome } from '../../src/framing/handshake.js';
import { rawServer } from '../helpers/echo-fixture.js';
import { frameCode, frameMessage, requestBytes } from '../helpers/raw-peer.js';
import { failure, securityFixture } from '../helpers/security-fixture.js';

/**
 * Issue 14, peer protocols are expensive to accept: their size is capped on both sides by default,
 * their shape before avsc builds types, and a stranger's protocol stays out of the shared cache.
 */
const test = suite('security: peer protocols');
let protocol: Protocol;
const { serve, peer } = securityFixture(test, (p) => {
  protocol = p;
});
const item = { id: 3, name: 'protocols', tags: [], score: 0, blob: Buffer.alloc(0) };

/** The echo protocol's JSON with `extra` named types added: a distinct fingerprint, still compatible. */
function echoWith(extra: object[]): string {
  const json = JSON.parse(protocol.text) as { types: object[] };
  json.types.push(...extra);
  return JSON.stringify(json);
}

/** A salted echo protocol of about `bytes` bytes (records of 16 documented long fields: within the shape limits). */
function echoOfSize(bytes: number): string {
  const extra: object[] = [];
  const salt = randomBytes(4).toString('hex');
  for (let r = 0, size = 0; size < bytes; r++) {
    const t = {
      type: 'record',
      name: `Pad${r}_${salt}`,
      fields: Array.from({ length: 16 }, (_, f) => ({ name: `f${f}`, type: 'long', doc: 'd'.repeat(100) })),
    };
    size += JSON.stringify(t).length;
    extra.push(t);
  }
  return echoWith(extra);
}

/** Preface and a HELLO for `text`, carrying it or (`withText` false) only its fingerprint. */
function hello(text: string, withText = true, preface = true): Buffer {
  const enc = new FrameEncoder();
  if (preface) enc.bytes(PREFACE);
  const fingerprint = createHash('md5').update(text).digest();
  enc.frame(
    FrameType.HELLO,
    0,
    0,
    { fingerprint, protocol: withText ? text : null, knownServerFingerprint: null, meta: {} },
    writeHandshake(helloType),
  );
  return Buffer.concat(enc.take());
}

/** A hostile server: answers any HELLO with a WELCOME OK carrying `text`, and never answers a call. */
function welcomeServer(text: string): ReturnType<typeof rawServer> {
  const enc = new FrameEncoder();
  enc.frame(
    FrameType.WELCOME,
    0,
    0,
    { status: 'OK', fingerprint: createHash('md5').update(text).digest(), protocol: text, meta: {} },
    writeHandshake(welcomeType),
  );
  const welcome = Buffer.concat(enc.take());
  return rawServer((socket) => socket.once('data', () => socket.write(welcome)));
}

function welcomeStatus(body: Buffer): string {
  return readHandshake<Welcome>(welcomeType, body).status;
}

/** A raw peer that completed a handshake with a protocol the server has never seen (a random salt type). */
async function learnt(port: number): Promise<{ first: Awaited<ReturnType<typeof peer>>; text: string }> {
  const text = echoWith([{ type: 'fixed', name: `Salt${randomBytes(4).toString('hex')}`, size: 1 }]);
  const first = await peer(port);
  first.socket.write(hello(text));
  assert.is(welcomeStatus((await first.frame()).body), 'OK');
  return { first, text };
}

/** The WELCOME status a new connection gets when its HELLO names `text` by fingerprint only. */
async function statusByFingerprint(port: number, text: string): Promise<string> {
  const p = await peer(port);
  p.socket.write(hello(text, false));
  return welcomeStatus((await p.frame()).body);
}

test('server: a protocol text over the default maxProtocolBytes (256 KiB) gets GOAWAY RESOURCE_EXHAUSTED', async () => {
  // Before: the default was 1 MiB, and such a text was parsed (about a second of event loop).
  const { port } = await serve();
  const text = echoOfSize(256 * 1024 + 100);
  const p = await peer(port);
  p.socket.write(hello(text));
  const [goaway] = await p.rest();
  assert.is(goaway!.type, FrameType.GOAWAY);
  assert.is(frameCode(goaway!), Code.RESOURCE_EXHAUSTED);
  assert.match(frameMessage(goaway!), 'exceeds maxProtocolBytes (262144)');
});

test('server: a small protocol with too many named types, or nested too deep, is refused before avsc builds it', async () => {
  // Before: 600 enums (30 KB) were built into avsc types; 1000 nested arrays overflowed avsc's recursion.
  const { port } = await serve();
  const enums = Array.from({ length: PEER_PROTOCOL_LIMITS.namedTypes + 1 }, (_, i) => ({ type: 'enum', name: `E${i}`, symbols: ['A'] }));
  const many = await peer(port);
  many.socket.write(hello(echoWith(enums)));
  const [a] = await many.rest();
  assert.is(frameCode(a!), Code.RESOURCE_EXHAUSTED);
  assert.match(frameMessage(a!), `more than ${PEER_PROTOCOL_LIMITS.namedTypes} named types`);
  let nested: object = { type: 'map', values: 'long' };
  for (let i = 0; i < 1000; i++) nested = { type: 'array', items: nested };
  const deep = await peer(port);
  deep.socket.write(hello(echoWith([{ type: 'record', name: 'Deep', fields: [{ name: 'd', type: nested }] }])));
  const [b] = await deep.rest();
  assert.is(frameCode(b!), Code.RESOURCE_EXHAUSTED);
  assert.match(frameMessage(b!), 'nested deeper than');
  // Within the limits, a compatible protocol with extra types is accepted.
  const fine = await peer(port);
  fine.socket.write(hello(echoWith(enums.slice(0, 10))));
  const ok = await fine.frame();
  assert.is(ok.type, FrameType.WELCOME);
  assert.is(welcomeStatus(ok.body), 'OK');
});

test('server without authenticate: a protocol joins the shared cache only once a call of its connection completed', async () => {
  // Before: any handshake's protocol joined the cache at once (64 of them, about 25 MB per MiB of text).
  const { port } = await serve();
  const { first, text } = await learnt(port);
  // Another connection naming only its fingerprint: the server does not know it yet.
  assert.is(await statusByFingerprint(port, text), 'NEED_PROTOCOL');
  // A call completes on the first connection: now the protocol is shared.
  first.socket.write(requestBytes(protocol, 1, 'echo', { item }));
  assert.is((await first.frame()).type, FrameType.RESPONSE);
  assert.is(await statusByFingerprint(port, text), 'OK');
});

test("server with authenticate: an authenticated connection's protocol joins the cache at once", async () => {
  const { port } = await serve({ authenticate: () => 'someone' });
  const { text } = await learnt(port);
  assert.is(await statusByFingerprint(port, text), 'OK');
});

test("server: strangers' protocols share a parse budget (protocolParseMsPerSecond); known protocols and authenticated peers do not wait on it", async () => {
  // Before: every handshake with a new protocol was parsed, one after another, whatever they cost together.
  const { port } = await serve({ protocolParseMsPerSecond: 1 });
  const first = await peer(port);
  first.socket.write(hello(echoOfSize(30_000)));
  assert.is(welcomeStatus((await first.frame()).body), 'OK');
  // That parse took far more than 1 ms: the next stranger with a new protocol is refused.
  const second = await peer(port);
  second.socket.write(hello(echoOfSize(1000)));
  const [refused] = await second.rest();
  assert.is(frameCode(refused!), Code.UNAVAILABLE);
  assert.match(frameMessage(refused!), 'protocolParseMsPerSecond (1)');
  // A protocol the server knows (its own) needs no parse.
  const known = await peer(port);
  known.socket.write(hello(protocol.text));
  assert.is(welcomeStatus((await known.frame()).body), 'OK');
  // A real client is refused the same way: a passing refusal, retried until the call's time runs out
  // (at 1 ms per second, the budget overdrawn by the first parse stays spent for the whole test).
  const c = createClient({
    protocol: parseProtocol(echoOfSize(1000)),
    endpoints: [`127.0.0.1:${port}`],
    backoff: { initialMs: 20, maxMs: 50 },
    waitForReadyMs: 300,
  });
  try {
    const err = await failure(c.call('echo', { item }, { timeoutMs: 2000 }));
    assert.is(err.code, Code.UNAVAILABLE);
    assert.match(err.message, 'protocolParseMsPerSecond (1)');
  } finally {
    await c.close();
  }
  // Authenticated peers are exempt. Before authentication a HELLO stays within 16 KiB (SPEC section 3):
  // the text goes in a second HELLO, after NEED_PROTOCOL.
  const { port: authPort } = await serve({ protocolParseMsPerSecond: 1, authenticate: () => 'p' });
  for (let i = 0; i < 3; i++) {
    const p = await peer(authPort);
    const text = echoOfSize(30_000);
    p.socket.write(hello(text, false));
    assert.is(welcomeStatus((await p.frame()).body), 'NEED_PROTOCOL', `authenticated peer ${i}`);
    p.socket.write(hello(text, true, false));
    assert.is(welcomeStatus((await p.frame()).body), 'OK', `authenticated peer ${i}`);
  }
});

test("ParseBudget: a bucket of one second's worth, refilled over time, overdrawn by at most one parse", () => {
  let now = 0;
  const budget = new ParseBudget(100, () => now);
  assert.is(budget.available(), true);
  budget.spend(() => {
    now += 150;
  });
  // 100 - 150, plus the 15 ms the 150 ms of parsing refilled.
  assert.is(budget.available(), false, 'overdrawn by 35 ms');
  now += 300;
  assert.is(budget.available(), false, 'refilled 30 of the 35');
  now += 100;
  assert.is(budget.available(), true);
  // A long quiet period refills one second's worth, no more.
  now += 60_000;
  assert.is(budget.available(), true);
  budget.spend(() => {
    now += 250;
  });
  assert.is(budget.available(), false, 'capped at 100: 100 - 250 + 25');
  // A parse that throws still draws its time.
  now += 1300;
  assert.is(budget.available(), true);
  assert.throws(
    () =>
      budget.spend(() => {
        now += 200;
        throw new Error('bad');
      }),
    /bad/,
  );
  assert.is(budget.available(), false);
});

test('ResolverCache: bounded by protocol text bytes as well as by count', () => {
  // Before: only the count bounded it (64 protocols of any size).
  const texts = [0, 1, 2].map(() => echoOfSize(20_000));
  const cache = new ResolverCache(protocol, 64, 45_000);
  const learnt = texts.map((t) => cache.learn(t));
  assert.is(cache.protocol(learnt[0]!.id), undefined, 'the oldest was evicted for bytes');
  assert.is(cache.protocol(learnt[2]!.id), learnt[2]);
  // parse() keeps nothing; admit() does.
  const stranger = cache.parse(echoOfSize(1000));
  assert.is(cache.protocol(stranger.id), undefined);
  cache.admit(stranger);
  assert.is(cache.protocol(stranger.id), stranger);
});

test('client: a WELCOME whose protocol text exceeds maxProtocolBytes fails the call RESOURCE_EXHAUSTED, before it is parsed', async () => {
  // Before: the client had no cap: a 5.9 MiB WELCOME took a 2 s call to 6.7 s and the client to 1.3 GB.
  const text = echoOfSize(300 * 1024);
  const fake = await welcomeServer(text);
  const client = createClient({ protocol, endpoints: [fake.endpoint], backoff: { initialMs: 50, maxMs: 100 } });
  try {
    const err = await failure(client.call('echo', { item }, { timeoutMs: 5000 }));
    assert.is(err.code, Code.RESOURCE_EXHAUSTED);
    assert.match(err.message, 'exceeds maxProtocolBytes (262144)');
    // Raised, the same server's protocol is accepted (and the call then waits on the silent server).
    const lenient = createClient({ protocol, endpoints: [fake.endpoint], maxProtocolBytes: 1024 * 1024 });
    try {
      assert.is((await failure(lenient.call('echo', { item }, { timeoutMs: 300 }))).code, Code.DEADLINE_EXCEEDED);
    } finally {
      await lenient.close();
    }
  } finally {
    await client.close();
    await fake.close();
  }
});

test('client: a WELCOME frame announced far beyond maxProtocolBytes is refused from its header, before it is buffered', async () => {
  // Before: the client took frames up to maxFrameBytes (16 MiB) before the handshake, so a server could
  // make it buffer (and wait for) a 6 MiB WELCOME before its text was checked; this one never completes.
  const header = Buffer.alloc(10);
  header.writeUInt32BE(6 * 1024 * 1024, 0);
  header[4] = FrameType.WELCOME;
  const fake = await rawServer((socket) => socket.once('data', () => socket.write(Buffer.concat([header, Buffer.alloc(64 * 1024)]))));
  const client = createClient({ protocol, endpoints: [fake.endpoint], backoff: { initialMs: 50, maxMs: 100 } });
  try {
    const err = await failure(client.call('echo', { item }, { timeoutMs: 5000 }));
    assert.is(err.code, Code.RESOURCE_EXHAUSTED);
    assert.match(err.message, 'exceeds the handshake limit (maxProtocolBytes 262144 + 64 KiB)');
  } finally {
    await client.close();
    await fake.close();
  }
});

test('client: a server protocol beyond the shape limits fails RESOURCE_EXHAUSTED too', async () => {
  const enums = Array.from({ length: PEER_PROTOCOL_LIMITS.namedTypes + 1 }, (_, i) => ({ type: 'enum', name: `E${i}`, symbols: ['A'] }));
  const text = echoWith(enums);
  const fake = await welcomeServer(text);
  const client = createClient({ protocol, endpoints: [fake.endpoint], backoff: { initialMs: 50, maxMs: 100 } });
  try {
    const err = await failure(client.call('echo', { item }, { timeoutMs: 5000 }));
    assert.is(err.code, Code.RESOURCE_EXHAUSTED);
    assert.match(err.message, 'named types');
  } finally {
    await client.close();
    await fake.close();
  }
});

test.run();
