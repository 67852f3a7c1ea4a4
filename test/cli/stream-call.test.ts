import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createServer, loadProtocol, RpcError, type CallContext, type Server } from '../../src/index.js';
import { exitStatusFor } from '../../src/cli/options.js';
import { parseJson } from '../../src/codec/lossless-json.js';
import { repoPath } from '../helpers/repo.js';
import { avrpc } from '../helpers/cli.js';
import { startCli } from './cli-process.js';

/** `avrpc call` as a process on the stream messages of protocol/stream.avdl, served in this process. */
const test = suite('avrpc call: streams');

interface Item {
  id: bigint;
  name: string;
  tags: string[];
  score: number;
  blob: Buffer;
}
const item = (id: bigint): Item => ({ id, name: `item ${id}`, tags: ['t'], score: 0.5, blob: Buffer.from([0, 0xff, 0x80]) });
/** The JSON line of an Item the CLI reads and prints (bytes as code points, as JSON.stringify writes them). */
const itemJson = (id: bigint | number): string =>
  `{"id":${id},"name":"item ${id}","tags":["t"],"score":0.5,"blob":${JSON.stringify('\u0000\u00ff\u0080')}}`;

/** What the handlers saw, for the tests to wait on. */
const seen = {
  uploads: [] as bigint[],
  onUpload: undefined as (() => void) | undefined,
  /** Called when a watch handler's signal aborts. */
  onAbort: undefined as (() => void) | undefined,
  /** ctx.deadline of the last watch. */
  deadline: 0,
  /** watch waits here before the element of this index, when set. */
  gateAt: -1,
  gate: undefined as Promise<void> | undefined,
};

let server: Server;
let address: string;

test.before(async () => {
  const protocol = await loadProtocol(repoPath('protocol/stream.avdl'), { longs: 'bigint' });
  server = createServer({
    protocol,
    handlers: {
      watch: async function* (req: { from: bigint; count: number; failAfter: number }, ctx: CallContext) {
        ctx.signal.addEventListener('abort', () => seen.onAbort?.());
        seen.deadline = ctx.deadline;
        for (let i = 0; i < req.count; i++) {
          if (i === req.failAfter) throw { reason: 'failed on purpose', after: BigInt(i) }; // the declared StreamError
          if (i === seen.gateAt) await seen.gate;
          yield item(req.from + BigInt(i));
        }
        if (req.failAfter === -2) await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
      },
      upload: async (requests: AsyncIterable<{ item: Item }>) => {
        let count = 0n;
        let bytes = 0n;
        for await (const { item: it } of requests) {
          if (it.name === 'refuse') throw new RpcError(Code.FAILED_PRECONDITION, `refused after ${count}`);
          count++;
          bytes += BigInt(it.blob.length);
          seen.uploads.push(it.id);
          seen.onUpload?.();
        }
        return { count, bytes };
      },
      chat: async function* (requests: AsyncIterable<{ item: Item }>) {
        for await (const { item: it } of requests) yield it;
      },
      echo: ({ item: it }: { item: Item }) => it,
    },
  });
  const bound = await server.listen({ host: '127.0.0.1', port: 0 });
  address = `${bound.host}:${bound.port}`;
});

test.after(async () => {
  await server.close();
});

const uploaded = (n: number): Promise<void> =>
  new Promise((resolve) => {
    const check = (): void => {
      if (seen.uploads.length < n) return;
      seen.onUpload = undefined;
      resolve();
    };
    seen.onUpload = check;
    check();
  });

test('server stream: one compact JSON line per element, longs exact, exit 0', async () => {
  const r = await avrpc('call', address, 'watch', '{"from": 9007199254740993000, "count": 3, "failAfter": -1}');
  assert.is(r.stderr, '');
  assert.is(r.status, 0);
  assert.is(r.stdout, [0n, 1n, 2n].map((i) => `${itemJson(9007199254740993000n + i)}\n`).join(''));
  const empty = await avrpc('call', address, 'watch', '-d', '{"from": 0, "count": 0, "failAfter": -1}');
  assert.is(empty.status, 0, empty.stderr);
  assert.is(empty.stdout, '');
});

test('server stream: each element is printed as it arrives, before the next one exists', async () => {
  let open!: () => void;
  seen.gate = new Promise<void>((resolve) => (open = resolve));
  seen.gateAt = 1;
  try {
    const cli = startCli('call', address, 'watch', '{"from": 5, "count": 2, "failAfter": -1}');
    assert.is(await cli.nextLine(), itemJson(5), 'the first element is out while the handler waits before the second');
    open();
    assert.is(await cli.nextLine(), itemJson(6));
    const r = await cli.done();
    assert.is(r.status, 0, r.stderr);
  } finally {
    seen.gateAt = -1;
    open();
  }
});

