/**
 * Chord rings in one process: N `ChordNode`s on a `MemoryNetwork` driven by a virtual clock, the
 * same node code as on UDP. A ring is either built by real joins (with maintenance timers) or
 * warm-started from the converged state for large N; `check()` compares every node with the
 * ring the ids imply.
 */
import type { DhtNode, DhtRoutingFactory } from '../areas/dht-routing.js';
import { createLogger, type Logger } from '../logger.js';
import { ChordNode } from './node.js';
import type { ChordNodeOptions } from './node-types.js';
import type { HashName } from './hash.js';
import { MemoryNetwork } from './memory-transport.js';

import { sameNode } from './wire.js';

export interface SimulationOptions {
  nodes: number;
  /** Identifier bits (default 32, so thousands of random ids rarely collide). */
  bits?: number;
  /** Routing table factory; absent = successor-only routing. */
  routing?: DhtRoutingFactory;
  successors?: number;
  replicas?: number;
  /** Key hash (default 'sha1': FNV-1a puts similar short keys on a handful of nodes at 64 bits). */
  hash?: HashName;
  /** Seed of the id generator (default 1). */
  seed?: number;
  /** Maintenance timers and timeouts, in virtual ms. */
  node?: Partial<Pick<ChordNodeOptions, 'stabilizeMs' | 'fixFingersMs' | 'checkPredecessorMs' | 'rpcTimeoutMs' | 'hopTimeoutMs' | 'lookupTimeoutMs' | 'maxHops'>>;
  logger?: Logger;
}

export interface RingCheck {
  /** Live nodes whose successor, predecessor and routing entries all match the ideal ring. */
  correct: number;
  live: number;
  wrongSuccessor: number;
  wrongPredecessor: number;
  wrongFingers: number;
}

/** A small deterministic PRNG (mulberry32) so runs are reproducible. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Simulation {
  readonly network: MemoryNetwork;
  readonly nodes: ChordNode[] = [];
  readonly bits: number;
  readonly random: () => number;
  readonly #options: SimulationOptions;
  readonly #log: Logger;

  constructor(options: SimulationOptions) {
    this.#options = options;
    this.bits = options.bits ?? 32;
    this.random = seededRandom(options.seed ?? 1);
    this.network = new MemoryNetwork();
    this.#log = options.logger ?? createLogger('trellis:dht:sim', 'error');
  }

  get clock() {
    return this.network.clock;
  }

  /** A random id in [0, 2^bits) not used by any node yet. */
  randomId(taken: Set<bigint>): bigint {
    for (;;) {
      let id = 0n;
      for (let b = 0; b < this.bits; b += 24) id = (id << 24n) | BigInt(Math.floor(this.random() * 2 ** 24));
      id &= (1n << BigInt(this.bits)) - 1n;
      if (!taken.has(id)) {
        taken.add(id);
        return id;
      }
    }
  }

  async #spawn(id: bigint, maintenance: boolean): Promise<ChordNode> {
    const o = this.#options;
    const node = new ChordNode({
      transport: this.network,
      bits: this.bits,
      hash: o.hash ?? 'sha1',
      id,
      routing: o.routing,
      successors: o.successors ?? 4,
      replicas: o.replicas ?? 2,
      clock: this.network.clock,
      maintenance,
      logger: this.#log,
      ...o.node,
    });
    await node.listen(0, 'sim');
    this.nodes.push(node);
    return node;
  }

  /** N nodes at random ids with the converged ring state, maintenance off (for lookup measurements). */
  async warmStart({ maintenance = false } = {}): Promise<void> {
    const taken = new Set<bigint>();
    for (let i = 0; i < this.#options.nodes; i++) await this.#spawn(this.randomId(taken), maintenance);
    this.#applyIdealState(this.nodes);
  }

  #applyIdealState(nodes: ChordNode[]): void {
    const ring = [...nodes].map((n) => n.self).sort((a, b) => (a.id < b.id ? -1 : 1));
    const r = this.#options.successors ?? 4;
    const successorOf = idealSuccessor(ring);
    const index = new Map(ring.map((n, i) => [n.id, i]));
    for (const node of nodes) {
      const i = index.get(node.self.id)!;
      const succ = Array.from({ length: Math.min(r, ring.length - 1) }, (_, j) => ring[(i + 1 + j) % ring.length]!);
      node.warmStart({ predecessor: ring.length > 1 ? ring[(i - 1 + ring.length) % ring.length] : undefined, successors: succ, successorOf });
    }
  }

  /** Builds the ring by real joins, one node at a time through node 0, with maintenance on. */
  async joinAll({ settleMsPerJoin = 50 } = {}): Promise<void> {
    const taken = new Set<bigint>();
    const first = await this.#spawn(this.randomId(taken), true);
    for (let i = 1; i < this.#options.nodes; i++) {
      const node = await this.#spawn(this.randomId(taken), true);
      let settled = false;
      const joined = node.join(first.address).finally(() => (settled = true));
      await this.clock.runWhile(() => !settled, 60_000);
      await joined;
      await this.clock.advance(settleMsPerJoin);
    }
  }

  /** Runs virtual time until every live node matches the ideal ring, or `limitMs` passes. */
  async settle(limitMs: number, stepMs = 250): Promise<boolean> {
    return this.clock.runWhile(() => this.check().correct !== this.live().length, limitMs, stepMs);
  }

  live(): ChordNode[] {
    return this.nodes.filter((n) => !this.#crashed.has(n));
  }

  readonly #crashed = new Set<ChordNode>();

  /** Crashes `node` (no goodbye: its messages vanish). */
  crash(node: ChordNode): void {
    this.#crashed.add(node);
    this.network.crash(node.address);
    void node.close({ graceful: false });
  }

  /** Compares every live node with the ring its ids imply. */
  check(): RingCheck {
    return checkRing(this.live());
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.close({ graceful: false })));
  }
}

/** successor(id) over a sorted ring: the first node at or after id, wrapping. */
export function idealSuccessor(ring: readonly DhtNode[]): (id: bigint) => DhtNode {
  return (id) => {
    let lo = 0;
    let hi = ring.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ring[mid]!.id < id) lo = mid + 1;
      else hi = mid;
    }
    return ring[lo % ring.length]!;
  };
}



/** Compares each node's successor, predecessor and routing entries with the ring its members' ids imply. */
export function checkRing(nodes: readonly ChordNode[]): RingCheck {
  const ring = nodes.map((n) => n.self).sort((a, b) => (a.id < b.id ? -1 : 1));
  const successorOf = idealSuccessor(ring);
  const out: RingCheck = { correct: 0, live: nodes.length, wrongSuccessor: 0, wrongPredecessor: 0, wrongFingers: 0 };
  for (const n of nodes) {
    const info = n.info();
    const size = 1n << BigInt(info.bits);
    const i = ring.findIndex((x) => x.id === n.self.id);
    const succ = ring.length > 1 ? ring[(i + 1) % ring.length]! : n.self;
    const pred = ring.length > 1 ? ring[(i - 1 + ring.length) % ring.length] : undefined;
    let ok = true;
    if (!sameNode(info.successors[0], succ)) (out.wrongSuccessor++, (ok = false));
    if (!sameNode(info.predecessor, pred)) (out.wrongPredecessor++, (ok = false));
    const fingersOk = info.fingers.every((f, k) => sameNode(f, successorOf((n.self.id + (1n << BigInt(k))) % size)));
    if (!fingersOk) (out.wrongFingers++, (ok = false));
    if (ok) out.correct++;
  }
  return out;
}
