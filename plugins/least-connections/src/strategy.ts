/**
 * Least connections, as in the reference: the back-end with the fewest active requests; ties go
 * to list order. `select` counts one on the chosen back-end and `update` ends one. Counts are kept
 * by back-end id across list changes, so requests in flight on a back-end that is marked down and
 * comes back are still accounted for.
 *
 * Weights (HAProxy's `leastconn`): the lowest `active ÷ weight`, compared exactly as
 * `a.active × b.weight < b.active × a.weight`; ties → list order. With all weights equal this is
 * the reference rule, pick for pick.
 */
import type { Backend, Outcome, Strategy, StrategyInit } from '@trellis/sdk';

interface Slot {
  backend: Backend;
  active: number;
  /** The back-end's weight, or 1 for all when every weight is equal (exact reference compares). */
  weight: number;
}

export class LeastConnections implements Strategy {
  /** Usable back-ends in list order. */
  #slots: Slot[] = [];
  /** Every back-end with state, usable or not, by id. */
  readonly #byId = new Map<string, Slot>();

  constructor(init: StrategyInit) {
    this.setBackends(init.backends);
  }

  select(): Backend | undefined {
    const slots = this.#slots;
    let best: Slot | undefined;
    for (let i = 0; i < slots.length; i++) {
      const s = slots[i]!;
      if (best === undefined || s.active * best.weight < best.active * s.weight) best = s;
    }
    if (best === undefined) return undefined;
    best.active++;
    return best.backend;
  }

  update(backend: Backend, _outcome?: Outcome): void {
    const s = this.#byId.get(backend.id);
    if (s !== undefined && s.active > 0) s.active--;
  }

  setBackends(backends: readonly Backend[]): void {
    const slots: Slot[] = [];
    const keep = new Set<string>();
    const uniform = backends.every((b) => (b.weight ?? 1) === (backends[0]!.weight ?? 1));
    for (const backend of backends) {
      const weight = uniform ? 1 : (backend.weight ?? 1);
      let s = this.#byId.get(backend.id);
      if (s === undefined) this.#byId.set(backend.id, (s = { backend, active: 0, weight }));
      else {
        s.backend = backend;
        s.weight = weight;
      }
      slots.push(s);
      keep.add(backend.id);
    }
    // forget idle back-ends that left the list; busy ones still expect their updates
    for (const [id, s] of this.#byId) if (!keep.has(id) && s.active === 0) this.#byId.delete(id);
    this.#slots = slots;
  }

  /** Active requests per back-end id (for tests and stats). */
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.#byId].map(([id, s]) => [id, s.active]));
  }
}

export const createLeastConnections = (init: StrategyInit): Strategy => new LeastConnections(init);
