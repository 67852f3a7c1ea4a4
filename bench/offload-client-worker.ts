/**
 * Worker of `bench/offload-client.ts`: decodes a response from transferred bytes and returns the
 * decoded value, which piscina structured-clones back to the main thread (the design being measured).
 */
import { bulkProtocol } from '../test/offload/bulk-protocol.js';

const reply = bulkProtocol().message('echo')!.response;

/** Decodes `bytes` as the echo reply and returns the value (cloned back by postMessage). */
export default function decode(bytes: Uint8Array): unknown {
  const value = reply.fromBuffer(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)) as { rows: unknown[] };
  // Plain objects: avsc record instances would lose their class in the clone anyway.
  return { rows: value.rows.map((r) => ({ ...(r as object) })), threadId: 0, info: {} };
}
