/**
 * The declared-errors test protocol and its handlers: run inline by test/errors/declared-errors.test.ts
 * and, as this module, in offload workers. `how` picks what the handler throws.
 */
import { Code, RpcError } from '../../src/index.js';

/** Two error types of the same fields (A, B: a wrapped union), one with a `message` field, one with bytes. */
export const ERRORS_IDL = `
@namespace("avrpc.errs")
protocol Errs {
  error A { string reason; }
  error B { string reason; }
  error Msg { string message; long code; }
  error Blobby { bytes data; long n; string text; }
  record Item { string name; }

  Item twin(string how) throws A, B;
  Item single(string how) throws Msg;
  Item blobby(string how) throws Blobby;
  @stream("server") Item feed(string how) throws A, B;
}
`;

const B = 'avrpc.errs.B';

/** What `twin` and `feed` throw for each `how`. */
function twinError(how: string): unknown {
  switch (how) {
    case 'plain-value':
      return { reason: 'as is' }; // fits A and B: the first, A
    case 'rpc-b':
      return new RpcError(Code.FAILED_PRECONDITION, 'refused', { details: { reason: 'named' }, errorType: B });
    case 'rpc-unnamed':
      return new RpcError(Code.FAILED_PRECONDITION, 'refused', { details: { reason: 'unnamed' } });
    case 'rpc-unknown-name':
      return new RpcError(Code.FAILED_PRECONDITION, 'refused', { details: { reason: 'x' }, errorType: 'avrpc.errs.Nope' });
    case 'rpc-hostile':
      return new RpcError(Code.ABORTED, 'hostile', {
        details: {
          get reason(): never {
            throw new Error('a getter that throws');
          },
        },
        errorType: B,
      });
    case 'rpc-misfit':
      return new RpcError(Code.ABORTED, 'misfit', { details: { reason: 42 }, errorType: B });
    default:
      return new RpcError(Code.NOT_FOUND, `no ${how}`);
  }
}

export function twin(req: { how: string }): never {
  throw twinError(req.how);
}

export function single(req: { how: string }): never {
  if (req.how === 'message') throw { message: 'quota exceeded', code: 5 };
  throw { message: '', code: 2n ** 62n };
}

export function blobby(): never {
  throw { data: Buffer.alloc(1000, 0xab), n: 2n ** 63n - 1n, text: 'long '.repeat(10_000) };
}

export async function* feed(req: { how: string }): AsyncGenerator<{ name: string }> {
  yield { name: 'first' };
  throw twinError(req.how);
}
