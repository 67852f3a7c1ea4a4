import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code } from '../../src/index.js';
import type { BenchReport } from '../../src/cli/bench.js';
import { exitStatusFor, USAGE_EXIT } from '../../src/cli/options.js';
import { KITCHEN, KITCHEN_HANDLERS, avrpc, serve, type Served } from '../helpers/cli.js';

/** `avrpc bench` as ghz users expect it, as a process against `avrpc serve`: --rps, request files, formats, exit status. */
const test = suite('avrpc bench: rate, request files, formats');
let server: Served;
let dir: string;

test.before(async () => {
  server = await serve(KITCHEN, KITCHEN_HANDLERS, '--longs', 'bigint', '--port', '0');
  dir = mkdtempSync(join(tmpdir(), 'avrpc-bench-'));
});

test.after(async () => {
  rmSync(dir, { recursive: true, force: true });
  assert.is(await server.stop(), 0);
});

const report = (stdout: string): BenchReport => JSON.parse(stdout) as BenchReport;

test('a file of NDJSON requests is cycled: call i sends request i mod n', async () => {
  const file = join(dir, 'three.ndjson');
  // Two requests answer NOT_FOUND, one the declared error Nope (UNKNOWN): the counts show the cycle.
  writeFileSync(file, '{"reason": "a", "code": 0}\n\n{"reason": "b", "code": 0}\n{"reason": "c", "code": 3}\n');
  const r = await avrpc('bench', server.address, 'fail', `@${file}`, '-n', '10', '-c', '3', '--format', 'json');
  assert.is(r.status, exitStatusFor(Code.NOT_FOUND), 'the most frequent failure gives the exit status');
  const rep = report(r.stdout);
  assert.is(rep.requests, 3);
  assert.is(rep.calls, 10);
  // Calls 0..9 take requests 0,1,2,0,1,2,0,1,2,0: seven NOT_FOUND and three Nope.
  assert.equal(rep.errors, { NOT_FOUND: 7, UNKNOWN: 3 });
  assert.is(r.stderr, 'bench: 10 of 10 calls failed (NOT_FOUND 7, UNKNOWN 3)\n');
  const viaData = await avrpc('bench', server.address, 'fail', '--data', `@${file}`, '-n', '3', '--json');
  assert.equal(report(viaData.stdout).errors, { NOT_FOUND: 2, UNKNOWN: 1 });
  const bad = join(dir, 'bad.ndjson');
  writeFileSync(bad, '{"reason": "a", "code": 0}\n{"reason": "b"}\n');
  const refused = await avrpc('bench', server.address, 'fail', `@${bad}`, '-n', '1');
  assert.is(refused.status, exitStatusFor(Code.INVALID_ARGUMENT));
  assert.match(refused.stderr, /^INVALID_ARGUMENT: .*bad\.ndjson line 2: request of fail: missing field code/);
});

test('exit 0 only when every call succeeded', async () => {
  const r = await avrpc('bench', server.address, 'ping', '-n', '20', '-c', '2', '--json');
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stderr, '');
  assert.is(report(r.stdout).ok, 20);
});

