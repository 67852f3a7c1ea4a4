/**
 * A short rendering of any value as JSON, for error messages: a declared error value a handler
 * threw as is becomes `EchoError: {"reason":"disk full"}`.
 */

const DEPTH = 6;

/** Collects text until it is longer than `max`, then refuses more. */
class Budget {
  text = '';
  constructor(readonly max: number) {}

  /** Appends `s`; false once the text is over budget (the walk then stops). */
  add(s: string): boolean {
    this.text += s;
    return this.text.length <= this.max;
  }
}

/**
 * `value` as JSON, at most `max` characters (a cut ends with `…`). Unlike `JSON.stringify` it never
 * throws and its work is bounded by `max`: BigInts print as their digits, byte arrays (Buffer,
 * Uint8Array) as a string of their hex, a cycle or nesting deeper than 6 as `"…"`, and a huge
 * string or array is not rendered whole. A getter that throws ends the preview where it is.
 */
export function previewJson(value: unknown, max: number): string {
  const budget = new Budget(max);
  try {
    write(value, budget, 0, new Set());
  } catch {
    budget.text += '…';
  }
  const text = budget.text;
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}

function write(value: unknown, out: Budget, depth: number, seen: Set<object>): boolean {
  switch (typeof value) {
    case 'string':
      // Only what can show: a 1 MB string is not escaped whole.
      return out.add(JSON.stringify(value.length > out.max ? value.slice(0, out.max) : value));
    case 'number':
      return out.add(Number.isFinite(value) ? String(value) : 'null');
    case 'bigint':
      return out.add(value.toString());
    case 'boolean':
      return out.add(String(value));
    case 'object':
      break;
    default: // undefined, functions, symbols: as JSON.stringify shows them in an array
      return out.add('null');
  }
  if (value === null) return out.add('null');
  if (value instanceof Uint8Array) {
    const shown = Buffer.from(value.buffer, value.byteOffset, Math.min(value.byteLength, out.max));
    return out.add(`"${shown.toString('hex')}"`);
  }
  if (seen.has(value) || depth >= DEPTH) return out.add('"…"');
  seen.add(value);
  let ok: boolean;
  if (Array.isArray(value)) {
    ok = out.add('[');
    for (let i = 0; ok && i < value.length; i++) ok = (i === 0 || out.add(',')) && write(value[i], out, depth + 1, seen);
    ok &&= out.add(']');
  } else {
    ok = out.add('{');
    let first = true;
    for (const key of Object.keys(value)) {
      const field = (value as Record<string, unknown>)[key];
      if (field === undefined || typeof field === 'function') continue; // as JSON.stringify does
      ok = (first || out.add(',')) && out.add(`${JSON.stringify(key)}:`) && write(field, out, depth + 1, seen);
      first = false;
      if (!ok) break;
    }
    ok &&= out.add('}');
  }
  seen.delete(value);
  return ok;
}
