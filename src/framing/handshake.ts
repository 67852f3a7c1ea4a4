import avro from 'avsc';
import './avro-limits.js';

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
