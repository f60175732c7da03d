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
import type { Backend, RouteInfo, RoutingContext, Strategy } from '../areas/routing.js';
import { InvalidArgumentError, NoProviderError, PluginError, StateError } from '../errors.js';
import type { Logger } from '../logger.js';
import { driverOf, type PluginCallStats } from '../plugin-driver.js';
import { BackendState, backendOf, MAX_WEIGHT, type BackendAddress, type BackendStats } from './backend-state.js';
import { HealthChecker, resolveHealthCheck, type HealthCheckOptions, type ResolvedHealthCheck } from './health-checker.js';
import { NoBackendError } from './errors.js';
import type { CoreSettings, Pick, RoutingCore } from './routing-core.js';
import { HttpExchange, kBackend } from './http-exchange.js';
import { TcpSession } from './tcp-session.js';
import { listenOn } from './listen-on.js';
import { clientAddress, forwardingOf, requestHeaders, type ForwardHeader } from './forward-headers.js';
import { ClientConnection, type RawHost } from './raw/client-connection.js';
import type { UpstreamPool } from './raw/upstream-pool.js';
import { ClientLimiter } from './client-limits.js';
import { AccessLog } from './access-log.js';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { readFileSync } from 'node:fs';
import { TlsCertificates, TLS_DEFAULTS, type TlsCertificate } from './tls-certs.js';
import type { Writable } from 'node:stream';

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

/** Abuse limits for a front door on the internet; each refusal is counted in `stats()` and `/-/metrics`. */
export interface BalancerLimits {
  /** Open client connections in all; beyond it new connections are dropped at accept (default 10000, 0: none). */
  maxConnections?: number;
  /** Open connections per client address (default 1000, 0: none); beyond it a 429 (HTTP) or a close (TCP). */
  maxConnectionsPerClient?: number;
  /** Requests per second per client address, bursts up to the same number (HTTP mode; default 0: none); beyond it a 429. */
  requestsPerSecondPerClient?: number;
  /** Requests waiting for a socket to one back-end when all its connections are busy (HTTP mode; default 1024); beyond it a 503. */
  maxPendingPerBackend?: number;
}

