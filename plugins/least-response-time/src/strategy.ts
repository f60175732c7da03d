/**
 * Least response time, as in the reference: the back-end with the lowest mean duration of its
 * completed requests (none completed counts as 0); ties go to the fewest active requests, then to
 * list order. Like the reference, a completion is paired with that back-end's oldest unfinished
 * start (first in, first out) and timed on the strategy's own clock. State is kept by back-end id
 * across list changes.
 *
 * Weights: a back-end of weight w counts as w times faster and w times roomier — the lowest
 * `mean ÷ weight` wins, ties → the lowest `active ÷ weight`, then list order (both compared by
 * cross-multiplying, no division). With all weights equal every weight is taken as 1, so the
 * comparisons are the reference's, bit for bit.
 */
import type { Backend, Outcome, Strategy, StrategyInit } from '@trellis/sdk';

interface Slot {
  backend: Backend;
  active: number;
  /** Start times of unfinished requests, oldest first (a ring would do; in-flight counts are small). */
  starts: number[];
  totalMs: number;
  completed: number;
  /** The back-end's weight, or 1 for all when every weight is equal. */
  weight: number;
}

export interface LeastResponseTimeOptions {
  /** Milliseconds clock; defaults to `performance.now` (tests inject a fake one). */
  now?: () => number;
}

export class LeastResponseTime implements Strategy {
  #slots: Slot[] = [];
  readonly #byId = new Map<string, Slot>();
  readonly #now: () => number;

  constructor(init: StrategyInit) {
    const now = (init.options as LeastResponseTimeOptions).now;
    this.#now = typeof now === 'function' ? now : () => performance.now();
    this.setBackends(init.backends);
  }

  select(): Backend | undefined {
    const slots = this.#slots;
    let best: Slot | undefined;
    let bestMean = 0;
    for (let i = 0; i < slots.length; i++) {
      const s = slots[i]!;
      const mean = s.completed === 0 ? 0 : s.totalMs / s.completed;
      if (best === undefined) {
        best = s;
        bestMean = mean;
        continue;
      }
      const a = mean * best.weight;
      const b = bestMean * s.weight;
      if (a < b || (a === b && s.active * best.weight < best.active * s.weight)) {
        best = s;
        bestMean = mean;
      }
    }
    if (best === undefined) return undefined;
    best.active++;
    best.starts.push(this.#now());
    return best.backend;
  }

  update(backend: Backend, _outcome?: Outcome): void {
    const s = this.#byId.get(backend.id);
    if (s === undefined) return;
    const start = s.starts.shift();
    if (start === undefined) return;
    if (s.active > 0) s.active--;
    s.totalMs += this.#now() - start;
    s.completed++;
  }

  setBackends(backends: readonly Backend[]): void {
    const slots: Slot[] = [];
    const keep = new Set<string>();
    const uniform = backends.every((b) => (b.weight ?? 1) === (backends[0]!.weight ?? 1));
    for (const backend of backends) {
      const weight = uniform ? 1 : (backend.weight ?? 1);
      let s = this.#byId.get(backend.id);
      if (s === undefined) this.#byId.set(backend.id, (s = { backend, active: 0, starts: [], totalMs: 0, completed: 0, weight }));
      else {
        s.backend = backend;
        s.weight = weight;
      }
      slots.push(s);
      keep.add(backend.id);
    }
    for (const [id, s] of this.#byId) if (!keep.has(id) && s.active === 0 && s.completed === 0) this.#byId.delete(id);
    this.#slots = slots;
  }

  /** Per back-end id: active requests, completed requests and mean duration (tests and stats). */
  snapshot(): Record<string, { active: number; completed: number; meanMs: number }> {
    return Object.fromEntries(
      [...this.#byId].map(([id, s]) => [id, { active: s.active, completed: s.completed, meanMs: s.completed ? s.totalMs / s.completed : 0 }]),
    );
  }
}

export const createLeastResponseTime = (init: StrategyInit): Strategy => new LeastResponseTime(init);
