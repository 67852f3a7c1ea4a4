import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, type Protocol } from '../../src/index.js';
import { FRAGMENTS_META_KEY } from '../../src/framing/extensions.js';
import { Flag, FrameType, PREFACE } from '../../src/framing/frame.js';
import { rawFrame } from '../helpers/raw-client.js';
import { frameCode, helloBytes, requestBytes, type RawFrame, type RawPeer } from '../helpers/raw-peer.js';
import { securityFixture } from '../helpers/security-fixture.js';

/**
 * SPEC.md sections 6 and 12.3, pinned on a real server through a raw peer: which connection-level
 * frames a server takes before the handshake, and what it does with a sender that exceeds the
 * fragment window W it advertised.
 */
const test = suite('spec: connection frames before the handshake, and the window');
let protocol: Protocol;
const fixture = securityFixture(test, (p) => {
  protocol = p;
});
const item = { id: 7, name: 'edge', tags: [], score: 0, blob: Buffer.alloc(0) };

/** The HELLO frame alone (helloBytes starts with the preface). */
function helloFrame(meta: Record<string, Buffer> = {}): Buffer {
  return helloBytes(protocol, meta).subarray(PREFACE.length);
}

async function peer(options = {}): Promise<RawPeer> {
  const { port } = await fixture.serve(options);
  return fixture.peer(port);
}

test('a PING after the preface and before the HELLO is answered with PONG; the handshake then proceeds', async () => {
  const p = await peer();
  p.socket.write(Buffer.concat([PREFACE, rawFrame(FrameType.PING, 0, 5, null), helloFrame()]));
  const pong = await p.frame();
  assert.equal([pong.type, pong.id, pong.body.length], [FrameType.PONG, 5, 0]);
  assert.is((await p.frame()).type, FrameType.WELCOME);
});

test('a PONG or a CANCEL before the HELLO is ignored; the handshake then proceeds', async () => {
  for (const type of [FrameType.PONG, FrameType.CANCEL]) {
    const p = await peer();
    p.socket.write(Buffer.concat([PREFACE, rawFrame(type, 0, 5, null), helloFrame()]));
    assert.is((await p.frame()).type, FrameType.WELCOME, `frame type ${type}`);
  }
});

test('a CANCEL, PING or PONG with a body is a protocol error: GOAWAY INTERNAL, then close (before and after the handshake)', async () => {
  for (const type of [FrameType.CANCEL, FrameType.PING, FrameType.PONG]) {
    for (const afterHandshake of [false, true]) {
      const p = await peer();
      p.socket.write(Buffer.concat([PREFACE, afterHandshake ? helloFrame() : Buffer.alloc(0), rawFrame(type, 0, 5, Buffer.from([1]))]));
      const frames = (await p.rest()).filter((f) => f.type !== FrameType.WELCOME);
      assert.equal(
        frames.map((f) => [f.type, frameCode(f)]),
        [[FrameType.GOAWAY, Code.INTERNAL]],
        `frame type ${type}, ${afterHandshake ? 'after' : 'before'} the handshake`,
      );
    }
  }
});

test('a PING before the preface is a bad preface: GOAWAY INTERNAL, then close', async () => {
  const p = await peer();
  p.socket.write(rawFrame(FrameType.PING, 0, 5, null));
  const frames = await p.rest();
  assert.equal(
    frames.map((f) => [f.type, frameCode(f)]),
    [[FrameType.GOAWAY, Code.INTERNAL]],
  );
});

test('a GOAWAY before the HELLO: the server answers GOAWAY code 0 and closes, with no WELCOME', async () => {
  const p = await peer();
  const goaway = Buffer.from([0, 0, 0, 0, 0, 0]); // lastId 0, code 0, message ""
  p.socket.write(Buffer.concat([PREFACE, rawFrame(FrameType.GOAWAY, 0, 0, goaway), helloFrame()]));
  const frames = await p.rest();
  assert.equal(
    frames.map((f) => [f.type, frameCode(f)]),
    [[FrameType.GOAWAY, Code.OK]],
  );
});

test('a sender exceeding the window W the server advertised: the server reads, acknowledges and answers it all', async () => {
  const W = 1024;
  const p = await peer({ fragmentWindowBytes: W, maxPartialMessages: 4 });
  const offer = Buffer.alloc(8);
  offer.writeUInt32BE(4, 0); // P
  offer.writeUInt32BE(1 << 20, 4); // W of the client
  p.socket.write(Buffer.concat([PREFACE, helloFrame({ [FRAGMENTS_META_KEY]: offer })]));
  const welcome = await p.frame();
  assert.is(welcome.type, FrameType.WELCOME);
  // The server advertised W = 1024 (the last 4 bytes of its avrpc.fragments value, before the map's end).
  assert.ok(welcome.body.includes(Buffer.from([0, 0, 0, 4, 0, 0, 4, 0])), 'WELCOME carries P = 4, W = 1024');
  // One echo request of about 3 KiB, in fragments of 1000 bytes, all sent before any WINDOW: 3 x W.
  const whole = requestBytes(protocol, 1, 'echo', { item: { ...item, blob: Buffer.alloc(3000, 1) } });
  const body = whole.subarray(10);
  const frames: Buffer[] = [];
  const total = Buffer.alloc(4);
  total.writeUInt32BE(body.length);
  frames.push(rawFrame(FrameType.REQUEST, Flag.MORE, 1, Buffer.concat([total, body.subarray(0, 1000)])));
  let sentFragmentBytes = 1004;
  for (let at = 1000; at < body.length; at += 1000) {
    const last = at + 1000 >= body.length;
    const part = body.subarray(at, at + 1000);
    frames.push(rawFrame(FrameType.CONTINUATION, last ? 0 : Flag.MORE, 1, part));
    sentFragmentBytes += part.length;
  }
  assert.ok(sentFragmentBytes > 2 * W);
  p.socket.write(Buffer.concat(frames));
  let acknowledged = 0;
  let response: RawFrame | undefined;
  while (response === undefined || acknowledged < sentFragmentBytes) {
    const f = await p.frame();
    if (f.type === FrameType.WINDOW) acknowledged += f.body.readUInt32BE(0);
    else response = f;
  }
  assert.equal([response.type, response.id], [FrameType.RESPONSE, 1]);
  assert.is(acknowledged, sentFragmentBytes);
});

test.run();
