/**
 * Issue 14, critical: a peer's protocol has a field the local schema lacks, so schema resolution skips
 * it, and the field's value claims 2^40 items (or bytes) in a request or response of a few bytes. On
 * avsc's own skip paths that froze the event loop for hours. Now: a server refuses the call
 * INVALID_ARGUMENT at once and serves on (the same connection included); a client fails the call
 * INTERNAL ("cannot decode response") and calls on. The attacked peer runs in a worker thread
 * (hostile-victim.ts), so a frozen one makes these tests fail by their hang guards instead of hanging.
 */
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, Protocol, createClient, loadProtocol } from '../../src/index.js';
import { readRequestHead } from '../../src/framing/bodies.js';
import { FrameDecoder } from '../../src/framing/frame-decoder.js';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';
import { Flag, FrameType } from '../../src/framing/frame.js';
import { welcomeType, writeHandshake } from '../../src/framing/handshake.js';
import { rawServer } from '../helpers/echo-fixture.js';
import { rawFrame } from '../helpers/raw-client.js';
import { RawPeer, frameCode, frameMessage, requestBytes } from '../helpers/raw-peer.js';
import { repoPath } from '../helpers/repo.js';
import { varint, type Schema } from '../helpers/avro-gen.js';

const test = suite('codec: hostile peer protocols');
/** Hang guard for anything the attacked peer must answer (it answers in milliseconds). */
const GUARD_MS = 10_000;

/** A field of each Avro kind, the bytes of a value of it that lies about its size, and a true value. */
interface Lie {
  name: string;
  type: Schema;
  lie: Buffer;
  valid: unknown;
  default: unknown;
}
const cat = (...b: Buffer[]) => Buffer.concat(b);
const LIES: Lie[] = [
  { name: 'array<long> claiming 2^40 items', type: { type: 'array', items: 'long' }, lie: varint(2 ** 40), valid: [1, 2], default: [] },
  {
    name: 'array<null> claiming 2^40 items',
    type: { type: 'array', items: 'null' },
    lie: varint(2 ** 40),
    valid: [null, null],
    default: [],
  },
  {
    name: 'map<string> claiming 2^40 entries',
    type: { type: 'map', values: 'string' },
    lie: varint(2 ** 40),
    valid: { k: 'v' },
    default: {},
  },
  {
    name: 'array block of -2^40 items in 2^40 bytes',
    type: { type: 'array', items: 'int' },
    lie: cat(varint(-(2 ** 40)), varint(2 ** 40)),
    valid: [3],
    default: [],
  },
  {
    name: 'array block of -1 items whose size, -2, points back at itself',
    type: { type: 'array', items: 'int' },
    lie: cat(varint(-1), varint(-2)),
    valid: [],
    default: [],
  },
  { name: 'string claiming 2^40 bytes', type: 'string', lie: varint(2 ** 40), valid: 'ok', default: '' },
  { name: 'bytes claiming 2^40 bytes', type: 'bytes', lie: varint(2 ** 40), valid: Buffer.from('ok'), default: '' },
  {
    name: 'record holding array<array<long>>, the inner one claiming 2^40 items',
    type: { type: 'record', name: 'Nest', fields: [{ name: 'inner', type: { type: 'array', items: { type: 'array', items: 'long' } } }] },
    lie: cat(varint(1), varint(2 ** 40)),
    valid: { inner: [[1], []] },
    default: { inner: [] },
  },
  {
    name: 'union of null and map<long>, the map claiming 2^40 entries',
    type: ['null', { type: 'map', values: 'long' }],
    lie: cat(varint(1), varint(2 ** 40)),
    valid: { a: 1 },
    default: null,
  },
];

/** A minimal echo Item: id 0, name "", tags [], score 0.0, blob "". */
const ITEM_BYTES = Buffer.alloc(12);
const ITEM = { id: 0, name: '', tags: [], score: 0, blob: Buffer.alloc(0) };

let echo: Protocol;
test.before(async () => {
  echo = await loadProtocol(repoPath('protocol/echo.avdl'));
});

