/**
 * Stream handlers on worker threads (`workers.messages` listing stream messages), on real sockets
 * through a raw client peer that sends exactly the frames under test: each kind runs off the main
 * thread, a slow client holds the worker's generator, CANCEL aborts it, an error after N elements,
 * schema resolution from an older client protocol, a request element that does not decode.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastChannel } from 'node:worker_threads';
import { Code, createServer, parseProtocol, type Protocol, type Server } from '../../src/index.js';
import { readErrorHead, readMetadata } from '../../src/framing/bodies.js';
import { Flag, FrameType } from '../../src/framing/frame.js';
import type { ServerOptions } from '../../src/server/server-options.js';
import { frameCode, requestBytes, until, type RawFrame, type RawPeer } from '../helpers/raw-peer.js';
import { creditFrame, emptyFrame, frameBytes, headFrame as streamHead, streamPeer, untilPong } from '../helpers/stream-raw.js';
import { STREAM_REPORTS, streamIdl, streamIdlV0, type StreamReport } from '../helpers/stream-worker-handlers.js';

const test = suite('offload: stream handlers in workers, raw peer');

const HANDLERS = new URL('../helpers/stream-worker-handlers.js', import.meta.url);
const protocol = parseProtocol(streamIdl);
const older = parseProtocol(streamIdlV0);
let server: Server | undefined;
const reports: StreamReport[] = [];
const channel = new BroadcastChannel(STREAM_REPORTS);
channel.onmessage = (e) => reports.push((e as { data: StreamReport }).data);
(channel as unknown as { unref(): void }).unref();

test.before.each(() => {
  reports.length = 0;
});

test.after.each(async () => {
  await server?.close({ graceMs: 0 });
  server = undefined;
});

test.after(() => channel.close());

async function start(options: Partial<ServerOptions> = {}): Promise<number> {
  server = createServer({
    protocol,
    handlers: {},
    workers: { module: HANDLERS, messages: ['watch', 'upload', 'chat'], threads: 1 },
    ...options,
  });
  return (await server.listen({ host: '127.0.0.1', port: 0 })).port;
}

const peerOf = (port: number, s = 4, as: Protocol = protocol): Promise<RawPeer> => streamPeer(port, as, s);
const frame = frameBytes;
const dataFrame = (id: number, item: unknown, as: Protocol = protocol): Buffer =>
  frame(FrameType.DATA, 0, id, { item }, (v, b, p) => as.message('upload')!.request.encode(v, b, p));
const rawData = (id: number, bytes: Buffer): Buffer => frame(FrameType.DATA, 0, id, bytes, (v, b, p) => (v.copy(b, p), p + v.length));
const endFrame = (id: number): Buffer => emptyFrame(FrameType.END, id);
const cancelFrame = (id: number): Buffer => emptyFrame(FrameType.CANCEL, id);
const headFrame = (id: number, message: string, as: Protocol = protocol): Buffer => streamHead(as, id, message);
const watchRequest = (id: number, tag: string, count: number, failAfter = -1): Buffer =>
  requestBytes(protocol, id, 'watch', { from: 0, count, failAfter, tag });

const item = (f: RawFrame): { id: number; name: string; note: string } =>
  protocol.message('watch')!.response.fromBuffer(f.body) as { id: number; name: string; note: string };
const metadataOf = (f: RawFrame): Record<string, string> => readMetadata(f.body, 0, 4096)!.value as Record<string, string>;
const has = (tag: string, event: StreamReport['event']): boolean => reports.some((r) => r.tag === tag && r.event === event);
const produced = (tag: string): number => reports.filter((r) => r.tag === tag && r.event === 'produced').length;

test('server stream runs in a worker: headers, DATA under the credit, END with the worker trailers', async () => {
  const peer = await peerOf(await start(), 3);
  peer.socket.write(watchRequest(1, 'a', 5));
  const headers = await peer.frame();
  assert.is(headers.type, FrameType.HEADERS);
  const thread = metadataOf(headers).thread!;
  assert.ok(Number(thread) > 0, `ran on thread ${thread}, not the main thread`);
  const first = [await peer.frame(), await peer.frame(), await peer.frame()];
  assert.equal(
    first.map((f) => [f.type, item(f).id, item(f).note]),
    [0, 1, 2].map((id) => [FrameType.DATA, id, 'a']),
  );
  assert.equal(await untilPong(peer), [], 'nothing beyond the credit');
  peer.socket.write(creditFrame(1, 4));
  const rest = [await peer.frame(), await peer.frame(), await peer.frame()];
  assert.equal(
    rest.map((f) => f.type),
    [FrameType.DATA, FrameType.DATA, FrameType.END],
  );
  assert.is(rest[2]!.flags, Flag.METADATA);
  assert.equal(metadataOf(rest[2]!), { thread, produced: '5' });
  await until(() => has('a', 'finally'), 'the generator finished');
  peer.destroy();
});

test('a slow client holds the worker generator: produced stays within the credit and a small read-ahead', async () => {
  const peer = await peerOf(await start(), 2);
  peer.socket.write(watchRequest(1, 'slow', 1000));
  assert.is((await peer.frame()).type, FrameType.HEADERS);
  assert.equal([(await peer.frame()).type, (await peer.frame()).type], [FrameType.DATA, FrameType.DATA]);
  // A second stream on the same (only) worker thread: once its generator has run and finished, the
  // worker had every chance to run the first one ahead; its reports arrive in order before this one's.
  peer.socket.write(watchRequest(3, 'probe', 1));
  const probe = [await peer.frame(), await peer.frame(), await peer.frame()];
  assert.equal(
    probe.map((f) => [f.type, f.id]),
    [
      [FrameType.HEADERS, 3],
      [FrameType.DATA, 3],
      [FrameType.END, 3],
    ],
  );
  await until(() => has('probe', 'finally'), 'the probe finished');
  const held = produced('slow');
  assert.ok(held >= 2 && held <= 2 + 8, `produced ${held} with 2 taken`);
  // More credit lets it go on, by as much.
  peer.socket.write(creditFrame(1, 10));
  const more: RawFrame[] = [];
  for (let i = 0; i < 10; i++) more.push(await peer.frame());
  assert.ok(more.every((f) => f.type === FrameType.DATA && f.id === 1));
  assert.equal(
    more.map((f) => item(f).id),
    Array.from({ length: 10 }, (_, i) => i + 2),
  );
  peer.socket.write(cancelFrame(1));
  await until(() => has('slow', 'finally'), 'the cancelled generator closed');
  assert.ok(produced('slow') <= 12 + 8, `produced ${produced('slow')} with 12 taken`);
  peer.destroy();
});

test('CANCEL mid-stream aborts the worker handler and closes its generator; nothing more is sent', async () => {
  const peer = await peerOf(await start(), 2);
  peer.socket.write(watchRequest(1, 'c', 1000));
  assert.is((await peer.frame()).type, FrameType.HEADERS);
  await peer.frame();
  await peer.frame();
  peer.socket.write(cancelFrame(1));
  await until(() => has('c', 'finally'), 'the generator closed');
  assert.ok(
    reports.some((r) => r.tag === 'c' && r.event === 'abort' && r.n === Code.CANCELLED),
    'its signal aborted CANCELLED',
  );
  assert.equal(await untilPong(peer), []);
  // Its slot is free again: the only worker runs the next stream.
  peer.socket.write(watchRequest(3, 'next', 1));
  assert.equal(
    [(await peer.frame()).type, (await peer.frame()).type, (await peer.frame()).type],
    [FrameType.HEADERS, FrameType.DATA, FrameType.END],
  );
  peer.destroy();
});

test('an error after N elements comes after them: declared value, trailers in its metadata', async () => {
  const peer = await peerOf(await start(), 8);
  peer.socket.write(watchRequest(1, 'e', 10, 3));
  const frames: RawFrame[] = [];
  for (let i = 0; i < 5; i++) frames.push(await peer.frame());
  assert.equal(
    frames.map((f) => f.type),
    [FrameType.HEADERS, FrameType.DATA, FrameType.DATA, FrameType.DATA, FrameType.ERROR],
  );
  const error = frames[4]!;
  assert.is(frameCode(error), Code.ABORTED);
  assert.ok((error.flags & Flag.DECLARED) !== 0);
  const head = readErrorHead(error.flags, error.body);
  assert.ok(Number(head.metadata?.thread) > 0, 'the worker trailers are in the error metadata');
  const declared = protocol.message('watch')!.errors.fromBuffer(error.body.subarray(head.offset)) as Record<string, unknown>;
  assert.equal(JSON.parse(JSON.stringify(declared)), { reason: 'asked', after: 3 });
  await until(() => has('e', 'finally'), 'the generator closed');
  peer.destroy();
});

test('client stream runs in a worker: HEADERS sent early, RESPONSE with trailers; older client resolved', async () => {
  const port = await start();
  for (const as of [protocol, older]) {
    const peer = await peerOf(port, 4, as);
    peer.socket.write(headFrame(5, 'upload', as));
    const headers = await peer.frame();
    assert.is(headers.type, FrameType.HEADERS);
    assert.ok(Number(metadataOf(headers).thread) > 0);
    for (const name of ['a', 'b', 'c']) peer.socket.write(dataFrame(5, { id: 1, name, note: 'sent' }, as));
    peer.socket.write(endFrame(5));
    const answer = await peer.frame();
    assert.is(answer.type, FrameType.RESPONSE);
    assert.is(answer.flags, Flag.METADATA);
    const trailers = readMetadata(answer.body, 0, 1000)!;
    assert.equal(trailers.value, { counted: '3' });
    const summary = as.message('upload')!.response.fromBuffer(answer.body.subarray(trailers.end)) as Record<string, unknown>;
    // The older Item has no note: the worker's resolver filled in the default.
    const note = as === older ? 'none' : 'sent';
    assert.equal([summary.count, summary.names], [3, `a:${note},b:${note},c:${note}`]);
    assert.ok((summary.threadId as number) > 0);
    peer.destroy();
  }
});

test('client stream: the error of the worker handler is its ERROR', async () => {
  const peer = await peerOf(await start(), 4);
  peer.socket.write(headFrame(5, 'upload'));
  assert.is((await peer.frame()).type, FrameType.HEADERS);
  for (const name of ['a', 'fail']) peer.socket.write(dataFrame(5, { id: 1, name, note: '' }));
  const error = await peer.frame();
  assert.is(error.type, FrameType.ERROR);
  assert.is(frameCode(error), Code.ABORTED);
  const head = readErrorHead(error.flags, error.body);
  const declared = protocol.message('upload')!.errors.fromBuffer(error.body.subarray(head.offset)) as Record<string, unknown>;
  assert.equal(JSON.parse(JSON.stringify(declared)), { reason: 'fail', after: 1 });
  peer.destroy();
});

test('bidi runs in a worker: each DATA answered as it arrives, END ends both, older client resolved', async () => {
  const port = await start();
  for (const as of [protocol, older]) {
    const peer = await peerOf(port, 4, as);
    peer.socket.write(headFrame(7, 'chat', as));
    const answers: Array<{ name: string; note: string }> = [];
    for (const name of ['x', 'y']) {
      peer.socket.write(dataFrame(7, { id: 2, name, note: 'sent' }, as));
      const f = await peer.frame();
      assert.is(f.type, FrameType.DATA);
      answers.push(item(f));
    }
    const note = as === older ? 'none' : 'sent';
    assert.equal(
      answers.map((a) => [a.name, a.note]),
      [
        ['x!', note],
        ['y!', note],
      ],
    );
    peer.socket.write(endFrame(7));
    const end = await peer.frame();
    assert.is(end.type, FrameType.END);
    assert.ok(Number(metadataOf(end).thread) > 0);
    peer.destroy();
  }
});

test('client stream: credit goes back as the worker handler takes requests', async () => {
  const peer = await peerOf(await start({ maxBufferedElements: 2 }), 4);
  peer.socket.write(headFrame(5, 'upload'));
  assert.is((await peer.frame()).type, FrameType.HEADERS);
  // The server's window is 2: two DATA, then CREDIT as the handler takes them, then two more. The
  // elements are large enough (70 KB) that the window does not grow (SPEC.md section 13.5).
  const note = 'n'.repeat(70_000);
  for (let round = 0; round < 3; round++) {
    peer.socket.write(dataFrame(5, { id: round, name: `r${round}a`, note }));
    peer.socket.write(dataFrame(5, { id: round, name: `r${round}b`, note }));
    // Half the window (1) back per request taken.
    const credits = [await peer.frame(), await peer.frame()];
    assert.equal(
      credits.map((f) => [f.type, f.body.readUInt32BE(0)]),
      [
        [FrameType.CREDIT, 1],
        [FrameType.CREDIT, 1],
      ],
    );
  }
  await until(() => reports.filter((r) => r.event === 'took').length === 6, 'the handler took all six');
  peer.socket.write(endFrame(5));
  const frames = await untilPong(peer);
  assert.equal(frames.at(-1)?.type, FrameType.RESPONSE);
  peer.destroy();
});

test('a request element that does not decode fails the worker stream INVALID_ARGUMENT', async () => {
  const peer = await peerOf(await start(), 4);
  peer.socket.write(headFrame(7, 'chat'));
  peer.socket.write(rawData(7, Buffer.from([0x80])));
  const error = await peer.frame();
  assert.equal([error.type, error.id], [FrameType.ERROR, 7]);
  assert.is(frameCode(error), Code.INVALID_ARGUMENT);
  await until(() => has('chat', 'finally'), 'the handler ended');
  peer.destroy();
});

test('CANCEL of a client stream aborts the worker handler waiting for requests', async () => {
  const peer = await peerOf(await start(), 4);
  peer.socket.write(headFrame(5, 'upload'));
  assert.is((await peer.frame()).type, FrameType.HEADERS);
  peer.socket.write(dataFrame(5, { id: 1, name: 'a', note: '' }));
  await until(() => has('upload', 'took'), 'the handler took one');
  peer.socket.write(cancelFrame(5));
  await until(() => has('upload', 'finally'), 'the handler ended');
  assert.ok(reports.some((r) => r.tag === 'upload' && r.event === 'abort' && r.n === Code.CANCELLED));
  assert.equal(
    (await untilPong(peer)).filter((f) => f.type !== FrameType.CREDIT),
    [],
  );
  peer.destroy();
});

test.run();
