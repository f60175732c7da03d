/**
 * The Chord finger table (Stoica et al., SIGCOMM 2001) with the reference's semantics: m entries,
 * 1-based; entry i starts at (n + 2^(i-1)) mod 2^m and holds successor(start). The closest
 * preceding node of an id is the highest entry strictly inside the open interval (n, id), falling
 * back to entry 1 (the successor).
 */
import type { DhtNode, DhtRoutingInit, DhtRoutingTable, RefreshEntry } from '@trellis/sdk';

/** x ∈ (begin, end) on the ring; begin = end is every id except begin. */
function inOpen(begin: bigint, end: bigint, x: bigint): boolean {
  return begin < end ? begin < x && x < end : x > begin || x < end;
}

/** x ∈ [begin, end) on the ring. */
function inRightOpen(begin: bigint, end: bigint, x: bigint): boolean {
  return x === begin || inOpen(begin, end, x);
}

export class FingerTable implements DhtRoutingTable {
  readonly self: DhtNode;
  readonly bits: number;
  /** starts[i] for i = 1..m (index 0 unused, so indices read like the paper). */
  readonly #starts: bigint[];
  readonly #nodes: (DhtNode | undefined)[];

  constructor(self: DhtNode, bits: number) {
    if (!Number.isInteger(bits) || bits < 1 || bits > 160) throw new RangeError(`bits must be an integer in 1..160, got ${bits}`);
    this.self = self;
    this.bits = bits;
    const size = 1n << BigInt(bits);
    this.#starts = [0n];
    for (let i = 1; i <= bits; i++) this.#starts.push((self.id + (1n << BigInt(i - 1))) % size);
    this.#nodes = new Array(bits + 1).fill(undefined);
  }

  /** The start of entry `i` (1-based). */
  start(i: number): bigint {
    this.#check(i);
    return this.#starts[i]!;
  }

  /** The entry whose interval [start_i, start_(i+1)) contains `id` (the reference's index lookup). */
  entryFor(id: bigint): number {
    for (let i = this.bits; i >= 1; i--) {
      const end = i === this.bits ? this.self.id : this.#starts[i + 1]!;
      if (inRightOpen(this.#starts[i]!, end, id)) return i;
    }
    return 1;
  }

  /** The node entry `i` holds. */
  node(i: number): DhtNode | undefined {
    this.#check(i);
    return this.#nodes[i];
  }

  closestPrecedingNode(id: bigint): DhtNode | undefined {
    const n = this.self.id;
    for (let i = this.bits; i >= 1; i--) {
      const node = this.#nodes[i];
      if (node !== undefined && inOpen(n, id, node.id)) return node;
    }
    return this.#nodes[1];
  }

  successorChanged(successor: DhtNode): void {
    // successor(start) is the successor for every start in (n, successor]
    for (let i = 1; i <= this.bits; i++) {
      const s = this.#starts[i]!;
      if (s === successor.id || inOpen(this.self.id, successor.id, s)) this.#nodes[i] = successor;
      else break;
    }
  }

  nodeFailed(node: DhtNode): void {
    for (let i = 1; i <= this.bits; i++) {
      const held = this.#nodes[i];
      if (held && held.id === node.id && held.port === node.port && held.host === node.host) this.#nodes[i] = undefined;
    }
  }

  refresh(): readonly RefreshEntry[] {
    const out: RefreshEntry[] = [];
    for (let i = 1; i <= this.bits; i++) out.push({ index: i, start: this.#starts[i]!, node: this.#nodes[i] });
    return out;
  }

  update(index: number, node: DhtNode): void {
    this.#check(index);
    this.#nodes[index] = node;
  }

  entries(): readonly (DhtNode | undefined)[] {
    return this.#nodes.slice(1);
  }

  #check(i: number): void {
    if (!Number.isInteger(i) || i < 1 || i > this.bits) throw new RangeError(`finger index must be 1..${this.bits}, got ${i}`);
  }
}

/** The routing factory the plugin registers. */
export function createFingerTable(init: DhtRoutingInit): FingerTable {
  return new FingerTable(init.self, init.bits);
}
