/**
 * The contract every benchmark peer follows (the systems a user would weigh against avrpc, and the
 * tuned raw floor): a server it starts on 127.0.0.1 port 0 in a server process, and a client it
 * connects in a separate client process. Both echo the benchmark Item (bench/payload.ts) in the
 * system's own encoding; the client's `call` sends one and resolves with the decoded answer.
 */

/** A running peer server, in the bench's server process. */
export interface PeerServer {
  /** The port it listens on (127.0.0.1). */
  port: number;
  /**
   * CPU time (user + system, µs, cumulative) of helper processes the system needs beside the server
   * process itself, such as NATS's broker; the bench counts their CPU with the server's. Absent when
   * there are none.
   */
  extraCpuUs?(): number;
  close(): Promise<void>;
}

/** A connected peer client, in the bench's client process. */
export interface PeerClient {
  /** One echo call of the benchmark Item; resolves with the decoded answer. */
  call(): Promise<unknown>;
  close(): Promise<void> | void;
}

/** One system in the benchmark. */
export interface Peer {
  /** Short key, as in BENCH_ONLY (`echo-64/nats`) and in the results' JSON. */
  id: string;
  /** Column or row label in the report, e.g. `Moleculer TCP`. */
  label: string;
  /** One sentence for the report: what the system is, version, transport and encoding. */
  description: string;
  /** Starts the server; `delayMs` > 0 delays each answer by that much (setTimeout). */
  startServer(options: { delayMs: number }): Promise<PeerServer>;
  /** Connects a client to the server on `port`, ready to call. */
  connect(port: number): Promise<PeerClient>;
}
