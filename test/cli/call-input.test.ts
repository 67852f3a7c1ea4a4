import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code } from '../../src/index.js';
import { exitStatusFor, USAGE_EXIT } from '../../src/cli/options.js';
import { parseJson } from '../../src/codec/lossless-json.js';
import { KITCHEN, KITCHEN_HANDLERS, avrpc, serve, type Served } from '../helpers/cli.js';
import { startCli } from './cli-process.js';

/**
 * `avrpc call` as grpcurl users expect it, as processes against `avrpc serve`: the request from a
 * file or stdin, `--bytes base64`, union branches by simple name, `--compact` on declared errors,
 * usage errors exit 2, and a message without a handler says so.
 */
const test = suite('avrpc call: input and output like grpcurl');
let server: Served;
let dir: string;

test.before(async () => {
  server = await serve(KITCHEN, KITCHEN_HANDLERS, '--longs', 'bigint', '--port', '0');
  dir = mkdtempSync(join(tmpdir(), 'avrpc-call-input-'));
});

test.after(async () => {
  rmSync(dir, { recursive: true, force: true });
  assert.is(await server.stop(), 0);
});

/** A Thing with bytes \x00\xff and fixed 01020304, in the given bytes encoding. */
const thing = (blob: string, hash: string, choice = 'null'): string =>
  `{"thing": {"id": 41, "blob": "${blob}", "choice": ${choice}, "hash": "${hash}", "counts": {}, "at": 0}}`;
const LATIN1 = thing('\\u0000\\u00ff', '\\u0001\\u0002\\u0003\\u0004');
const BASE64 = thing('AP8=', 'AQIDBA==');

test('-d @file reads the request from a file, pretty printed or not', async () => {
  const file = join(dir, 'bump.json');
  writeFileSync(file, JSON.stringify(JSON.parse(LATIN1), null, 2));
  const r = await avrpc('call', server.address, 'bump', '--compact', '-d', `@${file}`);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /^\{"id":42,/);
  const missing = await avrpc('call', server.address, 'bump', '-d', `@${join(dir, 'absent.json')}`);
  assert.is(missing.status, exitStatusFor(Code.INVALID_ARGUMENT));
  assert.match(missing.stderr, /^INVALID_ARGUMENT: -d @.*absent\.json: cannot read it \(ENOENT\)/);
  const empty = join(dir, 'empty.json');
  writeFileSync(empty, '\n');
  const none = await avrpc('call', server.address, 'bump', '-d', `@${empty}`);
  assert.is(none.status, exitStatusFor(Code.INVALID_ARGUMENT));
  assert.match(none.stderr, /empty\.json: no request in it/);
});

test('-d @file with several NDJSON requests: a unary call refuses them, naming the count', async () => {
  const file = join(dir, 'two.ndjson');
  writeFileSync(file, `${LATIN1.replace(/\n\s*/g, ' ')}\n${LATIN1.replace(/\n\s*/g, ' ')}\n`);
  const r = await avrpc('call', server.address, 'bump', '-d', `@${file}`);
  assert.is(r.status, exitStatusFor(Code.INVALID_ARGUMENT));
  assert.match(r.stderr, /two\.ndjson holds 2 requests: call sends one/);
  const bad = join(dir, 'bad.ndjson');
  writeFileSync(bad, '{"reason": "a", "code": 0}\n{"reason": \n');
  const r2 = await avrpc('call', server.address, 'fail', '-d', `@${bad}`);
  assert.is(r2.status, exitStatusFor(Code.INVALID_ARGUMENT));
  assert.match(r2.stderr, /^INVALID_ARGUMENT: .*bad\.ndjson line 2: invalid JSON/);
});

test('-d @- reads the request from stdin (all of it, for a unary call)', async () => {
  const cli = startCli('call', server.address, 'bump', '--compact', '-d', '@-');
  cli.send(LATIN1.slice(0, 20));
  cli.send(LATIN1.slice(20));
  cli.end();
  const r = await cli.done();
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /^\{"id":42,/);
});

