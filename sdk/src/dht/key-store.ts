/**
 * A node's stored keys: each entry keeps its value, its identifier on the ring and a version so a
 * late or stale copy (replication, transfer) never overwrites a newer value.
 */
import type { Value } from '../areas/serialization.js';

export interface StoredEntry {
  readonly value: Value;
  readonly id: bigint;
  readonly version: number;
}

export class KeyStore {
  readonly #entries = new Map<string, StoredEntry>();

  get size(): number {
    return this.#entries.size;
  }

  get(key: string): StoredEntry | undefined {
    return this.#entries.get(key);
  }

  /** A new write by the owner: one version above whatever is held. */
  write(key: string, id: bigint, value: Value): StoredEntry {
    const entry = { value, id, version: (this.#entries.get(key)?.version ?? 0) + 1 };
    this.#entries.set(key, entry);
    return entry;
  }

  /** A copy from another node; kept only if it is not older than ours. Returns whether it was kept. */
  merge(key: string, id: bigint, value: Value, version: number): boolean {
    const mine = this.#entries.get(key);
    if (mine && mine.version > version) return false;
    this.#entries.set(key, { value, id, version });
    return true;
  }

  /** Entries whose id satisfies `pick`. */
  select(pick: (id: bigint) => boolean): [string, StoredEntry][] {
    const out: [string, StoredEntry][] = [];
    for (const e of this.#entries) if (pick(e[1].id)) out.push(e);
    return out;
  }

  keys(): IterableIterator<string> {
    return this.#entries.keys();
  }
}
