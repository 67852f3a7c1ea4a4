import type avro from 'avsc';
import type { MessageDef, Protocol } from './protocol.js';

/** How to read one of the peer's requests: the local message it maps to, and the resolver if the schemas differ. */
export interface IncomingRequest {
  /** The local message, or `null` when this side does not have the peer's message. */
  readonly local: MessageDef | null;
  /** The peer's message name (for errors). */
  readonly name: string;
  /** Resolver from the peer's request type; `undefined` when both sides use the same protocol. */
  readonly resolver: avro.Resolver | undefined;
  /** Set when the two request schemas cannot be resolved; the reason. */
  readonly incompatible: string | undefined;
}

/** How to read the peer's responses and errors to one of our messages. */
export interface IncomingResponse {
  readonly response: avro.Resolver | undefined;
  readonly errors: avro.Resolver | undefined;
  /** Set when the peer's response or error schemas cannot be resolved into ours. */
  readonly incompatible: string | undefined;
}

/**
 * The Avro schema resolution between this side's protocol and one peer protocol, built once per pair
 * of fingerprints and cached (see `ResolverCache`). When both fingerprints are equal every resolver
 * is `undefined` and decoding takes the direct path.
 */
export class PeerCodec {
  /** Indexed by the peer's message index (what a REQUEST frame carries). */
  readonly requests: readonly IncomingRequest[];
  /** Indexed by our message index. */
  readonly responses: readonly IncomingResponse[];

  constructor(
    readonly local: Protocol,
    readonly remote: Protocol,
  ) {
    const same = local.id === remote.id;
    this.requests = remote.messages.map((rm): IncomingRequest => {
      const lm = same ? local.messages[rm.index]! : local.message(rm.name);
      if (lm === undefined) return { local: null, name: rm.name, resolver: undefined, incompatible: undefined };
      if (same) return { local: lm, name: rm.name, resolver: undefined, incompatible: undefined };
      const problem = lm.oneWay !== rm.oneWay ? 'one-way on one side only' : undefined;
      const r = tryResolve(lm.request, rm.request);
      return { local: lm, name: rm.name, resolver: r.resolver, incompatible: problem ?? r.error };
    });
    this.responses = local.messages.map((lm): IncomingResponse => {
      const rm = same ? remote.messages[lm.index] : remote.message(lm.name);
      if (same || rm === undefined) return { response: undefined, errors: undefined, incompatible: undefined };
      const res = tryResolve(lm.response, rm.response);
      const errs = tryResolve(lm.errors, rm.errors);
      return { response: res.resolver, errors: errs.resolver, incompatible: res.error ?? errs.error };
    });
  }
}

function tryResolve(reader: avro.Type, writer: avro.Type): { resolver?: avro.Resolver; error?: string } {
  try {
    return { resolver: reader.createResolver(writer) };
  } catch (err) {
    return { error: explain(reader, writer, err, '') };
  }
}

/**
 * Why `reader` cannot read `writer`, naming the innermost record field where they part. avsc's own
 * messages name the types ('cannot read "int" as "string"'), but some mismatches (a record where the
 * peer has a string) throw a bare TypeError that names nothing.
 */
function explain(reader: avro.Type, writer: avro.Type, err: unknown, path: string): string {
  if (isRecord(reader) && isRecord(writer)) {
    for (const rf of reader.fields) {
      const wf = writer.fields.find((f) => f.name === rf.name || rf.aliases.includes(f.name));
      if (wf === undefined) continue;
      try {
        rf.type.createResolver(wf.type);
      } catch (inner) {
        return explain(rf.type, wf.type, inner, `${path}.${rf.name}`);
      }
    }
  }
  const what = err instanceof TypeError || !(err instanceof Error)
    ? `cannot read ${label(writer)} as ${label(reader)}`
    : err.message;
  return path === '' ? what : `field ${path.slice(1)}: ${what}`;
}

function isRecord(type: avro.Type): type is avro.types.RecordType {
  return type.typeName === 'record' || type.typeName === 'error';
}

function label(type: avro.Type): string {
  return `"${type.name ?? type.typeName}"`;
}
