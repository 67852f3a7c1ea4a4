/**
 * Test helper: a tiny authoritative DNS server on 127.0.0.1 (UDP) answering SRV and A queries
 * from a mutable in-memory zone, so DNS discovery is tested against real packets and Node's real
 * resolver. Hand-encoded (RFC 1035 wire format): only what the tests need, no compression except
 * the answer's pointer back to the question name.
 */
import { createSocket, type RemoteInfo } from 'node:dgram';

/** One SRV answer. */
export interface SrvAnswer {
  target: string;
  port: number;
  priority?: number;
  weight?: number;
}

/** A running server: edit `zone` (or set `servfail`) at any time; answers follow immediately. */
export interface DnsServer {
  /** `'127.0.0.1:<port>'`, as `Resolver.setServers` takes it. */
  readonly address: string;
  /** Records by lower-case name. A name in neither map gets NXDOMAIN. */
  readonly zone: { srv: Map<string, SrvAnswer[]>; a: Map<string, string[]> };
  /** When true, every query is answered SERVFAIL (a broken upstream). */
  servfail: boolean;
  close(): Promise<void>;
}

const TYPE_A = 1;
const TYPE_SRV = 33;

/** Starts the server on an ephemeral UDP port of 127.0.0.1. */
export async function startDnsServer(): Promise<DnsServer> {
  const socket = createSocket('udp4');
  const zone = { srv: new Map<string, SrvAnswer[]>(), a: new Map<string, string[]>() };
  const server = {
    address: '',
    zone,
    servfail: false,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
  socket.on('message', (msg: Buffer, peer: RemoteInfo) => {
    const reply = answer(msg, zone, server.servfail);
    if (reply) socket.send(reply, peer.port, peer.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => resolve());
  });
  server.address = `127.0.0.1:${socket.address().port}`;
  return server;
}

/** A UDP port with nothing bound to it (for "server unreachable" tests). */
export async function unusedUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  const port = socket.address().port;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

/** Builds the response to one query, or `null` for a packet that is not a parsable query. */
function answer(query: Buffer, zone: DnsServer['zone'], servfail: boolean): Buffer | null {
  if (query.length < 12 || query.readUInt16BE(4) !== 1) return null;
  const labels: string[] = [];
  let at = 12;
  while (at < query.length && query[at] !== 0) {
    const length = query[at]!;
    labels.push(query.toString('latin1', at + 1, at + 1 + length));
    at += 1 + length;
  }
  const questionEnd = at + 5; // zero byte + type + class
  if (questionEnd > query.length) return null;
  const name = labels.join('.').toLowerCase();
  const type = query.readUInt16BE(at + 1);
  const known = zone.srv.has(name) || zone.a.has(name);
  const records: Buffer[] = [];
  if (!servfail && type === TYPE_SRV) {
    for (const srv of zone.srv.get(name) ?? []) {
      const fixed = Buffer.alloc(6);
      fixed.writeUInt16BE(srv.priority ?? 0, 0);
      fixed.writeUInt16BE(srv.weight ?? 1, 2);
      fixed.writeUInt16BE(srv.port, 4);
      records.push(record(TYPE_SRV, Buffer.concat([fixed, encodeName(srv.target)])));
    }
  } else if (!servfail && type === TYPE_A) {
    for (const ip of zone.a.get(name) ?? []) records.push(record(TYPE_A, Buffer.from(ip.split('.').map(Number))));
  }
  const header = Buffer.alloc(12);
  header.writeUInt16BE(query.readUInt16BE(0), 0); // same id
  const rcode = servfail ? 2 : known ? 0 : 3; // SERVFAIL, NOERROR, NXDOMAIN
  header.writeUInt16BE(0x8000 | 0x0400 | (query.readUInt16BE(2) & 0x0100) | 0x0080 | rcode, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(records.length, 6);
  return Buffer.concat([header, query.subarray(12, questionEnd), ...records]);
}

/** One answer record whose owner name points back at the question (offset 12). */
function record(type: number, data: Buffer): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(0xc00c, 0);
  head.writeUInt16BE(type, 2);
  head.writeUInt16BE(1, 4); // class IN
  head.writeUInt32BE(5, 6); // TTL 5 s; the registry ignores TTLs and polls
  head.writeUInt16BE(data.length, 10);
  return Buffer.concat([head, data]);
}

function encodeName(name: string): Buffer {
  const parts = name
    .split('.')
    .filter(Boolean)
    .map((label) => {
      const bytes = Buffer.from(label, 'latin1');
      return Buffer.concat([Buffer.from([bytes.length]), bytes]);
    });
  return Buffer.concat([...parts, Buffer.from([0])]);
}
