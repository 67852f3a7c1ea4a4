import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, parseProtocol } from '../../src/index.js';
import { readErrorHead } from '../../src/framing/bodies.js';
import { STREAMS_META_KEY } from '../../src/framing/extensions.js';
import { Flag, FrameType } from '../../src/framing/frame.js';
import { rawFrame } from '../helpers/raw-client.js';
import { frameCode, frameMessage, until, type RawFrame, type RawPeer } from '../helpers/raw-peer.js';
import { aborted, nothingBefore, play, streamFixture } from './stream-fixture.js';
import { streamVectors } from './stream-vectors.js';

/**
 * SPEC.md section 13, the rules around the vectors, pinned on a real server through a raw peer:
 * refusals of stream REQUESTs, frames for ids no longer running, the protocol errors of section 13.2,
 * the limits, deadline and GOAWAY. Frames are taken from the vectors of section 13.11.
 */
const test = suite('spec: stream rules');
const v = streamVectors();
const fixture = streamFixture(test);
const state = fixture.state;
const S64 = { [STREAMS_META_KEY]: Buffer.from([0, 0, 0, 64]) };

const [watchRequest] = v.serverStream.frames;
const [uploadRequest, uploadData, , uploadEnd] = v.clientStream.frames;
const [chatRequest, chatData, chatAnswer] = v.bidi.frames;

/** A frame of the vectors with another id. */
function withId(bytes: Buffer, id: number): Buffer {
  const b = Buffer.from(bytes);
  b.writeUInt32BE(id, 6);
  return b;
}

/** A connection that completed the handshake vector. */
async function streaming(options = {}): Promise<RawPeer> {
  const { peer } = await fixture.connect(options);
  await play(peer, v.handshake);
  return peer;
}

function describe(f: RawFrame): [number, number, number, number] {
  return [f.type, f.flags, f.id, f.type === FrameType.ERROR || f.type === FrameType.GOAWAY ? frameCode(f) : -1];
}

/** Sends `bytes` on a streaming connection and expects GOAWAY INTERNAL, then close. */
async function protocolError(bytes: Buffer[], what: string, code: number = Code.INTERNAL): Promise<string> {
  const p = await streaming();
  p.socket.write(Buffer.concat(bytes));
  const rest = (await p.rest()).filter((f) => f.type === FrameType.GOAWAY);
  assert.equal(
    rest.map((f) => frameCode(f)),
    [code],
    what,
  );
  return frameMessage(rest[0]!);
}

test('a stream REQUEST on a connection without streams: ERROR FAILED_PRECONDITION, flagged REFUSED; no handler runs', async () => {
  const { peer } = await fixture.connect();
  const welcome = await peer.handshake(fixture.protocol);
  assert.not.ok(welcome.body.includes(Buffer.from('avrpc.streams')), 'no streams in the WELCOME of a HELLO without them');
  peer.socket.write(watchRequest!.bytes);
  const f = await peer.frame();
  assert.equal(describe(f), [FrameType.ERROR, Flag.REFUSED, 1, Code.FAILED_PRECONDITION]);
  assert.match(frameMessage(f), 'did not negotiate streams');
  assert.equal(state.started, []);
});

test('stream frames on a connection without streams are a protocol error: GOAWAY INTERNAL, then close', async () => {
  for (const frame of [uploadData!.bytes, uploadEnd!.bytes, rawFrame(FrameType.CREDIT, 0, 1, Buffer.from([0, 0, 0, 1]))]) {
    const { peer } = await fixture.connect();
    await peer.handshake(fixture.protocol);
    peer.socket.write(frame);
    const rest = await peer.rest();
    assert.equal(
      rest.map((f) => [f.type, frameCode(f)]),
      [[FrameType.GOAWAY, Code.INTERNAL]],
      `frame type ${frame[4]}`,
    );
  }
});

test('a client stream REQUEST with a payload after its head: ERROR INVALID_ARGUMENT, flagged REFUSED', async () => {
  const p = await streaming();
  // The upload index, then an item: the request record a server stream would carry.
  const body = Buffer.concat([Buffer.from([0, 1]), uploadData!.bytes.subarray(10)]);
  p.socket.write(rawFrame(FrameType.REQUEST, 0, 2, body));
  const f = await p.frame();
  assert.equal(describe(f), [FrameType.ERROR, Flag.REFUSED, 2, Code.INVALID_ARGUMENT]);
  assert.match(frameMessage(f), 'carries a payload');
  // Its DATA, END that follow are for an id that is not running: ignored.
  p.socket.write(Buffer.concat([uploadData!.bytes, uploadEnd!.bytes]));
  await nothingBefore(p, 0x61, 'the DATA and END of a refused stream are ignored');
  assert.equal(state.started, []);
});

