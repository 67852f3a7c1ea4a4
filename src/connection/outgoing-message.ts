/**
 * One message in the `Outbox` (outbox.ts): its body in parts, how far it went out, and the
 * messages of the same id queued behind it. Plus the cursor that cuts the next fragment off it.
 */

/** A message queued to go out in fragments, or whole behind an earlier message of its id. */
export interface Outgoing {
  type: number;
  flags: number;
  id: number;
  /** The message body, in parts (several when large values were spliced in, see framing/splices.ts). */
  parts: readonly Buffer[];
  /** Body length: the parts' lengths added up. */
  length: number;
  /** The part the next fragment starts in, and the offset in it. */
  part: number;
  partPos: number;
  /** Bytes of the body sent so far. */
  sent: number;
  /** True once the first fragment went out (the message is open). */
  started: boolean;
  /** True once the last fragment went out. */
  done: boolean;
  /** True for a small frame of an id queued behind its earlier message: it goes out whole, in its turn. */
  whole: boolean;
  /** The next message queued for the same id (a stream sends many): it waits until this one is done. */
  behind: Outgoing | undefined;
  /** True while an earlier message of the same id is still queued. */
  waiting: boolean;
}

/** A new message, nothing of it sent yet. */
export function outgoing(type: number, flags: number, id: number, parts: readonly Buffer[], length: number, whole: boolean): Outgoing {
  return {
    type,
    flags,
    id,
    parts,
    length,
    part: 0,
    partPos: 0,
    sent: 0,
    started: false,
    done: false,
    whole,
    behind: undefined,
    waiting: false,
  };
}

/** The next `n` bytes of `m`'s body, as views of its parts (usually one), moving its cursor past them. */
export function take(m: Outgoing, n: number): Buffer | Buffer[] {
  const first = m.parts[m.part];
  if (first !== undefined && first.length - m.partPos > n) {
    m.partPos += n;
    return first.subarray(m.partPos - n, m.partPos);
  }
  const out: Buffer[] = [];
  while (n > 0) {
    const p = m.parts[m.part]!;
    const k = Math.min(n, p.length - m.partPos);
    out.push(p.subarray(m.partPos, m.partPos + k));
    n -= k;
    m.partPos += k;
    if (m.partPos === p.length) {
      m.part++;
      m.partPos = 0;
    }
  }
  return out;
}
