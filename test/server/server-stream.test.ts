/**
 * Streams in the server session (src/server/server-session.ts, server-stream.ts) over a fake writer:
 * the producer pulled only under the client's credit and only while the socket drains, the slot held
 * until the producer closed, and request elements credited back as the handler takes them. No socket,
 * no timer.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadProtocol, type CallContext, type Protocol, type ServerOptions } from '../../src/index.js';
import { Code } from '../../src/errors/code.js';
import { RpcError } from '../../src/errors/rpc-error.js';
import { readCredit } from '../../src/framing/bodies.js';
import { FrameType } from '../../src/framing/frame.js';
import { ServerSession } from '../../src/server/server-session.js';
import { requestBytes } from '../helpers/raw-peer.js';
import { repoPath } from '../helpers/repo.js';
import { FakeWriter, fakeShared } from './fakes.js';

const test = suite('server session: streams');
let protocol: Protocol;
test.before(async () => {
  protocol = await loadProtocol(repoPath('protocol/stream.avdl'));
});
const item = (id: number) => ({ id, name: 'x', tags: [], score: 0, blob: Buffer.alloc(0) });
/** Lets every promise job run (pulls chain through microtasks; a macrotask waits for all of them). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function setup(handlers: ServerOptions['handlers'], peerStreamWindow: number, options: Partial<ServerOptions> = {}) {
  const shared = fakeShared(protocol, { handlers, ...options });
  const writer = new FakeWriter();
  const settled = { count: 0 };
  const session = new ServerSession(
    shared,
    writer,
    {
      remote: protocol,
      codec: shared.cache.codec(protocol),
      principal: undefined,
      negotiated: { peerPartialMessages: 0, peerWindowBytes: 0, compression: false, peerStreamWindow },
      unadmitted: undefined,
    },
    { address: '127.0.0.1', port: 1 },
    () => settled.count++,
  );
  return { session, writer, settled };
}

/**
 * An `upload` stream (id 5) open on a session whose window is 4, its handler holding the requests'
 * iterator (`requests()`) without reading it, until the call is cancelled.
 */
function uploadStream() {
  let iterator: AsyncIterator<unknown> | undefined;
  const upload = (requests: AsyncIterable<unknown>, ctx: CallContext) => {
    iterator = requests[Symbol.asyncIterator]();
    return new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
  };
  const { session, writer } = setup({ upload }, 8, { maxBufferedElements: 4 });
  const head = Buffer.alloc(2);
  head.writeUInt16BE(protocol.message('upload')!.index);
  session.onRequest(0, 5, head);
  return { session, writer, requests: () => iterator! };
}

function watchRequest(id: number, count: number): [number, number, Buffer] {
  const frame = requestBytes(protocol, id, 'watch', { from: 0, count, failAfter: -1 });
  return [frame[5]!, id, frame.subarray(10)];
}

const data = (w: FakeWriter): number => w.frames.filter((f) => f.type === FrameType.DATA).length;

function counting(): { produced: number; closed: number; watch: (req: { count: number }) => AsyncGenerator<unknown> } {
  const state = {
    produced: 0,
    closed: 0,
    watch: async function* (req: { count: number }) {
      try {
        for (let i = 0; i < req.count; i++) {
          state.produced++;
          yield item(i);
        }
      } finally {
        state.closed++;
      }
    },
  };
  return state;
}

test('the producer is pulled only under the credit; CREDIT lets it go on; END after the last', async () => {
  const g = counting();
  const { session, writer } = setup({ watch: g.watch }, 3);
  session.onRequest(...watchRequest(1, 5));
  await settle();
  assert.is(data(writer), 3);
  assert.is(g.produced, 3);
  session.onStreamFrame(FrameType.CREDIT, 1, Buffer.from([0, 0, 0, 10]));
  await settle();
  assert.is(data(writer), 5);
  assert.equal(writer.frames.at(-1)!.type, FrameType.END);
  assert.is(session.inFlight, 0);
});

