/**
 * The one guarded path for calls into plugin code (rollup's PluginDriver idea). A provider an
 * engine resolves — a strategy instance, a codec, a DHT routing table — is handed out wrapped: each
 * of its methods is called through `PluginDriver`, which turns a throw into a `PluginError` naming
 * the plugin and the method (`strategy:round-robin.select`), reports it once to the host
 * (`plugin-error` event and a log line), and rethrows it for the engine to answer (a 503, an
 * error frame, successor routing) while it keeps serving everyone else.
 *
 * Errors a provider is expected to throw (a codec's `CodecError` on bad input) pass through
 * unchanged after `onExpected` (the `codecError` hook).
 *
 * Cost on the hot path: one extra call frame, a counter and a try/catch. `select`, `encode` and
 * `decode` are timed on a sample (one call in `SAMPLE_EVERY`), because reading the clock twice
 * costs more than a typical `select()`; sampled calls over the threshold are counted (`stats()`).
 */
import { PluginError } from './errors.js';
import type { PluginErrorSink } from './taps.js';
import type { Backend, Outcome, RoutingContext, Strategy } from './areas/routing.js';
import type { Codec, DecodeLimits, Value } from './areas/serialization.js';
import type { DhtNode, DhtRoutingTable } from './areas/dht-routing.js';

/** One call in this many is timed; a power of two. */
export const SAMPLE_EVERY = 64;
/** Default threshold for a slow plugin call, in milliseconds. */
export const SLOW_CALL_MS = 1;

export interface PluginCallStats {
  /** The plugin that provides the object. */
  readonly plugin: string;
  /** What it provides, e.g. `strategy:round-robin`. */
  readonly provider: string;
  /** Calls made through the driver. */
  readonly calls: number;
  /** Calls that threw (other than expected errors). */
  readonly failed: number;
  /** Calls timed (one in `sampleEvery`). */
  readonly timed: number;
  /** Timed calls that took longer than `thresholdMs`. */
  readonly slow: number;
  /** Slowest timed call, in milliseconds. */
  readonly maxMs: number;
  readonly thresholdMs: number;
  readonly sampleEvery: number;
}

export interface PluginDriverOptions {
  /** Threshold for a slow call (default `SLOW_CALL_MS`). */
  readonly slowMs?: number;
  /** Errors the provider's contract allows (passed through as they are, not reported). */
  readonly expected?: (err: unknown) => boolean;
  /** Called with each expected error (e.g. the `codecError` hook). */
  readonly onExpected?: (err: unknown) => void;
}

type Method = (this: unknown, a?: unknown, b?: unknown) => unknown;

export class PluginDriver {
  readonly plugin: string;
  readonly provider: string;
  readonly #sink: PluginErrorSink;
  readonly #slowMs: number;
  readonly #expected: ((err: unknown) => boolean) | undefined;
  readonly #onExpected: ((err: unknown) => void) | undefined;
  /** @internal Calls so far (the stand-ins count them inline). */
  n = 0;
  #failed = 0;
  #timed = 0;
  #slow = 0;
  #maxMs = 0;

  constructor(plugin: string, provider: string, sink: PluginErrorSink, options: PluginDriverOptions = {}) {
    this.plugin = plugin;
    this.provider = provider;
    this.#sink = sink;
    this.#slowMs = options.slowMs ?? SLOW_CALL_MS;
    this.#expected = options.expected;
    this.#onExpected = options.onExpected;
  }

  /**
   * Turns a throw from `method` into a reported `PluginError` (or passes an expected error on).
   * Returns what the caller should throw.
   */
  fail(method: string, err: unknown): unknown {
    if (this.#expected?.(err)) {
      this.#onExpected?.(err);
      return err;
    }
    this.#failed++;
    const error = err instanceof PluginError ? err : new PluginError(this.plugin, `${this.provider}.${method}`, err);
    this.#sink(error);
    return error;
  }

