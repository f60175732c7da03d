/**
 * The admin port: `GET /-/stats` (JSON), `GET /-/metrics` (Prometheus text) and
 * `GET /-/health` (200 while at least one back-end is up, else 503). Kept off the traffic port so
 * exposing metrics never exposes the proxy, and vice versa.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Balancer } from './balancer.js';
import { prometheusText } from './metrics.js';

export class AdminServer {
  readonly #balancer: Balancer;
  #server: Server | undefined;

  constructor(balancer: Balancer) {
    this.#balancer = balancer;
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
        case '/-/health': {
          const up = stats.backends.filter((b) => b.healthy).length;
          return send(up > 0 ? 200 : 503, 'application/json', JSON.stringify({ up, backends: stats.backends.length }) + '\n');
        }
        default:
          return send(404, 'text/plain; charset=utf-8', 'Not Found: try /-/stats, /-/metrics or /-/health\n');
      }
    });
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address() as AddressInfo;
    return { host: addr.address, port: addr.port };
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}

export function createAdminServer(balancer: Balancer): AdminServer {
  return new AdminServer(balancer);
}
