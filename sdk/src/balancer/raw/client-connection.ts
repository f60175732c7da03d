/**
 * The raw HTTP engine's client side: one object per client connection that parses request heads
 * itself (strictly), streams request bodies upstream, relays responses byte for byte with their
 * own framing (Content-Length, chunked, or close-delimited), and keeps both sides alive between
 * requests. Skipping node:http and undici on the hot path is what makes it fast; the framing and
 * timeout rules follow RFC 9112.
 */
import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import type { Pick, RoutingCore } from '../routing-core.js';
import type { BackendState } from '../backend-state.js';
import { clientAddress } from '../forward-headers.js';
import { IDEMPOTENT_METHODS, UNREACHABLE } from '../failure-policy.js';
import { ChunkedScanner } from './chunked-scanner.js';
import { HttpRoutingContext } from '../routing-context.js';
import { HeadError, headEnd, parseRequest, parseResponse, requestForwarding, type RequestForwarding, type RequestHead, type ResponseHead } from './http-head.js';
import type { UpstreamConnection, UpstreamPool, UpstreamUser } from './upstream-pool.js';
import type { ClientLimiter } from '../client-limits.js';
import type { AccessLog } from '../access-log.js';

/** A copy of back-end bytes, which arrive in a shared read buffer (see `onUpstreamData`). */
const own = (b: Buffer): Buffer => Buffer.from(b);

export interface RawSettings {
  readonly headersMs: number;
  readonly idleMs: number;
  readonly upstreamMs: number;
  /** A request body must be complete within this, counted from its head. */
  readonly requestMs: number;
  /** Largest request or response head accepted (default 16 KiB). */
  readonly maxHeadBytes: number;
  /** What clients speak to the balancer, for X-Forwarded-Proto / Forwarded. */
  readonly proto: 'http' | 'https';
}

/** What the engine gives each connection: routing plus the pool of a back-end. */
export interface RawHost extends RoutingCore {
  poolOf(state: BackendState): UpstreamPool;
  readonly limiter: ClientLimiter;
  readonly accessLog: AccessLog | null;
}

const enum Phase {
  Head,
  Body,
  Wait,
  /** Upgraded (e.g. websocket): bytes relayed as they are until either side closes. */
  Tunnel,
  Closed,
}

export class ClientConnection {
  readonly socket: Socket;
  readonly host: RawHost;
  readonly settings: RawSettings;
  readonly clientIp: string;
  phase = Phase.Head;
  buf: Buffer | null = null;
  headSince = 0;
  /** How much of `buf` (an incomplete head) was already checked for bare CR/LF. */
  checked = 0;
  lastActive = Date.now();
  exchange: Exchange | null = null;
  bodyRemaining = 0;
  bodyScanner: ChunkedScanner | null = null;
  /** The client sent FIN: finish what was received, then close. */
  clientEnded = false;
  /** The routing context, one per connection, refilled before each pick. */
  readonly routing: HttpRoutingContext;
  /** The forwarding headers this client's requests gain. */
  readonly forwarding: RequestForwarding;
  readonly #onClose: (c: ClientConnection) => void;

  constructor(socket: Socket, host: RawHost, settings: RawSettings, onClose: (c: ClientConnection) => void) {
    this.socket = socket;
    this.host = host;
    this.settings = settings;
    this.clientIp = clientAddress(socket.remoteAddress);
    this.routing = new HttpRoutingContext(socket, this.clientIp);
    this.forwarding = requestForwarding(host.settings.forwarding, this.clientIp, settings.proto);
    this.#onClose = onClose;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('drain', () => this.exchange?.onClientDrain());
    socket.on('error', () => socket.destroy());
    socket.on('end', () => this.#onEnd());
    socket.on('close', () => {
      this.phase = Phase.Closed;
      const ex = this.exchange;
      this.exchange = null;
      ex?.onClientClose();
      this.#onClose(this);
    });
  }

  /**
   * The client half-closed (the server socket allows half-open connections): a request already
   * received still gets its response, then the connection closes; a request cut short is dropped.
   */
  #onEnd(): void {
    this.clientEnded = true;
    switch (this.phase) {
      case Phase.Wait:
        return; // answered, then closed by exchangeDone
      case Phase.Tunnel:
        this.exchange?.tunnelEnd();
        return;
      case Phase.Head:
        if (this.buf === null) {
          this.phase = Phase.Closed;
          this.socket.end();
          this.socket.destroySoon();
          return;
        }
        this.socket.destroy();
        return;
      case Phase.Closed:
        return; // already ending (a rejection being flushed)
      default:
        this.socket.destroy(); // a body that can no longer complete
    }
  }

