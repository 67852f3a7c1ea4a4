/**
 * SPEC.md section 3: a message whose request, response or error schemas do not resolve answers
 * FAILED_PRECONDITION, checked on both sides. A server refuses, before its handler runs, a call whose
 * response or declared errors the client could not read (a client written from SPEC.md alone need
 * not check); a client refuses, before sending, a call the server could not read or whose answer it
 * could not read.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, Protocol, RpcError, createClient, loadProtocol } from '../../src/index.js';
import { FrameDecoder } from '../../src/framing/frame-decoder.js';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';
import { Flag, FrameType } from '../../src/framing/frame.js';
import { welcomeType, writeHandshake } from '../../src/framing/handshake.js';
import { rawServer, rejection, startServer } from '../helpers/echo-fixture.js';
import { RawPeer, frameCode, frameMessage, requestBytes } from '../helpers/raw-peer.js';
import { repoPath } from '../helpers/repo.js';

const test = suite('codec: schema conformance (SPEC section 3)');
const ITEM = { id: 1, name: 'n', tags: [], score: 0, blob: Buffer.alloc(0) };

let echo: Protocol;
test.before(async () => {
  echo = await loadProtocol(repoPath('protocol/echo.avdl'));
});

type Json = { types: Array<{ name: string; fields: Array<{ name: string }> }>; messages: Record<string, Record<string, unknown>> };
function variant(change: (json: Json) => void): Protocol {
  const json = JSON.parse(echo.text) as Json;
  change(json);
  return new Protocol(JSON.stringify(json));
}

/** A server counting its handler runs. */
async function countingServer() {
  const ran: string[] = [];
  const started = await startServer({
    protocol: echo,
    handlers: {
      echo: (req: { item: unknown }) => {
        ran.push('echo');
        return req.item;
      },
      fail: (req: { reason: string }) => {
        ran.push('fail');
        throw new RpcError(Code.UNKNOWN, req.reason, { details: { reason: req.reason } });
      },
      notify: () => {
        ran.push('notify');
      },
    },
  });
  return { ...started, ran };
}

test('server: a client whose echo response is "string", or whose fail declares no errors, is refused FAILED_PRECONDITION before the handler runs', async () => {
  const s = await countingServer();
  const peer = variant((json) => {
    json.messages['echo']!['response'] = 'string';
    delete json.messages['fail']!['errors'];
  });
  const raw = await RawPeer.connect(s.port);
  try {
    assert.is((await raw.handshake(peer)).type, FrameType.WELCOME);
    raw.socket.write(requestBytes(peer, 1, 'echo', { item: ITEM }));
    const refusedEcho = await raw.frame();
    assert.is(refusedEcho.type, FrameType.ERROR);
    assert.is(frameCode(refusedEcho), Code.FAILED_PRECONDITION, frameMessage(refusedEcho));
    assert.is(
      frameMessage(refusedEcho),
      'message echo: incompatible schemas: the client cannot read the response: cannot read "avrpc.echo.Item" as "string"',
    );
    assert.ok((refusedEcho.flags & Flag.REFUSED) !== 0);
    raw.socket.write(requestBytes(peer, 2, 'fail', { reason: 'r' }));
    const refusedFail = await raw.frame();
    assert.is(frameCode(refusedFail), Code.FAILED_PRECONDITION, frameMessage(refusedFail));
    assert.match(frameMessage(refusedFail), /^message fail: incompatible schemas: the client cannot read the errors: /);
    // The messages both sides read alike still run.
    raw.socket.write(requestBytes(peer, 3, 'notify', { item: ITEM }));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(s.ran, ['notify'], 'no handler ran for a refused call');
  } finally {
    raw.destroy();
    await s.server.close({ graceMs: 100 });
  }
});

test('client: a client whose fail declares no errors fails the call FAILED_PRECONDITION before sending it', async () => {
  const s = await countingServer();
  const client = createClient({
    protocol: variant((json) => {
      delete json.messages['fail']!['errors'];
    }),
    endpoints: [s.endpoint],
  });
  try {
    const err = await rejection(client.call('fail', { reason: 'r' }));
    assert.is(err.code, Code.FAILED_PRECONDITION, err.message);
    assert.match(err.message, /^message fail: cannot read the server's errors: /);
    assert.is((await client.call<{ id: number }>('echo', { item: ITEM })).id, 1, 'other messages still work');
    assert.equal(s.ran, ['echo'], 'fail never reached the server');
  } finally {
    await client.close();
    await s.server.close({ graceMs: 100 });
  }
});

test('client: a call whose request the server could not read is refused before it is sent', async () => {
  // The server's Item has a field without default that the client's lacks.
  const serverProto = variant((json) => {
    json.types[0]!.fields.push({ name: 'owner', type: 'string' } as never);
  });
  let requests = 0;
  const welcome = new FrameEncoder();
  welcome.frame(
    FrameType.WELCOME,
    0,
    0,
    { status: 'OK', fingerprint: serverProto.fingerprint, protocol: serverProto.text, meta: {} },
    writeHandshake(welcomeType),
  );
  const welcomeBytes = Buffer.concat(welcome.take());
  const server = await rawServer((socket) => {
    const decoder = new FrameDecoder({ maxFrameBytes: 1 << 20, expectPreface: true }, (type) => {
      if (type === FrameType.HELLO) socket.write(welcomeBytes);
      if (type === FrameType.REQUEST) requests++;
    });
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  });
  const client = createClient({ protocol: echo, endpoints: [server.endpoint] });
  try {
    const err = await rejection(client.call('echo', { item: ITEM }, { timeoutMs: 5000 }));
    assert.is(err.code, Code.FAILED_PRECONDITION, err.message);
    assert.is(err.message, 'message echo: incompatible schemas: field item: no matching field for default-less avrpc.echo.Item.owner');
    assert.is(requests, 0, 'nothing was sent');
  } finally {
    await client.close();
    await server.close();
  }
});

test.run();
