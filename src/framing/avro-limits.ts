import avro from 'avsc';

/**
 * Bounds Avro array and map block counts by the bytes left in the buffer, before any item is read.
 *
 * avsc trusts a block's item count: a 6-byte payload claiming 2^26 `null` items (or truncated
 * strings) makes it loop for seconds and allocate gigabytes. Since every item but a zero-size one
 * (null, an empty record) takes at least one byte, a count larger than the bytes left is a lie,
 * except for up to {@link MAX_ZERO_SIZE_ITEMS} zero-size items. Installed once, on import, by patching
 * avsc's ArrayType and MapType readers (resolvers copy `_read` when built, so this runs first).
 */
export const MAX_ZERO_SIZE_ITEMS = 65536;

interface Tap {
  buf: Buffer;
  pos: number;
  readLong(): number;
  skipLong(): void;
  readString(): string;
}

interface Reader {
  _read(tap: Tap): unknown;
}

function blockSize(tap: Tap): number {
  let n = tap.readLong();
  if (n < 0) {
    n = -n;
    tap.skipLong(); // the block's byte size, which we do not need
  }
  if (n > MAX_ZERO_SIZE_ITEMS && n > tap.buf.length - tap.pos) {
    throw new Error(`Avro block claims ${n} items with ${Math.max(0, tap.buf.length - tap.pos)} bytes left`);
  }
  return n;
}

const types = avro.types as unknown as {
  ArrayType: { prototype: { itemsType: Reader; _read(tap: Tap): unknown[] } };
  MapType: { prototype: { valuesType: Reader; _read(tap: Tap): Record<string, unknown> } };
};

types.ArrayType.prototype._read = function readArray(this: { itemsType: Reader }, tap: Tap): unknown[] {
  const items = this.itemsType;
  const val: unknown[] = [];
  let n: number;
  while ((n = blockSize(tap))) {
    while (n--) val.push(items._read(tap));
  }
  return val;
};

types.MapType.prototype._read = function readMap(this: { valuesType: Reader }, tap: Tap): Record<string, unknown> {
  const values = this.valuesType;
  const val: Record<string, unknown> = {};
  let n: number;
  while ((n = blockSize(tap))) {
    while (n--) {
      const key = tap.readString();
      val[key] = values._read(tap);
    }
  }
  return val;
};
