/**
 * An ERROR carries a failure code of the set: a server (ours or another) that sends OK or a number
 * outside the set is read as UNKNOWN, as gRPC reads unknown statuses; a handler that throws an
 * RpcError with such a code sends UNKNOWN. The message always arrives.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, createClient, createServer, loadProtocol, type Protocol } from '../../src/index.js';
import { errorCode } from '../../src/errors/code.js';
import { FrameType } from '../../src/framing/frame.js';
import { item, rejection } from '../helpers/echo-fixture.js';
import { fakeServer } from '../helpers/fake-server.js';
import { repoPath } from '../helpers/repo.js';

const test = suite('error codes on the wire');
let protocol: Protocol;

test.before(async () => {
  protocol = await loadProtocol(repoPath('protocol/echo.avdl'));
});

/** An ERROR frame: `u8 code, string message` (SPEC.md, "Frame bodies"). */
function errorFrame(id: number, code: number, message: string): Buffer {
  const text = Buffer.from(message);
  const body = Buffer.concat([Buffer.from([code, text.length * 2]), text]); // zig-zag length < 64
  const head = Buffer.alloc(10);
  head.writeUInt32BE(body.length, 0);
  head[4] = FrameType.ERROR;
  head.writeUInt32BE(id, 6);
  return Buffer.concat([head, body]);
}

test('errorCode: failure codes pass, OK and unknown numbers become UNKNOWN', () => {
  for (let c = 1; c <= 16; c++) assert.is(errorCode(c), c);
  for (const c of [0, 17, 99, 255, -1, 1.5]) assert.is(errorCode(c), Code.UNKNOWN, String(c));
});

test('an ERROR frame with code 0 or a number outside the set rejects UNKNOWN with its message', async () => {
  const codes = [0, 17, 200, Code.NOT_FOUND];
  let next = 0;
  const fake = await fakeServer({
    onFrame: (socket, type, _flags, id) => {
      if (type === FrameType.REQUEST) socket.write(errorFrame(id, codes[next]!, `sent code ${codes[next++]}`));
    },
  });
  const client = createClient({ protocol, endpoints: [fake.endpoint], waitForReadyMs: 5000 });
  try {
    const got: [number, string][] = [];
    for (let i = 0; i < codes.length; i++) {
      const err = await rejection(client.call('echo', { item: item(i) }));
      got.push([err.code, err.message]);
      assert.is(err.isRemote, true);
    }
    assert.equal(got, [
      [Code.UNKNOWN, 'sent code 0'],
      [Code.UNKNOWN, 'sent code 17'],
      [Code.UNKNOWN, 'sent code 200'],
      [Code.NOT_FOUND, 'sent code 5'],
    ]);
  } finally {
    await client.close();
    await fake.close();
  }
});

test('a handler throwing an RpcError with OK or an unknown code sends UNKNOWN', async () => {
  let code: number = Code.OK;
  const server = createServer({
    protocol,
    handlers: {
      echo: () => {
        throw new RpcError(code as Code, `thrown with ${code}`);
      },
    },
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`] });
  try {
    for (const c of [Code.OK, 99, Code.ABORTED]) {
      code = c;
      const err = await rejection(client.call('echo', { item: item(1) }));
      assert.is(err.code, c === Code.ABORTED ? Code.ABORTED : Code.UNKNOWN, `${c}: ${err.codeName}`);
      assert.is(err.message, `thrown with ${c}`);
    }
  } finally {
    await client.close();
    await server.close({ graceMs: 1000 });
  }
});

test.run();
