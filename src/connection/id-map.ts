/** First slot count of an {@link IdMap}; it doubles when half full. */
const FIRST_SLOTS = 64;
/** Marks a free slot (request ids are u32, never negative). */
const FREE = -1;

/**
 * A map from request id (u32) to a value, for the calls in flight on one connection: open addressing
 * with linear probing over fixed arrays. Not a `Map`: under call churn V8 rehashes a Map's backing
 * table every few dozen calls, and each obsolete table keeps a link to its successor and the settled
 * calls it held; once one of them is promoted, every later table and its calls survive scavenges
 * too (long scavenges, frequent Mark-Compacts). The subset of the `Map` API connections use.
 */
export class IdMap<V> {
  private keys = new Float64Array(FIRST_SLOTS).fill(FREE);
  private vals: Array<V | undefined> = new Array<V | undefined>(FIRST_SLOTS).fill(undefined);
  private mask = FIRST_SLOTS - 1;
  /** 32 minus log2 of the slot count: `home` keeps the top bits of the product. */
  private shift = 32 - Math.log2(FIRST_SLOTS);
  private count = 0;

  /** Number of entries. */
  get size(): number {
    return this.count;
  }

  /** True if `id` has an entry. */
  has(id: number): boolean {
    return this.find(id) >= 0;
  }

  /** The value of `id`, or `undefined`. */
  get(id: number): V | undefined {
    const i = this.find(id);
    return i < 0 ? undefined : this.vals[i];
  }

  /** Adds or replaces the entry of `id`. */
  set(id: number, value: V): void {
    let i = this.home(id);
    while (this.keys[i] !== FREE && this.keys[i] !== id) i = (i + 1) & this.mask;
    if (this.keys[i] === FREE) {
      if ((this.count + 1) * 2 > this.keys.length) {
        this.grow();
        return this.set(id, value);
      }
      this.keys[i] = id;
      this.count++;
    }
    this.vals[i] = value;
  }

  /** Removes the entry of `id`; true if there was one. */
  delete(id: number): boolean {
    let i = this.find(id);
    if (i < 0) return false;
    this.count--;
    // Backward-shift deletion: pull later entries of the probe run into the hole, so that no
    // tombstones build up and every lookup stops at the first free slot.
    const keys = this.keys;
    const mask = this.mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const k = keys[j]!;
      if (k === FREE) break;
      const h = this.home(k);
      // Move the entry at j unless its home lies cyclically in (i, j].
      const stays = i <= j ? i < h && h <= j : i < h || h <= j;
      if (!stays) {
        keys[i] = k;
        this.vals[i] = this.vals[j];
        i = j;
      }
    }
    keys[i] = FREE;
    this.vals[i] = undefined;
    return true;
  }

  /** The values, as a snapshot (safe to change the map while going through it). */
  values(): V[] {
    const out: V[] = [];
    for (let i = 0; i < this.keys.length; i++) if (this.keys[i] !== FREE) out.push(this.vals[i]!);
    return out;
  }

  /** Removes every entry. */
  clear(): void {
    this.keys.fill(FREE);
    this.vals.fill(undefined);
    this.count = 0;
  }

  /** Slot index of `id`, or -1. */
  private find(id: number): number {
    let i = this.home(id);
    for (;;) {
      const k = this.keys[i];
      if (k === id) return i;
      if (k === FREE) return -1;
      i = (i + 1) & this.mask;
    }
  }

  /** Fibonacci hashing: consecutive ids spread out, and ids a peer picks with a common stride do not pile up. */
  private home(id: number): number {
    return Math.imul(id, 0x9e3779b1) >>> this.shift;
  }

  private grow(): void {
    const keys = this.keys;
    const vals = this.vals;
    const n = keys.length * 2;
    this.keys = new Float64Array(n).fill(FREE);
    this.vals = new Array<V | undefined>(n).fill(undefined);
    this.mask = n - 1;
    this.shift--;
    this.count = 0;
    for (let i = 0; i < keys.length; i++) if (keys[i] !== FREE) this.set(keys[i]!, vals[i]!);
  }
}