test('a socket that does not drain holds the producer whatever the credit; its writes resume it', async () => {
  const g = counting();
  const { session, writer } = setup({ watch: g.watch }, 1000, { maxQueuedBytes: 4096 });
  writer.queuedBytes = 2000; // above a quarter of maxQueuedBytes
  session.onRequest(...watchRequest(1, 100));
  await settle();
  assert.is(data(writer), 1, 'one element, then it waits for the writes');
  assert.is(writer.waitingWrites.length, 1);
  writer.written();
  await settle();
  assert.is(data(writer), 100);
});

test('CANCEL closes the producer; the slot is held until it has closed', async () => {
  let release: () => void = () => {};
  const watch = async function* () {
    yield item(0);
    // A producer busy in an await when the cancel comes: it ends only once that settles.
    await new Promise<void>((r) => (release = r));
    yield item(1);
  };
  const { session, writer, settled } = setup({ watch }, 8);
  session.onRequest(...watchRequest(1, 2));
  await settle();
  session.cancel(1);
  await settle();
  assert.is(session.inFlight, 1, 'slot held while the producer is still in its await');
  release();
  await settle();
  assert.is(session.inFlight, 0);
  assert.ok(settled.count >= 1);
  assert.is(data(writer), 1);
  assert.ok(!writer.frames.some((f) => f.type === FrameType.END || f.type === FrameType.ERROR), 'nothing sent after the cancel');
});

test('request elements are credited back in batches as the handler takes them, not as they arrive', async () => {
  const { session, writer, requests } = uploadStream();
  // Elements large enough that the window does not grow (see the next test).
  const element = protocol.message('upload')!.request.toBuffer({ item: { ...item(1), blob: Buffer.alloc(40_000) } });
  for (let i = 0; i < 4; i++) session.onStreamFrame(FrameType.DATA, 5, element);
  const credits = (): number[] => writer.frames.filter((f) => f.type === FrameType.CREDIT).map((f) => readCredit(f.body));
  assert.equal(credits(), []);
  await requests().next();
  assert.equal(credits(), [], 'one taken: below the batch of 2');
  await requests().next();
  assert.equal(credits(), [2]);
  // Beyond the window: a fifth and sixth fit (2 credited back), a seventh does not.
  session.onStreamFrame(FrameType.DATA, 5, element);
  session.onStreamFrame(FrameType.DATA, 5, element);
  assert.is(writer.failed, undefined);
  session.onStreamFrame(FrameType.DATA, 5, element);
  assert.match(writer.failed!.message, /credit/);
  session.close(new RpcError(Code.UNAVAILABLE, 'the connection closed'));
});

test('a handler that finds its requests buffered keeps the window as it is', async () => {
  const { session, writer, requests } = uploadStream();
  const element = protocol.message('upload')!.request.toBuffer({ item: item(1) });
  for (let i = 0; i < 4; i++) session.onStreamFrame(FrameType.DATA, 5, element);
  await requests().next();
  await requests().next();
  assert.equal(
    writer.frames.filter((f) => f.type === FrameType.CREDIT).map((f) => readCredit(f.body)),
    [2],
  );
  session.close(new RpcError(Code.UNAVAILABLE, 'the connection closed'));
});

test('small request elements grow the window: credit beyond what was taken, and DATA checked against the grown window', async () => {
  const { session, writer, requests } = uploadStream();
  const element = protocol.message('upload')!.request.toBuffer({ item: item(1) });
  // A handler that waits for each element (it finds nothing buffered): the window limits, not it.
  for (let i = 0; i < 2; i++) {
    const next = requests().next();
    session.onStreamFrame(FrameType.DATA, 5, element);
    await next;
  }
  const credits = (): number[] => writer.frames.filter((f) => f.type === FrameType.CREDIT).map((f) => readCredit(f.body));
  // 2 taken, and the window doubled from 4 to 8: credit 2 + 4.
  assert.equal(credits(), [6]);
  // The client's credit is now 4 - 2 + 6 = 8.
  for (let i = 0; i < 8; i++) session.onStreamFrame(FrameType.DATA, 5, element);
  assert.is(writer.failed, undefined, 'the 8 credited fit');
  session.onStreamFrame(FrameType.DATA, 5, element);
  assert.match(writer.failed!.message, /credit/);
  session.close(new RpcError(Code.UNAVAILABLE, 'the connection closed'));
});

test.run();
