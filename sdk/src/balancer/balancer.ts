/**
 * The embeddable load balancer. It resolves its strategy plugin once through the plugin host's
 * routing area, then calls it directly per request (HTTP mode) or per connection (TCP mode);
 * observer hooks are called only when something taps them. It owns the back-end states, active
 * and passive health, the listening server and a graceful `close()` that drains.
 *
 * @example
 * ```ts
 * const host = createHost();
 * const lb = await createBalancer({ host, strategy: 'round-robin', backends: ['127.0.0.1:5000', '127.0.0.1:5001'] });
 * await lb.listen(8080);
 * ```
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse, STATUS_CODES } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { SafeEmitter } from '../safe-emitter.js';
import type { PluginHost } from '../plugin-host.js';
import type { Backend, RouteInfo, Strategy } from '../areas/routing.js';
import { InvalidArgumentError, NoProviderError, PluginError, StateError } from '../errors.js';
import type { Logger } from '../logger.js';
import { BackendState, type BackendAddress, type BackendStats } from './backend-state.js';
import { HealthChecker, resolveHealthCheck, type HealthCheckOptions, type ResolvedHealthCheck } from './health-checker.js';
import { NoBackendError } from './errors.js';
import type { CoreSettings, Pick, RoutingCore } from './routing-core.js';
import { HttpExchange } from './http-exchange.js';
import { TcpSession } from './tcp-session.js';
import { listenOn } from './listen-on.js';
import { clientAddress, requestHeaders } from './forward-headers.js';
import { ClientConnection, type RawHost } from './raw/client-connection.js';
import type { UpstreamPool } from './raw/upstream-pool.js';

export type BalancerMode = 'http' | 'tcp';

/**
 * How HTTP mode talks HTTP. `raw` (default): Trellis parses and frames HTTP/1.1 itself on plain
 * sockets, both sides kept alive, bodies relayed byte for byte. `undici`: node:http towards
 * clients and undici `Pool`s towards back-ends.
 */
export type HttpEngine = 'raw' | 'undici';

export interface BalancerTimeouts {
  /** A client must send complete request headers within this (default 10 s); slowloris cut-off. */
  headersMs?: number;
  /** A keep-alive client connection idle this long is closed; in TCP mode, a silent connection (default 30 s). */
  idleMs?: number;
  /** Max wait for a back-end's response headers and between body chunks (default 30 s). */
  upstreamMs?: number;
  /** Max time to connect to a back-end (default 3 s). */
  connectMs?: number;
  /** A whole client request, headers and body, must arrive within this (default 120 s). */
  requestMs?: number;
}

export interface BalancerOptions {
  /** The plugin host that provides strategies. */
  host: PluginHost;
  /** Strategy id, e.g. `round-robin`; resolved once through `host.routing.createStrategy`. */
  strategy: string;
  strategyOptions?: Record<string, unknown>;
  /** Back-ends in list order: `{ host, port, id? }` or `"host:port"`. */
  backends: readonly (BackendAddress | string)[];
  /** `http` (default): balance per request. `tcp`: per connection, bytes piped as they are. */
  mode?: BalancerMode;
  /** HTTP mode's implementation (default `raw`). */
  engine?: HttpEngine;
  /** Name used in observer hooks and metrics (default `lb`). */
  name?: string;
  /** Active health checks; `false` to disable (passive ejection then lasts `ejectMs`). */
  healthCheck?: HealthCheckOptions | false;
  /** When active checks are off, how long a passively ejected back-end stays out (default 5 s). */
  ejectMs?: number;
  /** Extra attempts on another back-end when safe (default 2). */
  retries?: number;
  timeouts?: BalancerTimeouts;
  /** Max pooled connections per back-end in HTTP mode (default 128). */
  connectionsPerBackend?: number;
  /** The `Via` pseudonym (default `trellis`). */
  via?: string;
  logger?: Logger;
}

