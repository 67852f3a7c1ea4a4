/**
 * The data-model test protocol (bytes, fixed and longs in every position a value is encoded) and its
 * handlers: run inline by the tests and, as this module, in offload workers. Handlers answer with
 * Uint8Array windows of larger buffers, never Buffers, so every encode path meets one.
 */
/** The protocol's IDL. */
export const DATA_IDL = `
@namespace("avrpc.data")
protocol Data {
  fixed Hash(4);

  record Blob {
    bytes data;
    Hash hash;
    union { null, bytes } maybe;
    array<bytes> parts;
    map<Hash> named;
  }

  error BlobError {
    bytes data;
    Hash hash;
  }

  record Num {
    long id;
    union { null, long } opt;
    union { long, double } ld;
    array<long> many;
    string seen = "";
  }

  /** Returns its blob rebuilt of Uint8Array windows; with fail, throws it as a BlobError instead. */
  Blob blob(Blob blob, boolean fail) throws BlobError;

  /** A blob whose data is \`size\` bytes of \`fill\`, as a window of a larger ArrayBuffer. */
  Blob make(int size, int fill);

  /** \`count\` elements of \`size\` bytes (byte i of element k is k + i), as Uint8Array windows. */
  @stream("server") bytes chunks(int count, int size);

  /** Returns the number of bytes of the chunks it received. */
  @stream("client") long total(bytes chunk);

  /** Returns its argument with \`seen\` set to the type the handler saw of \`id\`. */
  Num num(Num num);
}
`;

/** `bytes` copied into a window of a larger ArrayBuffer: byteOffset 3, padding 0xee around it. */
export function window(bytes: Uint8Array): Uint8Array {
  const all = new Uint8Array(bytes.length + 8).fill(0xee);
  const view = all.subarray(3, 3 + bytes.length);
  view.set(bytes);
  return view;
}

interface Blob {
  data: Uint8Array;
  hash: Uint8Array;
  maybe: Uint8Array | null;
  parts: Uint8Array[];
  named: Record<string, Uint8Array>;
}

const rebuilt = (b: Blob): Blob => ({
  data: window(b.data),
  hash: window(b.hash),
  maybe: b.maybe === null ? null : window(b.maybe),
  parts: b.parts.map(window),
  named: Object.fromEntries(Object.entries(b.named).map(([k, v]) => [k, window(v)])),
});

export function blob(req: { blob: Blob; fail: boolean }): Blob {
  const out = rebuilt(req.blob);
  if (req.fail) throw { data: out.data, hash: out.hash }; // a BlobError value, thrown as is
  return out;
}

export function make(req: { size: number; fill: number }): Blob {
  const h = window(new Uint8Array([1, 2, 3, 4]));
  return { data: window(new Uint8Array(req.size).fill(req.fill)), hash: h, maybe: null, parts: [], named: {} };
}

export async function* chunks(req: { count: number; size: number }): AsyncGenerator<Uint8Array> {
  for (let k = 0; k < req.count; k++) yield window(Uint8Array.from({ length: req.size }, (_, i) => (k + i) & 0xff));
}

export async function total(requests: AsyncIterable<{ chunk: Buffer }>): Promise<number> {
  let n = 0;
  for await (const { chunk } of requests) n += chunk.length;
  return n;
}

export function num(req: { num: { id: unknown } & Record<string, unknown> }): object {
  return { ...req.num, seen: typeof req.num.id };
}
