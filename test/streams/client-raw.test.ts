/**
 * The client side of streams (SPEC.md section 13) against a raw server that answers frame by frame:
 * what the client writes (REQUEST heads, DATA under the server's credit, END, CREDIT as its consumer
 * takes, CANCEL on break), and how it takes HEADERS, DATA, END, RESPONSE/ERROR trailers, and frames
 * that break the protocol.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient, type Client } from '../../src/client/client.js';
import type { Protocol } from '../../src/codec/protocol.js';
import { Code } from '../../src/errors/code.js';
import { RpcError } from '../../src/errors/rpc-error.js';
import { readCredit, readGoaway, readRequestHead, type Metadata } from '../../src/framing/bodies.js';
import { FrameType } from '../../src/framing/frame.js';
import { rejection, until } from '../helpers/echo-fixture.js';
import {
  loadStream,
  streamItem,
  streamPeer,
  type PeerConn,
  type SentFrame,
  type StreamPeer,
  type StreamPeerOptions,
} from '../client/stream-peer.js';
import { collect } from '../helpers/stream-raw.js';

const test = suite('client streams (raw server)');
const clients: Client[] = [];
const peers: StreamPeer[] = [];
let protocol: Protocol;

test.before(async () => {
  protocol = await loadStream();
});

test.after.each(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(peers.splice(0).map((p) => p.close()));
});

async function setup(
  options: StreamPeerOptions = {},
  clientOptions: Partial<Parameters<typeof createClient>[0]> = {},
): Promise<{ peer: StreamPeer; c: Client }> {
  const peer = await streamPeer(protocol, options);
  peers.push(peer);
  const c = createClient({ protocol, endpoints: [peer.endpoint], ...clientOptions });
  clients.push(c);
  return { peer, c };
}

/** Calls `on(conn, f)` for each REQUEST the client sends. */
const onRequest =
  (on: (conn: PeerConn, f: SentFrame) => void) =>
  (conn: PeerConn, f: SentFrame): void => {
    if (f.type === FrameType.REQUEST) on(conn, f);
  };

test('server stream: REQUEST carries the request; HEADERS, DATA, END with trailers reach the caller', async () => {
  const { peer, c } = await setup({
    onFrame: onRequest((conn, f) => {
      assert.is(conn.messageOf(f), 'watch');
      conn.headers(f.id, { h: '1' });
      for (let i = 0; i < 3; i++) conn.data(f.id, 'watch', streamItem(i));
      conn.end(f.id, { t: 'done' });
    }),
  });
  const seen: string[] = [];
  const s = c.serverStream(
    'watch',
    { from: 0, count: 3, failAfter: -1 },
    {
      onHeader: (h) => seen.push(`h:${JSON.stringify(h)}`),
      onTrailer: (t) => seen.push(`t:${JSON.stringify(t)}`),
    },
  );
  const { items, error } = await collect(s);
  assert.is(error, undefined);
  assert.equal(
    items.map((x: { id: number }) => x.id),
    [0, 1, 2],
  );
  assert.equal(await s.headers, { h: '1' });
  assert.equal(await s.trailers, { t: 'done' });
  assert.equal(seen, ['h:{"h":"1"}', 't:{"t":"done"}']);
  const req = peer.conns[0]!.of(FrameType.REQUEST)[0]!;
  const head = readRequestHead(req.flags, req.body);
  const decoded = protocol.message('watch')!.request.decode(req.body, head.offset);
  assert.equal({ ...decoded.value }, { from: 0, count: 3, failAfter: -1 });
  assert.is(decoded.offset, req.body.length);
});