test('--rps: latency counts from when each call was due, so a backlog shows (coordinated omission corrected)', async () => {
  // One call in flight, 100 due per second (every 10 ms), each taking its 50 ms deadline: they fall
  // behind. Call 19 is due at begin + 190 ms and ends after all 20 calls ran one after the other, so
  // timed from when it was due it took at least the 20 service times minus 190 ms.
  const args = ['hang', '{"ms": 1}', '--rps', '100', '-n', '20', '-c', '1', '--timeout', '50', '--json'];
  // --protocol: a 50 ms --timeout also bounds learning the protocol by a handshake, on a busy machine.
  const r = await avrpc('bench', server.address, ...args, '--protocol', KITCHEN);
  assert.is(r.status, exitStatusFor(Code.DEADLINE_EXCEEDED), r.stderr);
  const rep = report(r.stdout);
  assert.is(rep.rps, 100);
  assert.is(rep.calls, 20);
  assert.equal(rep.errors, { DEADLINE_EXCEEDED: 20 });
  const lowerBound = 20 * rep.serviceUs.min - 190_000 - 20; // 20: rounding to whole microseconds
  assert.ok(rep.latencyUs.max >= lowerBound, `corrected max ${rep.latencyUs.max} us, at least ${lowerBound}`);
  assert.ok(lowerBound > 3 * rep.serviceUs.min, 'the backlog outweighs a call');
  for (const p of ['min', 'p50', 'p90', 'p99', 'max'] as const) assert.ok(rep.latencyUs[p] >= rep.serviceUs[p], p);
  // Without --rps (closed loop) there is no schedule to fall behind: both are the same.
  const closed = report((await avrpc('bench', server.address, 'ping', '-n', '50', '-c', '2', '--json')).stdout);
  assert.is(closed.rps, null);
  assert.equal(closed.latencyUs, closed.serviceUs);
});

test('--rps paces the calls: -n calls at N/s cannot finish before (n - 1) / N seconds (less 1 ms)', async () => {
  const r = await avrpc('bench', server.address, 'ping', '--rps', '200', '-n', '41', '-c', '8', '--json');
  assert.is(r.status, 0, r.stderr);
  const rep = report(r.stdout);
  assert.is(rep.calls, 41);
  // The 41st call is due 200 ms after the first; a call due within a millisecond goes at once (timers
  // have millisecond steps), so it may leave up to 1 ms early.
  assert.ok(rep.durationMs >= 199, `${rep.durationMs} ms`);
  const text = await avrpc('bench', server.address, 'ping', '--rps', '200', '-n', '5');
  assert.match(text.stdout, /calls\/s \(target 200 calls\/s\)/);
  assert.match(text.stdout, /corrected for coordinated omission/);
  assert.match(text.stdout, /service time \(ms\) from each actual send/);
});

test('--format csv: a header and one row; markdown: tables', async () => {
  const csv = await avrpc('bench', server.address, 'ping', '-n', '10', '-c', '2', '--format', 'csv');
  assert.is(csv.status, 0, csv.stderr);
  const [head, row, end] = csv.stdout.split('\n');
  assert.is(end, '');
  const cells = Object.fromEntries(head!.split(',').map((k, i) => [k, row!.split(',')[i]]));
  assert.is(cells.message, 'ping');
  assert.is(cells.calls, '10');
  assert.is(cells.ok, '10');
  assert.is(cells.errors, '');
  assert.is(cells.rps, '');
  assert.ok(Number(cells.latency_p99_us) > 0, row);
  const failed = await avrpc('bench', server.address, 'fail', '{"reason": "r", "code": 0}', '-n', '4', '--format', 'csv');
  assert.match(failed.stdout.split('\n')[1]!, /^fail,64,1,,1,4,0,NOT_FOUND 4,/);
  const md = await avrpc('bench', server.address, 'ping', '-n', '10', '--format', 'markdown');
  assert.is(md.status, 0, md.stderr);
  assert.match(md.stdout, /^### bench ping\n/);
  assert.match(md.stdout, /^\| 10 \| 10 \| none \|/m);
  assert.match(md.stdout, /^\| latency \(ms\) \| min \| mean \| p50 \| p90 \| p99 \| p999 \| max \|$/m);
  const both = await avrpc('bench', server.address, 'ping', '--json', '--format', 'csv');
  assert.is(both.status, USAGE_EXIT);
  assert.match(both.stderr, /--json and --format csv: use one/);
  const unknown = await avrpc('bench', server.address, 'ping', '--format', 'xml');
  assert.is(unknown.status, USAGE_EXIT);
  assert.match(unknown.stderr, /Allowed choices are text, json, csv, markdown/);
});

test.run();
