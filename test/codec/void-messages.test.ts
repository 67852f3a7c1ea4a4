/**
 * `void` messages as Avro IDL defines them: `void m();` is a two-way message with a null response (the
 * caller learns that the handler ran, and of its failure); only `oneway` makes a one-way message.
 * avsc's IDL reader makes every `void` message without `throws` one-way unless told otherwise, which
 * silently dropped handler failures. A handler of a two-way `void` message may return nothing.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createClient, createServer, parseProtocol } from '../../src/index.js';
import { protocolToIdl } from '../../src/cli/idl-printer.js';
import { rejection } from '../helpers/echo-fixture.js';

const test = suite('void messages');

const IDL = `protocol Switch {
  error Busy { string why; }
  void reset();
  void fire() oneway;
  void guarded() throws Busy;
  void broken();
}`;

test('void without oneway is two-way; oneway is one-way; the text says so', () => {
  const p = parseProtocol(IDL);
  assert.equal(
    p.messages.map((m) => [m.name, m.oneWay]),
    [
      ['reset', false],
      ['fire', true],
      ['guarded', false],
      ['broken', false],
    ],
  );
  const json = JSON.parse(p.text) as { messages: Record<string, Record<string, unknown>> };
  assert.is(json.messages['reset']!['one-way'], undefined);
  assert.is(json.messages['fire']!['one-way'], true);
  assert.equal(
    parseProtocol(protocolToIdl(p.text)).messages.map((m) => m.oneWay),
    p.messages.map((m) => m.oneWay),
    'the IDL printer round-trips',
  );
});

test('a two-way void call resolves null after its handler ran (returning nothing); failures reach the caller', async () => {
  const ran: string[] = [];
  const server = createServer({
    protocol: parseProtocol(IDL),
    handlers: {
      reset: () => {
        ran.push('reset');
      },
      fire: () => {
        ran.push('fire');
      },
      guarded: async () => {
        ran.push('guarded');
        throw { why: 'in use' };
      },
      broken: () => {
        ran.push('broken');
        throw new Error('fuse blown');
      },
    },
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient({ protocol: parseProtocol(IDL), endpoints: [`127.0.0.1:${port}`] });
  try {
    assert.is(await client.call('reset', {}), null);
    assert.equal(ran, ['reset'], 'resolved once the handler had run');
    const busy = await rejection(client.call('guarded', {}));
    assert.is(busy.code, Code.UNKNOWN);
    assert.equal({ ...(busy.details as object) }, { why: 'in use' });
    const broken = await rejection(client.call('broken', {}));
    assert.is(broken.code, Code.INTERNAL);
    assert.is(broken.message, 'fuse blown');
    assert.is(await client.call('fire', {}), undefined, 'one-way: resolves once written');
    assert.is(await client.call('reset', {}), null);
    assert.equal(ran, ['reset', 'guarded', 'broken', 'fire', 'reset']);
  } finally {
    await client.close();
    await server.close({ graceMs: 1000 });
  }
});

test.run();
