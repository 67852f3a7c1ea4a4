import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code } from '../../src/index.js';
import { FrameType } from '../../src/framing/frame.js';
import { addressKey } from '../../src/server/handshake-gate.js';
import { makeTestCerts, type TestCerts } from '../helpers/certs.js';
import { frameCode, frameMessage, until } from '../helpers/raw-peer.js';
import { outcome, securityFixture } from '../helpers/security-fixture.js';
import { SocketReader } from '../helpers/socket-reader.js';

/**
 * Issue 14, unauthenticated sockets can take every connection slot: connections still in handshake
 * are capped server-wide (maxHandshakingConnections) and per source address (maxHandshakingPerAddress).
 * Sources other than 127.0.0.1 are other loopback addresses (127.0.0.2, 127.0.0.3), bound locally.
 */
const test = suite('security: handshake caps');
/** Sockets a test opened, destroyed after it, before its server closes (which waits for them otherwise). */
const silent: Socket[] = [];
test.after.each(() => {
  for (const s of silent.splice(0)) s.destroy();
});
const { serve, client } = securityFixture(test);
const item = { id: 2, name: 'caps', tags: [], score: 0, blob: Buffer.alloc(0) };
let certs: TestCerts;
test.before(async () => {
  certs = await makeTestCerts();
});
test.after(async () => {
  await certs.cleanup();
});

/** A socket from `localAddress` that connects and never says a word; its reader sees what the server sends. */
async function silentSocket(
  port: number,
  localAddress: string,
): Promise<{ socket: Socket; reader: SocketReader; closed: Promise<unknown> }> {
  const socket = connect({ host: '127.0.0.1', port, localAddress });
  socket.on('error', () => {});
  silent.push(socket);
  const reader = new SocketReader(socket);
  const closed = once(socket, 'close');
  await once(socket, 'connect');
  return { socket, reader, closed };
}

/** Reads the frame a refused socket gets, and waits for its close. */
async function refusal(s: { reader: SocketReader; closed: Promise<unknown> }): Promise<{ code: number; message: string }> {
  const f = await s.reader.frame();
  await s.closed;
  const frame = { type: f[4]!, flags: f[5]!, id: f.readUInt32BE(6), body: f.subarray(10) };
  assert.is(frame.type, FrameType.GOAWAY);
  return { code: frameCode(frame), message: frameMessage(frame) };
}

test('silent sockets fill the handshake caps; beyond them they are refused UNAVAILABLE (retry later), and real clients still connect and call', async () => {
  // Before: silent sockets were kept (until handshakeTimeoutMs) up to maxConnections; nothing was refused.
  const { server, port } = await serve({ maxHandshakingConnections: 4, maxHandshakingPerAddress: 2, maxConnections: 100 });
  const a1 = await silentSocket(port, '127.0.0.2');
  await silentSocket(port, '127.0.0.2');
  await until(() => server.connections === 2, 'two silent sockets accepted');
  // A third from the same address is over maxHandshakingPerAddress.
  const perAddress = await refusal(await silentSocket(port, '127.0.0.2'));
  assert.is(perAddress.code, Code.UNAVAILABLE);
  assert.match(perAddress.message, 'maxHandshakingPerAddress 2');
  // A real client from another address gets through.
  const c = client(port);
  assert.is(await outcome(c.call('echo', { item })), 'OK');
  // Two more silent ones from a third address fill the server-wide cap: the next is refused, whatever its address.
  await silentSocket(port, '127.0.0.3');
  await silentSocket(port, '127.0.0.3');
  await until(() => server.connections === 5, 'four silent sockets and the client');
  const serverWide = await refusal(await silentSocket(port, '127.0.0.1'));
  assert.is(serverWide.code, Code.UNAVAILABLE);
  assert.match(serverWide.message, 'maxHandshakingConnections (4)');
  // The connected client is unaffected.
  assert.is(await outcome(c.call('echo', { item })), 'OK');
  // A client refused while the cap is full is told to retry, not failed: its call goes through once a
  // silent socket leaves (before, RESOURCE_EXHAUSTED failed the waiting call at once).
  const late = client(port, { backoff: { initialMs: 20, maxMs: 50 } });
  const pending = outcome(late.call('echo', { item }, { timeoutMs: 10_000 }));
  await new Promise((r) => setTimeout(r, 200));
  a1.socket.destroy();
  assert.is(await pending, 'OK');
});

test('a socket that completed its handshake no longer counts: many clients from one address connect one after another', async () => {
  const { server, port } = await serve({ maxHandshakingPerAddress: 1 });
  for (let i = 0; i < 5; i++) assert.is(await outcome(client(port).call('echo', { item })), 'OK', `client ${i}`);
  assert.is(server.connections, 5);
});

test('TLS: TCP connections beyond the handshake cap are closed before any TLS byte; a slot freed admits a TLS client', async () => {
  const { server, port } = await serve({ tls: { cert: certs.serverCert, key: certs.serverKey }, maxHandshakingConnections: 2 });
  const first = await silentSocket(port, '127.0.0.2');
  await silentSocket(port, '127.0.0.3');
  const third = await silentSocket(port, '127.0.0.2');
  await third.closed;
  const got = await third.reader.read(1, 1000).then(
    () => 'a byte',
    (e: Error) => e.message,
  );
  assert.is(got, 'socket closed after 0 of 1 bytes', 'closed without one byte');
  // Refused as it came, while the two before it still wait for their handshake timeout.
  assert.is(first.socket.readyState, 'open');
  first.socket.destroy();
  await first.closed;
  const c = client(port, { tls: { ca: certs.ca } });
  // The server hears of the close a little later: the client retries until a slot is free.
  assert.is(await outcome(c.call('echo', { item }, { timeoutMs: 5000 })), 'OK');
  assert.ok(server.connections >= 1);
});

test('addressKey: IPv4 as is, IPv4-mapped as IPv4, IPv6 by its /64', () => {
  assert.is(addressKey('127.0.0.2'), '127.0.0.2');
  assert.is(addressKey('::ffff:10.1.2.3'), '10.1.2.3');
  assert.is(addressKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.is(addressKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64');
  assert.is(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.is(addressKey('::1'), '0:0:0:0::/64');
  assert.is(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
});

test.run();
