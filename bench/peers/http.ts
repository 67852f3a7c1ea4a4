/**
 * HTTP/1.1 JSON: a node:http server parsing the posted Item and answering it as JSON, and an undici
 * `Client` on one keep-alive connection with pipelining (up to 64 requests on the wire), which is how
 * a Node caller gets the most out of one HTTP/1.1 connection.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Client } from 'undici';
import type { Peer } from './peer.js';
import { answer, benchItemBase64, listenLoopback, packageVersion } from './support.js';

/** Requests the client keeps on its one connection at most (the bench's deepest load is 64). */
const PIPELINING = 64;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0]!.toString() : Buffer.concat(chunks).toString()));
    req.on('error', reject);
  });
}

async function handle(req: IncomingMessage, res: ServerResponse, delayMs: number): Promise<void> {
  const item: unknown = JSON.parse(await readBody(req));
  const body = JSON.stringify(await answer(item, delayMs));
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** The HTTP/1.1 JSON peer. */
export const peer: Peer = {
  id: 'http',
  label: 'HTTP/1.1 JSON',
  description:
    `HTTP/1.1 JSON: node:http ${process.versions.node} server, undici ${packageVersion('undici')} client, ` +
    `one keep-alive connection with up to ${PIPELINING} pipelined requests; bytes as base64.`,

  async startServer({ delayMs }) {
    const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
      handle(req, res, delayMs).catch(() => {
        res.statusCode = 400;
        res.end();
      });
    });
    return listenLoopback(server, () => server.closeAllConnections());
  },

  async connect(port) {
    const client = new Client(`http://127.0.0.1:${port}`, { pipelining: PIPELINING, keepAliveTimeout: 60_000 });
    const headers = { 'content-type': 'application/json' };
    const call = async (): Promise<unknown> => {
      // undici pipelines only requests it may retry and that do not block; an echo POST is both.
      const res = await client.request({
        path: '/echo',
        method: 'POST',
        headers,
        idempotent: true,
        blocking: false,
        body: JSON.stringify(benchItemBase64),
      });
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new Error(`HTTP ${res.statusCode}`);
      }
      return res.body.json();
    };
    await call();
    return { call, close: () => client.close() };
  },
};
