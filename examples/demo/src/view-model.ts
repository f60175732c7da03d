/**
 * The shapes the live view draws: plain JSON the demo server builds from the engines' own
 * `stats()`/`info()` and streams to the page. A panel whose engine is not running says why.
 */

export interface Unavailable {
  readonly available: false;
  readonly reason: string;
}

export interface BackendView {
  readonly id: string;
  /** Whether the demo's Pi server for it is running (the page can stop and start it). */
  readonly running: boolean;
  /** The balancer's own view, from its health checks and passive ejection. */
  readonly healthy: boolean;
  readonly downReason: string | null;
  readonly active: number;
  readonly requests: number;
  readonly errors: number;
  readonly meanMs: number | null;
  readonly p99Ms: number | null;
}

export interface BalancerView {
  readonly available: true;
  readonly url: string;
  readonly strategy: string;
  readonly strategies: readonly string[];
  readonly totals: { readonly requests: number; readonly errors: number };
  readonly backends: readonly BackendView[];
}

export interface TopicView {
  readonly topic: string;
  readonly hasValue: boolean;
  readonly value: unknown;
  readonly subscribers: number;
  readonly messages: number;
  /** Messages per second over the last few seconds. */
  readonly rate: number;
}

export interface BrokerView {
  readonly available: true;
  readonly url: string;
  /** The broker's WebSocket endpoint: the page subscribes to `/` through it. */
  readonly wsUrl: string;
  readonly totals: { readonly clients: number; readonly subscriptions: number; readonly messagesIn: number; readonly messagesOut: number };
  /** Encodings made per codec name. */
  readonly encodes: Readonly<Record<string, number>>;
  readonly topics: readonly TopicView[];
}

export interface ChordNodeView {
  readonly id: number;
  readonly address: string;
  readonly predecessor: number | null;
  readonly successor: number | null;
  /** Finger table, entry 1 first; null where unknown. */
  readonly fingers: readonly (number | null)[];
  readonly keys: number;
}

export interface ChordView {
  readonly available: true;
  readonly bits: number;
  readonly nodes: readonly ChordNodeView[];
  /** The demo's own key traffic: puts and gets issued from random nodes. */
  readonly traffic: { readonly puts: number; readonly gets: number; readonly hits: number; readonly failures: number };
}

export interface LookupView {
  readonly key: string;
  /** The key's ring id. */
  readonly id: number;
  /** Node ids visited, the first being where the lookup started. */
  readonly path: readonly number[];
  readonly owner: number;
  readonly found: boolean;
  readonly value?: unknown;
}

export interface Snapshot {
  readonly t: number;
  readonly balancer: BalancerView | Unavailable;
  readonly broker: BrokerView | Unavailable;
  readonly chord: ChordView | Unavailable;
}

/** What the web server needs from the running demo. */
export interface DemoModel {
  snapshot(): Snapshot;
  /** Switches the balancer's strategy; rejects with a typed error for an unknown id. */
  setStrategy(id: string): Promise<string>;
  /** Stops or restarts one of the demo's back-ends. */
  setBackendRunning(id: string, running: boolean): Promise<boolean>;
  /** Traces a lookup through the ring hop by hop, from node `from` (default: the first node). */
  lookup(key: string, from?: number): Promise<LookupView>;
}

export function unavailable(reason: string): Unavailable {
  return Object.freeze({ available: false, reason });
}