test('a stream REQUEST flagged ONE_WAY: nothing is sent back and no handler runs', async () => {
  const p = await streaming();
  const oneWay = Buffer.from(watchRequest!.bytes);
  oneWay[5] = Flag.ONE_WAY;
  p.socket.write(oneWay);
  await nothingBefore(p, 0x62, 'nothing for a ONE_WAY REQUEST');
  assert.equal(state.started, []);
});

test('kinds that differ between the protocols: ERROR FAILED_PRECONDITION, flagged REFUSED, before the handler', async () => {
  // The client's protocol: watch as a unary call.
  const json = JSON.parse(fixture.protocol.text) as { messages: Record<string, { stream?: string }> };
  delete json.messages.watch!.stream;
  const client = parseProtocol(JSON.stringify(json));
  const { peer } = await fixture.connect();
  const welcome = await peer.handshake(client, S64);
  assert.is(welcome.type, FrameType.WELCOME);
  peer.socket.write(watchRequest!.bytes);
  const f = await peer.frame();
  assert.equal(describe(f), [FrameType.ERROR, Flag.REFUSED, 1, Code.FAILED_PRECONDITION]);
  assert.match(frameMessage(f), 'different stream kinds');
  assert.equal(state.started, []);
});

test('frames for ids that are not running streams are ignored: after the end, never sent, a unary call', async () => {
  const p = await streaming();
  await play(p, v.clientStream);
  const credit = (id: number): Buffer => rawFrame(FrameType.CREDIT, 0, id, Buffer.from([0, 0, 0, 5]));
  p.socket.write(
    Buffer.concat([
      uploadData!.bytes,
      uploadEnd!.bytes,
      credit(2),
      withId(uploadData!.bytes, 77),
      credit(77),
      withId(uploadEnd!.bytes, 77),
    ]),
  );
  await nothingBefore(p, 0x63, 'ignored, unanswered');
  // The connection still works, and the id of the ended stream may be reused.
  await play(p, v.clientStream);
});

test('a client stream answered before the client END: the DATA that still comes is ignored', async () => {
  const p = await streaming();
  state.uploadTakes = 1;
  p.socket.write(Buffer.concat([uploadRequest!.bytes, uploadData!.bytes]));
  const f = await p.frame();
  assert.equal([f.type, f.flags, f.id], [FrameType.RESPONSE, Flag.METADATA, 2]);
  p.socket.write(Buffer.concat([uploadData!.bytes, uploadData!.bytes, uploadEnd!.bytes]));
  await nothingBefore(p, 0x64, 'no protocol error, nothing sent');
});

test('section 13.2 protocol errors: HEADERS from a client, END with a body, CREDIT of 0 or not 4 bytes, DATA after END, DATA for a server stream', async () => {
  const credit = (body: Buffer): Buffer => rawFrame(FrameType.CREDIT, 0, 1, body);
  assert.match(
    await protocolError([rawFrame(FrameType.HEADERS, 0, 1, Buffer.from([0]))], 'HEADERS'),
    'unexpected frame type 12 from a client',
  );
  await protocolError([uploadRequest!.bytes, rawFrame(FrameType.END, 0, 2, Buffer.from([0]))], 'END with a body');
  await protocolError([watchRequest!.bytes, credit(Buffer.from([0, 0, 0, 0]))], 'CREDIT 0');
  await protocolError([watchRequest!.bytes, credit(Buffer.from([0, 0, 1]))], 'CREDIT of 3 bytes');
  state.stallUpload = true;
  assert.match(await protocolError([uploadRequest!.bytes, uploadEnd!.bytes, uploadData!.bytes], 'DATA after END'), 'after END');
  state.pause = aborted;
  assert.match(await protocolError([watchRequest!.bytes, withId(uploadData!.bytes, 1)], 'DATA for a server stream'), 'server stream');
});

