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

/**
 * Where a node keeps its keys across restarts (`ChordNode` option `persistence`): `load` gives
 * back every `[key, value, version]` saved, `save` is called after every change (synchronously,
 * before the change is acknowledged), `close` when the node closes.
 */
export interface DhtPersistence {
  load(): Iterable<readonly [key: string, value: Value, version: number]>;
  save(key: string, value: Value, version: number): void;
  close(): Promise<void> | void;
}

export class KeyStore {
  readonly #entries = new Map<string, StoredEntry>();
  readonly #persist: DhtPersistence | undefined;

  constructor(persist?: DhtPersistence, idOf?: (key: string) => bigint) {
    this.#persist = persist;
    if (persist && idOf) for (const [key, value, version] of persist.load()) this.#entries.set(key, { value, id: idOf(key), version });
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: string): StoredEntry | undefined {
    return this.#entries.get(key);
  }

  /** A new write by the owner: one version above whatever is held. */
  write(key: string, id: bigint, value: Value): StoredEntry {
    const entry = { value, id, version: (this.#entries.get(key)?.version ?? 0) + 1 };
    this.#persist?.save(key, value, entry.version);
    this.#entries.set(key, entry);
    return entry;
  }

  /** A copy from another node; kept only if it is not older than ours. Returns whether it was kept. */
  merge(key: string, id: bigint, value: Value, version: number): boolean {
    const mine = this.#entries.get(key);
    if (mine && mine.version > version) return false;
    if (mine && mine.version === version && mine.value === value) return true;
    this.#persist?.save(key, value, version);
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