/** The JSON `stats()` returns and `/-/stats` serves. */
export interface BalancerStats {
  name: string;
  mode: BalancerMode;
  engine: HttpEngine;
  strategy: string;
  address: { host: string; port: number } | null;
  uptimeMs: number;
  closing: boolean;
  active: number;
  /** Open client connections (raw HTTP engine and TCP mode; null with the undici engine). */
  clientConnections: number | null;
  requests: number;
  errors: number;
  retries: number;
  badRequests: number;
  noBackend: number;
  upstreamErrors: number;
  timeouts: number;
  aborted: number;
  healthCheck: ResolvedHealthCheck;
  backends: BackendStats[];
}

/** A finished request or connection, for the live feed (`balancer.on('request', …)`). */
export interface RequestEvent {
  backend: string;
  method: string | undefined;
  path: string | undefined;
  status: number;
  ok: boolean;
  durationMs: number;
}

export interface BalancerEvents {
  listening: [address: { host: string; port: number }];
  /** Emitted only when someone listens; costs nothing otherwise. */
  request: [event: RequestEvent];
  'backend-up': [backend: BackendStats];
  'backend-down': [backend: BackendStats, reason: string];
  'strategy-changed': [id: string];
  'plugin-error': [error: PluginError];
  close: [];
}

type LocalCounter = 'badRequests' | 'noBackend' | 'upstreamErrors' | 'timeouts' | 'aborted' | 'retries';

function parseAddress(a: BackendAddress | string): BackendAddress {
  if (typeof a !== 'string') {
    if (!a || typeof a.host !== 'string' || !Number.isInteger(a.port) || a.port < 1 || a.port > 65535) {
      throw new InvalidArgumentError(`a back-end must be { host, port } with a port in 1..65535, got ${JSON.stringify(a)}`);
    }
    return a;
  }
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(a.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) throw new InvalidArgumentError(`a back-end must be HOST:PORT, got "${a}"`);
  return { host: m[1] ?? m[2]!, port };
}

