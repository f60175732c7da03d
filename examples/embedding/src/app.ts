/**
 * An app that embeds Trellis: one plugin host with an in-process strategy plugin, a load
 * balancer in front of the app's own two HTTP services, and a broker to which the app publishes
 * every request the balancer finished — all inside this one Node process, no CLI involved.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHost, type Logger, type PluginHost } from '@trellis/sdk';
import { createBalancer, type Balancer } from '@trellis/sdk/balancer';
import { createBroker, connect, type Broker, type BrokerClient } from '@trellis/sdk/broker';
import { weightedRoundRobinPlugin, WEIGHTED_ROUND_ROBIN } from './weighted-round-robin.js';

export interface EmbeddedApp {
  readonly host: PluginHost;
  readonly balancer: Balancer;
  readonly broker: Broker;
  /** The balancer's URL. */
  readonly url: string;
  /** The broker's port, for `trellis sub --port …`. */
  readonly brokerPort: number;
  /** The app's two services, heavier one first (weight 3 vs 1). */
  readonly services: readonly string[];
  close(): Promise<void>;
}

/** One of the app's own services: answers which service it is. */
async function startService(name: string): Promise<{ server: Server; address: string }> {
  const server = createServer((req, res) => {
    const body = JSON.stringify({ service: name, path: req.url });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, address: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

export async function startEmbeddedApp({ logger }: { logger?: Logger } = {}): Promise<EmbeddedApp> {
  // builtins stay on: the broker's JSON codec comes from the shipped json plugin.
  const host = createHost({ plugins: [weightedRoundRobinPlugin], ...(logger ? { logger } : {}) });
  const services = [await startService('primary'), await startService('secondary')];
  const closers: (() => Promise<unknown>)[] = services.map((s) => () => new Promise((r) => { s.server.closeAllConnections(); s.server.close(r); }));
  const close = async () => {
    for (const fn of closers.reverse()) await fn().catch(() => undefined);
    await host.dispose();
  };
  try {
    const [primary, secondary] = services.map((s) => s.address) as [string, string];
    const balancer = await createBalancer({
      host,
      strategy: WEIGHTED_ROUND_ROBIN,
      strategyOptions: { weights: { [primary]: 3, [secondary]: 1 } },
      backends: [primary, secondary],
      name: 'embedded',
    });
    const lb = await balancer.listen(0, '127.0.0.1');
    closers.push(() => balancer.close({ timeoutMs: 1_000 }));

    const broker = createBroker({ host });
    const b = await broker.listen(0, '127.0.0.1');
    closers.push(() => broker.close({ timeoutMs: 1_000 }));
    const publisher: BrokerClient = await connect({ port: b.port, codec: 'json', plugins: host, role: 'producer' });
    closers.push(() => publisher.close());

    // Every finished request becomes a message on /requests/<back-end>.
    balancer.on('request', (e) => {
      void Promise.resolve(publisher.publish(`/requests/${e.backend.replace(/[:.]/g, '_')}`, { path: e.path ?? null, status: e.status, ms: Math.round(e.durationMs * 100) / 100 })).catch(() => undefined);
    });

    return { host, balancer, broker, url: `http://127.0.0.1:${lb.port}`, brokerPort: b.port, services: [primary, secondary], close };
  } catch (err) {
    await close();
    throw err;
  }
}
