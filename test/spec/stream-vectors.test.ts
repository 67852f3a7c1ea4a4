import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code } from '../../src/index.js';
import { FrameType } from '../../src/framing/frame.js';
import { frameCode, until, type RawPeer } from '../helpers/raw-peer.js';
import { repoPath } from '../helpers/repo.js';
import { aborted, nothingBefore, play, streamFixture } from './stream-fixture.js';
import { streamVectors } from './stream-vectors.js';

/**
 * SPEC.md section 13.11: a raw client plays the client's frames of each stream vector to a real
 * server running the handlers the section describes, and checks that every server frame is exactly
 * the vector's, in order.
 */
const test = suite('spec: stream test vectors');
const v = streamVectors();
const fixture = streamFixture(test);
const state = fixture.state;

async function connect(): Promise<RawPeer> {
  return (await fixture.connect()).peer;
}

test('protocol/stream.avpr is the protocol text of the vectors: its MD5 is their fingerprint', () => {
  const text = readFileSync(repoPath('protocol/stream.avpr'));
  assert.is(text.length, 1580);
  const hello = v.handshake.frames[0]!.bytes;
  assert.is(createHash('md5').update(text).digest('hex'), hello.subarray(10, 26).toString('hex'));
  assert.is(fixture.protocol.text, text.toString('utf8'));
  assert.equal(
    fixture.protocol.messages.map((m) => [m.name, m.stream ?? 'unary']),
    [
      ['watch', 'server'],
      ['upload', 'client'],
      ['chat', 'bidi'],
      ['echo', 'unary'],
    ],
  );
});

test('the handshake: a HELLO offering S = 64 gets the WELCOME of the vector', async () => {
  await play(await connect(), v.handshake);
});

test('a server stream: HEADERS, two DATA, END with trailers, exactly as the vector', async () => {
  const p = await connect();
  await play(p, v.handshake);
  await play(p, v.serverStream);
  await nothingBefore(p, 0x51, 'nothing more for the stream');
});

test('a client stream: the REQUEST head only, two DATA, END; RESPONSE with its trailers, exactly as the vector', async () => {
  const p = await connect();
  await play(p, v.handshake);
  await play(p, v.clientStream);
  await nothingBefore(p, 0x52, 'nothing more for the stream (no CREDIT for 2 of S = 64)');
});

test('a bidi stream: each response after its request, then END both ways, exactly as the vector', async () => {
  const p = await connect();
  await play(p, v.handshake);
  await play(p, v.bidi);
  await nothingBefore(p, 0x53, 'nothing more for the stream');
});

test('a cancelled stream: after the CANCEL the server sends nothing more for it, and closes its handler', async () => {
  const p = await connect();
  state.pause = aborted;
  await play(p, v.handshake);
  await play(p, v.cancelled);
  assert.ok(state.aborted, "the handler's signal aborted");
  // The handler made its second element after the abort: it must not be sent.
  await until(() => state.finished === 1, 'the generator was closed');
  assert.is(state.produced, 2, 'the handler went on to make its second element');
  await nothingBefore(p, 0x54, 'no DATA, END or ERROR for the cancelled id');
});

test('an error mid-stream: one DATA, then the ERROR with the declared StreamError and the trailers, exactly as the vector', async () => {
  const p = await connect();
  await play(p, v.handshake);
  await play(p, v.errorMidStream);
  await nothingBefore(p, 0x55, 'nothing more for the stream');
});

test('a unary call gets HEADERS and a RESPONSE with its trailers, exactly as the vector', async () => {
  const p = await connect();
  await play(p, v.handshake);
  await play(p, v.unary);
});

test('credit: with the client S = 2 the server sends two DATA, asks its handler for no third until the CREDIT', async () => {
  const p = await connect();
  const creditAt = v.credit.frames.findIndex((f) => f.bytes[4] === FrameType.CREDIT);
  assert.ok(creditAt > 0, 'the vector has a CREDIT');
  await play(p, v.credit, async (i) => {
    // The vector leaves the WELCOME out: it is the one of the handshake vector (the server's S is 64).
    if (i === 1) assert.is((await p.reader.frame()).toString('hex'), v.handshake.frames[1]!.bytes.toString('hex'), 'the WELCOME');
    if (i !== creditAt) return;
    await nothingBefore(p, 0x56, 'no third DATA before the CREDIT');
    assert.is(state.produced, 2, 'the handler was not asked for a third element');
  });
});

test('the exact credit check: 64 DATA of S = 64 are taken, a 65th is GOAWAY RESOURCE_EXHAUSTED, then close', async () => {
  const p = await connect();
  state.stallUpload = true;
  await play(p, v.handshake);
  const [request, data] = v.clientStream.frames;
  p.socket.write(Buffer.concat([request!.bytes, ...Array.from({ length: 64 }, () => data!.bytes)]));
  await nothingBefore(p, 0x57, 'S DATA are within the credit');
  p.socket.write(data!.bytes);
  const rest = await p.rest();
  assert.equal(
    rest.map((f) => [f.type, frameCode(f)]),
    [[FrameType.GOAWAY, Code.RESOURCE_EXHAUSTED]],
  );
});

test.run();
