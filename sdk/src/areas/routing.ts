/**
 * The routing hook area: load-balancing strategies. A strategy gets the back-end list and
 * answers `select()`; the engine reports each outcome back with `update()`. Lifecycle hooks let
 * other plugins observe requests and back-end health without being on the critical path.
 */
import { SyncHook } from 'tapable';
import { ContributionRegistry, bindRegistry, type AreaHost } from './registry.js';
import { guardHooks } from '../taps.js';
import { PluginError } from '../errors.js';

/** One upstream server. `id` is stable (`host:port` by default) and unique in a balancer. */
export interface Backend {
  readonly id: string;
  readonly host: string;
  readonly port: number;
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
  /** The back-end for the next request; `undefined` when no back-end is usable. */
  select(): Backend | undefined;
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

/** The host side of the routing area: resolve a strategy once, then call it directly. */
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
   * object is the plugin's own: engines call it on the hot path without indirection.
   */
  async createStrategy(id: string, init: StrategyInit): Promise<Strategy> {
    const plugin = await this.#host.activateContributor('strategies', id);
    const entry = this.#registry.get(id);
    if (!entry) throw new PluginError(plugin, `strategy:${id}`, new Error('the plugin activated but did not register this strategy'));
    try {
      const strategy = entry.value({ backends: Object.freeze([...init.backends]), options: Object.freeze({ ...init.options }) });
      for (const method of ['select', 'update', 'setBackends'] as const) {
        if (typeof strategy?.[method] !== 'function') throw new TypeError(`the strategy has no ${method}() method`);
      }
      return strategy;
    } catch (err) {
      throw err instanceof PluginError ? err : new PluginError(entry.plugin, `strategy:${id}`, err);
    }
  }

  /** The plugin that provides strategy `id`, if any plugin declares it. */
  providerOf(id: string): string | undefined {
    return this.#host.contributors('strategies').get(id);
  }
}