export class Balancer extends SafeEmitter<BalancerEvents> implements RoutingCore, RawHost {
  readonly name: string;
  readonly mode: BalancerMode;
  readonly engine: HttpEngine;
  readonly settings: CoreSettings;
  readonly #host: PluginHost;
  readonly #log: Logger;
  readonly #states: BackendState[] = [];
  readonly #byId = new Map<string, BackendState>();
  readonly #health: HealthChecker;
  readonly #healthOptions: ResolvedHealthCheck;
  readonly #ejectMs: number;
  readonly #ejectTimers = new Set<NodeJS.Timeout>();
  readonly #timeouts: Required<BalancerTimeouts>;
  #strategy!: Strategy;
  #strategyId = '';
  #strategyOptions: Record<string, unknown> = {};
  /** Set while the strategy's provider is gone (its plugin deactivated or failed): new requests get it as a 503. */
  #strategyGone: Error | undefined;
  readonly #onProviderRemoved = (area: string, id: string): void => {
    if (area !== 'strategies' || id !== this.#strategyId) return;
    this.#strategyGone = new NoProviderError('strategy', id, []);
    this.#log.warn(`strategy "${id}" was unregistered; new requests are refused until it comes back`);
  };
  readonly #onProviderAdded = (area: string, id: string): void => {
    if (area !== 'strategies' || id !== this.#strategyId || this.#strategyGone === undefined || this.#closing) return;
    // re-resolve once the registering plugin's activation has finished
    queueMicrotask(() => {
      this.setStrategy(id, this.#strategyOptions).catch((err) => this.#pluginError('create', err));
    });
  };
  #provider = '';
  #server: HttpServer | TcpServer | undefined;
  #address: { host: string; port: number } | null = null;
  readonly #tcpSockets = new Set<Socket>();
  readonly #tcpSessions = new Set<TcpSession>();
  readonly #rawConnections = new Set<ClientConnection>();
  #sweeper: NodeJS.Timeout | undefined;
  #closing = false;
  #closed: Promise<void> | undefined;
  readonly #startedAt = Date.now();
  #active = 0;
  #requests = 0;
  #errors = 0;
  readonly #local: Record<LocalCounter, number> = { badRequests: 0, noBackend: 0, upstreamErrors: 0, timeouts: 0, aborted: 0, retries: 0 };

  /** Use `createBalancer()`, which also resolves the strategy. */
  constructor(options: BalancerOptions) {
    super();
    if (!options || !options.host) throw new InvalidArgumentError('createBalancer needs { host } (a PluginHost from createHost())');
    this.#host = options.host;
    this.name = options.name ?? 'lb';
    this.mode = options.mode ?? 'http';
    if (this.mode !== 'http' && this.mode !== 'tcp') throw new InvalidArgumentError(`mode must be "http" or "tcp", got "${String(this.mode)}"`);
    this.engine = options.engine ?? 'raw';
    if (this.engine !== 'raw' && this.engine !== 'undici') throw new InvalidArgumentError(`engine must be "raw" or "undici", got "${String(this.engine)}"`);
    this.#log = options.logger ?? this.#host.log.child(this.name);
    this.#host.on('provider-removed', this.#onProviderRemoved);
    this.#host.on('provider-added', this.#onProviderAdded);
    const t = options.timeouts ?? {};
    this.#timeouts = {
      headersMs: t.headersMs ?? 10_000,
      idleMs: t.idleMs ?? 30_000,
      upstreamMs: t.upstreamMs ?? 30_000,
      connectMs: t.connectMs ?? 3_000,
      requestMs: t.requestMs ?? 120_000,
    };
    this.settings = Object.freeze({
      via: `1.1 ${options.via ?? 'trellis'}`,
      retries: Math.max(0, options.retries ?? 2),
      upstreamTimeoutMs: this.#timeouts.upstreamMs,
      pool: Object.freeze({ connections: options.connectionsPerBackend ?? 128, connectTimeoutMs: this.#timeouts.connectMs, keepAliveTimeoutMs: 4_000 }),
    });
    for (const a of options.backends ?? []) this.#addState(parseAddress(a));
    this.#ejectMs = options.ejectMs ?? 5_000;
    this.#healthOptions = resolveHealthCheck(options.healthCheck);
    this.#health = new HealthChecker(this.#healthOptions, () => this.#states, (state, reason) => this.#onProbe(state, reason));
  }

  /** @internal Resolves the strategy; `createBalancer` awaits it. */
  async init(strategy: string, strategyOptions: Record<string, unknown> = {}): Promise<this> {
    await this.setStrategy(strategy, strategyOptions);
    return this;
  }

  // ------------------------------------------------------------------ strategy

  get strategyId(): string {
    return this.#strategyId;
  }

  /**
   * Switches to strategy `id` at run time. The new instance starts from the current usable list;
   * requests in flight still report to the instance that routed them.
   */
  async setStrategy(id: string, options: Record<string, unknown> = {}): Promise<void> {
    const strategy = await this.#host.routing.createStrategy(id, { backends: this.#usable(), options });
    this.#strategy = strategy;
    this.#strategyId = id;
    this.#strategyOptions = options;
    this.#strategyGone = undefined;
    this.#provider = this.#host.routing.providerOf(id) ?? id;
    if (this.#address) this.emit('strategy-changed', id);
  }

  #usable(): Backend[] {
    const out: Backend[] = [];
    for (const s of this.#states) if (s.healthy) out.push(s.backend);
    return out;
  }

  #pluginError(hook: string, err: unknown): PluginError {
    const error = this.#host.pluginError(this.#provider, `strategy:${this.#strategyId}.${hook}`, err);
    this.emit('plugin-error', error);
    return error;
  }

  #publishBackends(): void {
    try {
      this.#strategy?.setBackends(this.#usable());
    } catch (err) {
      this.#pluginError('setBackends', err);
    }
  }

  // ------------------------------------------------------------------ back-ends

  #addState(address: BackendAddress): BackendState {
    const state = new BackendState(address);
    if (this.#byId.has(state.backend.id)) throw new InvalidArgumentError(`back-end ${state.backend.id} is listed twice`);
    this.#states.push(state);
    this.#byId.set(state.backend.id, state);
    return state;
  }

  /** Adds a back-end at the end of the list; it is usable at once. */
  addBackend(address: BackendAddress | string): Backend {
    const state = this.#addState(parseAddress(address));
    this.#publishBackends();
    return state.backend;
  }

  /** Removes a back-end; requests in flight on it finish normally. */
  async removeBackend(id: string): Promise<boolean> {
    const state = this.#byId.get(id);
    if (!state) return false;
    this.#states.splice(this.#states.indexOf(state), 1);
    this.#byId.delete(id);
    this.#publishBackends();
    if (state.active === 0) await state.close();
    return true;
  }

  backends(): Backend[] {
    return this.#states.map((s) => s.backend);
  }

  #markDown(state: BackendState, reason: string): void {
    if (!state.healthy) return;
    state.healthy = false;
    state.downReason = reason;
    state.passes = 0;
    this.#log.warn(`back-end ${state.backend.id} is down: ${reason}`);
    this.#publishBackends();
    const hook = this.#host.routing.hooks.backendDown;
    if (hook.taps.length > 0) hook.call(state.backend, reason);
    this.emit('backend-down', state.stats(), reason);
  }

