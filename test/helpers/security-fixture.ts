/**
 * Test helper for the security suites: the echo protocol, and servers, clients and raw peers that are
 * closed after each test (raw peers first, then clients and servers, last opened first).
 */
import type { Test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  RpcError,
  createClient,
  createServer,
  loadProtocol,
  type Client,
  type ClientOptions,
  type Protocol,
  type Server,
  type ServerOptions,
} from '../../src/index.js';
import { RawPeer } from './raw-peer.js';
import { repoPath } from './repo.js';

/** What {@link securityFixture} gives a suite. */
export interface SecurityFixture {
  /** A server with an `echo` handler returning the item, plus `options` (which may replace the handlers). */
  serve(options?: Partial<ServerOptions>): Promise<{ server: Server; port: number }>;
  /** A client of the server on 127.0.0.1:`port`, with `options`. */
  client(port: number, options?: Partial<ClientOptions>): Client;
  /** A raw socket connected to 127.0.0.1:`port`. */
  peer(port: number): Promise<RawPeer>;
}

/**
 * Registers `test`'s hooks: one that loads protocol/echo.avdl before the first test and hands it to
 * `loaded`, one that closes everything the fixture opened after each test.
 */
export function securityFixture(test: Test, loaded: (protocol: Protocol) => void = () => {}): SecurityFixture {
  let protocol: Protocol | undefined;
  const open: Array<Server | Client> = [];
  const peers: RawPeer[] = [];
  test.before(async () => {
    protocol = await loadProtocol(repoPath('protocol/echo.avdl'));
    loaded(protocol);
  });
  test.after.each(async () => {
    for (const p of peers.splice(0)) p.destroy();
    for (const x of open.splice(0).reverse()) await x.close({ graceMs: 100 });
  });
  const loadedProtocol = (): Protocol => {
    if (protocol === undefined) throw new Error("securityFixture: the protocol loads in the suite's before hook");
    return protocol;
  };
  return {
    async serve(options = {}) {
      const server = createServer({ protocol: loadedProtocol(), handlers: { echo: (req: { item: unknown }) => req.item }, ...options });
      open.push(server);
      return { server, port: (await server.listen()).port };
    },
    client(port, options = {}) {
      const c = createClient({ protocol: loadedProtocol(), endpoints: [`127.0.0.1:${port}`], ...options });
      open.push(c);
      return c;
    },
    async peer(port) {
      const p = await RawPeer.connect(port);
      peers.push(p);
      return p;
    },
  };
}

/** The RpcError a call failed with; fails the test if it succeeded or threw something else. */
export async function failure(p: Promise<unknown>): Promise<RpcError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.instance(err, RpcError, 'the call must fail with an RpcError');
  return err as RpcError;
}

/** 'OK', or the code of the RpcError the call failed with. */
export async function outcome(p: Promise<unknown>): Promise<number | 'OK'> {
  return p.then(
    () => 'OK' as const,
    (e: unknown) => {
      assert.instance(e, RpcError);
      return (e as RpcError).code;
    },
  );
}
