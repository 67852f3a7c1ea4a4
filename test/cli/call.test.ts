import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code } from '../../src/index.js';
import { exitStatusFor } from '../../src/cli/options.js';
import { parseJson } from '../../src/codec/lossless-json.js';
import { KITCHEN, KITCHEN_HANDLERS, avrpc, serve, type Served } from '../helpers/cli.js';

/** `avrpc call` as a process against `avrpc serve` as a process. */
const test = suite('avrpc call');
let server: Served;

test.before(async () => {
  server = await serve(KITCHEN, KITCHEN_HANDLERS, '--longs', 'bigint', '--port', '0');
});

test.after(async () => {
  assert.is(await server.stop(), 0, 'serve exits 0 on SIGTERM');
  assert.match(server.output(), /^closed$/m);
});

const thing = (id: string, extra = ''): string =>
  `{"thing": {"id": ${id}, "blob": "\\u0000\\u00ff\\u0080A", "choice": {"avrpc.other.Tag": {"key": "k", "value": {"string": "v"}}},
    "hash": "\\u0001\\u0002\\u0003\\u0004", "counts": {"a": [1, 2]}, "at": 1700000000000${extra}}}`;

test('round trip: longs beyond 2^53 stay exact, bytes and unions use Avro JSON', async () => {
  const r = await avrpc('call', server.address, 'bump', thing('9007199254740993123', ', "color": "BLUE"'));
  assert.is(r.stderr, '');
  assert.is(r.status, 0);
  // 9007199254740993123 + 1, printed as a bare integer literal: JSON.parse would round it.
  assert.match(r.stdout, /"id": 9007199254740993124\b/);
  const out = parseJson(r.stdout) as Record<string, unknown>;
  assert.is(out.id, 9007199254740993124n);
  assert.is(out.blob, '\u0000\u00ff\u0080A');
  assert.equal(out.choice, { 'avrpc.other.Tag': { key: 'k', value: { string: 'v' } } });
  assert.is(out.color, 'BLUE');
  assert.is(out.hash, '\u0001\u0002\u0003\u0004');
  assert.equal(out.counts, { a: [1, 2] });
  assert.is(out.score, 0.5, 'defaults filled in');
});

test('the extremes of long, a long union branch, and --compact', async () => {
  const r = await avrpc(
    'call',
    server.address,
    'bump',
    '--compact',
    '{"thing": {"id": -9223372036854775808, "blob": "", "choice": {"long": 9223372036854775807}, "hash": "abcd", "counts": {}, "at": 0}}',
  );
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout.trim().split('\n').length, 1);
  assert.match(r.stdout, /"id":-9223372036854775807,/);
  assert.match(r.stdout, /"choice":\{"long":9223372036854775807\}/);
});

test('a long beyond 64 bits is refused locally as INVALID_ARGUMENT, naming the field', async () => {
  const r = await avrpc('call', server.address, 'fail', '{"reason": "x", "code": 9223372036854775808}');
  assert.is(r.status, exitStatusFor(Code.INVALID_ARGUMENT));
  assert.match(r.stderr, /^INVALID_ARGUMENT: .*code/);
});

test('bytes and fixed above \\u00ff are refused as INVALID_ARGUMENT naming the field, not truncated to their low byte', async () => {
  // Buffer.from('\u0100\u4e2d', 'binary') is <00 2d>: the server used to receive "\u0000-" and the call exit 0.
  const blob = await avrpc(
    'call',
    server.address,
    'bump',
    thing('1').replace('"blob": "\\u0000\\u00ff\\u0080A"', '"blob": "\\u0100\\u4e2d"'),
  );
  assert.is(blob.status, exitStatusFor(Code.INVALID_ARGUMENT), blob.stdout);
  assert.match(blob.stderr, /^INVALID_ARGUMENT: request of bump: thing\.blob: character \\u0100 at index 0 is above \\u00ff/);
  assert.is(blob.stdout, '');
  const hash = await avrpc('call', server.address, 'bump', thing('1').replace('"hash": "\\u0001', '"hash": "\\u4e2d'));
  assert.is(hash.status, exitStatusFor(Code.INVALID_ARGUMENT), hash.stdout);
  assert.match(hash.stderr, /^INVALID_ARGUMENT: request of bump: thing\.hash: character \\u4e2d/);
});

