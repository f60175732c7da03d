/**
 * The Pi back-end of the reference: `GET /<precision>` computes π to that many digits and answers
 * a small HTML page, or JSON `{"precision","pi","server","ms"}` when the client accepts
 * `application/json`. `serial` serves one request at a time like the original, and
 * `msPerDigit` adds the original's pacing (about 1 ms per digit) so strategies differ visibly.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { computePi } from './pi.js';

export interface PiServerOptions {
  /** One request at a time, the others queue (default false). */
  serial?: boolean;
  /** Extra time per requested digit, in ms (default 0: only the real computation). */
  msPerDigit?: number;
  /** Largest precision accepted (default 20000); above it the answer is 400. */
  maxPrecision?: number;
}

export interface PiServerStats {
  server: string;
  served: number;
  rejected: number;
  queued: number;
}

const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

export class PiServer {
  readonly #options: Required<PiServerOptions>;
  readonly #server: Server;
  #name = '';
  /** Tail of the queue when serial: each request waits for the previous one. */
  #tail: Promise<void> = Promise.resolve();
  #queued = 0;
  #served = 0;
  #rejected = 0;

  constructor(options: PiServerOptions = {}) {
    this.#options = { serial: options.serial ?? false, msPerDigit: options.msPerDigit ?? 0, maxPrecision: options.maxPrecision ?? 20_000 };
    this.#server = createServer((req, res) => void this.#handle(req, res));
    this.#server.keepAliveTimeout = 10_000;
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    const a = this.#server.address() as AddressInfo;
    this.#name = `${a.address}:${a.port}`;
    return { host: a.address, port: a.port };
  }

  stats(): PiServerStats {
    return { server: this.#name, served: this.#served, rejected: this.#rejected, queued: this.#queued };
  }

  async close({ timeoutMs = 2_000 }: { timeoutMs?: number } = {}): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    const timer = setTimeout(() => this.#server.closeAllConnections(), timeoutMs);
    await closed;
    clearTimeout(timer);
  }

  /** Cuts every connection at once, like a crashed process (tests of failover). */
  async kill(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    const json = /\bapplication\/json\b/.test(req.headers.accept ?? '');
    if (req.method !== 'GET' && req.method !== 'HEAD') return this.#error(res, json, 405, `method ${req.method} is not allowed; use GET /<precision>`);
    if (path === '/healthz') return this.#send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
    const m = /^\/(\d{1,9})$/.exec(path);
    if (!m) return this.#error(res, json, 400, `expected GET /<precision> with a whole number of digits, got "${path.slice(0, 64)}"`);
    const precision = Number(m[1]);
    if (precision > this.#options.maxPrecision) return this.#error(res, json, 400, `precision ${precision} is too large; the maximum is ${this.#options.maxPrecision}`);
    if (this.#options.serial) {
      const previous = this.#tail;
      let release!: () => void;
      this.#tail = new Promise((r) => (release = r));
      this.#queued++;
      await previous;
      this.#queued--;
      try {
        if (!res.destroyed) await this.#compute(res, precision, json);
      } finally {
        release();
      }
    } else {
      await this.#compute(res, precision, json);
    }
  }

  async #compute(res: ServerResponse, precision: number, json: boolean): Promise<void> {
    const started = performance.now();
    const pi = computePi(precision);
    if (this.#options.msPerDigit > 0) await sleep(precision * this.#options.msPerDigit);
    const ms = Math.round((performance.now() - started) * 1000) / 1000;
    this.#served++;
    if (json) return this.#send(res, 200, 'application/json', JSON.stringify({ precision, pi, server: this.#name, ms }));
    const body = `<!doctype html>
<html><head><meta charset="utf-8"><title>π to ${precision} digits</title></head>
<body><h1>π to ${precision} digits</h1><p style="word-break:break-all;font-family:monospace">${pi}</p>
<p>computed by ${escapeHtml(this.#name)} in ${ms} ms</p></body></html>
`;
    this.#send(res, 200, 'text/html; charset=utf-8', body);
  }

  #error(res: ServerResponse, json: boolean, status: number, message: string): void {
    this.#rejected++;
    if (json) this.#send(res, status, 'application/json', JSON.stringify({ error: message, server: this.#name }));
    else this.#send(res, status, 'text/plain; charset=utf-8', `${message}\n`);
  }

  #send(res: ServerResponse, status: number, type: string, body: string): void {
    if (res.destroyed) return;
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'x-server': this.#name });
    res.end(body);
  }
}

export function createPiServer(options?: PiServerOptions): PiServer {
  return new PiServer(options);
}
