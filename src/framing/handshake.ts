import avro from 'avsc';
import './avro-limits.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { afterString, countMapEntries } from './avro-map.js';

/**
 * Handshake bodies (SPEC.md, "Handshake"), Avro records so that any Avro implementation reads them.
 * HELLO goes client to server after the preface; WELCOME answers it.
 */

const md5 = { type: 'fixed', name: 'MD5', size: 16 } as const;

/** Avro schema of the HELLO body. */
export const helloType = avro.Type.forSchema({
  type: 'record',
  name: 'avrpc.handshake.Hello',
  fields: [
    { name: 'fingerprint', type: md5 },
    { name: 'protocol', type: ['null', 'string'] },
    { name: 'knownServerFingerprint', type: ['null', 'MD5'] },
    { name: 'meta', type: { type: 'map', values: 'bytes' } },
  ],
});

/** Avro schema of the WELCOME body. */
export const welcomeType = avro.Type.forSchema({
  type: 'record',
  name: 'avrpc.handshake.Welcome',
  fields: [
    { name: 'status', type: { type: 'enum', name: 'Status', symbols: ['OK', 'NEED_PROTOCOL'] } },
    { name: 'fingerprint', type: md5 },
    { name: 'protocol', type: ['null', 'string'] },
    { name: 'meta', type: { type: 'map', values: 'bytes' } },
  ],
});

/** HELLO: the client's fingerprint, its protocol text when the server may not know it, and meta. */
export interface Hello {
  fingerprint: Buffer;
  protocol: string | null;
  /** Fingerprint of the server protocol the client already holds, so the server can omit its text. */
  knownServerFingerprint: Buffer | null;
  /** Extension fields (credentials go here); values are bytes. */
  meta: Record<string, Buffer>;
}

/** WELCOME: OK, or NEED_PROTOCOL when the server does not know the client's fingerprint. */
export interface Welcome {
  status: 'OK' | 'NEED_PROTOCOL';
  fingerprint: Buffer;
  protocol: string | null;
  meta: Record<string, Buffer>;
}

/**
 * HELLO body size every server accepts before it has authenticated the connection (SPEC.md section 3).
 * Above it, a server with `authenticate` may refuse a first HELLO (it buffers no more than a small
 * handshake for a stranger), so the reference client sends its protocol text in a first HELLO only
 * when the HELLO stays within this, and otherwise a null protocol, the text following NEED_PROTOCOL.
 */
export const HELLO_FLOOR_BYTES = 16 * 1024;

/**
 * Most HELLO meta entries a server reads. The reference client sends at most three (token, fragments,
 * compression); a peer with thousands of tiny entries only wants to cost us time before authentication.
 */
export const MAX_HELLO_META_ENTRIES = 64;

/**
 * Decodes a HELLO from an unauthenticated peer, refusing (RESOURCE_EXHAUSTED) a meta map longer than
 * `maxMetaBytes` or with more than {@link MAX_HELLO_META_ENTRIES} entries before decoding any of it.
 * Throws a plain Error on malformed input.
 */
export function readHello(body: Buffer, maxMetaBytes: number): Hello {
  const metaAt = helloMetaOffset(body);
  if (metaAt >= 0) {
    const bytes = body.length - metaAt;
    if (bytes > maxMetaBytes)
      throw new RpcError(Code.RESOURCE_EXHAUSTED, `HELLO meta of ${bytes} bytes exceeds maxHelloMetaBytes (${maxMetaBytes})`);
    if (countMapEntries(body, metaAt, MAX_HELLO_META_ENTRIES) > MAX_HELLO_META_ENTRIES) {
      throw new RpcError(Code.RESOURCE_EXHAUSTED, `HELLO meta has more than ${MAX_HELLO_META_ENTRIES} entries`);
    }
  }
  return readHandshake<Hello>(helloType, body);
}

/** Where a HELLO's meta map starts (after fingerprint, protocol and knownServerFingerprint), or -1 if malformed. */
function helloMetaOffset(body: Buffer): number {
  // Union branch indexes are varints: 0x00 the null branch, 0x02 the other.
  let p = 16;
  const protocol = body[p++];
  if (protocol === 0x02) p = afterString(body, p);
  else if (protocol !== 0x00) return -1;
  if (p < 0) return -1;
  const known = body[p++];
  if (known === 0x02) p += 16;
  else if (known !== 0x00) return -1;
  return p <= body.length ? p : -1;
}

/** Decodes a handshake body, requiring it to fill the body exactly. Throws on malformed input. */
export function readHandshake<T>(type: avro.Type, body: Buffer): T {
  const r = type.decode(body, 0);
  if (r.offset !== body.length) throw new Error(`malformed ${type.name ?? 'handshake'} body`);
  return r.value as T;
}

/** Encodes a handshake body into `buf` at `pos` (a `BodyWriter` for the frame encoder). */
export function writeHandshake(type: avro.Type) {
  return (value: Hello | Welcome, buf: Buffer, pos: number): number => type.encode(value, buf, pos);
}
