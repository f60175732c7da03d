/**
 * The public shapes of the Chord node: its options, lookup results, INFO snapshot and events.
 */
import type { DhtNode, DhtRoutingFactory, DhtRoutingHooks } from '../areas/dht-routing.js';
import type { Logger } from '../logger.js';
import type { Clock } from './clock.js';
import type { DhtHash, HashName } from './hash.js';
import type { DhtPersistence } from './key-store.js';
import type { Address, TransportFactory } from './transport.js';
import type { WireMode } from './wire.js';

export interface ChordNodeOptions {
  /** Where the node's transport comes from: `udpTransport({ codec })` or a `MemoryNetwork`. */
  transport: TransportFactory;
  /**
   * The host in the node's identity and advertised address (default: the bound host). The
   * reference ring uses 'localhost', so ids are hashes of `"('localhost', 5000)"`.
   */
  identityHost?: string;
  /** Identifier bits m (default 10, as the reference). */
  bits?: number;
  /** 'fnv1a' (the reference, default) or 'sha1' (truncated to m bits), or a function. */
  hash?: HashName | DhtHash;
  /** Overrides the node id (simulations place nodes at chosen ids). */
  id?: bigint;
  /** The routing table factory (from a DHT routing plugin); absent = successor-only routing. */
  routing?: DhtRoutingFactory;
  routingOptions?: Readonly<Record<string, unknown>>;
  /** Successor list length r (default 4). */
  successors?: number;
  /** Replicas k: every key is copied to the owner's first k successors (default 2). */
  replicas?: number;
  clock?: Clock;
  /** Maintenance periods in ms (defaults: stabilize 250, fix-fingers 500, check-predecessor 500). */
  stabilizeMs?: number;
  fixFingersMs?: number;
  checkPredecessorMs?: number;
  /** Reply deadline of a node-to-node request (default 1 s). */
  rpcTimeoutMs?: number;
  /** How long a forward waits for its HOP_ACK before the next hop counts as dead (default 1 s). */
  hopTimeoutMs?: number;
  /** Deadline of a whole lookup (default 3 s). */
  lookupTimeoutMs?: number;
  /** A routed message forwarded more often than this is dropped (default 4096). */
  maxHops?: number;
  /** Run maintenance timers (default true; simulations measuring lookups switch them off). */
  maintenance?: boolean;
  /**
   * Accept a node into the tables only when its id is the hash of its advertised address (default:
   * true, unless `id` places this node at a chosen id, as simulations do).
   */
  verifyIds?: boolean;
  /** Datagrams per second accepted from one source that is not a verified ring member (default 5000; 0 = no limit). */
  rateLimit?: number;
  /** Reply bytes per second sent to one address that is not a verified ring member (default 2 MiB; 0 = no limit). */
  replyBudget?: number;
  /** Keeps the node's keys across restarts (e.g. an LMDB store); absent = memory only. */
  persistence?: DhtPersistence;
  /** Largest value stored, in (approximate encoded) bytes (default 4 MiB); larger PUTs get a NACK with the reason. */
  maxValueBytes?: number;
  /**
   * The node protocol: 'trellis' (default; versioned, checked) or 'reference', exactly the
   * original's (STABILIZE carries only an id, no request ids, no HOP_ACK/PING, no replication),
   * to share a ring with nodes of the original implementation on a trusted network.
   */
  wire?: WireMode;
  /** Observer hooks to call (`host.dhtRouting.hooks`). */
  hooks?: DhtRoutingHooks;
  logger?: Logger;
}

export interface LookupResult {
  /** The identifier looked up. */
  readonly id: bigint;
  /** The node responsible for it: successor(id). */
  readonly node: DhtNode;
  /** Node-to-node forwards until the owner had the message. */
  readonly hops: number;
  /** Forwards before the last step to the owner: the Chord paper's path length. */
  readonly routeHops: number;
  /** The nodes the lookup passed through, origin first, owner last (when traced). */
  readonly path: readonly DhtNode[];
}

export interface DhtInfo {
  readonly id: bigint;
  readonly address: Address;
  readonly bits: number;
  readonly predecessor: DhtNode | undefined;
  readonly successors: readonly DhtNode[];
  readonly fingers: readonly (DhtNode | undefined)[];
  readonly keys: number;
}

export interface ChordNodeEvents {
  /** The first successor changed. */
  'successor-changed': [successor: DhtNode, previous: DhtNode];
  'predecessor-changed': [predecessor: DhtNode | undefined, previous: DhtNode | undefined];
  /** A lookup started here finished. */
  lookup: [result: LookupResult];
  /** A datagram was dropped: undecodable, wrong shape, unknown method. */
  dropped: [from: Address, reason: string];
  /** A peer stopped answering and was removed from the tables. */
  'peer-failed': [node: DhtNode];
  /** The routing table was swapped (`setRouting`): `policy` null means successor-only routing. */
  'routing-changed': [policy: string | null, reason: string];
  /** The node finished closing. */
  closed: [];
}