  /** @internal The sampled call: timed, counted when over the threshold. */
  timed(target: object, name: string, a?: unknown, b?: unknown): unknown {
    const fn = (target as Record<string, Method>)[name]!;
    const t0 = performance.now();
    try {
      return fn.call(target, a, b);
    } catch (err) {
      throw this.fail(name, err);
    } finally {
      const ms = performance.now() - t0;
      this.#timed++;
      if (ms > this.#slowMs) this.#slow++;
      if (ms > this.#maxMs) this.#maxMs = ms;
    }
  }

  stats(): PluginCallStats {
    return {
      plugin: this.plugin,
      provider: this.provider,
      calls: this.n,
      failed: this.#failed,
      timed: this.#timed,
      slow: this.#slow,
      maxMs: Math.round(this.#maxMs * 1000) / 1000,
      thresholdMs: this.#slowMs,
      sampleEvery: SAMPLE_EVERY,
    };
  }
}

const MASK = SAMPLE_EVERY - 1;
const drivers = new WeakMap<object, PluginDriver>();

/*
 * The stand-ins are written out per provider kind, method by method: each call site then sees one
 * provider class (monomorphic), which is what keeps the guarded path near a direct call.
 */

/** A strategy whose calls go through `driver`. */
export function guardStrategy(s: Strategy, driver: PluginDriver): Strategy {
  const d = driver;
  const g: Strategy = Object.freeze({
    select(ctx?: RoutingContext) {
      if ((++d.n & MASK) !== 0) {
        try {
          return s.select(ctx);
        } catch (err) {
          throw d.fail('select', err);
        }
      }
      return d.timed(s, 'select', ctx) as Backend | undefined;
    },
    // update() runs after the response, off the request's critical path: guarded, not timed
    update(backend: Backend, outcome: Outcome) {
      try {
        return s.update(backend, outcome);
      } catch (err) {
        throw d.fail('update', err);
      }
    },
    setBackends(backends: readonly Backend[]) {
      try {
        return s.setBackends(backends);
      } catch (err) {
        throw d.fail('setBackends', err);
      }
    },
  });
  drivers.set(g, driver);
  return g;
}

/** A codec whose calls go through `driver`. */
export function guardCodec(c: Codec, driver: PluginDriver): Codec {
  const d = driver;
  const g: Codec = Object.freeze({
    wireId: c.wireId,
    name: c.name,
    encode(value: Value) {
      if ((++d.n & MASK) !== 0) {
        try {
          return c.encode(value);
        } catch (err) {
          throw d.fail('encode', err);
        }
      }
      return d.timed(c, 'encode', value) as Uint8Array;
    },
    decode(bytes: Uint8Array, limits?: DecodeLimits) {
      if ((++d.n & MASK) !== 0) {
        try {
          return c.decode(bytes, limits);
        } catch (err) {
          throw d.fail('decode', err);
        }
      }
      return d.timed(c, 'decode', bytes, limits) as Value;
    },
  });
  drivers.set(g, driver);
  return g;
}

/** A DHT routing table whose calls go through `driver` (not timed: maintenance, not the hot path). */
export function guardTable(t: DhtRoutingTable, driver: PluginDriver): DhtRoutingTable {
  const d = driver;
  const g: DhtRoutingTable = Object.freeze({
    closestPrecedingNode(id: bigint) {
      d.n++;
      try {
        return t.closestPrecedingNode(id);
      } catch (err) {
        throw d.fail('closestPrecedingNode', err);
      }
    },
    successorChanged(n: DhtNode) {
      d.n++;
      try {
        return t.successorChanged(n);
      } catch (err) {
        throw d.fail('successorChanged', err);
      }
    },
    nodeFailed(n: DhtNode) {
      d.n++;
      try {
        return t.nodeFailed(n);
      } catch (err) {
        throw d.fail('nodeFailed', err);
      }
    },
    refresh() {
      d.n++;
      try {
        return t.refresh();
      } catch (err) {
        throw d.fail('refresh', err);
      }
    },
    update(i: number, n: DhtNode) {
      d.n++;
      try {
        return t.update(i, n);
      } catch (err) {
        throw d.fail('update', err);
      }
    },
    entries() {
      d.n++;
      try {
        return t.entries();
      } catch (err) {
        throw d.fail('entries', err);
      }
    },
  });
  drivers.set(g, driver);
  return g;
}

/** The driver of a guarded provider, if it is one. */
export function driverOf(provider: object | undefined): PluginDriver | undefined {
  return provider === undefined ? undefined : drivers.get(provider);
}
