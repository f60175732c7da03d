/**
 * N to 1, as in the reference: every request goes to the first usable back-end. Useful as a
 * baseline and for an active/standby pair (the standby takes over when the first is marked down).
 *
 * Weights: every request goes to the usable back-end with the highest weight; ties → list order.
 * With all weights equal that is the first one, as in the reference; raising a back-end's weight
 * at run time promotes it to active without reordering the list.
 */
import type { Backend, Strategy, StrategyInit } from '@trellis/sdk';

export class NToOne implements Strategy {
  #first: Backend | undefined;

  constructor(init: StrategyInit) {
    this.setBackends(init.backends);
  }

  select(): Backend | undefined {
    return this.#first;
  }

  update(): void {
    // the choice never depends on outcomes
  }

  setBackends(backends: readonly Backend[]): void {
    let first = backends[0];
    for (const b of backends) if ((b.weight ?? 1) > (first!.weight ?? 1)) first = b;
    this.#first = first;
  }
}

export const createNToOne = (init: StrategyInit): Strategy => new NToOne(init);