  #onData(chunk: Buffer): void {
    this.lastActive = Date.now();
    switch (this.phase) {
      case Phase.Body:
        this.#onBody(chunk, 0);
        return;
      case Phase.Tunnel:
        this.exchange?.tunnelData(chunk);
        return;
      case Phase.Head:
        this.buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
        this.#parseHeads();
        return;
      case Phase.Wait:
        // a pipelined request: keep it for later, but do not buffer without bound
        this.buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
        if (this.buf.length > this.settings.maxHeadBytes) this.socket.pause();
        return;
      default:
        return;
    }
  }

  #parseHeads(): void {
    while (this.phase === Phase.Head && this.buf !== null) {
      let buf = this.buf;
      // the headers deadline runs from the first byte of a request, empty lines included: no
      // trickle of bytes (blank lines or header bytes) can push it back (slowloris)
      if (this.headSince === 0) this.headSince = Date.now();
      // RFC 9112 §2.2: ignore empty lines (CRLF) before a request line
      let skip = 0;
      while (skip + 1 < buf.length && buf[skip] === 13 && buf[skip + 1] === 10) skip += 2;
      if (skip > 0) {
        this.checked = Math.max(0, this.checked - skip);
        if (skip === buf.length) {
          this.buf = null;
          return;
        }
        buf = this.buf = buf.subarray(skip);
      }
      const end = headEnd(buf, 0, this.checked);
      if (end === -2) return this.#reject(400, 'bare LF or CR in the request head');
      if (end === -1) {
        if (buf.length > this.settings.maxHeadBytes) return this.#reject(431, 'request headers are too large');
        this.checked = buf.length;
        return;
      }
      this.checked = 0;
      if (end > this.settings.maxHeadBytes) return this.#reject(431, 'request headers are too large');
      this.headSince = 0;
      if (!this.host.limiter.takeRequest(this.clientIp)) {
        this.host.countLocal('rateLimited');
        this.buf = null;
        const before = this.socket.bytesWritten;
        this.reply(429, 'Too Many Requests: request rate limit for your address\n', false, 'retry-after: 1\r\n');
        this.host.accessLog?.write({ client: this.clientIp, method: '-', path: '-', status: 429, bytes: this.socket.bytesWritten - before, backend: '-', ms: 0 });
        return this.exchangeDone(false);
      }
      let req: RequestHead;
      const headText = buf.toString('latin1', 0, end);
      try {
        req = parseRequest(headText, this.forwarding);
      } catch (err) {
        if (err instanceof HeadError) return this.#reject(err.status, err.message);
        throw err;
      }
      const rest = end + 4 < buf.length ? buf.subarray(end + 4) : null;
      this.buf = null;
      const exchange = new Exchange(this, req, headText);
      this.exchange = exchange;
      if (req.chunked || req.contentLength > 0) {
        this.phase = Phase.Body;
        if (req.chunked) this.bodyScanner = new ChunkedScanner();
        else this.bodyRemaining = req.contentLength;
        if (req.expectContinue && req.minor === 1) this.socket.write('HTTP/1.1 100 Continue\r\n\r\n');
        exchange.start();
        if (rest !== null && this.exchange === exchange) this.#onBody(rest, 0);
      } else {
        this.phase = Phase.Wait;
        this.buf = rest;
        exchange.start();
      }
    }
  }

  /** Request body bytes: forward up to the end of the body, keep what follows for the next head. */
  #onBody(chunk: Buffer, from: number): void {
    const ex = this.exchange;
    let end: number;
    if (this.bodyScanner !== null) {
      end = this.bodyScanner.scan(chunk, from);
      if (end === -2) {
        ex?.onClientClose();
        return this.#reject(400, 'malformed chunked request body');
      }
    } else {
      const take = Math.min(this.bodyRemaining, chunk.length - from);
      this.bodyRemaining -= take;
      end = this.bodyRemaining === 0 ? from + take : -1;
    }
    const last = end !== -1;
    const slice = from === 0 && (end === -1 || end === chunk.length) ? chunk : chunk.subarray(from, last ? end : chunk.length);
    ex?.requestBody(slice, last);
    if (last) {
      this.bodyScanner = null;
      if (this.phase === Phase.Body) this.phase = Phase.Wait;
      if (end < chunk.length) this.buf = this.buf === null ? chunk.subarray(end) : Buffer.concat([this.buf, chunk.subarray(end)]);
    }
  }

  /** The back-end accepted an upgrade: from now on bytes pass through. Returns bytes already read. */
  startTunnel(): Buffer | null {
    this.phase = Phase.Tunnel;
    const rest = this.buf;
    this.buf = null;
    if (this.socket.isPaused()) this.socket.resume();
    return rest;
  }

  /** The exchange finished its response; keep the connection for the next request or close it. */
  exchangeDone(keepAlive: boolean): void {
    this.exchange = null;
    if (this.phase === Phase.Closed) return;
    if (!keepAlive || this.phase === Phase.Body || this.host.closing) {
      this.phase = Phase.Closed;
      this.socket.end();
      this.socket.destroySoon();
      return;
    }
    this.phase = Phase.Head;
    this.lastActive = Date.now();
    if (this.socket.isPaused()) this.socket.resume();
    if (this.buf !== null) this.#parseHeads();
    // half-closed: pipelined requests already read are served, then nothing more can come
    if (this.clientEnded && this.phase === Phase.Head) {
      this.phase = Phase.Closed;
      this.socket.end();
      this.socket.destroySoon();
    }
  }

  /** Answers a request the balancer rejects itself, and closes the connection. */
  #reject(status: number, message: string): void {
    if (status === 408) this.host.countLocal('timeouts');
    else this.host.countLocal('badRequests');
    this.buf = null;
    const before = this.socket.bytesWritten;
    this.reply(status, `${STATUS_CODES[status]}: ${message}\n`, false);
    this.host.accessLog?.write({ client: this.clientIp, method: '-', path: '-', status, bytes: this.socket.bytesWritten - before, backend: '-', ms: 0 });
    this.exchangeDone(false);
  }

  /** Writes a complete response the balancer produced itself. */
  reply(status: number, body: string, keepAlive: boolean, extra = ''): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    this.socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${this.host.settings.via !== '' ? `via: ${this.host.settings.via}\r\n` : ''}${extra}${keepAlive ? '' : 'connection: close\r\n'}\r\n${body}`,
    );
  }

  /** Timer sweep: headers timeout (slowloris), idle keep-alive, upstream timeout. */
  sweep(now: number): void {
    if (this.phase === Phase.Head) {
      if (this.headSince !== 0 && now - this.headSince > this.settings.headersMs) this.#reject(408, 'request headers not received in time');
      else if (this.headSince === 0 && now - this.lastActive > this.settings.idleMs) this.socket.destroy();
    } else if (this.exchange !== null) {
      this.exchange.sweep(now);
    }
  }

  /** Closes the connection now if it is between requests (graceful shutdown). */
  closeIfIdle(): void {
    if (this.phase === Phase.Head && this.buf === null) this.socket.destroy();
  }
}

const enum Framing {
  None,
  Length,
  Chunked,
  Close,
}

/** One request/response on a client connection, on one back-end at a time (retries move it). */
export class Exchange implements UpstreamUser {
  readonly #conn: ClientConnection;
  readonly #req: RequestHead;
  readonly #hasBody: boolean;
  /** The request head's text, for the routing context's header lookups. */
  readonly #headText: string;
  /** Response header lines the strategy asked for (e.g. a sticky cookie). */
  #extraHead = '';
  #pick: Pick | null = null;
  #pool: UpstreamPool | null = null;
  #upstream: UpstreamConnection | null = null;
  #attempts = 0;
  /** The 502 body of the attempt that failed, while a retry looks for another back-end. */
  #lastFailure: string | null = null;
  /** Body bytes received before a socket was ready. */
  #queued: Buffer[] | null = null;
  #bodyDone = false;
  #since = 0;
  readonly #startedAt = Date.now();
  #t0 = 0;
  #bytes0 = 0;
  #resBuf: Buffer | null = null;
  #res: ResponseHead | null = null;
  #framing = Framing.None;
  #remaining = 0;
  #scanner: ChunkedScanner | null = null;
  #dechunk = false;
  #clientKeepAlive = false;
  #headSent = false;
  #done = false;
  #reusedSocket = false;
  #tunnel = false;

  constructor(conn: ClientConnection, req: RequestHead, headText: string) {
    this.#conn = conn;
    this.#req = req;
    this.#headText = headText;
    if (conn.host.accessLog !== null) {
      this.#t0 = performance.now();
      this.#bytes0 = conn.socket.bytesWritten;
    }
    this.#hasBody = req.chunked || req.contentLength > 0;
    this.#bodyDone = !this.#hasBody;
  }

  start(): void {
    const host = this.#conn.host;
    const ctx = this.#conn.routing;
    ctx.fillRaw(this.#req.method, this.#req.target, this.#headText);
    const pick = host.pick(ctx, this.#req.method, this.#req.target);
    this.#extraHead = ctx.responseHeaders();
    if (pick instanceof Error && this.#lastFailure !== null) {
      // a retry found no other back-end: the failure that led here is the answer
      host.countLocal('upstreamErrors');
      this.#finishLocal(502, this.#lastFailure);
      return;
    }
    if (pick instanceof Error) {
      host.countLocal('noBackend');
      this.#finishLocal(503, `Service Unavailable: ${pick.message}\n`, 'retry-after: 1\r\n');
      return;
    }
    this.#pick = pick;
    this.#attempts++;
    this.#since = Date.now();
    this.#resBuf = null;
    this.#res = null;
    const pool = host.poolOf(pick.state);
    this.#pool = pool;
    if (!pool.acquire(this)) {
      // every connection busy and the queue full: shed load with a clear answer
      host.settle(pick, true, 503, this.#req.method, this.#req.target);
      host.countLocal('queueFull');
      this.#finishLocal(503, `Service Unavailable: back-end ${pick.state.backend.id} has too many requests waiting\n`, 'retry-after: 1\r\n');
    }
  }

  /** One access-log line for this exchange (when the log is on). */
  #log(status: number): void {
    const log = this.#conn.host.accessLog;
    if (log === null) return;
    const socket = this.#conn.socket;
    log.write({
      client: this.#conn.clientIp,
      method: this.#req.method,
      path: this.#req.target,
      status,
      bytes: socket.bytesWritten - this.#bytes0,
      backend: this.#pick?.state.backend.id ?? '-',
      ms: performance.now() - this.#t0,
    });
  }

  // ---------------------------------------------------------------- upstream side

  onUpstream(conn: UpstreamConnection, reused: boolean): void {
    if (this.#done) {
      this.#pool!.release(conn, true);
      return;
    }
    this.#upstream = conn;
    this.#reusedSocket = reused;
    this.#since = Date.now();
    const socket = conn.socket;
    const queued = this.#queued;
    // HTTP/1.1 back-ends require Host; an HTTP/1.0 client may not have sent one
    const head = this.#req.hasHost ? this.#req.upstreamHead : this.#req.upstreamHead.replace('\r\n', `\r\nhost: ${this.#pick!.state.backend.id}\r\n`);
    if (queued === null) {
      socket.write(head, 'latin1');
    } else {
      socket.cork();
      socket.write(head, 'latin1');
      for (const b of queued) socket.write(b);
      socket.uncork();
      this.#queued = null;
      if (this.#conn.socket.isPaused() && !socket.writableNeedDrain) this.#conn.socket.resume();
    }
  }

  requestBody(chunk: Buffer, last: boolean): void {
    if (last) this.#bodyDone = true;
    this.#since = Date.now(); // an upload in progress is activity, not a silent back-end
    if (this.#done) return;
    const up = this.#upstream;
    if (up === null) {
      (this.#queued ??= []).push(chunk);
      if (this.#queued.length > 16) this.#conn.socket.pause();
      return;
    }
    if (!up.socket.write(chunk)) this.#conn.socket.pause();
  }

  onUpstreamDrain(): void {
    if (!this.#done && (this.#tunnel || !this.#bodyDone) && this.#conn.socket.isPaused()) this.#conn.socket.resume();
  }

  /** The client half-closed an upgraded connection: pass the FIN on. */
  tunnelEnd(): void {
    this.#upstream?.socket.end();
  }

  /** Client bytes of an upgraded connection. */
  tunnelData(chunk: Buffer): void {
    const up = this.#upstream;
    if (up !== null && !up.socket.write(chunk)) this.#conn.socket.pause();
  }

  onClientDrain(): void {
    const up = this.#upstream;
    if (up !== null && up.socket.isPaused()) up.socket.resume();
  }

  onUpstreamData(chunk: Buffer): void {
    if (this.#tunnel) {
      if (!this.#conn.socket.write(own(chunk))) this.#upstream?.socket.pause();
      return;
    }
    this.#since = Date.now();
    if (this.#res === null) {
      const buf = this.#resBuf === null ? chunk : Buffer.concat([this.#resBuf, chunk]);
      this.#onResponseHead(buf);
      return;
    }
    this.#onResponseBody(chunk, 0);
  }

  #onResponseHead(buf: Buffer): void {
    let from = 0;
    for (;;) {
      const end = headEnd(buf, from);
      if (end === -2) return this.#fail(new HeadError(502, 'the back-end sent a bare LF or CR in its response head'), false);
      if (end === -1) {
        if (buf.length - from > this.#conn.settings.maxHeadBytes) return this.#fail(new HeadError(502, 'the back-end sent oversized headers'), false);
        this.#resBuf = own(from === 0 ? buf : buf.subarray(from));
        return;
      }
      if (end - from > this.#conn.settings.maxHeadBytes) return this.#fail(new HeadError(502, 'the back-end sent oversized headers'), false);
      let res: ResponseHead;
      try {
        res = parseResponse(buf.toString('latin1', from, end), this.#conn.host.settings.via);
      } catch (err) {
        return this.#fail(err as Error, false);
      }
      from = end + 4;
      if (res.status === 101) {
        if (this.#req.upgrade === undefined || res.upgrade === undefined) return this.#fail(new HeadError(502, 'the back-end switched protocols without being asked'), false);
        return this.#startTunnel(res, buf, from);
      }
      if (res.status >= 100 && res.status < 200) continue; // interim: the client got its own 100
      this.#resBuf = null;
      this.#res = res;
      this.#writeResponseHead(res, buf, from);
      return;
    }
  }

  /** 101: relay the answer, then join the two sockets until either side closes. */
  #startTunnel(res: ResponseHead, buf: Buffer, from: number): void {
    this.#tunnel = true;
    this.#res = res;
    this.#headSent = true;
    const socket = this.#conn.socket;
    socket.cork();
    socket.write(`HTTP/1.1 101 ${res.reason}\r\n${res.headers}connection: upgrade\r\nupgrade: ${res.upgrade}\r\n\r\n`, 'latin1');
    if (from < buf.length) socket.write(own(buf.subarray(from)));
    socket.uncork();
    const early = this.#conn.startTunnel();
    if (early !== null) this.tunnelData(early);
  }

  /** The tunnel is over (either side closed): close the other side, settle once. */
  #endTunnel(): void {
    if (this.#done) return;
    this.#done = true;
    const up = this.#upstream;
    this.#upstream = null;
    if (up !== null && !up.socket.destroyed) {
      up.user = null;
      up.socket.end();
      up.socket.destroySoon();
    }
    this.#conn.host.settle(this.#pick!, true, 101, this.#req.method, this.#req.target);
    if (this.#conn.host.accessLog !== null) this.#log(101);
    const client = this.#conn.socket;
    if (!client.destroyed) {
      client.end();
      client.destroySoon();
    }
  }

  #writeResponseHead(res: ResponseHead, buf: Buffer, from: number): void {
    const req = this.#req;
    const conn = this.#conn;
    const noBody = req.method === 'HEAD' || res.status === 204 || res.status === 304;
    this.#framing = noBody ? Framing.None : res.chunked ? Framing.Chunked : res.contentLength >= 0 ? Framing.Length : Framing.Close;
    this.#remaining = res.contentLength;
    let keepAlive = req.keepAlive && !conn.host.closing && this.#framing !== Framing.Close;
    let framingHeader = '';
    if (this.#framing === Framing.Chunked) {
      if (req.minor === 0) {
        // other codings than chunked cannot be announced to an HTTP/1.0 client
        if (res.codings !== undefined) return this.#fail(new HeadError(502, `the back-end sent Transfer-Encoding "${res.codings}" to an HTTP/1.0 client`), false);
        this.#dechunk = true; // HTTP/1.0 has no chunked coding: relay data and close
        keepAlive = false;
      } else framingHeader = `transfer-encoding: ${res.codings ?? 'chunked'}\r\n`;
      this.#scanner = new ChunkedScanner();
    } else if (noBody && res.chunked) {
      if (req.minor === 1) framingHeader = `transfer-encoding: ${res.codings ?? 'chunked'}\r\n`;
    } else if (res.contentLength >= 0) {
      framingHeader = `content-length: ${res.contentLength}\r\n`;
    }
    this.#clientKeepAlive = keepAlive;
    const connection = req.minor === 1 ? (keepAlive ? '' : 'connection: close\r\n') : keepAlive ? 'connection: keep-alive\r\n' : 'connection: close\r\n';
    const head = `HTTP/1.1 ${res.status} ${res.reason}\r\n${res.headers}${this.#extraHead}${framingHeader}${connection}\r\n`;
    const socket = conn.socket;
    this.#headSent = true;
    if (this.#framing === Framing.Length && from < buf.length && buf.length - from <= this.#remaining && buf.length - from <= 16 * 1024) {
      // the common small response: head and body in one buffer, one write, one syscall
      const bodyLen = buf.length - from;
      const out = Buffer.allocUnsafe(head.length + bodyLen);
      out.write(head, 0, 'latin1');
      buf.copy(out, head.length, from);
      const ok = socket.write(out);
      this.#remaining -= bodyLen;
      if (this.#remaining === 0) return this.#complete(true);
      if (!ok) this.#upstream?.socket.pause();
      return;
    }
    if (from < buf.length && this.#framing !== Framing.None) {
      socket.cork();
      socket.write(head, 'latin1');
      this.#onResponseBody(buf, from);
      socket.uncork();
    } else {
      socket.write(head, 'latin1');
      if (this.#framing === Framing.None) this.#complete(from === buf.length);
      else if (this.#framing === Framing.Length && this.#remaining === 0) this.#complete(true);
    }
  }

  #onResponseBody(buf: Buffer, from: number): void {
    const socket = this.#conn.socket;
    let ok = true;
    switch (this.#framing) {
      case Framing.Length: {
        const take = Math.min(this.#remaining, buf.length - from);
        if (take > 0) ok = socket.write(own(from === 0 && take === buf.length ? buf : buf.subarray(from, from + take)));
        this.#remaining -= take;
        if (this.#remaining === 0) return this.#complete(from + take === buf.length);
        break;
      }
      case Framing.Chunked: {
        let end: number;
        if (this.#dechunk) {
          end = this.#scanner!.scan(buf, from, (b, s, e) => void (ok = socket.write(own(b.subarray(s, e))) && ok));
        } else {
          end = this.#scanner!.scan(buf, from);
          if (end !== -2) ok = socket.write(own(from === 0 && (end === -1 || end === buf.length) ? buf : buf.subarray(from, end === -1 ? buf.length : end)));
        }
        if (end === -2) return this.#fail(new HeadError(502, 'the back-end sent malformed chunked framing'), false);
        if (end !== -1) return this.#complete(end === buf.length);
        break;
      }
      case Framing.Close:
        ok = socket.write(own(from === 0 ? buf : buf.subarray(from)));
        break;
      default:
        return;
    }
    if (!ok) this.#upstream?.socket.pause();
  }

  /** The response is complete. `clean`: no stray bytes followed it on the upstream socket. */
  #complete(clean: boolean): void {
    if (this.#done) return;
    this.#done = true;
    const up = this.#upstream;
    this.#upstream = null;
    const res = this.#res!;
    this.#conn.host.settle(this.#pick!, res.status < 500, res.status, this.#req.method, this.#req.target);
    if (this.#conn.host.accessLog !== null) this.#log(res.status);
    if (up !== null) {
      if (up.socket.isPaused()) up.socket.resume();
      this.#pool!.release(up, clean && res.upstreamKeepAlive && this.#framing !== Framing.Close && this.#bodyDone);
    }
    this.#conn.exchangeDone(this.#clientKeepAlive);
  }

  onUpstreamConnectError(err: NodeJS.ErrnoException): void {
    this.#fail(err, true);
  }

  onUpstreamClose(err: NodeJS.ErrnoException | undefined): void {
    if (this.#tunnel) return this.#endTunnel();
    this.#upstream = null;
    if (this.#done) return;
    if (this.#res !== null && this.#framing === Framing.Close) return this.#complete(false);
    this.#fail(err ?? Object.assign(new Error('the back-end closed the connection'), { code: 'UND_ERR_SOCKET' }), false);
  }

  /** The back-end failed this attempt: retry elsewhere when safe, else answer 502/504 or cut. */
  #fail(err: Error, connecting: boolean): void {
    if (this.#done) return;
    const host = this.#conn.host;
    const pick = this.#pick!;
    const up = this.#upstream;
    this.#upstream = null;
    if (up !== null) {
      up.user = null;
      up.socket.destroy();
    }
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const timeout = code === 'UND_ERR_HEADERS_TIMEOUT';
    // a kept-alive socket the back-end closed as we reused it is a race, not a sick back-end
    const stale = !connecting && this.#reusedSocket && this.#res === null && !timeout && !(err instanceof HeadError);
    host.settle(pick, false, 0, this.#req.method, this.#req.target);
    // ejected, the failed back-end is out of the strategy's list before a retry picks again: the
    // retry goes elsewhere while another back-end is usable. A response that breaks HTTP ejects
    // too (passive health: nothing it answers can be trusted). Not ejected: a stale kept-alive
    // socket (a keep-alive race, retried on a fresh connection) and a timeout (not retried).
    // (a back-end whose TLS certificate does not verify is as unusable as an unreachable one)
    if (connecting ? UNREACHABLE.has(code) || code.startsWith('ERR_TLS') || /CERT|SELF_SIGNED|UNABLE_TO_/.test(code) : !stale && this.#res === null && !timeout) {
      host.eject(pick.state, `${code || (err instanceof HeadError ? 'invalid response' : 'error')}: ${err.message}`);
    }
    if (this.#headSent) {
      this.#done = true;
      host.countLocal('upstreamErrors');
      if (host.accessLog !== null) this.#log(this.#res?.status ?? 502);
      this.#conn.socket.destroy();
      return;
    }
    if (stale) {
      // its siblings were likely closed by the same back-end restart: do not hand them out
      this.#pool?.flushIdle();
      this.#attempts--; // bounded: each stale socket is destroyed as it fails
    }
    // never sent (the connection failed): any method may go to another back-end, its body is
    // still queued; sent: only requests that are safe to repeat
    const safe = connecting || (!this.#hasBody && IDEMPOTENT_METHODS.has(this.#req.method) && this.#res === null && !timeout);
    if (safe && this.#attempts <= host.settings.retries) {
      host.countLocal('retries');
      this.#lastFailure = `Bad Gateway: back-end ${pick.state.backend.id} failed: ${err instanceof HeadError ? err.message : code || err.message}\n`;
      this.start();
      return;
    }
    if (timeout) {
      host.countLocal('timeouts');
      this.#finishLocal(504, `Gateway Timeout: back-end ${pick.state.backend.id} did not answer within ${host.settings.upstreamTimeoutMs} ms\n`);
    } else {
      host.countLocal('upstreamErrors');
      const why = err instanceof HeadError ? err.message : code || err.message;
      this.#finishLocal(502, `Bad Gateway: back-end ${pick.state.backend.id} failed: ${why}\n`);
    }
  }

  #finishLocal(status: number, body: string, extra = ''): void {
    this.#done = true;
    const keepAlive = this.#req.keepAlive && this.#bodyDone && !this.#conn.host.closing;
    this.#conn.reply(status, body, keepAlive, extra);
    if (this.#conn.host.accessLog !== null) this.#log(status);
    this.#conn.exchangeDone(keepAlive);
  }

  // ---------------------------------------------------------------- client side

  onClientClose(): void {
    if (this.#tunnel) return this.#endTunnel();
    if (this.#done) return;
    this.#done = true;
    const host = this.#conn.host;
    host.countLocal('aborted');
    if (host.accessLog !== null) this.#log(499);
    const up = this.#upstream;
    this.#upstream = null;
    if (up !== null) {
      up.user = null;
      up.socket.destroy();
    } else {
      this.#pool?.cancel(this);
    }
    if (this.#pick !== null) host.settle(this.#pick, true, 0, this.#req.method, this.#req.target);
  }

  sweep(now: number): void {
    if (this.#done || this.#tunnel || this.#pick === null) return;
    if (!this.#bodyDone && !this.#headSent && now - this.#startedAt > this.#conn.settings.requestMs) {
      // the client is too slow to send its body: its fault, not the back-end's
      this.#done = true;
      const up = this.#upstream;
      this.#upstream = null;
      if (up !== null) {
        up.user = null;
        up.socket.destroy();
      } else this.#pool?.cancel(this);
      this.#conn.host.settle(this.#pick, true, 408, this.#req.method, this.#req.target);
      this.#conn.host.countLocal('timeouts');
      this.#conn.reply(408, 'Request Timeout: the request body did not arrive in time\n', false);
      if (this.#conn.host.accessLog !== null) this.#log(408);
      this.#conn.exchangeDone(false);
      return;
    }
    if (now - this.#since > this.#conn.settings.upstreamMs) {
      const err = Object.assign(new Error('upstream timeout'), { code: this.#res === null ? 'UND_ERR_HEADERS_TIMEOUT' : 'UND_ERR_BODY_TIMEOUT' });
      if (this.#upstream === null) this.#pool?.cancel(this);
      this.#fail(err, false);
    }
  }
}
