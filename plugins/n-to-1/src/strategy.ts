/**
 * N to 1, as in the reference: every request goes to the first usable back-end. Useful as a
 * baseline and for an active/standby pair (the standby takes over when the first is marked down).
 */
import type { Backend, Strategy, StrategyInit } from '@trellis/sdk';

export class NToOne implements Strategy {
  #first: Backend | undefined;

  constructor(init: StrategyInit) {
    this.#first = init.backends[0];
  }

  select(): Backend | undefined {
    return this.#first;
  }

  update(): void {
    // the choice never depends on outcomes
  }

  setBackends(backends: readonly Backend[]): void {
    this.#first = backends[0];
  }
}

export const createNToOne = (init: StrategyInit): Strategy => new NToOne(init);
