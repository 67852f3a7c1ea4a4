/**
 * A benchmark client process: `node dist/bench/client-child.js '<ClientJob as JSON>'`. Connects to the
 * given servers (avrpc's client, or a peer's from bench/peers/), runs the closed-loop load
 * (bench/load.ts) and sends a {@link ClientResult} to the parent over IPC, then exits. At each edge of
 * the measured window it sends `{ edge }` first, which the parent passes on to the servers so that
 * they read their CPU over the same window.
 */
import { createClient, loadProtocol, type BalancerName } from '../src/index.js';
import { runLoad, type CallFn, type LoadResult, type WindowEdge } from './load.js';
import { benchItem, repoFile } from './payload.js';
import { isPeerId, loadPeer } from './peers/index.js';
import type { System } from './report.js';

/** What the parent asks a client process to do. */
export interface ClientJob {
  kind: System;
  ports: number[];
  inFlight: number;
  warmupMs: number;
  measureMs: number;
  balancer?: BalancerName;
  /** avrpc only: send every call with a deadline and metadata. */
  withDeadlineAndMetadata?: boolean;
}

/** What a client process sends at the end: the load's figures and what the system says it is. */
export interface ClientResult {
  load: LoadResult;
  label: string;
  description: string;
}

/** The message a client process sends at each edge of its measured window. */
export interface EdgeMessage {
  edge: WindowEdge;
}

const AVRPC_DESCRIPTION =
  'this project: framed, multiplexed Avro calls over one TCP connection (avsc codec), writes of one event-loop turn batched.';

const job = JSON.parse(process.argv[2]!) as ClientJob;
let call: CallFn;
let close: () => unknown;
let label = 'avrpc';
let description = AVRPC_DESCRIPTION;

if (isPeerId(job.kind)) {
  const peer = await loadPeer(job.kind);
  const c = await peer.connect(job.ports[0]!);
  ({ label, description } = peer);
  call = () => c.call();
  close = () => c.close();
} else {
  const protocol = await loadProtocol(repoFile('protocol/echo.avdl'));
  const client = createClient({
    protocol,
    endpoints: job.ports.map((p) => `127.0.0.1:${p}`),
    ...(job.balancer === undefined ? {} : { balancer: job.balancer }),
  });
  const request = { item: benchItem };
  await client.call('echo', request);
  const options = job.withDeadlineAndMetadata
    ? { timeoutMs: 5000, metadata: { 'trace-id': '4bf92f3577b34da6a3ce929d0e0e4736' } }
    : undefined;
  call = () => client.call('echo', request, options);
  close = () => client.close();
}

const load = await runLoad(call, job.inFlight, job.warmupMs, job.measureMs, (edge) => process.send!({ edge } satisfies EdgeMessage));
// A client whose close hangs must not hold the result back.
await Promise.race([close(), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
process.send!({ load, label, description } satisfies ClientResult, () => process.exit(0));
