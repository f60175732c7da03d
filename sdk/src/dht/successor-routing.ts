/**
 * The routing table a node uses without a routing plugin: it knows nothing beyond the successor,
 * so every lookup walks the ring one successor at a time (O(N) hops). It makes the plugin's worth
 * measurable.
 */
import type { DhtRoutingFactory, DhtRoutingTable } from '../areas/dht-routing.js';

const EMPTY: readonly never[] = Object.freeze([]);

export const successorRouting: DhtRoutingFactory = (): DhtRoutingTable =>
  Object.freeze({
    closestPrecedingNode: () => undefined,
    successorChanged: () => undefined,
    nodeFailed: () => undefined,
    refresh: () => EMPTY,
    update: () => undefined,
    entries: () => EMPTY,
  });
