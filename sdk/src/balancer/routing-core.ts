/**
 * The part of the balancer the per-request and per-connection code talks to: pick a back-end
 * through the cached strategy, settle the outcome exactly once, eject a failing back-end.
 * Keeping it an interface lets the HTTP and TCP paths stay free of lifecycle concerns.
 */
import type { RoutingContext, Strategy } from '../areas/routing.js';
import type { BackendState, PoolOptions } from './backend-state.js';
import type { Forwarding } from './forward-headers.js';

/** One routing decision: the back-end and the strategy instance that chose it. */
export interface Pick {
  readonly state: BackendState;
  /** `update()` goes to this instance even if the balancer switched strategy meanwhile. */
  readonly strategy: Strategy;
  readonly startedAt: number;
}

export interface RoutingCore {
  /**
   * A back-end for the next request/connection, or an error response to give instead. `ctx` is
   * the connection's routing context, already filled for this request.
   */
  pick(ctx: RoutingContext, method: string | undefined, path: string | undefined): Pick | Error;
  /** Reports the end of a pick: strategy update, counters, observer hooks, events. */
  settle(pick: Pick, ok: boolean, status: number, method: string | undefined, path: string | undefined): void;
  /** Passive ejection after a connect-type failure. */
  eject(state: BackendState, reason: string): void;
  /** Counts an answer the balancer gave itself (400, 502, 503, 504) and client aborts. */
  countLocal(kind: 'badRequests' | 'noBackend' | 'upstreamErrors' | 'timeouts' | 'aborted' | 'retries' | 'rateLimited' | 'clientLimited' | 'queueFull' | 'droppedConnections'): void;
  readonly settings: CoreSettings;
  readonly closing: boolean;
}

export interface CoreSettings {
  /** `1.1 NAME` for `Via`, or '' when the balancer adds no `Via`. */
  readonly via: string;
  /** The forwarding headers added to requests (`via` is the same as above). */
  readonly forwarding: Forwarding;
  /** Extra attempts on another back-end for safe requests (default 2). */
  readonly retries: number;
  /** Max wait for the back-end's response headers, and between body chunks. */
  readonly upstreamTimeoutMs: number;
  readonly pool: PoolOptions;
}
