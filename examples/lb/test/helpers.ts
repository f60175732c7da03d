/** Test helpers: Pi back-ends, a plugin host with the shipped strategies, raw and keep-alive HTTP clients. */
import { request, Agent, createServer, type Server, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { createHost, type PluginHost } from '@trellis/sdk';
import { createBalancer, type BalancerOptions, type Balancer } from '@trellis/sdk/balancer';
import { createPiServer, type PiServer, type PiServerOptions } from '../src/pi-server.js';

export async function startPis(n: number, options: PiServerOptions | ((i: number) => PiServerOptions) = {}): Promise<{ servers: PiServer[]; ports: number[] }> {
  const servers: PiServer[] = [];
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = createPiServer(typeof options === 'function' ? options(i) : options);
    servers.push(s);
    ports.push((await s.listen(0)).port);
  }
  return { servers, ports };
}

export async function startBalancer(
  ports: number[],
  options: Partial<BalancerOptions> = {},
): Promise<{ host: PluginHost; lb: Balancer; port: number; close(): Promise<void> }> {
  const host = options.host ?? createHost({ logger: silent });
  const lb = await createBalancer({ host, strategy: 'round-robin', backends: ports.map((port) => ({ host: '127.0.0.1', port })), ...options });
  const { port } = await lb.listen(0);
  return {
    host,
    lb,
    port,
    async close() {
      await lb.close({ timeoutMs: 1000 });
      await host.dispose();
    },
  };
}

export const silent = Object.freeze({
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silent,
});

export interface Reply {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/** GET (or another method) through `agent` (keep-alive) or a fresh connection. */
export function get(port: number, path: string, { agent, headers, method = 'GET', body }: { agent?: Agent; headers?: Record<string, string>; method?: string; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: agent ?? false, headers: { accept: 'application/json', ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Which Pi server answered. */
export const serverOf = (r: Reply) => (JSON.parse(r.body) as { server: string }).server;

/** Writes `data` on a raw socket and collects everything until the server closes it. */
export function raw(port: number, data: string | Buffer, { timeoutMs = 3000 } = {}): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, closed: false });
    }, timeoutMs);
    socket.on('data', (c) => (text += c.toString('latin1')));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      if ((err as NodeJS.ErrnoException).code === 'ECONNRESET') resolve({ text, closed: true });
      else reject(err);
    });
    socket.write(data);
  });
}

/** A plain HTTP server on port 0; `handler` decides everything. */
export async function startServer(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` until it is true or `timeoutMs` passes. */
export async function waitFor(check: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