  #markUp(state: BackendState): void {
    if (state.healthy) return;
    state.healthy = true;
    state.downReason = null;
    state.failures = 0;
    this.#log.info(`back-end ${state.backend.id} is up`);
    this.#publishBackends();
    const hook = this.#host.routing.hooks.backendUp;
    if (hook.taps.length > 0) hook.call(state.backend);
    this.emit('backend-up', state.stats());
  }

  #onProbe(state: BackendState, reason: string | null): void {
    if (this.#closing || this.#byId.get(state.backend.id) !== state) return;
    if (reason === null) {
      state.failures = 0;
      if (!state.healthy && ++state.passes >= this.#healthOptions.rise) this.#markUp(state);
    } else {
      state.passes = 0;
      if (state.healthy && ++state.failures >= this.#healthOptions.fall) this.#markDown(state, reason);
    }
  }

  /** Runs one round of health checks now (tests, or an operator poking `/-/health`). */
  checkHealth(): Promise<void> {
    return this.#health.runOnce();
  }

  // ------------------------------------------------------------------ RoutingCore (hot path)

  get closing(): boolean {
    return this.#closing;
  }

  pick(method: string | undefined, path: string | undefined): Pick | Error {
    if (this.#strategyGone !== undefined) return this.#strategyGone;
    const strategy = this.#strategy;
    let backend: Backend | undefined;
    try {
      backend = strategy.select();
    } catch (err) {
      return this.#pluginError('select', err);
    }
    const state = backend === undefined ? undefined : this.#byId.get(backend.id);
    if (state === undefined) {
      if (backend !== undefined) {
        // a strategy answered a back-end we do not have: close its books, report it
        try {
          strategy.update(backend, { durationMs: 0, ok: false });
        } catch {}
        return this.#pluginError('select', new Error(`returned unknown back-end "${backend.id}"`));
      }
      let down = 0;
      for (const s of this.#states) if (!s.healthy) down++;
      return new NoBackendError(this.#states.length, down);
    }
    state.active++;
    this.#active++;
    const hook = this.#host.routing.hooks.requestStart;
    if (hook.taps.length > 0) hook.call(this.#routeInfo(state.backend, method, path));
    return { state, strategy, startedAt: performance.now() };
  }

  settle(pick: Pick, ok: boolean, status: number, method: string | undefined, path: string | undefined): void {
    const durationMs = performance.now() - pick.startedAt;
    const state = pick.state;
    const outcome = { durationMs, ok };
    try {
      pick.strategy.update(state.backend, outcome);
    } catch (err) {
      this.#pluginError('update', err);
    }
    state.finish(durationMs, ok);
    this.#active--;
    this.#requests++;
    if (!ok) this.#errors++;
    const hook = this.#host.routing.hooks.requestEnd;
    if (hook.taps.length > 0) hook.call(this.#routeInfo(state.backend, method, path), outcome);
    if (this.listenerCount('request') > 0) this.emit('request', { backend: state.backend.id, method, path, status, ok, durationMs });
    if (state.active === 0 && !this.#byId.has(state.backend.id)) void state.close();
  }

  #routeInfo(backend: Backend, method: string | undefined, path: string | undefined): RouteInfo {
    return this.mode === 'http' ? { balancer: this.name, mode: 'http', backend, method, path } : { balancer: this.name, mode: 'tcp', backend };
  }

  eject(state: BackendState, reason: string): void {
    if (!state.healthy) return;
    this.#markDown(state, `ejected after ${reason}`);
    if (!this.#health.enabled) {
      // no active checks to bring it back: give it another chance after ejectMs
      const timer = setTimeout(() => {
        this.#ejectTimers.delete(timer);
        if (!this.#closing) this.#markUp(state);
      }, this.#ejectMs);
      timer.unref();
      this.#ejectTimers.add(timer);
    }
  }

  countLocal(kind: LocalCounter): void {
    this.#local[kind]++;
  }

  poolOf(state: BackendState): UpstreamPool {
    return state.upstreamPool(this.settings.pool);
  }

  // ------------------------------------------------------------------ serving

  #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url!;
    if (url.charCodeAt(0) !== 47 /* '/' */) {
      this.#local.badRequests++;
      const body = 'Bad Request: the request target must be a path (origin-form)\n';
      res.shouldKeepAlive = false;
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
      res.end(body);
      return;
    }
    const h = req.headers;
    const hasBody = (h['content-length'] !== undefined && h['content-length'] !== '0') || h['transfer-encoding'] !== undefined;
    if (this.#closing) res.shouldKeepAlive = false;
    const headers = requestHeaders(req.rawHeaders, h.connection, clientAddress(req.socket.remoteAddress), 'http', this.settings.via);
    new HttpExchange(this, req, res, headers, hasBody).start();
  };

  #onClientError = (err: NodeJS.ErrnoException, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    if (status === 408) this.#local.timeouts++;
    else this.#local.badRequests++;
    const body = `${STATUS_CODES[status]}: ${status === 408 ? 'request headers not received in time' : (err.message || 'malformed request').replace(/[\r\n]/g, ' ')}\n`;
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    socket.destroySoon();
  };

  #onConnection = (socket: Socket): void => {
    const session = new TcpSession(this, socket, { idleTimeoutMs: this.#timeouts.idleMs, connectTimeoutMs: this.#timeouts.connectMs });
    this.#tcpSockets.add(socket);
    this.#tcpSessions.add(session);
    socket.once('close', () => {
      this.#tcpSockets.delete(socket);
      this.#tcpSessions.delete(session);
    });
    session.start();
  };

  /** Starts serving; resolves with the bound address (port 0 picks a free one). */
  async listen(port = 0, host = '127.0.0.1'): Promise<{ host: string; port: number }> {
    if (this.#server) throw new StateError(`balancer "${this.name}" is already listening`);
    if (this.#closing) throw new StateError(`balancer "${this.name}" is closed`);
    let server: HttpServer | TcpServer;
    if (this.mode === 'http' && this.engine === 'raw') {
      const t = this.#timeouts;
      const settings = Object.freeze({ headersMs: t.headersMs, idleMs: t.idleMs, upstreamMs: t.upstreamMs, requestMs: t.requestMs, maxHeadBytes: 16 * 1024 });
      const onClose = (c: ClientConnection) => this.#rawConnections.delete(c);
      const raw = createTcpServer({ noDelay: true }, (socket) => {
        const conn = new ClientConnection(socket, this, settings, onClose);
        this.#rawConnections.add(conn);
        if (this.#closing) conn.closeIfIdle();
      });
      // one timer for every connection's deadlines, instead of timers per request
      const tick = Math.max(25, Math.min(1000, Math.floor(Math.min(t.headersMs, t.idleMs, t.upstreamMs, t.requestMs) / 4)));
      this.#sweeper = setInterval(() => {
        const now = Date.now();
        for (const c of this.#rawConnections) c.sweep(now);
        for (const s of this.#states) s.upstream?.sweep(now);
      }, tick);
      this.#sweeper.unref();
      server = raw;
    } else if (this.mode === 'http') {
      const t = this.#timeouts;
      const http = createHttpServer({
        headersTimeout: t.headersMs,
        requestTimeout: t.requestMs,
        keepAliveTimeout: t.idleMs,
        connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(t.headersMs / 4))),
        noDelay: true,
      });
      http.on('request', this.#onRequest);
      http.on('clientError', this.#onClientError);
      server = http;
    } else {
      const tcp = createTcpServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
      tcp.on('connection', this.#onConnection);
      const tick = Math.max(25, Math.min(1000, Math.floor(this.#timeouts.idleMs / 4)));
      this.#sweeper = setInterval(() => {
        const now = Date.now();
        for (const s of this.#tcpSessions) s.sweep(now);
      }, tick);
      this.#sweeper.unref();
      server = tcp;
    }
    this.#server = server;
    try {
      this.#address = await listenOn(server, port, host);
    } catch (err) {
      // not bound (EADDRINUSE…): leave the balancer as it was, able to listen again
      this.#server = undefined;
      clearInterval(this.#sweeper);
      throw err;
    }
    server.on('error', (err) => this.#log.error('server error', err));
    this.#health.start();
    this.emit('listening', this.#address);
    return this.#address;
  }

  get address(): { host: string; port: number } | null {
    return this.#address;
  }

  /**
   * Stops accepting, lets requests and connections in flight finish for up to `timeoutMs`
   * (default 5 s), then cuts what is left and releases every back-end connection.
   */
  close({ timeoutMs = 5_000 }: { timeoutMs?: number } = {}): Promise<void> {
    this.#closed ??= this.#close(timeoutMs);
    return this.#closed;
  }

  async #close(timeoutMs: number): Promise<void> {
    this.#closing = true;
    this.#host.off('provider-removed', this.#onProviderRemoved);
    this.#host.off('provider-added', this.#onProviderAdded);
    this.#health.stop();
    for (const t of this.#ejectTimers) clearTimeout(t);
    this.#ejectTimers.clear();
    const server = this.#server;
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      let sweep: NodeJS.Timeout | undefined;
      if (this.mode === 'http' && this.engine === 'raw') {
        for (const c of this.#rawConnections) c.closeIfIdle();
        sweep = setInterval(() => {
          for (const c of this.#rawConnections) c.closeIfIdle();
        }, 25);
      } else if ('closeIdleConnections' in server) {
        server.closeIdleConnections();
        // responses in flight end with keep-alive off; sweep the sockets they leave idle
        sweep = setInterval(() => server.closeIdleConnections(), 25);
      } else {
        for (const s of this.#tcpSockets) if (s.isPaused() && s.bytesRead === 0) s.destroy();
      }
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
      const result = await Promise.race([closed, deadline]);
      clearTimeout(timer);
      clearInterval(sweep);
      if (result === 'timeout') {
        if ('closeAllConnections' in server) server.closeAllConnections();
        for (const s of this.#tcpSockets) s.destroy();
        for (const c of this.#rawConnections) c.socket.destroy();
        await closed;
      }
    }
    clearInterval(this.#sweeper);
    await Promise.all(this.#states.map((s) => s.close()));
    this.emit('close');
  }

  // ------------------------------------------------------------------ observability

  stats(): BalancerStats {
    return {
      name: this.name,
      mode: this.mode,
      engine: this.engine,
      strategy: this.#strategyId,
      address: this.#address,
      uptimeMs: Date.now() - this.#startedAt,
      closing: this.#closing,
      active: this.#active,
      clientConnections: this.mode === 'tcp' ? this.#tcpSockets.size : this.engine === 'raw' ? this.#rawConnections.size : null,
      requests: this.#requests,
      errors: this.#errors,
      ...this.#local,
      healthCheck: this.#healthOptions,
      backends: this.#states.map((s) => s.stats()),
    };
  }
}

/** Creates a balancer and resolves its strategy plugin (activating it if needed). */
export async function createBalancer(options: BalancerOptions): Promise<Balancer> {
  const balancer = new Balancer(options);
  try {
    return await balancer.init(options.strategy, options.strategyOptions);
  } catch (err) {
    await balancer.close({ timeoutMs: 0 });
    throw err;
  }
}
