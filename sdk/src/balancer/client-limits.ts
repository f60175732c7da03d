/**
 * Per-client-address limits for the HTTP front door: open connections per address, and a
 * request rate per address (a token bucket: `rate` requests per second, bursts up to `rate`).
 * One map entry per address currently connected or recently limited; the balancer's sweep drops
 * entries with no connection and a full bucket, so the map stays as small as the live clients.
 */

interface Entry {
  connections: number;
  tokens: number;
  last: number;
}

export interface ClientLimitOptions {
  /** Open connections one client address may hold (0: no limit). */
  maxConnectionsPerClient: number;
  /** Requests per second one client address may send, bursts up to the same number (0: no limit). */
  requestsPerSecond: number;
}

export class ClientLimiter {
  readonly #options: ClientLimitOptions;
  readonly #clients = new Map<string, Entry>();

  constructor(options: ClientLimitOptions) {
    this.#options = options;
  }

  get active(): boolean {
    return this.#options.maxConnectionsPerClient > 0 || this.#options.requestsPerSecond > 0;
  }

  /** Addresses tracked right now. */
  get size(): number {
    return this.#clients.size;
  }

  #entry(ip: string, now: number): Entry {
    let e = this.#clients.get(ip);
    if (e === undefined) {
      e = { connections: 0, tokens: this.#options.requestsPerSecond, last: now };
      this.#clients.set(ip, e);
    }
    return e;
  }

  /** A connection from `ip` opens: false when the address already holds its maximum. */
  openConnection(ip: string): boolean {
    const max = this.#options.maxConnectionsPerClient;
    if (max <= 0) return true;
    const e = this.#entry(ip, Date.now());
    if (e.connections >= max) return false;
    e.connections++;
    return true;
  }

  closeConnection(ip: string): void {
    if (this.#options.maxConnectionsPerClient <= 0) return;
    const e = this.#clients.get(ip);
    if (e !== undefined && e.connections > 0) e.connections--;
  }

  /** A request from `ip`: false when the address is over its rate. */
  takeRequest(ip: string, now = Date.now()): boolean {
    const rate = this.#options.requestsPerSecond;
    if (rate <= 0) return true;
    const e = this.#entry(ip, now);
    e.tokens = Math.min(rate, e.tokens + ((now - e.last) * rate) / 1000);
    e.last = now;
    if (e.tokens < 1) return false;
    e.tokens -= 1;
    return true;
  }

  /** Forgets addresses with no open connection whose bucket has refilled. */
  sweep(now: number): void {
    const rate = this.#options.requestsPerSecond;
    for (const [ip, e] of this.#clients) {
      if (e.connections === 0 && (rate <= 0 || e.tokens + ((now - e.last) * rate) / 1000 >= rate)) this.#clients.delete(ip);
    }
  }
}
