/**
 * The server's handshake as a state machine (src/server/server-handshake.ts), driven with HELLO bodies
 * against a fake writer and a fake owner: no socket, no timer.
 */
import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadProtocol, type Protocol, type ServerOptions } from '../../src/index.js';
import { fingerprintOf } from '../../src/codec/fingerprint.js';
import { Code } from '../../src/errors/code.js';
import { FrameType } from '../../src/framing/frame.js';
import { helloType, type Hello, type Welcome } from '../../src/framing/handshake.js';
import type { PeerInfo } from '../../src/server/call-context.js';
import { ParseBudget } from '../../src/server/parse-budget.js';
import { ServerHandshake, type HandshakeOwner, type HandshakeResult } from '../../src/server/server-handshake.js';
import { repoPath } from '../helpers/repo.js';
import { FakeWriter, fakeShared } from './fakes.js';

const test = suite('server handshake');
let protocol: Protocol;
test.before(async () => {
  protocol = await loadProtocol(repoPath('protocol/echo.avdl'));
});

/** A fake owner: records the principal, expiries and the result. */
class Owner implements HandshakeOwner {
  peer: PeerInfo = { address: '127.0.0.1', port: 1 };
  result: HandshakeResult | undefined;
  expiries: number[] = [];
  constructor(private readonly expiryOk = true) {}
  identified(principal: unknown): void {
    this.peer = { ...this.peer, principal };
  }
  expiresAt(at: number): boolean {
    this.expiries.push(at);
    return this.expiryOk;
  }
  established(result: HandshakeResult): void {
    this.result = result;
  }
}

function setup(options: Partial<ServerOptions> = {}, owner = new Owner(), extra: { parseBudget?: ParseBudget } = {}) {
  const writer = new FakeWriter();
  const handshake = new ServerHandshake({ ...fakeShared(protocol, options), ...extra }, writer, owner);
  return { writer, owner, handshake };
}

/** A HELLO body: by default our own protocol's fingerprint and text. */
function hello(h: Partial<Hello> = {}): Buffer {
  return helloType.toBuffer({ fingerprint: protocol.fingerprint, protocol: protocol.text, knownServerFingerprint: null, meta: {}, ...h });
}

/** A HELLO for a protocol the server has never seen: an unknown fingerprint, and its text or none. */
function strangerHello(withText: boolean): Buffer {
  const text = protocol.text.replace('"protocol":"Echo"', '"protocol":"Stranger"');
  assert.is.not(text, protocol.text);
  return helloType.toBuffer({
    fingerprint: fingerprintOf(text),
    protocol: withText ? text : null,
    knownServerFingerprint: null,
    meta: {},
  });
}

