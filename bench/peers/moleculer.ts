/**
 * Moleculer 0.14 with its TCP transporter: a server broker with an `echo` service and a client broker
 * that knows it by a static URL (UDP discovery off), the built-in JSON serializer (bytes as base64).
 * Metrics, tracing, logging, validation and request timeouts off, as a tuned deployment would have
 * them. Note: the transporter listens on every interface (it takes no host); calls run on loopback.
 */
import { ServiceBroker, type BrokerOptions, type Context } from 'moleculer';
import type { Peer } from './peer.js';
import { answer, benchItemBase64, packageVersion } from './support.js';

const SERVER_NODE = 'bench-server';

function brokerOptions(nodeID: string, urls?: string[]): BrokerOptions {
  return {
    nodeID,
    namespace: 'avrpc-bench',
    transporter: { type: 'TCP', options: { udpDiscovery: false, ...(urls === undefined ? {} : { urls }) } },
    serializer: 'JSON',
    logger: false,
    metrics: false,
    tracing: false,
    validator: false,
    requestTimeout: 0,
  };
}

/** The Moleculer TCP peer. */
export const peer: Peer = {
  id: 'moleculer',
  label: 'Moleculer TCP',
  description: `Moleculer ${packageVersion('moleculer')}: service brokers over its TCP transporter (static peer list), JSON serializer, bytes as base64.`,

  async startServer({ delayMs }) {
    const broker = new ServiceBroker(brokerOptions(SERVER_NODE));
    broker.createService({
      name: 'echo',
      actions: { echo: (ctx: Context<unknown>) => answer(ctx.params, delayMs) },
    });
    await broker.start();
    const port = (broker.getLocalNodeInfo() as unknown as { port: number }).port;
    return { port, close: () => broker.stop() };
  },

  async connect(port) {
    const broker = new ServiceBroker(brokerOptions('bench-client', [`127.0.0.1:${port}/${SERVER_NODE}`]));
    await broker.start();
    await broker.waitForServices('echo', 10_000);
    const call = (): Promise<unknown> => broker.call('echo.echo', benchItemBase64);
    await call();
    return { call, close: () => broker.stop() };
  },
};
