/**
 * A benchmark client process: `node dist/bench/client-child.js '<ClientJob as JSON>'`. Connects to the
 * given servers, runs the closed-loop load (bench/load.ts) and sends the {@link LoadResult} to the
 * parent over IPC, then exits. At each edge of the measured window it sends `{ edge }` first, which the
 * parent passes on to the servers so that they read their CPU over the same window.
 */
import { createClient, loadProtocol, type BalancerName } from '../src/index.js';
import { runLoad, type CallFn, type WindowEdge } from './load.js';
import { benchItem, repoFile } from './payload.js';
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

const job = JSON.parse(process.argv[2]!) as ClientJob;
const protocol = await loadProtocol(repoFile('protocol/echo.avdl'));
let call: CallFn;
let close: () => unknown;

if (job.kind === 'raw' || job.kind === 'rawBatched') {
  const body = protocol.message('echo')!.response.toBuffer(benchItem);
  const c = await (await import('./raw-echo.js')).rawClient(job.ports[0]!, job.kind === 'rawBatched');
  call = () => c.call(body);
  close = () => c.close();
} else if (job.kind === 'grpc') {
  const c = await (await import('./grpc-echo.js')).grpcClient(job.ports[0]!);
  call = () => c.call(benchItem);
  close = () => c.close();
} else {
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

/** The message a client process sends at each edge of its measured window. */
export interface EdgeMessage {
  edge: WindowEdge;
}

const result = await runLoad(call, job.inFlight, job.warmupMs, job.measureMs, (edge) => process.send!({ edge } satisfies EdgeMessage));
await close();
process.send!(result, () => process.exit(0));
