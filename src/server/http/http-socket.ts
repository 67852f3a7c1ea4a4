import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Code } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import type { CallContext, PeerInfo } from '../call-context.js';
import type { ConnectionAccount, MemoryBudget } from '../memory-budget.js';

/**
 * What the gateway keeps per HTTP connection, made at its first request: one memory account for the
 * bodies it sends, the calls running on it (cancelled when it closes: the client went away), and its
 * latest response (a drain must not close it before that one is sent). One `close` listener per
 * connection instead of a few per request.
 */
export class HttpSocketState {
  readonly account: ConnectionAccount;
  readonly running = new RunningCalls();
  last: ServerResponse | undefined = undefined;
  /** The peer without a principal, read once (each read of `remoteAddress` asks the socket). */
  readonly peer: PeerInfo;

  constructor(socket: Socket, budget: MemoryBudget) {
    this.peer = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    this.account = budget.account(() => socket.destroy());
    socket.once('close', () => {
      this.account.close();
      const reason = new RpcError(Code.CANCELLED, 'HTTP client closed the connection');
      this.running.cancelAll(reason);
    });
  }

  /** True while a response of this connection is not fully sent. */
  get busy(): boolean {
    return this.last !== undefined && !this.last.writableFinished;
  }
}

/**
 * The calls running on one HTTP connection, in an array with each call's index on the call: adding
 * and removing one is two stores. A Set, filling and emptying with every pipelined batch, grew and
 * shrank (a rehash each time) on the gateway's per-call path.
 */
export class RunningCalls {
  private readonly calls: CallContext[] = [];

  /** Calls running now. */
  get size(): number {
    return this.calls.length;
  }

  /** Adds a call that started (once; a call already here stays where it is). */
  add(ctx: CallContext): void {
    if (ctx.httpSlot >= 0) return;
    ctx.httpSlot = this.calls.length;
    this.calls.push(ctx);
  }

  /** Removes `ctx` (if it is here): the last call takes its place. */
  delete(ctx: CallContext): void {
    const i = ctx.httpSlot;
    if (i < 0 || this.calls[i] !== ctx) return;
    ctx.httpSlot = -1;
    const last = this.calls.pop()!;
    if (last !== ctx) {
      this.calls[i] = last;
      last.httpSlot = i;
    }
  }

  /** Cancels every running call with `reason` and forgets them. */
  cancelAll(reason: RpcError): void {
    const calls = this.calls.splice(0);
    for (const ctx of calls) ctx.httpSlot = -1;
    for (const ctx of calls) ctx.cancel(reason);
  }
}

const STATE = Symbol('avrpc.httpSocketState');

/** The state of `socket`, made on first use. */
export function socketState(socket: Socket, budget: MemoryBudget): HttpSocketState {
  const s = socket as Socket & { [STATE]?: HttpSocketState };
  return (s[STATE] ??= new HttpSocketState(socket, budget));
}

/** The state of `socket` if it served a request. */
export function existingState(socket: Socket): HttpSocketState | undefined {
  return (socket as Socket & { [STATE]?: HttpSocketState })[STATE];
}

/**
 * Reads a request body of at most `max` bytes as UTF-8, counted against `account` while it is held:
 * `done` gets the text and gives the bytes back (call `release` once decoded), or an error
 * (RESOURCE_EXHAUSTED over `max` or the memory budget: 413 would be grpc-gateway's 429).
 */
export function readBody(
  req: IncomingMessage,
  max: number,
  account: ConnectionAccount,
  done: (err: RpcError | undefined, body: string, release: () => void) => void,
): void {
  const declared = Number(req.headers['content-length']);
  if (declared > max) return done(tooLarge(max), '', noop);
  let first: Buffer | undefined;
  let chunks: Buffer[] | undefined;
  let size = 0;
  let finished = false;
  const release = (): void => {
    account.credit(size);
    size = 0;
  };
  const fail = (err: RpcError): void => {
    if (finished) return;
    finished = true;
    release();
    done(err, '', noop);
  };
  req.on('data', (chunk: Buffer) => {
    if (finished) return;
    if (size + chunk.length > max || !account.reserve(chunk.length)) {
      const over = size + chunk.length > max;
      req.removeAllListeners('data');
      req.resume();
      return fail(
        over ? tooLarge(max) : new RpcError(Code.RESOURCE_EXHAUSTED, 'server memory budget (maxBufferedBytes) exhausted: retry later'),
      );
    }
    size += chunk.length;
    if (first === undefined) first = chunk;
    else (chunks ??= [first]).push(chunk);
  });
  req.on('end', () => {
    if (finished) return;
    finished = true;
    const body = chunks !== undefined ? Buffer.concat(chunks).toString('utf8') : first === undefined ? '' : first.toString('utf8');
    done(undefined, body, release);
  });
  req.on('error', (err) => fail(new RpcError(Code.CANCELLED, `request body: ${err.message}`)));
}

function tooLarge(max: number): RpcError {
  return new RpcError(Code.RESOURCE_EXHAUSTED, `request body exceeds maxMessageBytes (${max})`);
}

function noop(): void {}
