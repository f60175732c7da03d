/**
 * The demo's web server: the static page, a server-sent-events feed of snapshots, and three
 * actions (switch strategy, stop or start a back-end, trace a lookup). No framework: node:http and a few routes.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { TrellisError, InvalidArgumentError, type Logger } from '@trellis/sdk';
import type { DemoModel } from './view-model.js';

const PUBLIC = new URL('../public/', import.meta.url);
const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};
const MAX_BODY = 4096;

export interface WebServerOptions {
  readonly model: DemoModel;
  /** How often a snapshot is pushed to every open page (default 500 ms). */
  readonly intervalMs?: number;
  readonly log: Logger;
}

export class WebServer {
  readonly #server: Server;
  readonly #model: DemoModel;
  readonly #clients = new Set<ServerResponse>();
  readonly #intervalMs: number;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: WebServerOptions) {
    this.#model = options.model;
    this.#intervalMs = options.intervalMs ?? 500;
    this.#log = options.log;
    this.#server = createServer((req, res) => {
      this.#route(req, res).catch((err) => this.#fail(res, err));
    });
  }

  listen(port = 0, host = '127.0.0.1'): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        this.#timer = setInterval(() => this.#broadcast(), this.#intervalMs);
        const addr = this.#server.address() as AddressInfo;
        resolve({ host: addr.address, port: addr.port });
      });
    });
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    for (const res of this.#clients) res.end();
    this.#clients.clear();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    // A browser keeps its keep-alive sockets open; without this, close() would wait for them to time out.
    this.#server.closeAllConnections();
    await closed;
  }

  stats(): { clients: number } {
    return { clients: this.#clients.size };
  }

  #broadcast(): void {
    if (this.#clients.size === 0) return;
    const data = this.#frame();
    for (const res of this.#clients) res.write(data);
  }

  #frame(): string {
    return `event: snapshot\ndata: ${JSON.stringify(this.#model.snapshot())}\n\n`;
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method === 'GET' && url.pathname === '/events') return this.#events(req, res);
    if (req.method === 'GET' && url.pathname === '/api/snapshot') return this.#json(res, 200, this.#model.snapshot());
    if (req.method === 'POST' && url.pathname === '/api/strategy') {
      const body = await readJson(req);
      if (typeof body.strategy !== 'string') throw new InvalidArgumentError('body must be {"strategy": "<id>"}');
      return this.#json(res, 200, { strategy: await this.#model.setStrategy(body.strategy) });
    }
    if (req.method === 'POST' && url.pathname === '/api/backend') {
      const body = await readJson(req);
      if (typeof body.id !== 'string' || typeof body.running !== 'boolean') throw new InvalidArgumentError('body must be {"id": "<host:port>", "running": true|false}');
      return this.#json(res, 200, { id: body.id, running: await this.#model.setBackendRunning(body.id, body.running) });
    }
    if (req.method === 'POST' && url.pathname === '/api/lookup') {
      const body = await readJson(req);
      if (typeof body.key !== 'string' || body.key.length === 0 || body.key.length > 200) throw new InvalidArgumentError('body must be {"key": "<1..200 characters>"}');
      if (body.from !== undefined && body.from !== null && !Number.isInteger(body.from)) throw new InvalidArgumentError('"from" must be a node id');
      return this.#json(res, 200, await this.#model.lookup(body.key, (body.from ?? undefined) as number | undefined));
    }
    const file = FILES[url.pathname];
    if (req.method === 'GET' && file) {
      const content = await readFile(new URL(file.file, PUBLIC));
      res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-store', 'content-length': content.length });
      res.end(content);
      return;
    }
    this.#json(res, 404, { error: `no route ${req.method} ${url.pathname}` });
  }

  #events(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    res.write(`retry: 1000\n\n${this.#frame()}`);
    this.#clients.add(res);
    req.socket.setNoDelay(true);
    res.on('close', () => this.#clients.delete(res));
  }

  #json(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  #fail(res: ServerResponse, err: unknown): void {
    const status = err instanceof InvalidArgumentError ? 400 : err instanceof TrellisError ? 409 : 500;
    if (status === 500) this.#log.error('web view request failed', err);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const message = err instanceof Error ? err.message : String(err);
    this.#json(res, status, { error: message, ...(err instanceof TrellisError ? { code: err.code } : {}) });
  }
}

/** Reads a small JSON object body; anything else is an `InvalidArgumentError` (400). */
async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new InvalidArgumentError(`request body over ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new InvalidArgumentError('request body is not JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidArgumentError('request body must be a JSON object');
  return body as Record<string, unknown>;
}