test('server stream: an error mid-stream prints the elements so far, the declared value, then fails as call does', async () => {
  const r = await avrpc('call', address, 'watch', '{"from": 0, "count": 5, "failAfter": 2}');
  assert.is(r.status, exitStatusFor(Code.UNKNOWN), r.stderr);
  assert.match(r.stderr, /^UNKNOWN: .* \(declared error avrpc\.stream\.StreamError\)\n$/);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.slice(0, 2), [itemJson(0), itemJson(1)]);
  assert.is(lines.length, 3);
  assert.equal(parseJson(lines[2]!), { 'avrpc.stream.StreamError': { reason: 'failed on purpose', after: 2 } });
});

test('server stream: no deadline unless --timeout is given (a tail of a feed does not stop at the call default)', async () => {
  const r = await avrpc('call', address, 'watch', '{"from": 0, "count": 1, "failAfter": -1}');
  assert.is(r.status, 0, r.stderr);
  assert.is(seen.deadline, Infinity);
  const given = await avrpc('call', address, 'watch', '{"from": 0, "count": 1, "failAfter": -1}', '--timeout', '10m');
  assert.is(given.status, 0, given.stderr);
  assert.ok(seen.deadline > Date.now() + 60_000 && seen.deadline < Date.now() + 600_000, `deadline ${seen.deadline}`);
});

test('server stream: --timeout is the deadline of the whole stream', async () => {
  const r = await avrpc('call', address, 'watch', '{"from": 0, "count": 1, "failAfter": -2}', '--timeout', '300ms');
  assert.is(r.status, exitStatusFor(Code.DEADLINE_EXCEEDED), r.stderr);
  assert.match(r.stderr, /^DEADLINE_EXCEEDED: /);
  assert.is(r.stdout, `${itemJson(0)}\n`);
});

test('server stream: a reader that goes away (| head -1) ends the CLI quietly and cancels the stream', async () => {
  const aborted = new Promise<void>((resolve) => (seen.onAbort = resolve));
  const cli = startCli('call', address, 'watch', '{"from": 0, "count": 1000000, "failAfter": -1}');
  assert.is(await cli.nextLine(), itemJson(0));
  cli.child.stdout.destroy();
  const r = await cli.done();
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stderr, '');
  await aborted; // the handler is stopped (CANCEL, or the connection closing), not left producing
  seen.onAbort = undefined;
});

test('client stream: NDJSON from stdin, each record sent as it is read, blank lines skipped; prints the response', async () => {
  seen.uploads.length = 0;
  const cli = startCli('call', address, 'upload', '--compact');
  cli.send(`{"item": ${itemJson(9007199254740993123n)}}`);
  // The server has the first record while stdin is still open (a CLI that waited for the end would exit on its kill timer).
  await Promise.race([uploaded(1), cli.done().then((r) => assert.unreachable(`exited first: ${r.stderr}`))]);
  cli.send('');
  cli.send(`{"item": ${itemJson(2)}}`);
  cli.end();
  const r = await cli.done();
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, '{"count":2,"bytes":6}\n');
  assert.equal(seen.uploads, [9007199254740993123n, 2n]);
});

test('client stream: -d (or [json]) sends that one record; an empty stdin sends none', async () => {
  const one = await avrpc('call', address, 'upload', '-d', `{"item": ${itemJson(1)}}`);
  assert.is(one.status, 0, one.stderr);
  assert.equal(parseJson(one.stdout), { count: 1, bytes: 3 });
  const none = await avrpc('call', address, 'upload', '--compact');
  assert.is(none.status, 0, none.stderr);
  assert.is(none.stdout, '{"count":0,"bytes":0}\n');
});

test('client stream: a bad line is INVALID_ARGUMENT naming its line number, and the call is not completed', async () => {
  seen.uploads.length = 0;
  const cli = startCli('call', address, 'upload');
  cli.send(`{"item": ${itemJson(1)}}`);
  cli.send('');
  cli.send('{"item": {"id": 2}}');
  const r = await cli.done();
  assert.is(r.status, exitStatusFor(Code.INVALID_ARGUMENT), r.stderr);
  assert.is(r.stderr, 'INVALID_ARGUMENT: stdin line 3: request of upload: missing field item.name (string)\n');
  assert.is(r.stdout, '', 'no response printed');
});

