/**
 * A fixed window of the most recent durations, for mean and p99 per back-end without unbounded
 * memory. Recording is O(1); percentiles sort a copy only when stats are read.
 */
export class LatencyWindow {
  readonly #samples: Float64Array;
  #next = 0;
  #filled = 0;
  /** Lifetime totals, for the mean. */
  #count = 0;
  #sum = 0;

  constructor(size = 1024) {
    this.#samples = new Float64Array(size);
  }

  record(ms: number): void {
    this.#samples[this.#next] = ms;
    this.#next = this.#next + 1 === this.#samples.length ? 0 : this.#next + 1;
    if (this.#filled < this.#samples.length) this.#filled++;
    this.#count++;
    this.#sum += ms;
  }

  get count(): number {
    return this.#count;
  }

  /** Mean over every recorded duration (0 when none). */
  mean(): number {
    return this.#count === 0 ? 0 : this.#sum / this.#count;
  }

  /** The q-quantile (0..1) of the recent window, nearest-rank (0 when empty). */
  quantile(q: number): number {
    if (this.#filled === 0) return 0;
    const sorted = this.#samples.slice(0, this.#filled).sort();
    return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
  }
}
