import avro from 'avsc';

/**
 * Bounds every Avro array and map block by the bytes actually present, on every path that walks one:
 * reading, skipping (what schema resolution does with a field the reader lacks) and resolving.
 *
 * avsc trusts a block's item count, and its reads past the end of a buffer do not throw (they yield
 * zeros and leave `tap.pos` beyond `buf.length`): a 23-byte request claiming 2^40 items made its skip
 * loop run for hours, and a negative byte size made it walk backwards forever. Installed once, on
 * import, by patching avsc's ArrayType and MapType (`_read`, `_skip`, `_update`) and UnionType
 * (`_skip`): resolvers copy `_read` when built, so this runs before any protocol is parsed. The
 * rules, each checked once per block (never per item):
 *
 * - An item other than a zero-size one (`null`, an empty record, `fixed` of size 0) takes at least one
 *   byte, so a block may claim more items than bytes are left only if its items are zero-size (and a
 *   map entry never is: its key takes a byte).
 * - Zero-size items cost work but no bytes, so one decode (one avsc `Tap`) reads at most
 *   {@link MAX_ZERO_SIZE_ITEMS} more of them, in all its blocks, than it has bytes: without this an
 *   array of many small arrays of `null` would cost the square of its size. Any other item advances
 *   `tap.pos` by a byte at least, even past the end, so it is bounded by the bytes already.
 * - A block's byte size (negative count) must be between 0 and the bytes left; a skip jumps over it.
 * - A block that ends beyond the buffer is an error at once, not a value of zeros.
 *
 * Strings, bytes and fixed values cost O(1) whatever length they claim (avsc only moves `tap.pos`, and
 * allocates nothing beyond the buffer); a negative length invalidates the tap. Skipping a zero-size
 * value does nothing (record skippers and resolvers leave such fields out, see below). So the work of
 * any decode is bounded by its bytes (plus the allowance above) times the size of the reader's own
 * schema, plus one value of the writer's schema read past the end, and
 * a decode that ran past the end is reported by avsc (`tap.isValid()` false: `Type.decode` returns
 * offset -1, `fromBuffer` throws), which `decodeExact` and the framing readers turn into errors.
 */
export const MAX_ZERO_SIZE_ITEMS = 65536;

/** avsc's Tap, with the per-decode allowance of zero-size items this module keeps on it. */
interface Tap {
  buf: Buffer;
  pos: number;
  readLong(): number;
  skipLong(): void;
  readString(): string;
  skipString(): void;
  /** Zero-size items this decode may still read; set by the first block of them it meets. */
  avrpcItemsLeft?: number;
  /** The buffer `avrpcItemsLeft` is for (avsc's stream decoders give one tap ever new buffers). */
  avrpcItemsBuf?: Buffer;
}

interface Reader {
  _read(tap: Tap): unknown;
  _skip(tap: Tap): void;
}

/** An avsc type as far as {@link zeroSize} looks at it. */
interface AnyType {
  typeName: string;
  size?: number;
  fields?: ReadonlyArray<{ type: AnyType }>;
  underlyingType?: AnyType;
}

const zeroSizeCache = new WeakMap<object, boolean>();

/**
 * Whether a value of `type` is encoded in zero bytes. Asked while avsc builds array and record types
 * and resolvers (once per type, cached), never while decoding.
 */
export function zeroSize(type: AnyType, seen: Set<AnyType> = new Set()): boolean {
  const known = zeroSizeCache.get(type);
  if (known !== undefined) return known;
  let zero: boolean;
  const name = type.typeName;
  if (name === 'null') zero = true;
  else if (name === 'fixed') zero = type.size === 0;
  else if (name === 'record' || name === 'error') {
    // A record whose fields are still being built contains the array being built, and one that
    // contains itself does so through a union, array or map: neither is zero-size.
    if (!Array.isArray(type.fields) || seen.has(type)) return false;
    seen.add(type);
    zero = type.fields!.every((f) => zeroSize(f.type, seen));
  } else if (name.startsWith('logical:') && type.underlyingType !== undefined) zero = zeroSize(type.underlyingType, seen);
  else zero = false; // booleans, numbers, enums, strings, bytes, unions, arrays and maps take a byte at least
  zeroSizeCache.set(type, zero);
  return zero;
}