test('a request element that does not decode ends the stream with ERROR INVALID_ARGUMENT, not flagged REFUSED', async () => {
  const p = await streaming();
  const bad = rawFrame(FrameType.DATA, 0, 2, Buffer.from([0x02]));
  p.socket.write(Buffer.concat([uploadRequest!.bytes, bad]));
  const f = await p.frame();
  assert.equal(describe(f), [FrameType.ERROR, 0, 2, Code.INVALID_ARGUMENT]);
  assert.match(frameMessage(f), 'cannot decode request element of upload');
  await until(() => state.aborted, "the handler's signal aborted");
});

test('maxConcurrentStreams: a stream beyond it is refused RESOURCE_EXHAUSTED, flagged REFUSED; a unary call still runs', async () => {
  const p = await streaming({ maxConcurrentStreams: 1 });
  state.pause = aborted;
  p.socket.write(watchRequest!.bytes);
  await p.frame(); // HEADERS
  await p.frame(); // DATA item(1); the handler now waits
  p.socket.write(withId(watchRequest!.bytes, 3));
  const f = await p.frame();
  assert.equal(describe(f), [FrameType.ERROR, Flag.REFUSED, 3, Code.RESOURCE_EXHAUSTED]);
  assert.match(frameMessage(f), 'too many concurrent streams (max 1)');
  await play(p, v.unary);
});

test('streamIdleTimeoutMs: a stream with no frame either way ends with ERROR CANCELLED; its handler is closed', async () => {
  const p = await streaming({ streamIdleTimeoutMs: 50 });
  state.pause = aborted;
  p.socket.write(watchRequest!.bytes);
  await p.frame(); // HEADERS
  await p.frame(); // DATA item(1)
  const f = await p.frame();
  assert.equal(describe(f), [FrameType.ERROR, 0, 1, Code.CANCELLED]);
  assert.match(frameMessage(f), 'stream idle for 50 ms');
  await until(() => state.finished === 1, 'the generator was closed');
  await nothingBefore(p, 0x65, 'nothing more for the stream');
});

test('the deadline covers the whole stream: when it passes the handler is closed and the server sends nothing more', async () => {
  const p = await streaming();
  state.pause = aborted;
  // watch with DEADLINE 50 ms: index, u32 timeout, then the request record of the vector.
  const body = Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 50]), watchRequest!.bytes.subarray(12)]);
  p.socket.write(rawFrame(FrameType.REQUEST, Flag.DEADLINE, 1, body));
  await p.frame(); // HEADERS
  assert.is((await p.frame()).type, FrameType.DATA);
  await until(() => state.finished === 1, 'the generator was closed at the deadline');
  await nothingBefore(p, 0x66, 'no END, ERROR or DATA after the deadline');
});

test('GOAWAY: an open bidi stream goes on, both ways, until it ends; then the server closes', async () => {
  const { peer: p, server } = await fixture.connect();
  await play(p, v.handshake);
  p.socket.write(Buffer.concat([chatRequest!.bytes, chatData!.bytes]));
  assert.is((await p.reader.frame()).toString('hex'), chatAnswer!.bytes.toString('hex'));
  const closing = server.close({ graceMs: 10_000 });
  const goaway = await p.frame();
  assert.equal(describe(goaway), [FrameType.GOAWAY, 0, 0, Code.OK]);
  assert.is(goaway.body.readUInt32BE(0), 3, 'lastId: the stream');
  // The rest of the bidi vector after the GOAWAY: another exchange, then END both ways.
  await play(p, { preface: false, frames: v.bidi.frames.slice(3) });
  assert.equal(await p.rest(), [], 'closed once the stream ended, with nothing more');
  await closing;
});

test('ERROR metadata carries the trailers, the error entries winning on a shared key', async () => {
  const p = await streaming();
  state.uploadError = new RpcError(Code.ABORTED, 'nope', { metadata: { count: 'error', why: 'test' } });
  p.socket.write(Buffer.concat([uploadRequest!.bytes, uploadData!.bytes, uploadEnd!.bytes]));
  const f = await p.frame();
  assert.equal(describe(f), [FrameType.ERROR, Flag.METADATA, 2, Code.ABORTED]);
  assert.equal({ ...readErrorHead(f.flags, f.body).metadata }, { count: 'error', why: 'test' });
});

test.run();
