/**
 * Request admission as a pure policy (src/server/request-admission.ts): plain objects stand in for the
 * session's calls, its gate, the server's limits and the peer's codec. No socket, no timer.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { IncomingRequest } from '../../src/codec/peer-codec.js';
import type { MessageDef } from '../../src/codec/protocol.js';
import { Code } from '../../src/errors/code.js';
import { RpcError } from '../../src/errors/rpc-error.js';
import type { RequestHead } from '../../src/framing/bodies.js';
import { EXPIRED, OPEN, Refusal, admitHead, admitRequest, draining, type RunningCalls } from '../../src/server/request-admission.js';

const limits = { maxConcurrentCalls: 2, maxMetadataBytes: 100, maxMessageBytes: 1000 };

function calls(inFlight: number, running: number[] = []): RunningCalls {
  return { inFlight, isRunning: (id) => running.includes(id) };
}

function refusal(v: unknown): { code: number; message: string } {
  assert.instance(v, Refusal);
  const r = v as Refusal;
  return { code: r.code, message: r.message };
}

function violation(v: unknown): string {
  assert.ok(v instanceof RpcError, `expected a protocol error, got ${String(v)}`);
  assert.is(v.code, Code.INTERNAL);
  return v.message;
}

test('a request within the limits, on an open gate, for a free id runs', () => {
  assert.is(admitRequest(1, OPEN, calls(1, [2]), limits), undefined);
});

test('id 0 is a protocol error, whatever the gate', () => {
  assert.is(violation(admitRequest(0, OPEN, calls(0), limits)), 'protocol error: REQUEST with id 0');
  assert.is(violation(admitRequest(0, EXPIRED, calls(0), limits)), 'protocol error: REQUEST with id 0');
});

test('maxConcurrentCalls: the call over the limit is refused RESOURCE_EXHAUSTED', () => {
  assert.equal(refusal(admitRequest(3, OPEN, calls(2), limits)), {
    code: Code.RESOURCE_EXHAUSTED,
    message: 'too many concurrent calls (max 2)',
  });
});

test('an id still running, sent again, is a protocol error, before any refusal (over the limit, after GOAWAY)', () => {
  assert.is(violation(admitRequest(7, OPEN, calls(1, [7]), limits)), 'protocol error: request id 7 already in use');
  assert.is(violation(admitRequest(7, OPEN, calls(2, [7]), limits)), 'protocol error: request id 7 already in use');
  assert.is(violation(admitRequest(7, draining(undefined), calls(1, [7]), limits)), 'protocol error: request id 7 already in use');
});

test('after GOAWAY: a new request is refused UNAVAILABLE, before any limit is looked at', () => {
  assert.equal(refusal(admitRequest(9, draining(undefined), calls(5), limits)), {
    code: Code.UNAVAILABLE,
    message: 'server is shutting down',
  });
});

test('after GOAWAY: an id it admitted (partly received then) runs, once', () => {
  const gate = draining(new Set([5]));
  assert.is(admitRequest(5, gate, calls(0), limits), undefined);
  assert.is(refusal(admitRequest(5, gate, calls(0), limits)).code, Code.UNAVAILABLE, 'admitted once only');
  assert.is(refusal(admitRequest(6, gate, calls(0), limits)).code, Code.UNAVAILABLE);
});

test('an admitted id is still held to the limits', () => {
  assert.is(refusal(admitRequest(5, draining(new Set([5])), calls(2), limits)).code, Code.RESOURCE_EXHAUSTED);
});

test('expired credentials: every request is refused UNAUTHENTICATED', () => {
  assert.equal(refusal(admitRequest(4, EXPIRED, calls(0), limits)), { code: Code.UNAUTHENTICATED, message: 'credentials expired' });
});

const echo = { index: 0, name: 'echo' } as MessageDef;
const requests: IncomingRequest[] = [
  { local: echo, name: 'echo', resolver: undefined, incompatible: undefined },
  { local: null, name: 'theirsOnly', resolver: undefined, incompatible: undefined },
  { local: { index: 1, name: 'unserved' } as MessageDef, name: 'unserved', resolver: undefined, incompatible: undefined },
  { local: echo, name: 'echo2', resolver: undefined, incompatible: 'field x has no default' },
];
const codec = { requests };
const handlers = [() => null];

function head(index: number, metadataBytes = 0, offset = 2): RequestHead {
  return { index, timeoutMs: -1, metadata: {}, metadataBytes, offset };
}

test('a head naming a served, compatible message gives its incoming request', () => {
  assert.is(admitHead(head(0), 50, limits, codec, handlers, undefined), requests[0]);
});

test('metadata and message over their limits are refused RESOURCE_EXHAUSTED', () => {
  assert.equal(refusal(admitHead(head(0, 101), 50, limits, codec, handlers, undefined)), {
    code: Code.RESOURCE_EXHAUSTED,
    message: 'request metadata exceeds maxMetadataBytes (100)',
  });
  assert.equal(refusal(admitHead(head(0, 0, 2), 1003, limits, codec, handlers, undefined)), {
    code: Code.RESOURCE_EXHAUSTED,
    message: 'request of 1001 bytes exceeds maxMessageBytes (1000)',
  });
  assert.is(admitHead(head(0, 100, 2), 1002, limits, codec, handlers, undefined), requests[0], 'exactly the limits is fine');
});

test('an unknown index, a message only the peer has, or one nothing serves: UNIMPLEMENTED', () => {
  assert.equal(refusal(admitHead(head(9), 50, limits, codec, handlers, undefined)), {
    code: Code.UNIMPLEMENTED,
    message: 'unknown message index 9',
  });
  assert.equal(refusal(admitHead(head(1), 50, limits, codec, handlers, undefined)), {
    code: Code.UNIMPLEMENTED,
    message: 'unknown message theirsOnly',
  });
  assert.equal(refusal(admitHead(head(2), 50, limits, codec, handlers, undefined)), {
    code: Code.UNIMPLEMENTED,
    message: 'message unserved has no handler on this server',
  });
  // The offload pool serves what no handler does.
  assert.is(admitHead(head(2), 50, limits, codec, handlers, { serves: (i) => i === 1 }), requests[2]);
});

test('schemas that do not resolve: FAILED_PRECONDITION, naming the problem', () => {
  assert.equal(refusal(admitHead(head(3), 50, limits, codec, handlers, undefined)), {
    code: Code.FAILED_PRECONDITION,
    message: 'message echo2: incompatible schemas: field x has no default',
  });
});

test.run();
