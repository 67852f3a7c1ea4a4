import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, type CallContext, type Handler, type Protocol } from '../../src/index.js';
import { Flag, FrameType } from '../../src/framing/frame.js';
import { rawFrame, requestFrame } from '../helpers/raw-client.js';
import { frameCode, frameMessage, requestBytes, type RawFrame, type RawPeer } from '../helpers/raw-peer.js';
import { securityFixture } from '../helpers/security-fixture.js';

/**
 * SPEC.md section 4, the REQUEST edge cases a client author asked about, each pinned on a real server
 * through a raw peer: a ONE_WAY flag that disagrees with the message, `timeoutMs` 0, id 0, an unknown
 * message index. After the frame under test the peer sends a PING: the server handles frames in order
 * and answers synchronous handlers before it reads the next frame, so "nothing before the PONG" means
 * the server sent nothing for the request.
 */
const test = suite('spec: REQUEST edge cases');
let protocol: Protocol;
const fixture = securityFixture(test, (p) => {
  protocol = p;
});
const item = { id: 7, name: 'edge', tags: [], score: 0, blob: Buffer.alloc(0) };
const PING_ID = 0x99;

/** What the handlers saw. */
interface Seen {
  calls: string[];
  /** Whether the signal of the last `echo` was already aborted when its handler started, and why. */
  abortedAtStart: string | false | undefined;
}

async function connected(): Promise<{ peer: RawPeer; seen: Seen }> {
  const seen: Seen = { calls: [], abortedAtStart: undefined };
  const handlers: Record<string, Handler> = {
    echo: (req: { item: unknown }, ctx: CallContext) => {
      seen.calls.push('echo');
      seen.abortedAtStart = ctx.signal.aborted ? (ctx.signal.reason as Error).message : false;
      return req.item;
    },
    notify: () => {
      seen.calls.push('notify');
    },
  };
  const { port } = await fixture.serve({ handlers });
  const peer = await fixture.peer(port);
  const welcome = await peer.handshake(protocol);
  assert.is(welcome.type, FrameType.WELCOME);
  return { peer, seen };
}

/** Writes `bytes` then a PING; returns the frames the server sent up to and including the PONG. */
async function upToPong(peer: RawPeer, bytes: Buffer): Promise<RawFrame[]> {
  peer.socket.write(Buffer.concat([bytes, rawFrame(FrameType.PING, 0, PING_ID, null)]));
  const frames: RawFrame[] = [];
  for (;;) {
    const f = await peer.frame();
    frames.push(f);
    if (f.type === FrameType.PONG && f.id === PING_ID) return frames;
  }
}

test('ONE_WAY on a two-way message: the handler runs and the server sends nothing for that id', async () => {
  const { peer, seen } = await connected();
  const frames = await upToPong(peer, requestFrame(protocol, 1, 'echo', { item }, { oneWay: true }));
  assert.equal(
    frames.map((f) => f.type),
    [FrameType.PONG],
  );
  assert.equal(seen.calls, ['echo']);
});

test('no ONE_WAY on a one-way message: the server answers it as a two-way call, with an empty RESPONSE', async () => {
  const { peer, seen } = await connected();
  const frames = await upToPong(peer, requestFrame(protocol, 2, 'notify', { item }));
  assert.equal(
    frames.map((f) => [f.type, f.id, f.body.length]),
    [
      [FrameType.RESPONSE, 2, 0],
      [FrameType.PONG, PING_ID, 0],
    ],
  );
  assert.equal(seen.calls, ['notify']);
});

test('timeoutMs 0: the deadline passed on arrival; the handler runs with its signal aborted, and its answer is sent', async () => {
  const { peer, seen } = await connected();
  const frames = await upToPong(peer, requestBytes(protocol, 3, 'echo', { item }, undefined, 0));
  assert.equal(
    frames.map((f) => [f.type, f.id]),
    [
      [FrameType.RESPONSE, 3],
      [FrameType.PONG, PING_ID],
    ],
  );
  assert.is(seen.abortedAtStart, 'deadline exceeded');
});

test('a REQUEST with id 0 is a protocol error: GOAWAY INTERNAL, then close; no handler runs', async () => {
  const { peer, seen } = await connected();
  peer.socket.write(requestBytes(protocol, 0, 'echo', { item }));
  const frames = await peer.rest();
  assert.equal(
    frames.map((f) => [f.type, f.id]),
    [[FrameType.GOAWAY, 0]],
  );
  assert.is(frameCode(frames[0]!), Code.INTERNAL);
  assert.match(frameMessage(frames[0]!), 'REQUEST with id 0');
  assert.equal(seen.calls, []);
});

test('an unknown message index: ERROR UNIMPLEMENTED flagged REFUSED for a two-way REQUEST, nothing for a one-way one', async () => {
  const { peer } = await connected();
  // Index 99 (0x0063), empty payload: the echo protocol has three messages.
  const frames = await upToPong(
    peer,
    Buffer.concat([
      rawFrame(FrameType.REQUEST, Flag.ONE_WAY, 8, Buffer.from([0x00, 0x63])),
      rawFrame(FrameType.REQUEST, 0, 9, Buffer.from([0x00, 0x63])),
    ]),
  );
  assert.equal(
    frames.map((f) => [f.type, f.flags, f.id]),
    [
      [FrameType.ERROR, Flag.REFUSED, 9],
      [FrameType.PONG, 0, PING_ID],
    ],
  );
  assert.is(frameCode(frames[0]!), Code.UNIMPLEMENTED);
  assert.is(frameMessage(frames[0]!), 'unknown message index 99');
  // The connection lives on.
  const after = await upToPong(peer, requestBytes(protocol, 10, 'echo', { item }));
  assert.equal(after[0]!.type, FrameType.RESPONSE);
});

test.run();
