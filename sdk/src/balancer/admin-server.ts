/**
 * The admin port: `GET /-/stats` (JSON), `GET /-/metrics` (Prometheus text), `GET /-/health`
 * (200 while at least one back-end is up, else 503) and `GET /-/events` (a Server-Sent Events
 * feed: back-ends going down and up, strategy switches, and the stats every `statsEveryMs`).
 * Writes need a bearer token (`token`): `POST /-/backends/<id>/weight` (`{"weight": W}`) and
 * `POST /-/reload` (re-reads the configuration file through the `reload` callback).
 * Kept off the traffic port so exposing metrics never exposes the proxy, and vice versa.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { BalancerEvents, BalancerStats } from './balancer.js';
import type { Backend } from '../areas/routing.js';
import { prometheusText } from './metrics.js';
import { listenOn } from './listen-on.js';

export interface AdminServerOptions {
  /** Period of the `stats` event on `/-/events` (default 1000 ms). */
  statsEveryMs?: number;
  /**
   * Bearer token that admin writes (weight changes, reload) must carry in `Authorization`.
   * Without one, every write is refused with 403.
   */
  token?: string;
  /** `POST /-/reload`: re-reads and applies the configuration; resolves with a summary, rejects when refused. */
  reload?: () => Promise<unknown>;
}

const MAX_BODY = 4096;

/** Reads a small request body; undefined when it is too large. */
function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        resolve(undefined);
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', () => resolve(undefined));
  });
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** What the admin port reads: a balancer, or anything with its stats and events (e.g. a view over several worker processes). */
export interface AdminSource {
  stats(): BalancerStats;
  on<K extends keyof BalancerEvents>(event: K, listener: (...args: BalancerEvents[K]) => void): unknown;
  off<K extends keyof BalancerEvents>(event: K, listener: (...args: BalancerEvents[K]) => void): unknown;
  /** Changes a back-end's weight (`POST /-/backends/<id>/weight`); absent on views that cannot. */
  setWeight?(id: string, weight: number): Backend;
}

export class AdminServer {
  readonly #balancer: AdminSource;
  readonly #statsEveryMs: number;
  readonly #token: Buffer | undefined;
  readonly #reload: (() => Promise<unknown>) | undefined;
  #server: Server | undefined;
  /** Open `/-/events` streams, ended on close. */
  readonly #feeds = new Set<() => void>();

  constructor(balancer: AdminSource, options: AdminServerOptions = {}) {
    this.#balancer = balancer;
    this.#statsEveryMs = Math.max(50, options.statsEveryMs ?? 1000);
    this.#token = options.token ? digest(options.token) : undefined;
    this.#reload = options.reload;
  }

  /** Compares the bearer token in constant time (digests of equal length). */
  #authorized(req: IncomingMessage): boolean {
    if (this.#token === undefined) return false;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    return m !== null && timingSafeEqual(digest(m[1]!), this.#token);
  }

  async #write(req: IncomingMessage, path: string, send: (status: number, type: string, body: string) => void): Promise<void> {
    const json = (status: number, value: unknown) => send(status, 'application/json', JSON.stringify(value) + '\n');
    if (this.#token === undefined) return json(403, { error: 'admin writes are disabled: give the admin server a token (--admin-token-file or TRELLIS_ADMIN_TOKEN)' });
    if (!this.#authorized(req)) {
      req.resume();
      return json(401, { error: 'missing or wrong bearer token' });
    }
    const body = await readBody(req);
    if (body === undefined) return json(413, { error: `the body is larger than ${MAX_BODY} bytes` });
    const weight = /^\/-\/backends\/([^/]+)\/weight$/.exec(path);
    if (weight !== null) {
      let value: unknown;
      try {
        value = (JSON.parse(body) as { weight?: unknown }).weight;
      } catch {
        return json(400, { error: 'the body must be JSON: {"weight": N}' });
      }
      if (this.#balancer.setWeight === undefined) return json(404, { error: 'weights cannot be changed through this admin view' });
      try {
        const b = this.#balancer.setWeight(decodeURIComponent(weight[1]!), value as number);
        return json(200, { backend: b.id, weight: b.weight });
      } catch (err) {
        return json(/^no back-end/.test((err as Error).message) ? 404 : 400, { error: (err as Error).message });
      }
    }
    if (path === '/-/reload') {
      if (this.#reload === undefined) return json(404, { error: 'this balancer was not started from a configuration file' });
      try {
        return json(200, { reloaded: true, ...((await this.#reload()) as object) });
      } catch (err) {
        return json(422, { reloaded: false, error: (err as Error).message });
      }
    }
    return json(404, { error: 'Not Found: POST /-/backends/<id>/weight or /-/reload' });
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
      if (req.method === 'POST') return void this.#write(req, path!, send);
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain; charset=utf-8', 'Method Not Allowed: GET, HEAD, or POST for admin writes\n');
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
