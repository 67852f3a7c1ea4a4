import * as assert from 'uvu/assert';
import { Code } from '../../src/errors/code.js';
import { RpcError } from '../../src/errors/rpc-error.js';

/** The code a call settles with: OK when it resolves, else its RpcError's code (anything else fails the test). */
export async function codeOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return Code.OK;
  } catch (err) {
    assert.instance(err, RpcError);
    return (err as RpcError).code;
  }
}
