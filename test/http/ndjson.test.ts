/** Server streams over HTTP as NDJSON: a line per response, an error after some as a last line. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RpcError, Code, createServer, loadProtocol, type Server } from '../../src/index.js';
import { repoPath } from '../helpers/repo.js';

let server: Server;
let base: string;

test.before(async () => {
  const protocol = await loadProtocol(repoPath('protocol', 'stream.avdl'));
  server = createServer({
    protocol,
    http: {},
    logger: { error() {}, warn() {}, info() {}, debug() {} } as never,
    handlers: {
      async *watch(req: { from: number; count: number; failAfter: number }) {
        for (let i = 0; i < req.count; i++) {
          if (i === req.failAfter) throw new RpcError(Code.ABORTED, 'stopped', { details: { reason: 'r', after: i } });
          yield { id: req.from + i, name: `n${i}`, tags: [], score: 0, blob: Buffer.alloc(0) };
        }
      },
    },
  });
  const bound = await server.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${bound.http!.port}/avrpc.stream.Stream`;
});

test.after(() => server.close({ graceMs: 1000 }));

test('a server stream answers one JSON line per response', async () => {
  const res = await fetch(`${base}/watch`, { method: 'POST', body: '{"from":10,"count":3,"failAfter":-1}' });
  assert.is(res.status, 200);
  assert.is(res.headers.get('content-type'), 'application/x-ndjson');
  const lines = (await res.text())
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { id: number });
  assert.equal(
    lines.map((l) => l.id),
    [10, 11, 12],
  );
});

test('an error after responses is the last line; before any, an error answer with its status', async () => {
  const res = await fetch(`${base}/watch`, { method: 'POST', body: '{"from":0,"count":5,"failAfter":2}' });
  const lines = (await res.text())
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.is(lines.length, 3);
  assert.equal(lines[2], {
    error: { code: 'ABORTED', message: 'stopped', errorType: 'avrpc.stream.StreamError', details: { reason: 'r', after: 2 } },
  });
  const early = await fetch(`${base}/watch`, { method: 'POST', body: '{"from":0,"count":5,"failAfter":0}' });
  assert.is(early.status, 409);
  assert.is(((await early.json()) as { code: string }).code, 'ABORTED');
});

test('client and bidi streams are not served over HTTP: 501', async () => {
  const res = await fetch(`${base}/chat`, { method: 'POST', body: '{}' });
  assert.is(res.status, 501);
  await res.text();
});

test.run();