test('an integer literal beyond 2^53 is a valid double; in an int it is out of range, naming the field', async () => {
  const r = await avrpc('call', server.address, 'bump', '--compact', thing('1', ', "score": 12345678901234567890'));
  assert.is(r.status, 0, r.stderr);
  // Number(12345678901234567890n) as JSON.stringify prints it: the double nearest the literal.
  assert.match(r.stdout, /"score":12345678901234567000\}/);
  const int = await avrpc('call', server.address, 'hang', '{"ms": 12345678901234567890}');
  assert.is(int.status, exitStatusFor(Code.INVALID_ARGUMENT));
  assert.match(int.stderr, /^INVALID_ARGUMENT: request of hang: ms: 12345678901234567890 is out of range for int/);
});

test('a missing request, field or parameter object names what is missing', async () => {
  const none = await avrpc('call', server.address, 'bump');
  assert.is(none.status, exitStatusFor(Code.INVALID_ARGUMENT));
  assert.is(none.stderr, 'INVALID_ARGUMENT: request of bump: missing field thing (avrpc.cli.Thing)\n');
  const list = await avrpc('call', server.address, 'bump', '[]');
  assert.is(list.status, exitStatusFor(Code.INVALID_ARGUMENT));
  assert.is(list.stderr, 'INVALID_ARGUMENT: request of bump: expected the parameters as one JSON object, got an array\n');
  const inner = await avrpc('call', server.address, 'bump', '{"thing": {"id": 1}}');
  assert.is(inner.status, exitStatusFor(Code.INVALID_ARGUMENT));
  assert.is(inner.stderr, 'INVALID_ARGUMENT: request of bump: missing field thing.blob (bytes)\n');
  const typo = await avrpc('call', server.address, 'bump', thing('1', ', "colour": "RED"'));
  assert.is(typo.status, exitStatusFor(Code.INVALID_ARGUMENT));
  assert.match(typo.stderr, /^INVALID_ARGUMENT: request of bump: unknown field thing\.colour \(fields: id, blob, /);
});

test('a handler error: code name and message on stderr, exit status 64 + code; --metadata reaches the handler', async () => {
  const r = await avrpc('call', server.address, 'fail', '{"reason": "gone", "code": 0}', '--metadata', 'trace=abc', '--metadata', 'x=y=z');
  assert.is(r.status, exitStatusFor(Code.NOT_FOUND));
  assert.is(r.stderr, 'NOT_FOUND: not found: gone (trace abc)\n');
  assert.is(r.stdout, '');
});

test('a declared error prints its type after the message, and its value as Avro JSON, longs exact', async () => {
  const r = await avrpc('call', server.address, 'fail', '{"reason": "nope", "code": 9007199254740993}');
  assert.is(r.status, exitStatusFor(Code.UNKNOWN));
  // The handler threw the plain value: its message is the value's, its type named after it.
  assert.is(r.stderr, 'UNKNOWN: Nope: {"reason":"nope","code":9007199254740993} (declared error avrpc.cli.Nope)\n');
  assert.equal(parseJson(r.stdout), { 'avrpc.cli.Nope': { reason: 'nope', code: 9007199254740993n } });
  const compact = await avrpc('call', server.address, 'fail', '--compact', '{"reason": "nope", "code": 1}');
  assert.is(compact.status, exitStatusFor(Code.UNKNOWN));
  assert.match(compact.stderr, /\(declared error avrpc\.cli\.Nope\)\n$/);
  assert.is(compact.stdout, '{"avrpc.cli.Nope":{"reason":"nope","code":1}}\n', '--compact applies to the declared error too');
});

test('--timeout: a call that never ends is DEADLINE_EXCEEDED', async () => {
  const r = await avrpc('call', server.address, 'hang', '{"ms": 1}', '--timeout', '300');
  assert.is(r.status, exitStatusFor(Code.DEADLINE_EXCEEDED));
  assert.match(r.stderr, /^DEADLINE_EXCEEDED: /);
});

test('--timeout takes the duration syntax of bench -d (0.3s, 300ms), and refuses what is no duration', async () => {
  for (const timeout of ['0.3s', '300ms']) {
    const r = await avrpc('call', server.address, 'hang', '{"ms": 1}', '--timeout', timeout);
    assert.is(r.status, exitStatusFor(Code.DEADLINE_EXCEEDED), `${timeout}: ${r.stderr}`);
    assert.match(r.stderr, /^DEADLINE_EXCEEDED: /);
  }
  const bad = await avrpc('call', server.address, 'ping', '--timeout', '3 days');
  assert.is(bad.status, 2, 'a usage error');
  assert.match(bad.stderr, /--timeout <duration>.*must be a duration like 500ms, 10s or 2m/);
});

test('one-way message: exit 0, nothing printed', async () => {
  const r = await avrpc('call', server.address, 'ping');
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, '');
});

