/**
 * Round robin, as in the reference: the usable back-ends in list order, cycling; outcomes have no
 * effect. When the list changes the cycle resumes at the back-end that was due next (or the first
 * surviving one after it), so a membership change never restarts the cycle at the top.
 */
import type { Backend, Strategy, StrategyInit } from '@trellis/sdk';

export class RoundRobin implements Strategy {
  #list: readonly Backend[];
  #next = 0;

  constructor(init: StrategyInit) {
    this.#list = init.backends;
  }

  select(): Backend | undefined {
    const list = this.#list;
    if (list.length === 0) return undefined;
    if (this.#next >= list.length) this.#next = 0;
    return list[this.#next++];
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
    this.#list = backends;
    this.#next = next;
  }
}

export const createRoundRobin = (init: StrategyInit): Strategy => new RoundRobin(init);