/** The echo protocol with `change` applied to its JSON. */
function variant(
  change: (json: { types: Array<{ name: string; fields: object[] }>; messages: Record<string, { request: object[] }> }) => void,
): Protocol {
  const json = JSON.parse(echo.text);
  change(json);
  return new Protocol(JSON.stringify(json));
}

function startVictim(data: { role: 'server' } | { role: 'client'; endpoint: string }): {
  worker: Worker;
  ask: (msg: unknown) => Promise<Record<string, unknown>>;
} {
  const worker = new Worker(new URL('./hostile-victim.js', import.meta.url), { workerData: data });
  worker.on('error', (err) => {
    console.error('victim failed', err);
  });
  const ask = async (msg: unknown): Promise<Record<string, unknown>> => {
    const answer = once(worker, 'message');
    if (msg !== undefined) worker.postMessage(msg);
    let guard: NodeJS.Timeout | undefined;
    const frozen = new Promise<never>((_, reject) => {
      guard = setTimeout(() => reject(new Error('the attacked peer never answered: its event loop is frozen')), GUARD_MS);
    });
    try {
      return ((await Promise.race([answer, frozen])) as [Record<string, unknown>])[0];
    } finally {
      clearTimeout(guard);
    }
  };
  return { worker, ask };
}

test('server: a HELLO protocol with an extra request field of any kind, and a tiny request that lies in it: INVALID_ARGUMENT, and it serves on', async () => {
  const { worker, ask } = startVictim({ role: 'server' });
  try {
    const { port } = (await ask(undefined)) as { port: number };
    for (const lie of LIES) {
      const peer = variant((json) => {
        json.messages['echo']!.request.push({ name: 'x', type: lie.type });
      });
      const raw = await RawPeer.connect(port);
      try {
        const welcome = await raw.handshake(peer);
        assert.is(welcome.type, FrameType.WELCOME, lie.name);
        const request = rawFrame(FrameType.REQUEST, 0, 1, cat(Buffer.from([0, peer.message('echo')!.index]), ITEM_BYTES, lie.lie));
        raw.socket.write(request);
        const refused = await raw.frame(GUARD_MS);
        assert.is(refused.type, FrameType.ERROR, lie.name);
        assert.is(frameCode(refused), Code.INVALID_ARGUMENT, `${lie.name}: ${frameMessage(refused)}`);
        assert.ok((refused.flags & Flag.REFUSED) !== 0, 'refused before any handler ran');
        // The same connection serves a true value of the same field.
        raw.socket.write(requestBytes(peer, 2, 'echo', { item: ITEM, x: lie.valid }));
        const answered = await raw.frame(GUARD_MS);
        assert.is(answered.type, FrameType.RESPONSE, `${lie.name}: the connection still serves`);
        if (lie === LIES[0]) console.log(`\n  request frame of ${request.length} bytes claiming 2^40 items: ${frameMessage(refused)}`);
      } finally {
        raw.destroy();
      }
    }
    const client = createClient({ protocol: echo, endpoints: [`127.0.0.1:${port}`] });
    try {
      const got = await client.call<{ name: string }>('echo', { item: { ...ITEM, name: 'still here' } });
      assert.is(got.name, 'still here');
    } finally {
      await client.close();
    }
  } finally {
    await worker.terminate();
  }
});

test('server: a HELLO protocol whose extra field is an array of a record of 6000 null fields (within the peer-protocol shape limits): 100000 such items (100 KB) cost 100000 steps, not 6e8', async () => {
  // Honest bytes: every item is one int after its nulls. avsc skipped each null field of each item.
  const wide = {
    type: 'record',
    name: 'Wide',
    fields: [...Array.from({ length: 6000 }, (_, i) => ({ name: `n${i}`, type: 'null' })), { name: 'v', type: 'int' }],
  };
  const peer = variant((json) => {
    json.messages['echo']!.request.push({ name: 'x', type: { type: 'array', items: wide } });
  });
  const { worker, ask } = startVictim({ role: 'server' });
  try {
    const { port } = (await ask(undefined)) as { port: number };
    const raw = await RawPeer.connect(port);
    try {
      assert.is((await raw.handshake(peer)).type, FrameType.WELCOME);
      const items = 100_000;
      raw.socket.write(
        rawFrame(
          FrameType.REQUEST,
          0,
          1,
          cat(Buffer.from([0, peer.message('echo')!.index]), ITEM_BYTES, varint(items), Buffer.alloc(items, 2), Buffer.from([0])),
        ),
      );
      const answered = await raw.frame(GUARD_MS);
      assert.is(answered.type, FrameType.RESPONSE, 'answered while the peer still waits');
    } finally {
      raw.destroy();
    }
  } finally {
    await worker.terminate();
  }
});

