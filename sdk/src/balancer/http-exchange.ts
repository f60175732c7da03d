/**
 * One proxied HTTP request: dispatched on the chosen back-end's undici pool with a raw handler
 * (no intermediate streams), response streamed to the client with backpressure, retried on
 * another back-end when that is safe, and settled exactly once whatever happens.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { Pick, RoutingCore } from './routing-core.js';
import { responseHeaders } from './forward-headers.js';
import { HttpRoutingContext } from './routing-context.js';
import { DROPPED, IDEMPOTENT_METHODS, UNREACHABLE } from './failure-policy.js';

const TIMEOUTS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
const kContext = Symbol('trellis.routingContext');
/** Set on the `ServerResponse` once a back-end is picked: the access log's `backend`. */
export const kBackend = Symbol('trellis.backend');

export class HttpExchange implements Dispatcher.DispatchHandler {
  readonly #core: RoutingCore;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #headers: string[];
  readonly #hasBody: boolean;
  #pick: Pick | undefined;
  #attempts = 0;
  #status = 0;
  #abort: ((err?: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  #settled = true;
  #clientGone = false;
  /** Response header lines the strategy asked for (e.g. a sticky cookie). */
  #extra = '';

  constructor(core: RoutingCore, req: IncomingMessage, res: ServerResponse, headers: string[], hasBody: boolean) {
    this.#core = core;
    this.#req = req;
    this.#res = res;
    this.#headers = headers;
    this.#hasBody = hasBody;
    res.once('close', () => this.#onClientClose());
  }

  /** Picks a back-end and dispatches; answers 503 itself when there is none. */
  start(): void {
    const req0 = this.#req;
    const socket = req0.socket as typeof req0.socket & { [kContext]?: HttpRoutingContext };
    // one context per client connection, refilled for each request and each retry
    const ctx = (socket[kContext] ??= new HttpRoutingContext(socket));
    ctx.fillNode(req0.method!, req0.url!, req0.headers);
    const pick = this.#core.pick(ctx, req0.method, req0.url);
    this.#extra = ctx.responseHeaders();
    if (pick instanceof Error) {
      this.#core.countLocal('noBackend');
      this.#reply(503, `Service Unavailable: ${pick.message}\n`, { 'retry-after': '1' });
      return;
    }
    this.#pick = pick;
    this.#settled = false;
    this.#attempts++;
    this.#status = 0;
    (this.#res as ServerResponse & { [kBackend]?: string })[kBackend] = pick.state.backend.id;
    const req = this.#req;
    const settings = this.#core.settings.pool;
    const pool = pick.state.httpPool(settings);
    if (pool.stats.queued >= settings.maxPending) {
      // every connection busy and the queue full: shed load with a clear answer
      this.#status = 503;
      this.#settle(true);
      this.#core.countLocal('queueFull');
      this.#reply(503, `Service Unavailable: back-end ${pick.state.backend.id} has too many requests waiting\n`, { 'retry-after': '1' });
      return;
    }
    pool.dispatch(
      {
        path: req.url!,
        method: req.method as Dispatcher.HttpMethod,
        headers: this.#headers,
        body: this.#hasBody ? req : null,
        headersTimeout: this.#core.settings.upstreamTimeoutMs,
        bodyTimeout: this.#core.settings.upstreamTimeoutMs,
      },
      this,
    );
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    if (this.#clientGone) abort(new Error('client closed the connection'));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx: the client's own 100-continue is answered by Node
    this.#status = statusCode;
    this.#resume = resume;
    const res = this.#res;
    if (this.#core.closing) res.shouldKeepAlive = false;
    const headers = responseHeaders(rawHeaders, this.#core.settings.via);
    if (this.#extra !== '') for (const line of this.#extra.split('\r\n')) if (line !== '') headers.push(line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2));
    res.writeHead(statusCode, statusText, headers);
    return true;
  }

  onData(chunk: Buffer): boolean {
    const ok = this.#res.write(chunk);
    if (!ok) this.#res.once('drain', this.#resume!);
    return ok;
  }

  onComplete(): void {
    this.#res.end();
    this.#settle(this.#status < 500);
  }

  onError(err: Error): void {
    const pick = this.#pick;
    if (this.#settled || pick === undefined) return;
    if (this.#clientGone) {
      this.#core.countLocal('aborted');
      this.#settle(true);
      return;
    }
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const connectFailure = UNREACHABLE.has(code) || DROPPED.has(code);
    this.#settle(false);
    if (connectFailure) this.#core.eject(pick.state, `${code}: ${err.message}`);
    const res = this.#res;
    if (res.headersSent) {
      // the status line is out: the only honest signal left is a cut connection
      this.#core.countLocal('upstreamErrors');
      res.destroy(err);
      return;
    }
    if (connectFailure && !this.#hasBody && IDEMPOTENT_METHODS.has(this.#req.method!) && this.#attempts <= this.#core.settings.retries) {
      this.#core.countLocal('retries');
      this.start();
      return;
    }
    if (TIMEOUTS.has(code)) {
      this.#core.countLocal('timeouts');
      this.#reply(504, `Gateway Timeout: back-end ${pick.state.backend.id} did not answer within ${this.#core.settings.upstreamTimeoutMs} ms\n`);
    } else {
      this.#core.countLocal('upstreamErrors');
      this.#reply(502, `Bad Gateway: back-end ${pick.state.backend.id} failed: ${code || err.message}\n`);
    }
  }

  #settle(ok: boolean): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#core.settle(this.#pick!, ok, this.#status, this.#req.method, this.#req.url);
  }

  #onClientClose(): void {
    if (this.#settled || this.#res.writableFinished) return;
    this.#clientGone = true;
    this.#abort?.(new Error('client closed the connection'));
  }

  #reply(status: number, body: string, extra?: Record<string, string>): void {
    const res = this.#res;
    if (res.headersSent || res.destroyed) return;
    res.shouldKeepAlive = !this.#core.closing && !this.#hasBody;
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...(this.#core.settings.via !== '' ? { via: this.#core.settings.via } : {}), ...extra });
    res.end(body);
  }
}
