/**
 * Consistent hashing: a request's key (the client address, a header, a cookie or the path) is
 * hashed onto a weighted ring of the usable back-ends, so the same key lands on the same back-end
 * while it stays healthy, and a back-end leaving moves only the keys it held (see `ring.ts`).
 *
 * Key: `ctx.hashKey` when an observer set one, else the configured source (`hashOn`); a request
 * without that header, cookie or path (TCP mode) falls back to its client address.
 *
 * Sticky cookies (`stickyCookie: NAME`): a request carrying `NAME=<token>` of a usable back-end
 * goes there whatever the ring says; otherwise the ring picks and the response sets the cookie.
 * The token is derived from the back-end's id, not its position, so sessions survive back-ends
 * being added, removed or reordered (a session moves only when its own back-end is gone).
 */
import type { Backend, RoutingContext, Strategy, StrategyInit } from '@trellis/sdk';
import { hash32 } from './hash.js';
import { HashRing } from './ring.js';

export interface ConsistentHashOptions {
  /** `client-ip` (default), `header:NAME`, `cookie:NAME` or `path`. */
  hashOn?: string;
  /** Sticky-session cookie name; off by default. */
  stickyCookie?: string;
  /** Ring points per unit of weight (default 160, as ketama); more points, more even shares. */
  replicas?: number;
}

type Source = { kind: 'client-ip' } | { kind: 'path' } | { kind: 'header'; name: string } | { kind: 'cookie'; name: string };

const TOKEN_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function parseSource(spec: unknown): Source {
  if (spec === undefined || spec === 'client-ip') return { kind: 'client-ip' };
  if (spec === 'path') return { kind: 'path' };
  if (typeof spec === 'string') {
    const m = /^(header|cookie):(.+)$/.exec(spec);
    if (m !== null && TOKEN_NAME.test(m[2]!)) return { kind: m[1] as 'header' | 'cookie', name: m[1] === 'header' ? m[2]!.toLowerCase() : m[2]! };
  }
  throw new TypeError(`hashOn must be client-ip, path, header:NAME or cookie:NAME, got ${JSON.stringify(spec)}`);
}

/** The sticky cookie's value for a back-end: stable per id, reveals no address. */
export const stickyToken = (b: Backend): string => hash32(`sticky:${b.id}`).toString(36);

export class ConsistentHash implements Strategy {
  readonly #source: Source;
  readonly #sticky: string | undefined;
  readonly #replicas: number;
  #ring: HashRing;
  /** Sticky token → usable back-end. */
  #byToken = new Map<string, Backend>();
  #cookieTail = '';

  constructor(init: StrategyInit) {
    const o = init.options as ConsistentHashOptions;
    this.#source = parseSource(o.hashOn);
    if (o.stickyCookie !== undefined && (typeof o.stickyCookie !== 'string' || !TOKEN_NAME.test(o.stickyCookie))) {
      throw new TypeError(`stickyCookie must be a cookie name (an HTTP token), got ${JSON.stringify(o.stickyCookie)}`);
    }
    this.#sticky = o.stickyCookie;
    const replicas = o.replicas ?? 160;
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > 1000) throw new TypeError(`replicas must be an integer in 1..1000, got ${JSON.stringify(replicas)}`);
    this.#replicas = replicas;
    this.#cookieTail = '; Path=/; HttpOnly; SameSite=Lax';
    this.#ring = new HashRing([], replicas);
    this.setBackends(init.backends);
  }

  /** The key this request hashes on. */
  #key(ctx: RoutingContext): string {
    if (ctx.hashKey !== undefined) return ctx.hashKey;
    const src = this.#source;
    let key: string | undefined;
    switch (src.kind) {
      case 'header':
        key = ctx.header(src.name);
        break;
      case 'cookie':
        key = ctx.cookie(src.name);
        break;
      case 'path':
        key = ctx.path;
        break;
    }
    return key ?? ctx.clientAddress;
  }

  select(ctx?: RoutingContext): Backend | undefined {
    if (ctx === undefined) return this.#ring.lookup(hash32(""));
    const sticky = this.#sticky;
    if (sticky !== undefined && ctx.mode === 'http') {
      const token = ctx.cookie(sticky);
      const held = token === undefined ? undefined : this.#byToken.get(token);
      if (held !== undefined) return held;
      const b = this.#ring.lookup(hash32(this.#key(ctx)));
      if (b !== undefined) ctx.addResponseHeader('set-cookie', `${sticky}=${stickyToken(b)}${this.#cookieTail}`);
      return b;
    }
    return this.#ring.lookup(hash32(this.#key(ctx)));
  }

  update(): void {
    // the choice depends on the key only
  }

  setBackends(backends: readonly Backend[]): void {
    this.#ring = new HashRing(backends, this.#replicas);
    const byToken = new Map<string, Backend>();
    if (this.#sticky !== undefined) for (const b of backends) byToken.set(stickyToken(b), b);
    this.#byToken = byToken;
  }

  /** Ring points (tests and the bench). */
  get points(): number {
    return this.#ring.size;
  }
}

export const createConsistentHash = (init: StrategyInit): Strategy => new ConsistentHash(init);
