/**
 * A weighted hash ring (Karger et al.; ketama's layout): every back-end owns `replicas × weight`
 * points, placed by hashing `id#i`; a key belongs to the first point at or after its hash,
 * wrapping at 2^32. A back-end's points depend only on its own id and weight, so removing it
 * moves exactly the keys it owned, adding one takes keys only for itself, and shares follow
 * weights. Lookups are a binary search over a typed array.
 */
import type { Backend } from '@trellis/sdk';
import { hash32 } from './hash.js';

export class HashRing {
  /** Point positions, ascending. */
  readonly #points: Uint32Array;
  /** `#owners[i]` owns `#points[i]`. */
  readonly #owners: Backend[];

  constructor(backends: readonly Backend[], replicas: number) {
    const entries: { h: number; b: Backend }[] = [];
    for (const b of backends) {
      const n = replicas * (b.weight ?? 1);
      for (let i = 0; i < n; i++) entries.push({ h: hash32(`${b.id}#${i}`), b });
    }
    // equal positions (rare) are ordered by id, so the ring never depends on list order
    entries.sort((x, y) => x.h - y.h || (x.b.id < y.b.id ? -1 : x.b.id > y.b.id ? 1 : 0));
    this.#points = Uint32Array.from(entries, (e) => e.h);
    this.#owners = entries.map((e) => e.b);
  }

  get size(): number {
    return this.#points.length;
  }

  /** The back-end owning hash `h`, or undefined for an empty ring. */
  lookup(h: number): Backend | undefined {
    const points = this.#points;
    const n = points.length;
    if (n === 0) return undefined;
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    return this.#owners[lo === n ? 0 : lo];
  }
}
