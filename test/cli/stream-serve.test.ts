import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadProtocol, parseProtocol } from '../../src/index.js';
import { parseJson } from '../../src/codec/lossless-json.js';
import { protocolToIdl } from '../../src/cli/idl-printer.js';
import { repoPath } from '../helpers/repo.js';
import { avrpc, serve, type Served } from '../helpers/cli.js';
import { startCli } from './cli-process.js';

/** `avrpc serve` with stream handlers from a module, `avrpc describe` of stream messages, and calls of each kind between the two processes. */
const test = suite('avrpc serve/describe: streams');

const STREAM = repoPath('protocol/stream.avdl');
/** A handlers module as a user writes it: plain JS, an async generator, a client stream, a bidi echo. */
const HANDLERS = `
const item = (id) => ({ id, name: 'n' + id, tags: [], score: 1, blob: Buffer.alloc(0) });
export default {
  async *watch(req) {
    for (let i = 0; i < req.count; i++) yield item(req.from + BigInt(i));
  },
  async upload(requests) {
    let count = 0n;
    for await (const r of requests) count++;
    return { count, bytes: 0n };
  },
  async *chat(requests) {
    for await (const r of requests) yield r.item;
  },
  echo: (req) => req.item,
};
`;

let dir: string;
let server: Served;

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'avrpc-cli-streams-'));
  writeFileSync(join(dir, 'handlers.mjs'), HANDLERS);
  server = await serve(STREAM, join(dir, 'handlers.mjs'), '--longs', 'bigint');
});

test.after(async () => {
  assert.is(await server.stop(), 0);
  rmSync(dir, { recursive: true, force: true });
});

test('describe prints @stream on each stream message, and the IDL parses back to the same kinds', async () => {
  const r = await avrpc('describe', server.address);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /^ {2}@stream\("server"\) Item watch\(long from, int count, int failAfter\) throws StreamError;$/m);
  assert.match(r.stdout, /^ {2}@stream\("client"\) Summary upload\(Item item\) throws StreamError;$/m);
  assert.match(r.stdout, /^ {2}@stream\("bidi"\) Item chat\(Item item\) throws StreamError;$/m);
  assert.match(r.stdout, /^ {2}Item echo\(Item item\);$/m);
  const back = parseProtocol(r.stdout);
  const served = await loadProtocol(STREAM);
  assert.equal(
    back.messages.map((m) => [m.name, m.stream]),
    served.messages.map((m) => [m.name, m.stream]),
  );
  assert.equal(
    served.messages.map((m) => m.stream),
    ['server', 'client', 'bidi', undefined],
  );
});

test('IDL printer: a stream message keeps its kind through print and parse', async () => {
  const served = await loadProtocol(STREAM);
  const again = parseProtocol(protocolToIdl(served.text));
  assert.equal(
    again.messages.map((m) => m.stream),
    ['server', 'client', 'bidi', undefined],
  );
});

test('serve passes the module stream handlers through: server, client and bidi streams from the CLI', async () => {
  const watch = await avrpc('call', server.address, 'watch', '{"from": 9007199254740993000, "count": 2, "failAfter": -1}');
  assert.is(watch.status, 0, watch.stderr);
  assert.equal(
    watch.stdout
      .trimEnd()
      .split('\n')
      .map((l) => (parseJson(l) as { id: bigint }).id),
    [9007199254740993000n, 9007199254740993001n],
  );
  const item = '{"item": {"id": 4, "name": "x", "tags": [], "score": 2, "blob": ""}}';
  const upload = startCli('call', server.address, 'upload', '--compact');
  upload.send(item);
  upload.send(item);
  upload.end();
  const up = await upload.done();
  assert.is(up.status, 0, up.stderr);
  assert.is(up.stdout, '{"count":2,"bytes":0}\n');
  const chat = startCli('call', server.address, 'chat');
  chat.send(item);
  assert.is(await chat.nextLine(), '{"id":4,"name":"x","tags":[],"score":2,"blob":""}');
  chat.end();
  const bidi = await chat.done();
  assert.is(bidi.status, 0, bidi.stderr);
});

test.run();
