import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProtocol } from '../../src/index.js';
import { PeerCodec } from '../../src/codec/peer-codec.js';

/**
 * SPEC.md section 3, "Resolution is schema-wide": the reader's union may be wider than the writer's,
 * never the writer's; the client writes requests and the server responses, and a branch nobody sends
 * still counts. Checked on the codec both sides build, without sockets.
 */
const test = suite('spec: which side may widen a union');

/** A protocol with one message `m(request param) -> response`. */
function proto(param: unknown, response: unknown): ReturnType<typeof parseProtocol> {
  return parseProtocol(
    JSON.stringify({
      protocol: 'P',
      namespace: 'u',
      types: [],
      messages: { m: { request: [{ name: 'x', type: param }], response } },
    }),
  );
}

/** What the server says of the client's `m`, and what the client says of the server's. */
function verdicts(client: ReturnType<typeof proto>, server: ReturnType<typeof proto>): { server?: string; client?: string } {
  const onServer = new PeerCodec(server, client).requests[0]!.incompatible;
  const onClient = new PeerCodec(client, server).responses[0]!.incompatible;
  return { ...(onServer === undefined ? {} : { server: onServer }), ...(onClient === undefined ? {} : { client: onClient }) };
}

const narrow = ['null', 'string'];
const wide = ['null', 'string', 'int'];

test('request: the server (reader) may have the wider union; a client with the wider one is refused', () => {
  assert.equal(verdicts(proto(narrow, 'null'), proto(wide, 'null')), {});
  const refused = verdicts(proto(wide, 'null'), proto(narrow, 'null'));
  assert.type(refused.server, 'string');
  assert.type(refused.client, 'string', 'the client refuses it locally too, before sending');
});

test('response: the client (reader) may have the wider union; a server with the wider one is refused', () => {
  assert.equal(verdicts(proto('string', wide), proto('string', narrow)), {});
  const refused = verdicts(proto('string', narrow), proto('string', wide));
  assert.type(refused.server, 'string', 'the server refuses the call before its handler runs');
  assert.type(refused.client, 'string', 'the client refuses it locally, before sending');
});

test('branch order does not matter, promotions count, and a writer union into a non-union reader needs every branch readable', () => {
  assert.equal(verdicts(proto(['string', 'null'], 'null'), proto(['null', 'string'], 'null')), {});
  assert.equal(verdicts(proto(['null', 'int'], 'null'), proto(['null', 'long'], 'null')), {});
  assert.type(verdicts(proto(['null', 'string'], 'null'), proto('string', 'null')).server, 'string');
  assert.equal(verdicts(proto('string', 'null'), proto(['null', 'string'], 'null')), {});
});

test.run();