function welcomes(writer: FakeWriter): Array<Welcome['status']> {
  return writer.frames.filter((f) => f.type === FrameType.WELCOME).map((f) => (f.value as Welcome).status);
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('a HELLO with a known fingerprint: WELCOME OK, and one result with codec and negotiated extensions', () => {
  const { writer, owner, handshake } = setup();
  handshake.onHello(hello({ protocol: null }));
  assert.equal(welcomes(writer), ['OK']);
  assert.ok(handshake.done);
  const r = owner.result!;
  assert.ok(r.remote.fingerprint.equals(protocol.fingerprint));
  assert.is(r.codec.remote, r.remote);
  assert.equal(r.negotiated, { peerPartialMessages: 0, peerWindowBytes: 0, compression: false, peerStreamWindow: 0 });
  assert.is(r.principal, undefined);
  assert.is(writer.failed, undefined);
});

test("an unknown fingerprint without text: NEED_PROTOCOL, then its text: OK; a stranger's protocol stays unadmitted", () => {
  const { writer, owner, handshake } = setup();
  handshake.onHello(strangerHello(false));
  assert.equal(welcomes(writer), ['NEED_PROTOCOL']);
  assert.is(owner.result, undefined);
  assert.not.ok(handshake.done);
  handshake.onHello(strangerHello(true));
  assert.equal(welcomes(writer), ['NEED_PROTOCOL', 'OK']);
  assert.is(owner.result!.unadmitted, owner.result!.remote, 'parsed for this connection only');
});

test('two HELLOs at most: a third fails the connection', () => {
  const { writer, handshake } = setup();
  const loop = helloType.toBuffer({ fingerprint: randomBytes(16), protocol: null, knownServerFingerprint: null, meta: {} });
  handshake.onHello(loop);
  handshake.onHello(loop);
  assert.equal(welcomes(writer), ['NEED_PROTOCOL', 'NEED_PROTOCOL']);
  assert.is(writer.failed, undefined);
  handshake.onHello(loop);
  assert.is(writer.failed?.message, 'protocol error: more than two HELLOs');
  assert.is(writer.frames.length, 2, 'no third WELCOME');
});

test('a HELLO while authenticate runs is a protocol error', async () => {
  let resolve!: (p: unknown) => void;
  const { writer, owner, handshake } = setup({ authenticate: () => new Promise((r) => (resolve = r)) });
  handshake.onHello(hello());
  handshake.onHello(hello());
  assert.is(writer.failed?.message, 'protocol error: HELLO during authentication');
  resolve('alice');
  await tick();
  assert.equal(welcomes(writer), [], 'closed: nothing answered');
  assert.is(owner.result, undefined);
});

test('authenticate first: the small pre-auth limit, then maxHandshakeBytes; the second HELLO is not authenticated again', async () => {
  let asked = 0;
  const { writer, owner, handshake } = setup({
    authenticate: (creds) => {
      asked++;
      return { id: creds.token ?? 'anonymous' };
    },
  });
  assert.match(writer.limits[0]![1], 'before authentication');
  handshake.onHello(strangerHello(false));
  assert.equal(welcomes(writer), [], 'nothing before authenticate answered');
  await tick();
  assert.equal(welcomes(writer), ['NEED_PROTOCOL']);
  assert.is(writer.limits.length, 2);
  assert.equal(owner.peer.principal, { id: 'anonymous' });
  handshake.onHello(strangerHello(true));
  assert.is(asked, 1);
  assert.equal(welcomes(writer), ['NEED_PROTOCOL', 'OK']);
  assert.equal(owner.result!.principal, { id: 'anonymous' });
  assert.is(owner.result!.unadmitted, undefined, "an authenticated peer's protocol is shared at once");
});

test('authenticate throws: ERROR id 0 UNAUTHENTICATED, then the connection ends', async () => {
  const { writer, handshake } = setup({
    authenticate: () => {
      throw new Error('bad token');
    },
  });
  handshake.onHello(hello());
  await tick();
  assert.equal(writer.errors(), [{ id: 0, flags: 0, code: Code.UNAUTHENTICATED, message: 'bad token' }]);
  assert.is(writer.ended?.error?.code, Code.UNAUTHENTICATED);
  assert.equal(welcomes(writer), []);
});

test('a principal already expired is refused: credentials expired', async () => {
  const owner = new Owner(false);
  const { writer, handshake } = setup({ authenticate: () => ({ id: 'bob', expiresAt: 1 }) }, owner);
  handshake.onHello(hello());
  await tick();
  assert.equal(owner.expiries, [1]);
  assert.equal(
    writer.errors().map((e) => e.message),
    ['credentials expired'],
  );
  assert.equal(welcomes(writer), []);
});

test('a malformed HELLO, or a text that does not match its fingerprint, is a protocol error', () => {
  const a = setup();
  a.handshake.onHello(Buffer.from([1, 2, 3]));
  assert.match(a.writer.failed!.message, /^protocol error: in handshake: /);
  const b = setup();
  b.handshake.onHello(hello({ fingerprint: randomBytes(16) }));
  assert.match(b.writer.failed!.message, 'protocol error: in handshake: client protocol does not match its fingerprint');
});

test("a stranger's text over maxProtocolBytes is RESOURCE_EXHAUSTED; a spent parse budget UNAVAILABLE", () => {
  const a = setup({ maxProtocolBytes: 100 });
  a.handshake.onHello(strangerHello(true));
  assert.is(a.writer.failed?.code, Code.RESOURCE_EXHAUSTED);
  // A fake clock: one parse of 5 ms overdraws a budget of 1 ms per second.
  let now = 0;
  const budget = new ParseBudget(1, () => now);
  budget.spend(() => (now += 5));
  const b = setup({}, new Owner(), { parseBudget: budget });
  b.handshake.onHello(strangerHello(true));
  assert.is(b.writer.failed?.code, Code.UNAVAILABLE);
  assert.match(b.writer.failed!.message, 'protocolParseMsPerSecond');
});

test.run();
