/**
 * Where avsc's reading of Avro IDL differs from the Avro IDL specification, and the corrections
 * `parseProtocol` and `loadProtocol` apply.
 */

/**
 * IDL reading as the Avro IDL spec has it: `void m();` is a two-way message (its caller learns of
 * success or failure) and only the `oneway` keyword makes a one-way one; avsc by default makes every
 * `void` message without `throws` one-way. A fresh object per call: assembleProtocol stores its
 * import tracking in it.
 */
export function idlOptions(): never {
  return { ackVoidMessages: true } as never; // missing from avsc's typings
}

/** Type names that are not references to a named type. */
const BUILTIN = new Set([
  'null',
  'boolean',
  'int',
  'long',
  'float',
  'double',
  'bytes',
  'string',
  'record',
  'error',
  'enum',
  'fixed',
  'array',
  'map',
]);

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `{"type": "Item", ...}`: a reference to a named type written as an object, with attributes. */
const isAnnotatedReference = (v: unknown): v is Json & { type: string } =>
  isObject(v) && typeof v.type === 'string' && !BUILTIN.has(v.type);

/**
 * avsc's IDL reader puts the annotations written before a type on that type, so
 * `@idempotent(true) Item get(long id);` gives the response `{"type": "Item", "idempotent": true}`: a
 * reference with attributes, which avsc's own schema parser then rejects ("unknown type"). Avro IDL
 * means those as the message's (or field's) properties: move them there, and leave the bare name.
 * Returns `attrs` untouched when there is no such reference (the usual case, so texts and
 * fingerprints of other protocols do not change), a fixed copy otherwise.
 */
export function liftReferenceAttributes(attrs: object): object {
  if (!hasAnnotatedReference(attrs) && !hasStreamedResponse(attrs)) return attrs;
  const copy = structuredClone(attrs) as Json;
  const adopt = (holder: Json, ref: Json & { type: string }): string => {
    for (const [k, v] of Object.entries(ref)) if (k !== 'type' && !(k in holder)) holder[k] = v;
    return ref.type;
  };
  const schema = (s: unknown): unknown => {
    if (isAnnotatedReference(s)) return s.type; // nothing to hold the attributes (a union branch, items)
    if (Array.isArray(s)) return s.map(schema);
    if (!isObject(s)) return s;
    if (Array.isArray(s.fields)) s.fields.forEach((f) => isObject(f) && field(f));
    if (s.items !== undefined) s.items = schema(s.items);
    if (s.values !== undefined) s.values = schema(s.values);
    if (typeof s.type === 'object') s.type = schema(s.type);
    return s;
  };
  const field = (f: Json): void => {
    f.type = isAnnotatedReference(f.type) ? adopt(f, f.type) : schema(f.type);
  };
  if (Array.isArray(copy.types)) copy.types = copy.types.map(schema);
  if (isObject(copy.messages)) {
    for (const m of Object.values(copy.messages)) {
      if (!isObject(m)) continue;
      if (Array.isArray(m.request)) m.request.forEach((f) => isObject(f) && field(f));
      m.response = isAnnotatedReference(m.response) ? adopt(m, m.response) : schema(liftStream(m, m.response));
      if (Array.isArray(m.errors)) m.errors = m.errors.map(schema);
    }
  }
  return copy;
}

const hasAnnotatedReference = (v: unknown): boolean =>
  isAnnotatedReference(v) || (typeof v === 'object' && v !== null && Object.values(v).some(hasAnnotatedReference));

/** A response schema written inline (a primitive, an array...) that carries a message's `@stream` annotation. */
const hasStreamedResponse = (attrs: object): boolean =>
  isObject((attrs as Json).messages) &&
  Object.values((attrs as Json).messages as Json).some((m) => isObject(m) && isObject(m.response) && 'stream' in m.response);

/**
 * `@stream("server") long count();`: avsc puts the annotation on the response schema. It is the
 * message's (SPEC.md section 13): moved there, the rest of the schema kept (a bare `{"type": "long"}`
 * becomes `"long"`).
 */
function liftStream(m: Json, response: unknown): unknown {
  if (!isObject(response) || !('stream' in response)) return response;
  const { stream, ...rest } = response;
  if (!('stream' in m)) m.stream = stream;
  return Object.keys(rest).length === 1 && typeof rest.type === 'string' ? rest.type : rest;
}