test('--bytes base64: bytes and fixed are base64 in the request and in the response', async () => {
  const r = await avrpc('call', server.address, 'bump', '--compact', '--bytes', 'base64', BASE64);
  assert.is(r.status, 0, r.stderr);
  const out = parseJson(r.stdout) as Record<string, unknown>;
  assert.is(out.blob, 'AP8=');
  assert.is(out.hash, 'AQIDBA==');
  // The same value in Avro's own encoding: what the server received is the same bytes.
  const plain = await avrpc('call', server.address, 'bump', '--compact', LATIN1);
  assert.is((parseJson(plain.stdout) as Record<string, unknown>).blob, '\u0000\u00ff');
  const bad = await avrpc('call', server.address, 'bump', '--bytes', 'base64', thing('not base64!', 'AQIDBA=='));
  assert.is(bad.status, exitStatusFor(Code.INVALID_ARGUMENT));
  assert.match(bad.stderr, /^INVALID_ARGUMENT: request of bump: thing\.blob: not base64 \(--bytes base64\)/);
  const short = await avrpc('call', server.address, 'bump', '--bytes', 'base64', thing('', 'AQID'));
  assert.is(short.status, exitStatusFor(Code.INVALID_ARGUMENT));
  assert.match(short.stderr, /thing\.hash: expected 4 bytes for fixed, got 3/);
  const choice = await avrpc('call', server.address, 'bump', '--bytes', 'hex', BASE64);
  assert.is(choice.status, USAGE_EXIT);
  assert.match(choice.stderr, /Allowed choices are latin1, base64/);
});

test('a union branch by its simple name where it is unambiguous; printed by its full name', async () => {
  const r = await avrpc('call', server.address, 'bump', '--compact', thing('', 'abcd', '{"Tag": {"key": "k"}}'));
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /"choice":\{"avrpc\.other\.Tag":\{"key":"k","value":null\}\}/);
  const full = await avrpc('call', server.address, 'bump', '--compact', thing('', 'abcd', '{"avrpc.other.Tag": {"key": "k"}}'));
  assert.is(full.stdout, r.stdout);
  const wrong = await avrpc('call', server.address, 'bump', thing('', 'abcd', '{"other.Tag": {"key": "k"}}'));
  assert.is(wrong.status, exitStatusFor(Code.INVALID_ARGUMENT));
  assert.match(wrong.stderr, /thing\.choice: expected null or \{"<branch>": value\} with <branch> one of long, string, avrpc\.other\.Tag/);
});

test('--compact prints a declared error on one line too', async () => {
  const r = await avrpc('call', server.address, 'fail', '--compact', '{"reason": "nope", "code": 7}');
  assert.is(r.status, exitStatusFor(Code.UNKNOWN));
  assert.is(r.stdout, '{"avrpc.cli.Nope":{"reason":"nope","code":7}}\n');
  const pretty = await avrpc('call', server.address, 'fail', '{"reason": "nope", "code": 7}');
  assert.is(pretty.stdout.split('\n').length, 7, 'indented without --compact');
});

test('usage errors exit 2: an unknown flag, a missing argument, flags that exclude each other', async () => {
  const unknown = await avrpc('call', server.address, 'ping', '--nope');
  assert.is(unknown.status, USAGE_EXIT);
  assert.match(unknown.stderr, /unknown option '--nope'/);
  const missing = await avrpc('call', server.address);
  assert.is(missing.status, USAGE_EXIT);
  assert.match(missing.stderr, /missing required argument 'message'/);
  const twice = await avrpc('call', server.address, 'ping', '{}', '-d', '{}');
  assert.is(twice.status, USAGE_EXIT);
  assert.is(twice.stderr, 'error: the request is given twice ([json] and -d): use one\n');
  const metadata = await avrpc('call', server.address, 'ping', '--metadata', 'novalue');
  assert.is(metadata.status, USAGE_EXIT);
  assert.match(metadata.stderr, /--metadata must be key=value/);
  const command = await avrpc('frobnicate');
  assert.is(command.status, USAGE_EXIT);
  assert.match(command.stderr, /unknown command 'frobnicate'/);
  const help = await avrpc('call', '--help');
  assert.is(help.status, 0, 'help is no error');
  assert.match(help.stdout, /--bytes <encoding>/);
});

test('a message the server declares but has no handler for: UNIMPLEMENTED saying so', async () => {
  const handlers = join(dir, 'partial.mjs');
  writeFileSync(handlers, 'export default { bump: ({ thing }) => thing, fail: () => "ok", ping: () => undefined };\n');
  const partial = await serve(KITCHEN, handlers, '--port', '0');
  try {
    assert.match(partial.output(), /WARN {2}no handler for hang: calls answer UNIMPLEMENTED/);
    const r = await avrpc('call', partial.address, 'hang', '{"ms": 1}');
    assert.is(r.status, exitStatusFor(Code.UNIMPLEMENTED));
    assert.is(r.stderr, 'UNIMPLEMENTED: message hang has no handler on this server\n');
    // A message the server does not have at all is caught before sending, with the list of those it has.
    const absent = await avrpc('call', partial.address, 'nothere');
    assert.is(absent.status, exitStatusFor(Code.UNIMPLEMENTED));
    assert.match(absent.stderr, /has no message nothere \(it has: bump, fail, hang, ping\)/);
  } finally {
    assert.is(await partial.stop(), 0);
  }
});

test.run();
