/** Per-key event rates over a sliding window of one-second buckets (topic message rates). */
export class RateMeter {
  readonly #windowSeconds: number;
  readonly #totals = new Map<string, number>();
  /** Totals at the start of each of the last `windowSeconds` seconds, oldest first. */
  readonly #history: { at: number; totals: Map<string, number> }[] = [];
  readonly #timer: NodeJS.Timeout;

  constructor(windowSeconds = 5) {
    this.#windowSeconds = windowSeconds;
    this.#timer = setInterval(() => this.#tick(), 1000);
    this.#timer.unref();
    this.#tick();
  }

  count(key: string, n = 1): void {
    this.#totals.set(key, (this.#totals.get(key) ?? 0) + n);
  }

  total(key: string): number {
    return this.#totals.get(key) ?? 0;
  }

  /** Events per second for `key` since the oldest bucket in the window. */
  rate(key: string): number {
    const oldest = this.#history[0];
    if (!oldest) return 0;
    const seconds = (performance.now() - oldest.at) / 1000;
    return seconds <= 0 ? 0 : (this.total(key) - (oldest.totals.get(key) ?? 0)) / seconds;
  }

  close(): void {
    clearInterval(this.#timer);
  }

  #tick(): void {
    this.#history.push({ at: performance.now(), totals: new Map(this.#totals) });
    while (this.#history.length > this.#windowSeconds) this.#history.shift();
  }
}