/**
 * A server whose protocol's Item and EchoError have an extra field (with a default, so it can read the
 * client's requests): its first answer to `echo` on a connection lies in that field, later ones are
 * true; its answers to `fail` are declared errors that lie in it.
 */
async function hostileServer(lie: Lie) {
  const proto = variant((json) => {
    // A named type is defined once, then referred to by name.
    const named = typeof lie.type === 'object' && !Array.isArray(lie.type) && lie.type['type'] === 'record';
    json.types.forEach((t, i) =>
      t.fields.push({ name: 'x', type: i > 0 && named ? (lie.type as { name: string }).name : lie.type, default: lie.default }),
    );
  });
  const welcome = new FrameEncoder();
  welcome.frame(
    FrameType.WELCOME,
    0,
    0,
    { status: 'OK', fingerprint: proto.fingerprint, protocol: proto.text, meta: {} },
    writeHandshake(welcomeType),
  );
  const welcomeBytes = Buffer.concat(welcome.take());
  return rawServer((socket) => {
    let echoes = 0;
    const decoder = new FrameDecoder({ maxFrameBytes: 1 << 20, expectPreface: true }, (type, flags, id, body) => {
      if (type === FrameType.HELLO) return void socket.write(welcomeBytes);
      if (type !== FrameType.REQUEST) return;
      const name = echo.messages[readRequestHead(flags, body).index]!.name;
      if (name === 'echo') {
        const answer =
          echoes++ === 0 ? cat(ITEM_BYTES, lie.lie) : proto.message('echo')!.response.toBuffer({ ...ITEM, name: 'true', x: lie.valid });
        socket.write(rawFrame(FrameType.RESPONSE, 0, id, answer));
      } else {
        // UNKNOWN, message "no", declared error: union branch 1 (EchoError), reason "", then x.
        socket.write(
          rawFrame(
            FrameType.ERROR,
            Flag.DECLARED,
            id,
            cat(Buffer.from([Code.UNKNOWN, 4]), Buffer.from('no'), varint(1), varint(0), lie.lie),
          ),
        );
      }
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch {
        socket.destroy();
      }
    });
  });
}

test('client: a WELCOME protocol with an extra response field of any kind, and a tiny response that lies in it: the call fails INTERNAL, and it calls on', async () => {
  for (const lie of LIES) {
    const server = await hostileServer(lie);
    const { worker, ask } = startVictim({ role: 'client', endpoint: server.endpoint });
    try {
      await ask(undefined);
      const lied = await ask({ call: 'echo' });
      assert.is(lied.code, Code.INTERNAL, `${lie.name}: ${String(lied.message)}`);
      assert.match(String(lied.message), /^cannot decode response of echo: (malformed Avro|truncated payload)/);
      assert.equal(await ask({ call: 'echo' }), { code: Code.OK, message: '' }, `${lie.name}: a true answer after it`);
      const declared = await ask({ call: 'fail' });
      assert.is(declared.code, Code.INTERNAL, `${lie.name}: ${String(declared.message)}`);
      assert.match(String(declared.message), /^cannot decode error frame: (malformed Avro|truncated payload)/);
      assert.equal(await ask({ call: 'echo' }), { code: Code.OK, message: '' });
    } finally {
      await worker.terminate();
      await server.close();
    }
  }
});

test.run();