test('client stream: the server failing ends the CLI as a call error, even with stdin still open', async () => {
  const cli = startCli('call', address, 'upload');
  cli.send(`{"item": ${itemJson(1)}}`);
  cli.send(`{"item": ${itemJson(2).replace('item 2', 'refuse')}}`);
  const r = await cli.done();
  assert.is(r.status, exitStatusFor(Code.FAILED_PRECONDITION), r.stderr);
  assert.is(r.stderr, 'FAILED_PRECONDITION: refused after 1\n');
});

test('client stream: -d @file of NDJSON sends every record; -d @- reads stdin record by record', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'avrpc-stream-data-'));
  try {
    const file = join(dir, 'items.ndjson');
    writeFileSync(file, [1n, 2n, 3n].map((id) => `{"item": ${itemJson(id)}}`).join('\n'));
    seen.uploads.length = 0;
    const r = await avrpc('call', address, 'upload', '--compact', '-d', `@${file}`);
    assert.is(r.status, 0, r.stderr);
    assert.is(r.stdout, '{"count":3,"bytes":9}\n');
    assert.equal(seen.uploads, [1n, 2n, 3n]);
    const watches = join(dir, 'watches.ndjson');
    writeFileSync(watches, '{"from": 0, "count": 1, "failAfter": -1}\n{"from": 5, "count": 1, "failAfter": -1}\n');
    const two = await avrpc('call', address, 'watch', '-d', `@${watches}`);
    assert.is(two.status, exitStatusFor(Code.INVALID_ARGUMENT), 'a server stream takes one request');
    assert.match(two.stderr, /watches\.ndjson holds 2 requests: call sends one/);
    assert.is(two.stdout, '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  seen.uploads.length = 0;
  const cli = startCli('call', address, 'upload', '--compact', '-d', '@-');
  cli.send(`{"item": ${itemJson(4)}}`);
  // Sent while stdin is still open: @- on a client stream streams, it does not read all of stdin first.
  await Promise.race([uploaded(1), cli.done().then((r) => assert.unreachable(`exited first: ${r.stderr}`))]);
  cli.end();
  const r = await cli.done();
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, '{"count":1,"bytes":3}\n');
});

test('--bytes base64: stream requests and elements carry bytes as base64', async () => {
  const b64 = (id: number): string => itemJson(id).replace(JSON.stringify('\u0000\u00ff\u0080'), '"AP+A"');
  const cli = startCli('call', address, 'chat', '--bytes', 'base64');
  cli.send(`{"item": ${b64(5)}}`);
  assert.is(await cli.nextLine(), b64(5));
  cli.end();
  assert.is((await cli.done()).status, 0);
  const watched = await avrpc('call', address, 'watch', '--bytes', 'base64', '{"from": 1, "count": 1, "failAfter": -1}');
  assert.is(watched.stdout, `${b64(1)}\n`);
});

test('bidi: each request read from stdin is answered on stdout before the next is written', async () => {
  const cli = startCli('call', address, 'chat');
  for (const id of [1n, 9007199254740993123n, 3n]) {
    cli.send(`{"item": ${itemJson(id)}}`);
    assert.is(await cli.nextLine(), itemJson(id));
  }
  cli.end();
  const r = await cli.done();
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stderr, '');
});

test('bidi: a bad line fails INVALID_ARGUMENT naming it, after the answers so far', async () => {
  const cli = startCli('call', address, 'chat');
  cli.send(`{"item": ${itemJson(1)}}`);
  assert.is(await cli.nextLine(), itemJson(1));
  cli.send('{"item": ');
  const r = await cli.done();
  assert.is(r.status, exitStatusFor(Code.INVALID_ARGUMENT), r.stderr);
  assert.match(r.stderr, /^INVALID_ARGUMENT: stdin line 2: request of chat: invalid JSON/);
  assert.is(r.stdout, `${itemJson(1)}\n`);
});

test('a unary message beside the streams is still a call; bench refuses a stream', async () => {
  const r = await avrpc('call', address, 'echo', '--compact', `{"item": ${itemJson(7)}}`);
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, `${itemJson(7)}\n`);
  const twice = await avrpc('call', address, 'echo', '{}', '-d', '{}');
  assert.is(twice.status, 2, 'a usage error');
  assert.match(twice.stderr, /given twice/);
  const bench = await avrpc('bench', address, 'watch', '{"from": 0, "count": 1, "failAfter": -1}', '-n', '1');
  assert.is(bench.status, exitStatusFor(Code.INVALID_ARGUMENT));
  assert.match(bench.stderr, /^INVALID_ARGUMENT: message watch is a server stream: bench runs unary calls/);
});

test.run();