test('unknown message and malformed JSON are refused before any call', async () => {
  const unknown = await avrpc('call', server.address, 'nope', '{}');
  assert.is(unknown.status, exitStatusFor(Code.UNIMPLEMENTED));
  assert.match(unknown.stderr, /^UNIMPLEMENTED: .*has no message nope.*bump, fail, hang, ping/);
  const bad = await avrpc('call', server.address, 'hang', '{"ms": }');
  assert.is(bad.status, exitStatusFor(Code.INVALID_ARGUMENT));
  assert.match(bad.stderr, /^INVALID_ARGUMENT: request: invalid JSON/);
  const wrong = await avrpc('call', server.address, 'hang', '{"ms": "soon"}');
  assert.is(wrong.status, exitStatusFor(Code.INVALID_ARGUMENT));
});

test('--protocol file instead of the handshake gives the same answer', async () => {
  const r = await avrpc('call', server.address, 'bump', '--protocol', KITCHEN, '--compact', thing('1'));
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /"id":2,/);
});

test('nobody listening: UNAVAILABLE', async () => {
  const stopped = await serve(KITCHEN, KITCHEN_HANDLERS);
  const address = stopped.address;
  await stopped.stop();
  const r = await avrpc('call', address, 'ping', '--timeout', '2000');
  assert.is(r.status, exitStatusFor(Code.UNAVAILABLE));
  assert.match(r.stderr, /^UNAVAILABLE: /);
});

test('serve --longs string: handlers see decimal strings, exact beyond 2^53; other kinds are refused naming the choices', async () => {
  const strings = await serve(KITCHEN, KITCHEN_HANDLERS, '--longs', 'string');
  try {
    const r = await avrpc('call', strings.address, 'fail', '{"reason": "s", "code": 9223372036854775807}');
    assert.is(r.status, exitStatusFor(Code.UNKNOWN), r.stderr);
    // The handler threw {reason, code} with the code as it got it: a string (a BigInt would print as digits).
    assert.is(r.stderr, 'UNKNOWN: Nope: {"reason":"s","code":"9223372036854775807"} (declared error avrpc.cli.Nope)\n');
    assert.equal(parseJson(r.stdout), { 'avrpc.cli.Nope': { reason: 's', code: 9223372036854775807n } });
  } finally {
    assert.is(await strings.stop(), 0);
  }
  const bad = await avrpc('serve', KITCHEN, KITCHEN_HANDLERS, '--longs', 'float');
  assert.is(bad.status, 2, 'a usage error');
  assert.match(bad.stderr, /--longs <kind>.*Allowed choices are number, bigint, string/);
});

test('serve --token: calls need the token (--token), else UNAUTHENTICATED', async () => {
  const guarded = await serve(KITCHEN, KITCHEN_HANDLERS, '--longs', 'bigint', '--token', 's3cret');
  try {
    const denied = await avrpc('call', guarded.address, 'ping', '--token', 'wrong');
    assert.is(denied.status, exitStatusFor(Code.UNAUTHENTICATED));
    assert.match(denied.stderr, /^UNAUTHENTICATED: /);
    const allowed = await avrpc(
      'call',
      guarded.address,
      'fail',
      '{"reason": "r", "code": 1}',
      '--token',
      's3cret',
      '--metadata',
      'trace=1',
    );
    assert.is(allowed.status, exitStatusFor(Code.UNKNOWN), allowed.stderr);
    assert.equal(parseJson(allowed.stdout), { 'avrpc.cli.Nope': { reason: 'r', code: 1 } });
  } finally {
    await guarded.stop();
  }
});

test.run();
