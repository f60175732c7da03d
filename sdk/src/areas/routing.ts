/**
 * The routing hook area: load-balancing strategies. A strategy gets the back-end list and
 * answers `select()`; the engine reports each outcome back with `update()`. Lifecycle hooks let
 * other plugins observe requests and back-end health without being on the critical path.
 */
import { SyncHook } from 'tapable';
import { ContributionRegistry, bindRegistry, type AreaHost } from './registry.js';
import { guardHooks } from '../taps.js';
import { PluginDriver, guardStrategy } from '../plugin-driver.js';

const STRATEGY_METHODS = ['select', 'update', 'setBackends'] as const;
import { PluginError } from '../errors.js';

/** One upstream server. `id` is stable (`host:port` by default) and unique in a balancer. */
export interface Backend {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  /**
   * Relative share of traffic, an integer 1..256 (default 1), as HAProxy's `weight`. Each
   * strategy states how it honours it; with every weight equal the picks are the unweighted
   * ones. A weight of 0 (drain) keeps the back-end out of the usable list entirely.
   */
  readonly weight?: number;
  /** Free-form labels (`group:api`, `zone:a`…) that custom strategies may route on. */
  readonly tags?: readonly string[];
}

/**
 * What a strategy may see about the request (HTTP mode) or connection (TCP mode) it routes.
 *
 * The engine keeps **one object per client connection** and refills it just before each
 * `select(ctx)`: fields are computed on first read (lazily), so a strategy that ignores `ctx`
 * costs nothing. The object is only valid during the `select()` call that received it; copy what
 * you need, never keep the object.
 */
export interface RoutingContext {
  readonly mode: 'http' | 'tcp';
  /** The client's IP address (IPv4-mapped IPv6 addresses unwrapped: `127.0.0.1`). */
  readonly clientAddress: string;
  readonly clientPort: number;
  /** HTTP mode: the request method (`GET`…); `undefined` in TCP mode. */
  readonly method: string | undefined;
  /** HTTP mode: the `Host` header as sent (may carry `:port`); `undefined` in TCP mode or when absent. */
  readonly host: string | undefined;
  /** HTTP mode: the request path, without the query string; `undefined` in TCP mode. */
  readonly path: string | undefined;
  /**
   * HTTP mode: a request header by case-insensitive name; several fields of the same name are
   * joined with `, ` (`; ` for `cookie`). Always `undefined` in TCP mode. See `cookieValue()`.
   */
  header(name: string): string | undefined;
  /** HTTP mode: cookie `name` from the `Cookie` header(s), unquoted; `undefined` when absent. */
  cookie(name: string): string | undefined;
  /**
   * Room for a precomputed hash key: `undefined` at the start of each request. A `beforeSelect`
   * observer may set it (e.g. a tenant id from a token), and hashing strategies use it instead of
   * their own key source.
   */
  hashKey: string | undefined;
  /**
   * HTTP mode: asks the engine to add a response header to the answer of this request (e.g. a
   * sticky-session `set-cookie`). Ignored in TCP mode. `name` and `value` must be valid field
   * text (no CR/LF); invalid ones are dropped.
   */
  addResponseHeader(name: string, value: string): void;
}

/** How a request (HTTP mode) or connection (TCP mode) routed to a back-end ended. */
export interface Outcome {
  /** Time from start to end, in milliseconds. */
  readonly durationMs: number;
  /** False when the back-end failed (connect error, reset, timeout, 5xx in HTTP mode). */
  readonly ok: boolean;
}

/**
 * A strategy instance, created per balancer. The engine calls `select()` once per request (HTTP)
 * or connection (TCP), and exactly one `update()` for every back-end that `select()` returned.
 */
export interface Strategy {
  /**
   * The back-end for the next request; `undefined` when no back-end is usable. `ctx` describes
   * the request or connection (see `RoutingContext`); strategies that do not need it may declare
   * `select()` without a parameter. The engines always pass it; a direct caller (a test, an app
   * driving a strategy by hand) may omit it, so a strategy that reads it handles `undefined` as
   * "nothing known about the request" (`createRoutingContext()` builds one for such callers).
   */
  select(ctx?: RoutingContext): Backend | undefined;
  /** The request or connection routed to `backend` by an earlier `select()` has ended. */
  update(backend: Backend, outcome: Outcome): void;
  /**
   * The usable back-ends changed (added, removed, marked down or up), in list order. State for
   * back-ends that stay (counters, averages, in-flight starts) must be kept, keyed by `id`.
   */
  setBackends(backends: readonly Backend[]): void;
}

export interface StrategyInit {
  /** The usable back-ends, in list order. */
  readonly backends: readonly Backend[];
  /** Strategy-specific options from the embedding app or CLI. */
  readonly options: Readonly<Record<string, unknown>>;
}

/** What a plugin registers: a factory, called once per balancer that uses the strategy. */
export type StrategyFactory = (init: StrategyInit) => Strategy;

/** Describes one request or connection for the observer hooks. */
export interface RouteInfo {
  readonly balancer: string;
  readonly mode: 'http' | 'tcp';
  readonly backend: Backend;
  readonly method?: string;
  readonly path?: string;
}