function fail(what: string): never {
  throw new Error(`malformed Avro: ${what}`);
}

/**
 * Admits a block of `n` items (`n` > 0, its header read) against the bytes left and, for zero-size
 * items, the decode's allowance (kept on the tap: only decodes meeting such blocks pay for it).
 */
function admit(tap: Tap, n: number, zeroItems: boolean): void {
  const left = tap.buf.length - tap.pos;
  if (!zeroItems) {
    if (n > left) fail(`block claims ${n} items with ${Math.max(0, left)} bytes left`);
    return;
  }
  const allowance = tap.avrpcItemsBuf === tap.buf ? tap.avrpcItemsLeft! : Math.max(0, left) + MAX_ZERO_SIZE_ITEMS;
  if (n > allowance) fail(`blocks claim more than ${MAX_ZERO_SIZE_ITEMS} zero-size items beyond the bytes of the value`);
  tap.avrpcItemsLeft = allowance - n;
  tap.avrpcItemsBuf = tap.buf;
}

/** Reads a negative count's byte size, which must lie within the buffer. */
function blockBytes(tap: Tap): number {
  const size = tap.readLong();
  if (!(size >= 0 && size <= tap.buf.length - tap.pos))
    fail(`block claims ${size} bytes with ${Math.max(0, tap.buf.length - tap.pos)} left`);
  return size;
}

function endOfBlock(tap: Tap): void {
  if (tap.pos > tap.buf.length) fail('truncated block');
}

interface ArrayLike {
  itemsType: Reader & AnyType;
  /**
   * Whether the items as written are zero-size, so a block may hold more of them than bytes: set
   * while avsc builds the type (before it freezes it), and by the patched `_update` on a resolver
   * (whose `itemsType` is the items' resolver, not the writer's type).
   */
  avrpcZeroItems?: boolean;
}

function zeroItems(a: ArrayLike): boolean {
  return a.avrpcZeroItems ?? zeroSize(a.itemsType);
}

interface MapLike {
  valuesType: Reader;
}

type BranchConstructor = (this: ArrayLike) => unknown;
type Update = (this: unknown, resolver: Record<string, unknown>, writer: AnyType & { itemsType?: AnyType }, opts: unknown) => void;

const types = avro.types as unknown as {
  ArrayType: {
    prototype: { _read(tap: Tap): unknown[]; _skip(tap: Tap): void; _update: Update; _createBranchConstructor: BranchConstructor };
  };
  MapType: { prototype: { _read(tap: Tap): Record<string, unknown>; _skip(tap: Tap): void } };
  WrappedUnionType: { prototype: object };
};
/** avsc's UnionType (not exported): the prototype both union kinds inherit `_skip` from. */
const unionProto = Object.getPrototypeOf(types.WrappedUnionType.prototype) as { _skip(tap: Tap): void };

types.ArrayType.prototype._read = function readArray(this: ArrayLike, tap: Tap): unknown[] {
  const items = this.itemsType;
  const val: unknown[] = [];
  let n: number;
  while ((n = tap.readLong()) !== 0) {
    if (n < 0) {
      n = -n;
      blockBytes(tap);
    }
    admit(tap, n, zeroItems(this));
    while (n--) val.push(items._read(tap));
    endOfBlock(tap);
  }
  return val;
};

types.ArrayType.prototype._skip = function skipArray(this: ArrayLike, tap: Tap): void {
  const items = this.itemsType;
  let n: number;
  while ((n = tap.readLong()) !== 0) {
    if (n < 0) {
      const size = blockBytes(tap); // read before `tap.pos` is: `tap.pos += blockBytes(tap)` would add to the old position
      tap.pos += size;
    } else {
      const zero = zeroItems(this);
      admit(tap, n, zero);
      if (zero) continue; // skipping zero-size items reads nothing
      while (n--) items._skip(tap);
      endOfBlock(tap);
    }
  }
};