export interface BalancerOptions {
  /** The plugin host that provides strategies. */
  host: PluginHost;
  /** Strategy id, e.g. `round-robin`; resolved once through `host.routing.createStrategy`. */
  strategy: string;
  strategyOptions?: Record<string, unknown>;
  /**
   * Back-ends in list order: `{ host, port, id?, weight?, tags? }` or
   * `"host:port[,weight=W][,tag=T]…"`.
   */
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
  /**
   * Forwarding headers HTTP mode adds (default all: `['x-forwarded', 'forwarded', 'via']`):
   * `x-forwarded` appends the client to `X-Forwarded-For` and sets `X-Forwarded-Proto`/`-Host`,
   * `forwarded` appends an RFC 7239 `Forwarded` element, `via` appends to `Via` both ways. A
   * family left out is neither added nor stripped: the client's own headers of it pass through.
   */
  forwardHeaders?: readonly ForwardHeader[];
  limits?: BalancerLimits;
  /**
   * Where to write the access log (HTTP mode, both engines): one JSON line per request, see
   * `access-log.ts` for the format. Written without blocking; the caller owns (and closes) the stream.
   */
  accessLog?: Writable;
  /**
   * TLS termination (raw HTTP engine): certificate/key PEM files, the first the default, the
   * others chosen by SNI. `reloadTls()` re-reads them (the CLI does on SIGHUP).
   */
  tls?: readonly TlsCertificate[];
  /**
   * TLS towards the back-ends (raw HTTP engine): `true` verifies their certificates against the
   * system roots, `{ ca: FILE }` against that PEM bundle. A certificate that does not verify is a
   * connect failure: the back-end is ejected and the request goes elsewhere.
   */
  backendTls?: boolean | { ca?: string };
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
  /** Open client connections. */
  clientConnections: number;
  requests: number;
  errors: number;
  retries: number;
  badRequests: number;
  noBackend: number;
  upstreamErrors: number;
  timeouts: number;
  aborted: number;
  /** Requests refused with 429 by the per-client rate limit. */
  rateLimited: number;
  /** Connections refused by the per-client connection limit. */
  clientLimited: number;
  /** Requests refused with 503 because a back-end's pending queue was full. */
  queueFull: number;
  /** Connections dropped at accept by `maxConnections`. */
  droppedConnections: number;
  healthCheck: ResolvedHealthCheck;
  /**
   * Calls into the strategy instance in use, through the guarded path: count, failures, and slow
   * calls (`select()` over `thresholdMs`, timed on a 1-in-`sampleEvery` sample). A new instance
   * (strategy change, plugin reload) starts from zero. Null when the strategy is not guarded.
   */
  strategyCalls: PluginCallStats | null;
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

type LocalCounter = 'badRequests' | 'noBackend' | 'upstreamErrors' | 'timeouts' | 'aborted' | 'retries' | 'rateLimited' | 'clientLimited' | 'queueFull' | 'droppedConnections';

/** The upstream TLS settings from `backendTls`, the CA file read once (a bad file fails here). */
function backendTls(options: BalancerOptions): { ca?: Buffer } | undefined {
  const o = options.backendTls;
  if (o === undefined || o === false) return undefined;
  if ((options.mode ?? 'http') !== 'http' || (options.engine ?? 'raw') !== 'raw') throw new InvalidArgumentError('backendTls needs HTTP mode with the raw engine');
  if (o === true || o.ca === undefined) return {};
  try {
    return { ca: readFileSync(o.ca) };
  } catch (err) {
    throw new InvalidArgumentError(`backendTls: cannot read the CA file ${o.ca}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** A limit option: a non-negative integer, `fallback` when absent. */
function limit(value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0) throw new InvalidArgumentError(`limits must be non-negative integers, got ${String(value)}`);
  return value;
}

function checkWeight(weight: unknown, what: string): number {
  if (!Number.isInteger(weight) || (weight as number) < 0 || (weight as number) > MAX_WEIGHT) {
    throw new InvalidArgumentError(`${what}: weight must be an integer in 0..${MAX_WEIGHT}, got ${JSON.stringify(weight)}`);
  }
  return weight as number;
}

const TAG = /^[\w.:\-/=]{1,64}$/;

/** Parses `{ host, port, … }` or `"host:port[,weight=W][,tag=T]…"` into a checked address. */
export function parseBackend(a: BackendAddress | string): BackendAddress {
  if (typeof a !== 'string') {
    if (!a || typeof a.host !== 'string' || !Number.isInteger(a.port) || a.port < 1 || a.port > 65535) {
      throw new InvalidArgumentError(`a back-end must be { host, port } with a port in 1..65535, got ${JSON.stringify(a)}`);
    }
    if (a.weight !== undefined) checkWeight(a.weight, `back-end ${a.host}:${a.port}`);
    if (a.tags !== undefined && (!Array.isArray(a.tags) || !a.tags.every((t) => typeof t === 'string' && TAG.test(t)))) {
      throw new InvalidArgumentError(`back-end ${a.host}:${a.port}: tags must be strings of letters, digits and _ . : - / = (1..64 characters)`);
    }
    return a;
  }
  const [addr, ...opts] = a.trim().split(',');
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(addr!.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) throw new InvalidArgumentError(`a back-end must be HOST:PORT[,weight=W][,tag=T], got "${a}"`);
  const out: BackendAddress = { host: m[1] ?? m[2]!, port };
  const tags: string[] = [];
  for (const opt of opts) {
    const eq = opt.indexOf('=');
    const key = opt.slice(0, eq).trim();
    const value = opt.slice(eq + 1).trim();
    if (eq > 0 && key === 'weight' && /^\d{1,3}$/.test(value)) out.weight = checkWeight(Number(value), `back-end "${a}"`);
    else if (eq > 0 && key === 'tag' && TAG.test(value)) tags.push(value);
    else if (eq > 0 && key === 'id' && value !== '') out.id = value;
    else throw new InvalidArgumentError(`back-end "${a}": unknown or malformed option "${opt}" (expected weight=0..${MAX_WEIGHT}, tag=NAME or id=NAME)`);
  }
  if (tags.length > 0) out.tags = tags;
  return out;
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
  /** Shared by the raw engine's connections and the TCP sessions, so `setTimeouts` reaches them. */
  #rawSettings: { headersMs: number; idleMs: number; upstreamMs: number; requestMs: number; maxHeadBytes: number; proto: 'http' | 'https' } | undefined;
  readonly #tcpOptions: { idleTimeoutMs: number; connectTimeoutMs: number };
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
  /** The strategy's plugin was reloaded (`host.reload`): new requests go to a fresh instance of the new code. */
  readonly #onProviderReplaced = (area: string, id: string): void => {
    if (area !== 'strategies' || id !== this.#strategyId || this.#closing) return;
    this.setStrategy(id, this.#strategyOptions).catch((err) => this.#pluginError('create', err));
  };
  #provider = '';
  #server: HttpServer | TcpServer | undefined;
  #address: { host: string; port: number } | null = null;
  readonly #tcpSockets = new Set<Socket>();
  readonly #tcpSessions = new Set<TcpSession>();
  readonly #rawConnections = new Set<ClientConnection>();
  /** The undici engine's client sockets (node:http keeps its own; this one counts per client). */
  readonly #httpSockets = new Set<Socket>();
  readonly #handshaking = new Set<Socket>();
  #sweeper: NodeJS.Timeout | undefined;
  #closing = false;
  #closed: Promise<void> | undefined;
  readonly #startedAt = Date.now();
  #active = 0;
  #requests = 0;
  #errors = 0;
  readonly #local: Record<LocalCounter, number> = { badRequests: 0, noBackend: 0, upstreamErrors: 0, timeouts: 0, aborted: 0, retries: 0, rateLimited: 0, clientLimited: 0, queueFull: 0, droppedConnections: 0 };
  readonly limiter: ClientLimiter;
  readonly accessLog: AccessLog | null;
  readonly tls: TlsCertificates | null;
  readonly #maxConnections: number;

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
    this.#host.on('provider-replaced', this.#onProviderReplaced);
    const t = options.timeouts ?? {};
    this.#timeouts = {
      headersMs: t.headersMs ?? 10_000,
      idleMs: t.idleMs ?? 30_000,
      upstreamMs: t.upstreamMs ?? 30_000,
      connectMs: t.connectMs ?? 3_000,
      requestMs: t.requestMs ?? 120_000,
    };
    this.#tcpOptions = { idleTimeoutMs: this.#timeouts.idleMs, connectTimeoutMs: this.#timeouts.connectMs };
    // not frozen: setTimeouts() changes retries and the upstream timeout at run time
    const forwarding = forwardingOf(options.forwardHeaders, options.via ?? 'trellis');
    if (typeof forwarding === 'string') throw new InvalidArgumentError(forwarding);
    this.settings = ({
      via: forwarding.via,
      forwarding,
      retries: Math.max(0, options.retries ?? 2),
      upstreamTimeoutMs: this.#timeouts.upstreamMs,
      pool: Object.freeze({ connections: options.connectionsPerBackend ?? 128, connectTimeoutMs: this.#timeouts.connectMs, keepAliveTimeoutMs: 4_000, maxPending: limit(options.limits?.maxPendingPerBackend, 1024), tls: backendTls(options) }),
    });
    this.#maxConnections = limit(options.limits?.maxConnections, 10_000);
    this.accessLog = options.accessLog ? new AccessLog(options.accessLog) : null;
    if (options.tls !== undefined && (this.mode !== 'http' || this.engine !== 'raw')) throw new InvalidArgumentError('TLS termination needs HTTP mode with the raw engine');
    this.tls = options.tls !== undefined ? new TlsCertificates(options.tls) : null;
    this.limiter = new ClientLimiter({ maxConnectionsPerClient: limit(options.limits?.maxConnectionsPerClient, 1000), requestsPerSecond: limit(options.limits?.requestsPerSecondPerClient, 0) });
    for (const a of options.backends ?? []) this.#addState(parseBackend(a));
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

  /** Healthy back-ends with a weight above 0, in list order. */
  /** The timeouts in force (after any `setTimeouts`). */
  get timeouts(): Readonly<Required<BalancerTimeouts>> {
    return { ...this.#timeouts };
  }

  /**
   * Changes timeouts (and the retry count) at run time, e.g. on a configuration reload. Open
   * connections and requests in flight see the new limits at their next check; a new connect
   * timeout applies to back-end pools created afterwards.
   */
  setTimeouts(timeouts: BalancerTimeouts, retries?: number): void {
    for (const [k, v] of Object.entries(timeouts)) {
      if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > 3_600_000)) throw new InvalidArgumentError(`timeouts.${k} must be an integer number of milliseconds in 0..3600000, got ${JSON.stringify(v)}`);
    }
    if (retries !== undefined && (!Number.isInteger(retries) || retries < 0 || retries > 10)) throw new InvalidArgumentError(`retries must be an integer in 0..10, got ${JSON.stringify(retries)}`);
    const t = this.#timeouts;
    Object.assign(t, Object.fromEntries(Object.entries(timeouts).filter(([, v]) => v !== undefined)));
    const s = this.settings as { -readonly [K in keyof CoreSettings]: CoreSettings[K] };
    s.upstreamTimeoutMs = t.upstreamMs;
    if (retries !== undefined) s.retries = retries;
    if (s.pool.connectTimeoutMs !== t.connectMs) s.pool = Object.freeze({ ...s.pool, connectTimeoutMs: t.connectMs });
    if (this.#rawSettings) Object.assign(this.#rawSettings, { headersMs: t.headersMs, idleMs: t.idleMs, upstreamMs: t.upstreamMs, requestMs: t.requestMs });
    this.#tcpOptions.idleTimeoutMs = t.idleMs;
    this.#tcpOptions.connectTimeoutMs = t.connectMs;
    const server = this.#server;
    if (server !== undefined && 'headersTimeout' in server) {
      server.headersTimeout = t.headersMs;
      server.requestTimeout = t.requestMs;
      server.keepAliveTimeout = t.idleMs;
    }
  }

  #usable(): Backend[] {
    const out: Backend[] = [];
    for (const s of this.#states) if (s.healthy && s.backend.weight !== 0) out.push(s.backend);
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
    const state = this.#addState(parseBackend(address));
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

  /**
   * Changes a back-end's weight at run time (0 drains it: requests in flight finish, no new
   * ones). The strategy sees the new weight at once through `setBackends`.
   */
  setWeight(id: string, weight: number): Backend {
    const state = this.#byId.get(id);
    if (!state) throw new InvalidArgumentError(`no back-end "${id}"`);
    checkWeight(weight, `back-end ${id}`);
    if (state.backend.weight !== weight) {
      state.backend = backendOf({ ...state.backend, weight });
      this.#publishBackends();
    }
    return state.backend;
  }

  /**
   * Replaces the back-end list (a configuration reload): back-ends that stay keep their state,
   * pools and counters (their weight and tags are updated), new ones are added usable, removed
   * ones leave once their requests in flight finish. One `setBackends` call for the whole change.
   */
  async setBackendList(list: readonly (BackendAddress | string)[]): Promise<void> {
    const addresses = list.map(parseBackend);
    const next: BackendState[] = [];
    const ids = new Set<string>();
    for (const a of addresses) {
      const b = backendOf(a);
      if (ids.has(b.id)) throw new InvalidArgumentError(`back-end ${b.id} is listed twice`);
      ids.add(b.id);
      const old = this.#byId.get(b.id);
      if (old !== undefined && old.backend.host === b.host && old.backend.port === b.port) {
        if (old.backend.weight !== b.weight || old.backend.tags!.join('\n') !== b.tags!.join('\n')) old.backend = b;
        next.push(old);
      } else {
        next.push(new BackendState(a));
      }
    }
    const gone = this.#states.filter((s) => !ids.has(s.backend.id) || !next.includes(s));
    this.#states.length = 0;
    this.#states.push(...next);
    this.#byId.clear();
    for (const s of next) this.#byId.set(s.backend.id, s);
    this.#publishBackends();
    await Promise.all(gone.filter((s) => s.active === 0).map((s) => s.close()));
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

  pick(ctx: RoutingContext, method: string | undefined, path: string | undefined): Pick | Error {
    if (this.#strategyGone !== undefined) return this.#strategyGone;
    const strategy = this.#strategy;
    let backend: Backend | undefined;
    try {
      const before = this.#host.routing.hooks.beforeSelect;
      if (before.taps.length > 0) before.call(ctx);
      backend = strategy.select(ctx);
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
    if (state.active === 0 && this.#byId.get(state.backend.id) !== state) void state.close();
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

  /** HTTP mode, a client over its connection limit: one 429, then the connection closes. */
  #refuseConnection(socket: Socket, ip: string): void {
    this.#local.clientLimited++;
    const body = 'Too Many Requests: too many connections from your address\n';
    const answer = `HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${body.length}\r\nretry-after: 1\r\nconnection: close\r\n\r\n${body}`;
    this.accessLog?.write({ client: ip, method: '-', path: '-', status: 429, bytes: answer.length, backend: '-', ms: 0 });
    socket.on('error', () => socket.destroy());
    socket.end(answer);
    socket.destroySoon();
  }

  /** The undici engine's per-client connection limit (the raw engine checks in its own accept path). */
  #onHttpConnection = (socket: Socket): void => {
    const ip = clientAddress(socket.remoteAddress);
    if (!this.limiter.openConnection(ip)) return this.#refuseConnection(socket, ip);
    this.#httpSockets.add(socket);
    socket.once('close', () => {
      this.#httpSockets.delete(socket);
      this.limiter.closeConnection(ip);
    });
  };

  #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url!;
    const ip = clientAddress(req.socket.remoteAddress);
    const log = this.accessLog;
    if (log !== null) {
      // one line when the response is done (or cut: 499), bytes as written to the client
      const t0 = performance.now();
      const socket = req.socket;
      const b0 = socket.bytesWritten;
      res.once('close', () => log.write({ client: ip, method: req.method ?? '-', path: url, status: res.writableFinished ? res.statusCode : 499, bytes: socket.bytesWritten - b0, backend: (res as ServerResponse & { [kBackend]?: string })[kBackend] ?? '-', ms: performance.now() - t0 }));
    }
    if (url.charCodeAt(0) !== 47 /* '/' */) {
      this.#local.badRequests++;
      const body = 'Bad Request: the request target must be a path (origin-form)\n';
      res.shouldKeepAlive = false;
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
      res.end(body);
      return;
    }
    if (!this.limiter.takeRequest(ip)) {
      this.#local.rateLimited++;
      const body = 'Too Many Requests: request rate limit for your address\n';
      res.writeHead(429, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), 'retry-after': '1' });
      res.end(body);
      return;
    }
    const h = req.headers;
    const hasBody = (h['content-length'] !== undefined && h['content-length'] !== '0') || h['transfer-encoding'] !== undefined;
    if (this.#closing) res.shouldKeepAlive = false;
    const headers = requestHeaders(req.rawHeaders, h.connection, ip, 'http', this.settings.forwarding);
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
    const answer = `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    this.accessLog?.write({ client: clientAddress(socket.remoteAddress), method: '-', path: '-', status, bytes: answer.length, backend: '-', ms: 0 });
    socket.end(answer);
    socket.destroySoon();
  };

  #onConnection = (socket: Socket): void => {
    const ip = clientAddress(socket.remoteAddress);
    if (!this.limiter.openConnection(ip)) {
      this.#local.clientLimited++;
      socket.destroy();
      return;
    }
    socket.once('close', () => this.limiter.closeConnection(ip));
    const session = new TcpSession(this, socket, this.#tcpOptions);
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
      const tls = this.tls;
      const settings = (this.#rawSettings = { headersMs: t.headersMs, idleMs: t.idleMs, upstreamMs: t.upstreamMs, requestMs: t.requestMs, maxHeadBytes: 16 * 1024, proto: tls === null ? 'http' : 'https' });
      const limiter = this.limiter;
      const onClose = (c: ClientConnection) => {
        this.#rawConnections.delete(c);
        limiter.closeConnection(c.clientIp);
      };
      // half-open allowed: a client that sends FIN after its request still gets the response
      const onSocket = (socket: Socket) => {
        const ip = clientAddress(socket.remoteAddress);
        if (!limiter.openConnection(ip)) return this.#refuseConnection(socket, ip);
        const conn = new ClientConnection(socket, this, settings, onClose);
        this.#rawConnections.add(conn);
        if (this.#closing) conn.closeIfIdle();
      };
      let raw: TcpServer | TlsServer;
      if (tls === null) raw = createTcpServer({ noDelay: true, allowHalfOpen: true }, onSocket);
      else {
        raw = createTlsServer({ ...TLS_DEFAULTS, ...tls.serverOptions, SNICallback: tls.sniCallback, allowHalfOpen: true, handshakeTimeout: t.headersMs }, onSocket);
        // sockets still in their handshake: not yet connections, closed at once on close()
        const handshaking = this.#handshaking;
        raw.on('connection', (socket: Socket) => {
          handshaking.add(socket);
          socket.once('close', () => handshaking.delete(socket));
        });
        raw.on('secureConnection', (socket: Socket) => handshaking.delete(socket));
        // a failed handshake (bad client, wrong version, timeout) concerns that client only
        raw.on('tlsClientError', (_err, socket) => {
          this.#local.badRequests++;
          socket.destroy();
        });
      }
      // one timer for every connection's deadlines, instead of timers per request
      const tick = Math.max(25, Math.min(1000, Math.floor(Math.min(t.headersMs, t.idleMs, t.upstreamMs, t.requestMs) / 4)));
      this.#sweeper = setInterval(() => {
        const now = Date.now();
        for (const c of this.#rawConnections) c.sweep(now);
        for (const s of this.#states) s.upstream?.sweep(now);
        if (limiter.size > 0) limiter.sweep(now);
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
      http.on('connection', this.#onHttpConnection);
      http.on('request', this.#onRequest);
      http.on('clientError', this.#onClientError);
      // per-client entries (connections, rate tokens) of clients that went quiet are dropped
      this.#sweeper = setInterval(() => {
        if (this.limiter.size > 0) this.limiter.sweep(Date.now());
      }, 1000);
      this.#sweeper.unref();
      server = http;
    } else {
      const tcp = createTcpServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
      tcp.on('connection', this.#onConnection);
      const tick = Math.max(25, Math.min(1000, Math.floor(this.#timeouts.idleMs / 4)));
      this.#sweeper = setInterval(() => {
        const now = Date.now();
        for (const s of this.#tcpSessions) s.sweep(now);
        if (this.limiter.size > 0) this.limiter.sweep(now);
      }, tick);
      this.#sweeper.unref();
      server = tcp;
    }
    if (this.#maxConnections > 0) {
      // beyond it, node closes new sockets at accept: file descriptors stay bounded
      server.maxConnections = this.#maxConnections;
      server.on('drop', () => this.#local.droppedConnections++);
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

  /**
   * Re-reads the TLS certificate and key files; new handshakes use them, open connections are
   * untouched. Throws (keeping the current certificates) when a file is missing or invalid.
   */
  reloadTls(): void {
    if (this.tls === null) throw new InvalidArgumentError(`balancer "${this.name}" does not terminate TLS`);
    this.tls.reload();
    const server = this.#server;
    if (server !== undefined && 'setSecureContext' in server) (server as TlsServer).setSecureContext({ ...TLS_DEFAULTS, ...this.tls.serverOptions });
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
    this.#host.off('provider-replaced', this.#onProviderReplaced);
    this.#health.stop();
    for (const t of this.#ejectTimers) clearTimeout(t);
    this.#ejectTimers.clear();
    const server = this.#server;
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      let sweep: NodeJS.Timeout | undefined;
      if (this.mode === 'http' && this.engine === 'raw') {
        for (const s of this.#handshaking) s.destroy();
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
      clientConnections: this.mode === 'tcp' ? this.#tcpSockets.size : this.engine === 'raw' ? this.#rawConnections.size : this.#httpSockets.size,
      requests: this.#requests,
      errors: this.#errors,
      ...this.#local,
      healthCheck: this.#healthOptions,
      strategyCalls: driverOf(this.#strategy)?.stats() ?? null,
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
