/**
 * Round robin, as in the reference: the usable back-ends in list order, cycling; outcomes have no
 * effect. When the list changes the cycle resumes at the back-end that was due next (or the first
 * surviving one after it), so a membership change never restarts the cycle at the top.
 *
 * Weights: when the usable back-ends' weights differ, picks follow nginx's smooth weighted round
 * robin: each pick adds every back-end's weight to its running score, takes the highest score
 * (ties → list order) and subtracts the total weight from the winner; over any window of
 * `total` picks each back-end gets exactly `weight` of them, spread out (5,1,1 → a a b a c a a).
 * With all weights equal the plain list-order cycle above runs, pick for pick.
 */
import type { Backend, Strategy, StrategyInit } from '@trellis/sdk';

interface Slot {
  backend: Backend;
  weight: number;
  current: number;
}

export class RoundRobin implements Strategy {
  #list: readonly Backend[] = [];
  #next = 0;
  /** Weighted mode only (weights differ): the smooth weighted round robin state. */
  #slots: Slot[] | null = null;
  #total = 0;
  /** Running scores by id, kept across list changes while weighted. */
  readonly #current = new Map<string, number>();

  constructor(init: StrategyInit) {
    this.#list = init.backends;
    this.#reweigh();
  }

  select(): Backend | undefined {
    const slots = this.#slots;
    if (slots !== null) return this.#weighted(slots);
    const list = this.#list;
    if (list.length === 0) return undefined;
    if (this.#next >= list.length) this.#next = 0;
    return list[this.#next++];
  }

  #weighted(slots: Slot[]): Backend {
    let best = slots[0]!;
    for (let i = 0; i < slots.length; i++) {
      const s = slots[i]!;
      s.current += s.weight;
      if (s.current > best.current) best = s;
    }
    best.current -= this.#total;
    return best.backend;
  }

  update(): void {
    // round robin ignores outcomes
  }

  setBackends(backends: readonly Backend[]): void {
    const old = this.#list;
    const ids = new Map(backends.map((b, i) => [b.id, i]));
    let next = 0;
    for (let k = 0; k < old.length; k++) {
      const i = ids.get(old[(this.#next + k) % old.length]!.id);
      if (i !== undefined) {
        next = i;
        break;
      }
    }
    if (this.#slots !== null) for (const s of this.#slots) this.#current.set(s.backend.id, s.current);
    this.#list = backends;
    this.#next = next;
    this.#reweigh();
  }

  /** Chooses the mode: the plain cycle when every weight is equal, else smooth weighted. */
  #reweigh(): void {
    const list = this.#list;
    const w0 = list[0]?.weight ?? 1;
    if (list.every((b) => (b.weight ?? 1) === w0)) {
      this.#slots = null;
      this.#current.clear();
      return;
    }
    this.#slots = list.map((backend) => ({ backend, weight: backend.weight ?? 1, current: this.#current.get(backend.id) ?? 0 }));
    this.#total = this.#slots.reduce((t, s) => t + s.weight, 0);
    this.#current.clear();
  }
}

export const createRoundRobin = (init: StrategyInit): Strategy => new RoundRobin(init);