// avsc builds an array type's items, then its branch constructor, then freezes it: note its items here.
const branchConstructor = types.ArrayType.prototype._createBranchConstructor;
types.ArrayType.prototype._createBranchConstructor = function noteZeroItems(this: ArrayLike): unknown {
  this.avrpcZeroItems = zeroSize(this.itemsType);
  return branchConstructor.call(this);
};

// Resolvers copy `_read` and point `itemsType` at the items' resolver: record what the writer's items are.
const updateArray = types.ArrayType.prototype._update;
types.ArrayType.prototype._update = function updateArrayResolver(this: unknown, resolver, writer, opts): void {
  updateArray.call(this, resolver, writer, opts);
  if (writer.itemsType !== undefined) resolver['avrpcZeroItems'] = zeroSize(writer.itemsType);
};

types.MapType.prototype._read = function readMap(this: MapLike, tap: Tap): Record<string, unknown> {
  const values = this.valuesType;
  const val: Record<string, unknown> = {};
  let n: number;
  while ((n = tap.readLong()) !== 0) {
    if (n < 0) {
      n = -n;
      blockBytes(tap);
    }
    admit(tap, n, false);
    while (n--) {
      const key = tap.readString();
      val[key] = values._read(tap);
    }
    endOfBlock(tap);
  }
  return val;
};

types.MapType.prototype._skip = function skipMap(this: MapLike, tap: Tap): void {
  const values = this.valuesType;
  let n: number;
  while ((n = tap.readLong()) !== 0) {
    if (n < 0) {
      const size = blockBytes(tap); // read before `tap.pos` is: `tap.pos += blockBytes(tap)` would add to the old position
      tap.pos += size;
    } else {
      admit(tap, n, false);
      while (n--) {
        tap.skipString();
        values._skip(tap);
      }
      endOfBlock(tap);
    }
  }
};

// Zero-size fields hold no bytes, so skipping them is no work: avsc's compiled record skipper and
// resolver still call each one's `_skip`, so a peer's record of 30000 null fields (and one int) made
// every byte of an array of it cost 30000 calls. Leave them out of both.
interface FieldLike {
  name: string;
  aliases: readonly string[];
  type: AnyType;
}
interface RecordLike extends AnyType {
  fields: readonly FieldLike[];
  _createSkipper(): (tap: Tap) => void;
}
const recordProto = (avro.types as unknown as { RecordType: { prototype: RecordLike & { _update: Update } } }).RecordType.prototype;
const createSkipper = recordProto._createSkipper;
recordProto._createSkipper = function skipperWithoutZeroSizeFields(this: RecordLike): (tap: Tap) => void {
  const kept = this.fields.filter((f) => !zeroSize(f.type));
  if (kept.length === this.fields.length) return createSkipper.call(this);
  return createSkipper.call(Object.create(this, { fields: { value: kept } }) as RecordLike);
};
const updateRecord = recordProto._update;
recordProto._update = function resolverWithoutZeroSizeSkips(this: RecordLike, resolver, writer, opts): void {
  const fields = (writer as unknown as RecordLike).fields;
  const wanted = new Set<string>();
  for (const f of this.fields) {
    wanted.add(f.name);
    for (const a of f.aliases) wanted.add(a);
  }
  const kept = fields.filter((f) => wanted.has(f.name) || !zeroSize(f.type));
  // A view of the writer without the zero-size fields the reader skips: avsc reads `fields` and names.
  updateRecord.call(this, resolver, kept.length === fields.length ? writer : Object.create(writer, { fields: { value: kept } }), opts);
} as Update;

// avsc's union skip indexes its branches with the wire's value unchecked (a TypeError naming nothing).
unionProto._skip = function skipUnion(this: { types: Reader[] }, tap: Tap): void {
  const index = tap.readLong();
  const branch = this.types[index];
  if (branch === undefined) fail(`invalid union index ${index}`);
  branch._skip(tap);
};