test('headers resolve {} at the first element when none came; iterating twice throws', async () => {
  const { c } = await setup({
    onFrame: onRequest((conn, f) => {
      conn.data(f.id, 'watch', streamItem(7));
      conn.end(f.id);
    }),
  });
  const s = c.serverStream('watch', { from: 0, count: 1, failAfter: -1 });
  const it = s[Symbol.asyncIterator]();
  assert.throws(
    () => s[Symbol.asyncIterator](),
    (e: unknown) => e instanceof RpcError && e.code === Code.FAILED_PRECONDITION,
  );
  const first = await it.next();
  assert.is((first.value as { id: number }).id, 7);
  assert.equal(await s.headers, {});
  assert.is((await it.next()).done, true);
  assert.equal(await s.trailers, {});
});

test('client stream: REQUEST head only, DATA only within the server credit, then END; RESPONSE trailers', async () => {
  let pulled = 0;
  function* requests(): Generator<object> {
    for (let i = 0; i < 10; i++) {
      pulled++;
      yield { item: streamItem(i) };
    }
  }
  const { peer, c } = await setup({ window: 4 });
  const trailers: Metadata[] = [];
  const done = c.clientStream<{ count: number }>('upload', requests(), { onTrailer: (t) => trailers.push(t) });
  await until(() => peer.conns[0]?.of(FrameType.DATA).length === 4, '4 DATA');
  const conn = peer.conns[0]!;
  const req = conn.of(FrameType.REQUEST)[0]!;
  // Nothing follows the head of a client stream's REQUEST.
  assert.is(readRequestHead(req.flags, req.body).offset, req.body.length);
  // The pump pulls synchronously while credit lasts: a fifth pull would have happened by now.
  assert.is(pulled, 4);
  conn.credit(req.id, 2);
  await until(() => conn.of(FrameType.DATA).length === 6, '6 DATA');
  assert.is(pulled, 6);
  conn.credit(req.id, 100);
  await until(() => conn.of(FrameType.END).length === 1, 'END');
  assert.is(conn.of(FrameType.DATA).length, 10);
  const end = conn.of(FrameType.END)[0]!;
  assert.is(end.body.length, 0);
  assert.is(end.flags, 0);
  const data = conn
    .of(FrameType.DATA)
    .map((f) => (protocol.message('upload')!.request.fromBuffer(f.body) as { item: { id: number } }).item.id);
  assert.equal(data, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  conn.response(req.id, 'upload', { count: 10, bytes: 10 }, { n: '10' });
  assert.equal({ ...(await done) }, { count: 10, bytes: 10 });
  assert.equal(trailers, [{ n: '10' }]);
});

test('client stream answered before its END: the rest is not pulled, the iterable is closed, nothing more is sent', async () => {
  let closed = false;
  let pulled = 0;
  async function* requests(): AsyncGenerator<object> {
    try {
      for (let i = 0; ; i++) {
        pulled++;
        yield { item: streamItem(i) };
      }
    } finally {
      closed = true;
    }
  }
  const { peer, c } = await setup({
    window: 2,
    onFrame: (conn, f) => {
      if (f.type === FrameType.DATA && conn.of(FrameType.DATA).length === 2) conn.response(f.id, 'upload', { count: 2, bytes: 2 });
    },
  });
  assert.equal({ ...(await c.clientStream('upload', requests())) }, { count: 2, bytes: 2 });
  await until(() => closed, 'requests closed');
  assert.is(pulled, 2);
  // A unary call after it: its frames come after anything the stream could still have sent.
  void c.call('echo', { item: streamItem(1) }, { timeoutMs: 50 }).catch(() => undefined);
  const conn = peer.conns[0]!;
  await until(() => conn.of(FrameType.REQUEST).length === 2, 'the echo request');
  assert.is(conn.of(FrameType.DATA).length, 2);
  assert.is(conn.of(FrameType.END).length, 0);
  assert.is(conn.of(FrameType.CANCEL).length, 0);
});

test('credit goes back as the consumer takes elements, not as they arrive', async () => {
  const { peer, c } = await setup(
    {
      onFrame: onRequest((conn, f) => {
        if (conn.messageOf(f) === 'watch') for (let i = 0; i < 4; i++) conn.data(f.id, 'watch', streamItem(i));
      }),
    },
    { maxBufferedElements: 4 },
  );
  const s = c.serverStream('watch', { from: 0, count: 100, failAfter: -1 });
  const it = s[Symbol.asyncIterator]();
  await it.next();
  const conn = (): PeerConn => peer.conns[0]!;
  // One taken of S = 4: no CREDIT yet (batches of S/2).
  await c.call('echo', { item: streamItem(0) }, { timeoutMs: 200 }).catch(() => undefined);
  assert.is(conn().of(FrameType.CREDIT).length, 0);
  await it.next();
  await until(() => conn().of(FrameType.CREDIT).length === 1, 'CREDIT');
  assert.is(readCredit(conn().of(FrameType.CREDIT)[0]!.body), 2);
  await it.return!();
});

test('DATA beyond our window is a protocol error RESOURCE_EXHAUSTED', async () => {
  const { peer, c } = await setup(
    {
      onFrame: onRequest((conn, f) => {
        for (let i = 0; i < 3; i++) conn.data(f.id, 'watch', streamItem(i));
      }),
    },
    { maxBufferedElements: 2 },
  );
  const s = c.serverStream('watch', { from: 0, count: 3, failAfter: -1 });
  await until(() => peer.conns[0]?.of(FrameType.GOAWAY).length === 1, 'GOAWAY');
  assert.is(readGoaway(peer.conns[0]!.of(FrameType.GOAWAY)[0]!.body).code, Code.RESOURCE_EXHAUSTED);
  const { items, error } = await collect(s);
  assert.is(items.length, 2);
  assert.is(error?.code, Code.RESOURCE_EXHAUSTED);
});

test('breaking out of for await cancels the stream on the server; frames that crossed the CANCEL are dropped', async () => {
  const { peer, c } = await setup({
    onFrame: (conn, f) => {
      if (f.type === FrameType.REQUEST && conn.messageOf(f) === 'watch')
        for (let i = 0; i < 4; i++) conn.data(f.id, 'watch', streamItem(i));
      // Sent before the PONG of the client's barrier PING, as if they had crossed the CANCEL.
      if (f.type === FrameType.CANCEL) {
        conn.headers(f.id, {});
        conn.data(f.id, 'watch', streamItem(9));
        conn.end(f.id);
      }
    },
  });
  const s = c.serverStream('watch', { from: 0, count: 100, failAfter: -1 });
  let n = 0;
  for await (const _ of s) if (++n === 2) break;
  const conn = peer.conns[0]!;
  const id = conn.of(FrameType.REQUEST)[0]!.id;
  await until(() => conn.of(FrameType.CANCEL, id).length === 1, 'CANCEL');
  assert.equal(await s.trailers, {});
  assert.is((await c.call('echo', { item: streamItem(3) }, { timeoutMs: 200 }).catch((e: RpcError) => e)).code, Code.DEADLINE_EXCEEDED);
  assert.is(conn.of(FrameType.GOAWAY).length, 0);
});

test('an error after N elements: N elements, then the RpcError with details; trailers are its metadata', async () => {
  const { c } = await setup({
    onFrame: onRequest((conn, f) => {
      conn.data(f.id, 'watch', streamItem(0));
      conn.data(f.id, 'watch', streamItem(1));
      conn.error(f.id, 'watch', Code.ABORTED, 'stopped', { why: 'test' }, { reason: 'enough', after: 2 });
    }),
  });
  const trailers: Metadata[] = [];
  const s = c.serverStream('watch', { from: 0, count: 5, failAfter: 2 }, { onTrailer: (t) => trailers.push(t) });
  const { items, error } = await collect(s);
  assert.is(items.length, 2);
  assert.is(error?.code, Code.ABORTED);
  const details = error?.details as { reason: string; after: number };
  assert.equal([details.reason, details.after], ['enough', 2]);
  assert.equal(await s.trailers, { why: 'test' });
  assert.equal(trailers, [{ why: 'test' }]);
});

test('bidi: DATA both ways, independent; the server ending first closes the requests', async () => {
  let closed = false;
  async function* requests(): AsyncGenerator<object> {
    try {
      for (let i = 0; ; i++) yield { item: streamItem(i) };
    } finally {
      closed = true;
    }
  }
  const { c } = await setup({
    window: 8,
    onFrame: (conn, f) => {
      if (f.type !== FrameType.DATA) return;
      const { item } = protocol.message('chat')!.request.fromBuffer(f.body) as { item: { id: number } };
      conn.data(f.id, 'chat', item);
      if (item.id === 2) conn.end(f.id, { last: '2' });
    },
  });
  const s = c.bidiStream('chat', requests());
  const { items, error } = await collect(s);
  assert.is(error, undefined);
  assert.equal(
    items.map((x: { id: number }) => x.id),
    [0, 1, 2],
  );
  assert.equal(await s.trailers, { last: '2' });
  await until(() => closed, 'requests closed');
});

test('streams not negotiated: UNIMPLEMENTED, nothing sent', async () => {
  const { peer, c } = await setup({ window: 0 });
  const { error } = await collect(c.serverStream('watch', { from: 0, count: 1, failAfter: -1 }));
  assert.is(error?.code, Code.UNIMPLEMENTED);
  assert.match(error!.message, 'server does not support streams');
  assert.is(error?.mayHaveRun, false);
  assert.is(peer.conns[0]!.of(FrameType.REQUEST).length, 0);
  assert.is((await rejection(c.clientStream('upload', []))).code, Code.UNIMPLEMENTED);
});

test('a message through the wrong method fails INVALID_ARGUMENT locally', async () => {
  const { peer, c } = await setup();
  const e1 = await rejection(c.call('watch', { from: 0, count: 1, failAfter: -1 }));
  assert.is(e1.code, Code.INVALID_ARGUMENT);
  assert.match(e1.message, 'message watch is a server stream: use client.serverStream');
  const e2 = (await collect(c.serverStream('chat', {}))).error;
  assert.is(e2?.code, Code.INVALID_ARGUMENT);
  assert.match(e2!.message, 'use client.bidiStream');
  assert.is((await rejection(c.clientStream('echo', []))).code, Code.INVALID_ARGUMENT);
  assert.is((await collect(c.bidiStream('upload', []))).error?.code, Code.INVALID_ARGUMENT);
  assert.is((await rejection(c.callRaw('upload', new Uint8Array(0)))).code, Code.INVALID_ARGUMENT);
  assert.is((await collect(c.bidiStream('chat', 42 as unknown as object[]))).error?.code, Code.INVALID_ARGUMENT);
  assert.is(peer.conns.length, 0);
});

test('unary calls: HEADERS before the RESPONSE, trailers in its METADATA map, or in the ERROR metadata', async () => {
  const { c } = await setup({
    onFrame: onRequest((conn, f) => {
      const { item } = protocol.message('echo')!.request.decode(f.body, readRequestHead(f.flags, f.body).offset).value as {
        item: { id: number };
      };
      if (item.id === 1) {
        conn.headers(f.id, { a: 'h' });
        conn.response(f.id, 'echo', item, { b: 't' });
      } else {
        conn.error(f.id, 'echo', Code.NOT_FOUND, 'nope', { c: 'e' });
      }
    }),
  });
  const seen: string[] = [];
  const hooks = {
    onHeader: (h: Metadata) => seen.push(`h:${JSON.stringify(h)}`),
    onTrailer: (t: Metadata) => seen.push(`t:${JSON.stringify(t)}`),
  };
  const r = await c.call<{ id: number }>('echo', { item: streamItem(1) }, hooks);
  assert.is(r.id, 1);
  assert.equal(seen.splice(0), ['h:{"a":"h"}', 't:{"b":"t"}']);
  assert.is((await rejection(c.call('echo', { item: streamItem(2) }, hooks))).code, Code.NOT_FOUND);
  assert.equal(seen, ['h:{}', 't:{"c":"e"}']);
  // Without hooks a RESPONSE with trailers still decodes.
  assert.is((await c.call<{ id: number }>('echo', { item: streamItem(1) })).id, 1);
});

test('onHeader/onTrailer are checked like the other call options', async () => {
  const { c } = await setup();
  const e = await rejection(c.call('echo', { item: streamItem(1) }, { onHeader: 'x' as unknown as () => void }));
  assert.is(e.code, Code.INVALID_ARGUMENT);
  assert.match(e.message, 'options.onHeader must be a function');
  const u = await rejection(c.call('echo', { item: streamItem(1) }, { onTrailers: () => {} } as object));
  assert.is(u.code, Code.INVALID_ARGUMENT);
  assert.match(u.message, 'onTrailer');
});

test('deadline covers the whole stream: DEADLINE_EXCEEDED after the elements received, CANCEL sent', async () => {
  const { peer, c } = await setup({ onFrame: onRequest((conn, f) => conn.data(f.id, 'watch', streamItem(0))) });
  const { items, error } = await collect(c.serverStream('watch', { from: 0, count: 10, failAfter: -1 }, { timeoutMs: 100 }));
  assert.is(items.length, 1);
  assert.is(error?.code, Code.DEADLINE_EXCEEDED);
  await until(() => peer.conns[0]!.of(FrameType.CANCEL).length === 1, 'CANCEL');
});

test('signal aborts a client stream: CANCELLED, the requests are closed', async () => {
  let closed = false;
  async function* requests(): AsyncGenerator<object> {
    try {
      for (let i = 0; ; i++) yield { item: streamItem(i) };
    } finally {
      closed = true;
    }
  }
  const { peer, c } = await setup({ window: 1 });
  const ac = new AbortController();
  const done = c.clientStream('upload', requests(), { signal: ac.signal });
  await until(() => peer.conns[0]?.of(FrameType.DATA).length === 1, 'DATA');
  ac.abort();
  assert.is((await rejection(done)).code, Code.CANCELLED);
  await until(() => closed && peer.conns[0]!.of(FrameType.CANCEL).length === 1, 'closed and CANCEL');
});

test('connection loss fails every open stream UNAVAILABLE', async () => {
  const { peer, c } = await setup({ onFrame: onRequest((conn, f) => conn.data(f.id, 'watch', streamItem(0))) });
  const a = c.serverStream('watch', { from: 0, count: 10, failAfter: -1 });
  const b = c.bidiStream('chat', [{ item: streamItem(1) }]);
  const ai = a[Symbol.asyncIterator]();
  await ai.next();
  await until(() => peer.conns[0]!.of(FrameType.END).length === 1, 'bidi half-close');
  peer.conns[0]!.socket.destroy();
  const lost = await ai.next().then(
    () => undefined,
    (e: RpcError) => e,
  );
  assert.is(lost?.code, Code.UNAVAILABLE);
  const rb = await collect(b);
  assert.is(rb.items.length, 1);
  assert.is(rb.error?.code, Code.UNAVAILABLE);
});

test('a stream that delivered anything is never replayed; one that delivered nothing is', async () => {
  let requests = 0;
  const { c } = await setup({
    onFrame: onRequest((conn, f) => {
      requests++;
      const count = (protocol.message('watch')!.request.decode(f.body, readRequestHead(f.flags, f.body).offset).value as { count: number })
        .count;
      if (count === 1 && requests === 1) return conn.error(f.id, 'watch', Code.UNAVAILABLE, 'refused', undefined, undefined, true);
      if (count === 1) {
        conn.data(f.id, 'watch', streamItem(5));
        return conn.end(f.id);
      }
      conn.data(f.id, 'watch', streamItem(0));
      conn.error(f.id, 'watch', Code.UNAVAILABLE, 'refused', undefined, undefined, true);
    }),
  });
  // Refused before anything came: sent again, and it works.
  const ok = await collect(c.serverStream('watch', { from: 0, count: 1, failAfter: -1 }));
  assert.is(ok.error, undefined);
  assert.is(ok.items.length, 1);
  assert.is(requests, 2);
  // One element delivered, then refused: not replayed.
  const r = await collect(c.serverStream('watch', { from: 0, count: 2, failAfter: -1 }));
  assert.is(r.items.length, 1);
  assert.is(r.error?.code, Code.UNAVAILABLE);
  assert.is(requests, 3);
});

test('frames that break the protocol: DATA for a unary call, DATA for an id never sent', async () => {
  const { peer, c } = await setup({
    onFrame: onRequest((conn, f) => {
      if (conn.messageOf(f) === 'echo') conn.data(f.id, 'watch', streamItem(0));
    }),
  });
  const e = await rejection(c.call('echo', { item: streamItem(0) }));
  assert.match(e.message, 'protocol error');
  await until(() => peer.conns[0]!.of(FrameType.GOAWAY).length === 1, 'GOAWAY');
  const { peer: p2, c: c2 } = await setup({ onFrame: onRequest((conn, f) => conn.data(f.id + 100, 'watch', streamItem(0))) });
  const e2 = (await collect(c2.serverStream('watch', { from: 0, count: 1, failAfter: -1 }))).error;
  assert.match(e2!.message, 'not in flight');
  await until(() => p2.conns[0]!.of(FrameType.GOAWAY).length === 1, 'GOAWAY');
});

test('interceptors see the kind; a stream through them works, break included', async () => {
  const kinds: string[] = [];
  const { peer, c } = await setup(
    {
      onFrame: onRequest((conn, f) => {
        if (conn.messageOf(f) === 'watch') for (let i = 0; i < 3; i++) conn.data(f.id, 'watch', streamItem(i));
        else conn.response(f.id, 'echo', streamItem(0));
      }),
    },
    {
      interceptors: [
        (call, next) => {
          kinds.push(call.kind);
          return next({ ...call, options: { ...call.options, metadata: { via: 'i' } } });
        },
      ],
    },
  );
  await c.call('echo', { item: streamItem(0) });
  const s = c.serverStream('watch', { from: 0, count: 3, failAfter: -1 });
  let n = 0;
  for await (const _ of s) if (++n === 2) break;
  assert.equal(kinds, ['unary', 'server']);
  const conn = peer.conns[0]!;
  await until(() => conn.of(FrameType.CANCEL).length === 1, 'CANCEL');
  const watch = conn.of(FrameType.REQUEST).find((f) => conn.messageOf(f) === 'watch')!;
  assert.equal(readRequestHead(watch.flags, watch.body).metadata, { via: 'i' });
  assert.equal(await s.headers, {});
});

test('observer: streamElement per element, each direction; callStarted/callEnded per stream', async () => {
  const events: string[] = [];
  const { c } = await setup(
    {
      window: 8,
      onFrame: (conn, f) => {
        if (f.type === FrameType.DATA) conn.data(f.id, 'chat', streamItem(0));
        if (f.type === FrameType.END) conn.end(f.id);
      },
    },
    {
      observer: {
        callStarted: (m: string) => events.push(`start ${m}`),
        callEnded: (m: string, code: number) => events.push(`end ${m} ${code}`),
        streamElement: (m: string, d: string) => events.push(`${d} ${m}`),
      },
    },
  );
  const { items } = await collect(c.bidiStream('chat', [{ item: streamItem(1) }, { item: streamItem(2) }]));
  assert.is(items.length, 2);
  assert.equal(events.filter((e) => e.startsWith('sent')).length, 2);
  assert.equal(events.filter((e) => e.startsWith('received')).length, 2);
  assert.is(events[0], 'start chat');
  assert.is(events.at(-1), 'end chat 0');
});

test.run();
