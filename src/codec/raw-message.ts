import type avro from 'avsc';
import type { MessageDef } from './protocol.js';

/**
 * The raw-bytes view of a message, for `client.callRaw`: its request "type" writes bytes the caller
 * already encoded, and its response "type" hands out the response's bytes instead of decoding them,
 * so a pass-through pipeline (proxy, cache, queue) does no Avro work on its event loop. Declared
 * errors still decode as usual. Built once per message and cached by the client.
 *
 * When the server's protocol differs from the client's, the response arrives in the server's schema:
 * it is then resolved and re-encoded, so callers always get bytes in their own protocol's schema.
 */
export function rawMessage(msg: MessageDef): MessageDef {
  return { ...msg, request: rawRequest as unknown as avro.Type, response: rawResponse(msg.response) as unknown as avro.Type };
}

/** The two `avro.Type` methods the connection uses on a request type. */
const rawRequest = {
  encode(bytes: Uint8Array, buf: Buffer, pos: number): number {
    const end = pos + bytes.length;
    if (end > buf.length) return buf.length - end;
    buf.set(bytes, pos);
    return end;
  },
};

function rawResponse(type: avro.Type) {
  return {
    decode(buf: Buffer, pos: number, resolver: avro.Resolver | undefined): { value: Buffer; offset: number } {
      if (resolver !== undefined) {
        const r = type.decode(buf, pos, resolver);
        return { value: r.offset === buf.length ? type.toBuffer(r.value) : Buffer.alloc(0), offset: r.offset };
      }
      // A frame body that owns its whole buffer is handed out as is; a view into a socket chunk
      // shared with other frames is copied, so the caller does not pin the chunk.
      const own = pos === 0 && buf.byteOffset === 0 && buf.buffer.byteLength === buf.length;
      return { value: own ? buf : Buffer.from(buf.subarray(pos)), offset: buf.length };
    },
  };
}
