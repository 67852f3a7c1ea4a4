import avro from 'avsc';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, loadProtocol, parseProtocol, type Protocol } from '../../src/index.js';
import { exitStatusFor } from '../../src/cli/options.js';
import { protocolToIdl } from '../../src/cli/idl-printer.js';
import { repoPath } from '../helpers/repo.js';
import { KITCHEN, KITCHEN_HANDLERS, avrpc, serve } from '../helpers/cli.js';

/** `avrpc describe` against a real server, and the IDL printer on its own. */
const test = suite('avrpc describe');

/** Same messages with strictly equal request, response and error types (attributes included). */
function assertEquivalent(actual: Protocol, expected: Protocol): void {
  const same = (a: avro.Type, b: avro.Type): boolean =>
    (a.equals as (t: avro.Type, o: { strict: boolean }) => boolean)(b, { strict: true });
  assert.is(actual.name, expected.name);
  assert.equal(
    actual.messages.map((m) => m.name),
    expected.messages.map((m) => m.name),
  );
  for (const want of expected.messages) {
    const got = actual.message(want.name)!;
    assert.ok(same(got.request, want.request), `${want.name} request`);
    assert.ok(same(got.response, want.response), `${want.name} response`);
    assert.ok(same(got.errors, want.errors), `${want.name} errors`);
    assert.is(got.oneWay, want.oneWay, `${want.name} oneway`);
    assert.is(got.idempotent, want.idempotent, `${want.name} idempotent`);
  }
}

test('prints IDL that avsc parses back to the served protocol; --json prints its JSON', async () => {
  const server = await serve(KITCHEN, KITCHEN_HANDLERS);
  try {
    const served = await loadProtocol(KITCHEN);
    const idl = await avrpc('describe', server.address);
    assert.is(idl.status, 0, idl.stderr);
    assert.match(idl.stdout, /^@namespace\("avrpc.cli"\)\nprotocol Kitchen \{/m);
    assert.match(idl.stdout, /string fail\(string reason, long code\) throws Nope;/);
    assert.match(idl.stdout, /void ping\(\) oneway;/);
    assert.ok(idl.stdout.endsWith('  void ping() oneway;\n}\n'), 'no blank line before the closing brace');
    assert.match(idl.stdout, /\} = RED;\n\n {2}fixed Hash\(4\);\n\n/, 'one blank line between declarations');
    assert.not.match(idl.stdout, /\n\n\n/);
    assertEquivalent(parseProtocol(idl.stdout), served);
    const json = await avrpc('describe', server.address, '--json');
    assert.is(json.status, 0, json.stderr);
    assert.equal(JSON.parse(json.stdout), JSON.parse(served.text));
  } finally {
    await server.stop();
  }
});

test('describe of an address where nobody listens: UNAVAILABLE', async () => {
  const gone = await serve(KITCHEN, KITCHEN_HANDLERS);
  const address = gone.address;
  await gone.stop();
  const r = await avrpc('describe', address, '--timeout', '2000');
  assert.is(r.status, exitStatusFor(Code.UNAVAILABLE));
  assert.match(r.stderr, /^UNAVAILABLE: /);
});

test('IDL printer: the reference protocol round-trips to the identical JSON text', async () => {
  const echo = await loadProtocol(repoPath('protocol/echo.avdl'));
  assert.is(JSON.stringify(avro.readProtocol(protocolToIdl(echo.text))), echo.text);
});

test('IDL printer: inline named types, other namespaces, keywords, annotations, defaults, docs', () => {
  const json = {
    protocol: 'Odd',
    namespace: 'a.b',
    doc: 'has */ inside',
    messages: {
      error: {
        doc: 'named like a keyword',
        request: [
          {
            name: 'in',
            type: {
              type: 'record',
              name: 'x.y.In',
              fields: [
                { name: 'e', type: { type: 'enum', name: 'E', symbols: ['P', 'Q'] }, default: 'Q', doc: 'an enum' },
                { name: 'f', type: { type: 'fixed', namespace: 'z', name: 'F', size: 2 }, aliases: ['g'] },
                { name: 'l', type: { type: 'long', logicalType: 'timestamp-micros' } },
                { name: 'u', type: ['null', { type: 'array', items: { type: 'map', values: 'E' } }], default: null },
              ],
            },
          },
          { name: 'again', type: 'x.y.In' },
        ],
        response: { type: 'record', name: 'Out', fields: [{ name: 'record', type: 'string', order: 'descending' }] },
        errors: [{ type: 'error', name: 'Bad', fields: [] }],
      },
      fire: { request: [{ name: 'n', type: 'int' }], response: 'null', 'one-way': true },
    },
  };
  const original = parseProtocol(JSON.stringify(json));
  const idl = protocolToIdl(json);
  assertEquivalent(parseProtocol(idl), original);
  assert.ok(idl.indexOf('enum E') < idl.indexOf('record In'), 'a type is declared before the record using it');
});

test.run();
