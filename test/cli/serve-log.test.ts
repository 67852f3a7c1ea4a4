import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { avrpc } from '../helpers/cli.js';
import { logFixture, serveProcess, type LogFixture } from './serve-log-fixture.js';

/** `avrpc serve` logging, as real processes: levels, text and JSON, what is logged and what is not. */
const test = suite('avrpc serve --log-level / --log-format');
let fx: LogFixture;

test.before(() => {
  fx = logFixture();
});
test.after(() => fx.remove());

const TEXT_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO |WARN |ERROR) /;

/** Lines of stderr that start an entry (a text entry's stack lines follow it, indented). */
function entries(stderr: string): string[] {
  return stderr.split('\n').filter((l) => TEXT_LINE.test(l));
}

test('text (default, info): startup, a handler failure with its stack and cause, drain; nothing for calls that went well', async () => {
  const server = await serveProcess(fx.protocol, fx.handlers);
  try {
    await server.logged(/ INFO {2}listening /);
    assert.match(server.stderr(), /WARN {2}no handler for missing: calls answer UNIMPLEMENTED/);
    const start = entries(server.stderr()).find((l) => l.includes(' listening '))!;
    assert.match(
      start,
      new RegExp(`listening address=${server.address.replace(/\./g, '\\.')} protocol=obs\\.log\\.Log messages=5 tls=false$`),
    );
    const before = entries(server.stderr()).length;

    assert.is((await avrpc('call', server.address, 'echo', '{"s": "x"}')).status, 0);
    // An RpcError the handler chose is the client's answer, not the server's problem.
    assert.is((await avrpc('call', server.address, 'refuse', '{"s": "x"}')).status, 64 + 5);
    assert.is((await avrpc('call', server.address, 'crash', '{"s": "x"}')).status, 64 + 13);
    await server.logged(/ERROR handler failed/);
    const lines = entries(server.stderr());
    // Only the failure was logged: no line per call, none for the clients that hung up.
    assert.is(lines.length, before + 1, server.stderr());
    assert.match(lines.at(-1)!, /ERROR handler failed err="Error: crashed on x" message=crash peer=127\.0\.0\.1:\d+$/);
    const after = server.stderr().slice(server.stderr().indexOf('ERROR handler failed'));
    assert.match(after, /\n {4}Error: crashed on x\n {8}at crash \(file:/);
    assert.match(after, /\n {4}caused by: TypeError: root cause\n {8}at /);

    assert.is(await server.stop(), 0);
    const end = entries(server.stderr()).slice(-2);
    assert.match(end[0]!, /INFO {2}draining: no new calls, running calls get the grace period signal=SIGTERM graceMs=5000$/);
    assert.match(end[1]!, /INFO {2}closed durationMs=\d+$/);
    // A normal close is no error: no UNAVAILABLE anywhere.
    assert.not.match(server.stderr(), /UNAVAILABLE/);
    assert.match(server.stdout(), /^listening \S+\nclosed\n$/);
  } finally {
    await server.stop();
  }
});

test('json at debug: one pino-style object per line; closes carry their reason, not an error', async () => {
  const server = await serveProcess(fx.protocol, fx.handlers, '--log-format', 'json', '--log-level', 'debug');
  try {
    await server.logged(/"msg":"listening"/);
    assert.is((await avrpc('call', server.address, 'echo', '{"s": "x"}')).status, 0);
    assert.is((await avrpc('call', server.address, 'crash', '{"s": "y"}')).status, 64 + 13);
    await server.logged(/"msg":"handler failed"/);
    await server.logged(/"msg":"connection closed"/);
    assert.is(await server.stop(), 0);
    const lines = server.stderr().trimEnd().split('\n');
    const logs = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const e of logs) {
      assert.type(e.level, 'number');
      assert.type(e.time, 'number');
      assert.type(e.msg, 'string');
      assert.type(e.pid, 'number');
      assert.type(e.hostname, 'string');
      assert.ok((e.time as number) > Date.now() - 60_000 && (e.time as number) <= Date.now());
    }
    const by = (msg: string) => logs.filter((e) => e.msg === msg);
    const [start] = by('listening');
    assert.is(start!.level, 30);
    assert.is(start!.address, server.address);
    assert.is(start!.protocol, 'obs.log.Log');
    assert.is(by('no handler for missing: calls answer UNIMPLEMENTED')[0]!.level, 40);
    assert.equal(by('no handler for missing: calls answer UNIMPLEMENTED')[0]!.messages, ['missing']);

    const [failed] = by('handler failed');
    assert.is(failed!.level, 50);
    assert.is(failed!.message, 'crash');
    assert.match(failed!.peer as string, /^127\.0\.0\.1:\d+$/);
    const err = failed!.err as { type: string; message: string; stack: string; cause: { type: string; message: string; stack: string } };
    assert.is(err.type, 'Error');
    assert.is(err.message, 'crashed on y');
    assert.match(err.stack, /at crash \(file:/);
    assert.is(err.cause.type, 'TypeError');
    assert.is(err.cause.message, 'root cause');

    // The call log of debug: one entry per call, from its CallInfo.
    const calls = by('call');
    assert.equal(
      calls.map((c) => [c.level, c.message, c.code]),
      [
        [20, 'echo', 'OK'],
        [20, 'crash', 'INTERNAL'],
      ],
    );
    for (const c of calls) {
      assert.match(c.peer as string, /^127\.0\.0\.1:\d+$/);
      assert.ok((c.requestBytes as number) > 0 && (c.responseBytes as number) > 0, JSON.stringify(c));
      assert.type(c.durationMs, 'number');
    }
    assert.is(calls[1]!.reason, 'Error: crashed on y');
    const closes = by('connection closed');
    assert.ok(closes.length >= 2, `a close per CLI call: ${closes.length}`);
    for (const c of closes) {
      assert.is(c.level, 20);
      assert.type(c.reason, 'string');
      assert.is(c.err, undefined, 'no error object for an orderly close');
      assert.is(c.code, undefined);
    }
    assert.equal(
      logs.slice(-2).map((e) => [e.level, e.msg]),
      [
        [30, 'draining: no new calls, running calls get the grace period'],
        [30, 'closed'],
      ],
    );
    assert.is(logs.at(-2)!.signal, 'SIGTERM');
  } finally {
    await server.stop();
  }
});

test('a drain that cuts a running call short logs no error and no stack, only its reasons at debug', async () => {
  const server = await serveProcess(fx.protocol, fx.handlers, '--log-level', 'debug', '--grace', '100ms', '--metrics-port', '0');
  try {
    const call = avrpc('call', server.address, 'hang', '{}', '--timeout', '20s');
    // Running on the server: then drain.
    for (let i = 0; i < 1000; i++) {
      const text = await (await fetch(server.metricsUrl!)).text();
      if (/^avrpc_calls_in_flight\{side="server"\} 1$/m.test(text)) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.is(await server.stop(), 0);
    const r = await call;
    assert.is.not(r.status, 0, 'the call was cut short');
    const lines = entries(server.stderr());
    assert.ok(
      lines.some((l) => / DEBUG connection closed peer=127\.0\.0\.1:\d+ reason=/.test(l)),
      server.stderr(),
    );
    assert.not.match(server.stderr(), /UNAVAILABLE|ERROR|\n {4}/, 'no error, no stack');
    assert.match(lines.at(-1)!, /INFO {2}closed durationMs=\d+$/);
  } finally {
    await server.stop();
  }
});

test('--log-level warn: no info entries, failures still logged; stdout keeps its lines', async () => {
  const server = await serveProcess(fx.protocol, fx.handlers, '--log-level', 'warn');
  try {
    assert.is((await avrpc('call', server.address, 'crash', '{"s": "z"}')).status, 64 + 13);
    await server.logged(/ERROR handler failed/);
    assert.is(await server.stop(), 0);
    const levels = entries(server.stderr()).map((l) => TEXT_LINE.exec(l)![1]!.trim());
    assert.equal(levels, ['WARN', 'ERROR']);
    assert.match(server.stdout(), /^listening \S+\nclosed\n$/);
  } finally {
    await server.stop();
  }
});

test('--log-level error hides the missing-handler warning; an unknown level or format is a usage error', async () => {
  const server = await serveProcess(fx.protocol, fx.handlers, '--log-level', 'error');
  try {
    assert.is(await server.stop(), 0);
    assert.is(server.stderr(), '');
  } finally {
    await server.stop();
  }
  // A serve that cannot start: the usual exit status; with json, its failure as a JSON entry.
  const missing = await avrpc('serve', `${fx.protocol}.nope`, fx.handlers, '--log-format', 'json');
  const plain = await avrpc('serve', `${fx.protocol}.nope`, fx.handlers);
  assert.ok(plain.status !== null && plain.status >= 64, plain.stderr);
  assert.is(missing.status, plain.status);
  assert.match(plain.stderr, /^[A-Z_]+: .*nope/);
  const entry = JSON.parse(missing.stderr) as { level: number; msg: string; err: { code: string } };
  assert.is(entry.level, 50);
  assert.is(entry.msg, plain.stderr.trim());
  assert.match(entry.msg, new RegExp(`^${entry.err.code}: `));
  const level = await avrpc('serve', fx.protocol, fx.handlers, '--log-level', 'verbose');
  assert.is.not(level.status, 0);
  assert.match(level.stderr, /debug, info, warn, error/);
  const format = await avrpc('serve', fx.protocol, fx.handlers, '--log-format', 'xml');
  assert.is.not(format.status, 0);
  assert.match(format.stderr, /text, json/);
});

test.run();