/** Observer hooks for the routing area; engines call them, plugins tap them. */
export function createRoutingHooks() {
  return Object.freeze({
    /**
     * SyncHook<[RoutingContext]>: called just before `select(ctx)`, only when tapped; an observer
     * may set `ctx.hashKey` here.
     */
    beforeSelect: new SyncHook<[RoutingContext]>(['ctx']),
    /** SyncHook<[RouteInfo]>: a request or connection was routed to a back-end. */
    requestStart: new SyncHook<[RouteInfo]>(['info']),
    /** SyncHook<[RouteInfo, Outcome]>: it ended. */
    requestEnd: new SyncHook<[RouteInfo, Outcome]>(['info', 'outcome']),
    /** SyncHook<[Backend]>: a back-end became healthy. */
    backendUp: new SyncHook<[Backend]>(['backend']),
    /** SyncHook<[Backend, string]>: a back-end was marked down, with the reason. */
    backendDown: new SyncHook<[Backend, string]>(['backend', 'reason']),
  });
}
export type RoutingHooks = ReturnType<typeof createRoutingHooks>;
export type RoutingHookName = keyof RoutingHooks;

/** The host side of the routing area: resolve a strategy once, then call it through its guarded stand-in. */
export class RoutingArea {
  /** The observer hooks, shared by every balancer of this host. */
  readonly hooks: RoutingHooks = createRoutingHooks();
  readonly #registry = new ContributionRegistry<StrategyFactory>('strategies');
  readonly #host: AreaHost;

  constructor(host: AreaHost) {
    this.#host = host;
    bindRegistry(this, this.#registry);
    // every tap on the public hooks, the app's included, goes through the guarded path
    guardHooks(this.hooks, 'routing', (err) => host.reportPluginError(err));
  }

  /** Ids of every declared strategy, whether or not its plugin is active yet. */
  strategies(): string[] {
    return [...this.#host.contributors('strategies').keys()];
  }

  /**
   * Activates the contributing plugin if needed and creates a strategy instance. The returned
   * object stands in for the plugin's: its `select`, `update` and `setBackends` go through the
   * guarded path (`PluginDriver`): a throw arrives as a reported `PluginError`; `driverOf(it)`
   * gives call counts and slow calls.
   */
  async createStrategy(id: string, init: StrategyInit): Promise<Strategy> {
    const plugin = await this.#host.activateContributor('strategies', id);
    const entry = this.#registry.get(id);
    if (!entry) throw new PluginError(plugin, `strategy:${id}`, new Error('the plugin activated but did not register this strategy'));
    try {
      const strategy = entry.value({ backends: Object.freeze([...init.backends]), options: Object.freeze({ ...init.options }) });
      for (const method of STRATEGY_METHODS) {
        if (typeof strategy?.[method] !== 'function') throw new TypeError(`the strategy has no ${method}() method`);
      }
      // every call into it goes through the guarded path (PluginError with plugin id + method)
      const driver = new PluginDriver(entry.plugin, `strategy:${id}`, (err) => this.#host.reportPluginError(err));
      return guardStrategy(strategy, driver);
    } catch (err) {
      throw err instanceof PluginError ? err : new PluginError(entry.plugin, `strategy:${id}`, err);
    }
  }

  /** The plugin that provides strategy `id`, if any plugin declares it. */
  providerOf(id: string): string | undefined {
    return this.#host.contributors('strategies').get(id);
  }
}

/**
 * The value of cookie `name` in a `Cookie` header value (`a=1; b=2`), without surrounding
 * quotes; `undefined` when absent. For strategies: `cookieValue(ctx.header('cookie'), 'sid')`.
 */
export function cookieValue(cookieHeader: string | undefined, name: string): string | undefined {
  if (cookieHeader === undefined) return undefined;
  let from = 0;
  while (from < cookieHeader.length) {
    let end = cookieHeader.indexOf(';', from);
    if (end === -1) end = cookieHeader.length;
    const eq = cookieHeader.indexOf('=', from);
    if (eq !== -1 && eq < end && cookieHeader.slice(from, eq).trim() === name) {
      const v = cookieHeader.slice(eq + 1, end).trim();
      return v.length >= 2 && v.charCodeAt(0) === 34 && v.charCodeAt(v.length - 1) === 34 ? v.slice(1, -1) : v;
    }
    from = end + 1;
  }
  return undefined;
}

/** Fields for `createRoutingContext()`; all optional. */
export interface RoutingContextInit {
  mode?: 'http' | 'tcp';
  clientAddress?: string;
  clientPort?: number;
  method?: string;
  /** The request target (path and query); `path` is it without the query. */
  target?: string;
  /** Request headers by name (any case). */
  headers?: Readonly<Record<string, string>>;
  hashKey?: string;
}

/**
 * A stand-alone `RoutingContext` for code that calls a strategy itself (tests, an app routing by
 * hand). Response headers asked for with `addResponseHeader` are collected in `responseHeaders`.
 */
export function createRoutingContext(init: RoutingContextInit = {}): RoutingContext & { readonly responseHeaders: [string, string][] } {
  const headers = new Map<string, string>();
  for (const [k, v] of Object.entries(init.headers ?? {})) headers.set(k.toLowerCase(), v);
  const mode = init.mode ?? (init.method !== undefined || init.target !== undefined || headers.size > 0 ? 'http' : 'tcp');
  const target = init.target ?? (mode === 'http' ? '/' : undefined);
  const q = target?.indexOf('?') ?? -1;
  const responseHeaders: [string, string][] = [];
  return {
    mode,
    clientAddress: init.clientAddress ?? '127.0.0.1',
    clientPort: init.clientPort ?? 0,
    method: init.method ?? (mode === 'http' ? 'GET' : undefined),
    host: mode === 'http' ? headers.get('host') : undefined,
    path: target === undefined ? undefined : q === -1 ? target : target.slice(0, q),
    header: (name: string) => (mode === 'http' ? headers.get(name.toLowerCase()) : undefined),
    cookie: (name: string) => (mode === 'http' ? cookieValue(headers.get('cookie'), name) : undefined),
    hashKey: init.hashKey,
    addResponseHeader(name: string, value: string) {
      if (mode === 'http') responseHeaders.push([name, value]);
    },
    responseHeaders,
  };
}
