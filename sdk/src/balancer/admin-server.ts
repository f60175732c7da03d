/**
 * The admin port: `GET /-/stats` (JSON), `GET /-/metrics` (Prometheus text), `GET /-/health`
 * (200 while at least one back-end is up, else 503) and `GET /-/events` (a Server-Sent Events
 * feed: back-ends going down and up, strategy switches, and the stats every `statsEveryMs`).
 * Kept off the traffic port so exposing metrics never exposes the proxy, and vice versa.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { BalancerEvents, BalancerStats } from './balancer.js';
import { prometheusText } from './metrics.js';
import { listenOn } from './listen-on.js';

export interface AdminServerOptions {
  /** Period of the `stats` event on `/-/events` (default 1000 ms). */
  statsEveryMs?: number;
}

/** What the admin port reads: a balancer, or anything with its stats and events (e.g. a view over several worker processes). */
export interface AdminSource {
  stats(): BalancerStats;
  on<K extends keyof BalancerEvents>(event: K, listener: (...args: BalancerEvents[K]) => void): unknown;
  off<K extends keyof BalancerEvents>(event: K, listener: (...args: BalancerEvents[K]) => void): unknown;
}

export class AdminServer {
  readonly #balancer: AdminSource;
  readonly #statsEveryMs: number;
  #server: Server | undefined;
  /** Open `/-/events` streams, ended on close. */
  readonly #feeds = new Set<() => void>();

  constructor(balancer: AdminSource, options: AdminServerOptions = {}) {
    this.#balancer = balancer;
    this.#statsEveryMs = Math.max(50, options.statsEveryMs ?? 1000);
  }

  /** Streams balancer events to one client until it goes away. */
  #events(res: ServerResponse): void {
    const lb = this.#balancer;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    const send = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    const onDown = (backend: unknown, reason: string) => send('backend-down', { backend, reason });
    const onUp = (backend: unknown) => send('backend-up', { backend });
    const onStrategy = (id: string) => send('strategy-changed', { strategy: id });
    lb.on('backend-down', onDown);
    lb.on('backend-up', onUp);
    lb.on('strategy-changed', onStrategy);
    const timer = setInterval(() => send('stats', lb.stats()), this.#statsEveryMs);
    send('stats', lb.stats());
    const stop = () => {
      clearInterval(timer);
      lb.off('backend-down', onDown);
      lb.off('backend-up', onUp);
      lb.off('strategy-changed', onStrategy);
      this.#feeds.delete(stop);
      res.end();
    };
    this.#feeds.add(stop);
    res.once('close', stop);
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<{ host: string; port: number }> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      const send = (status: number, type: string, body: string) => {
        res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
      };
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain; charset=utf-8', 'Method Not Allowed: the admin port is read-only\n');
      const stats = this.#balancer.stats();
      switch (path) {
        case '/-/stats':
          return send(200, 'application/json', JSON.stringify(stats, null, 2) + '\n');
        case '/-/metrics':
          return send(200, 'text/plain; version=0.0.4; charset=utf-8', prometheusText(stats));
        case '/-/events':
          return this.#events(res);
        case '/-/health': {
          const up = stats.backends.filter((b) => b.healthy).length;
          return send(up > 0 ? 200 : 503, 'application/json', JSON.stringify({ up, backends: stats.backends.length }) + '\n');
        }
        default:
          return send(404, 'text/plain; charset=utf-8', 'Not Found: try /-/stats, /-/metrics, /-/health or /-/events\n');
      }
    });
    this.#server = server;
    return listenOn(server, port, host);
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    for (const stop of [...this.#feeds]) stop();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}

export function createAdminServer(balancer: AdminSource, options?: AdminServerOptions): AdminServer {
  return new AdminServer(balancer, options);
}
