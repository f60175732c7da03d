/**
 * Test kit shared by the three codec plugins' fuzz and cross-codec tests: a seeded PRNG, a
 * random generator over the value model, byte mutators, and the fuzz loop itself.
 */
import * as assert from 'uvu/assert';
import { CodecError, type Codec, type Value } from '@trellis/sdk';

/** mulberry32: small, fast, deterministic. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface ValueOptions {
  /** Allow NaN and ±Infinity (JSON cannot carry them). */
  nonFinite?: boolean;
  maxDepth?: number;
}

const KEYS = ['a', 'method', 'args', 'topic', 'value', 'é', '日本', '', 'prototype', 'toString', '1', '$bytes', 'x y', '<&>"\''];
const STRINGS = ['', 'hello', 'héllo ✓', '𝄞 clef', '<tag attr="x">&amp;</tag>', 'line\nbreak\r\n\ttab', ']]>', '\\u0000 literal', "quote's \"q\"", 'a'.repeat(300)];

/** A random value of the model, with bigints only beyond 2^53 (smaller ones normalize to numbers). */
export function randomValue(rand: () => number, opts: ValueOptions = {}, depth = 0): Value {
  const maxDepth = opts.maxDepth ?? 5;
  const r = rand();
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  if (depth < maxDepth && r < 0.25) {
    const n = Math.floor(rand() * 6);
    return Array.from({ length: n }, () => randomValue(rand, opts, depth + 1));
  }
  if (depth < maxDepth && r < 0.45) {
    const o: Record<string, Value> = {};
    const n = Math.floor(rand() * 6);
    for (let i = 0; i < n; i++) o[rand() < 0.6 ? pick(KEYS) : randomString(rand)] = randomValue(rand, opts, depth + 1);
    if (Object.keys(o).length === 1 && '$bytes' in o) delete o.$bytes; // reserved by the JSON codec
    return o;
  }
  switch (Math.floor(rand() * 9)) {
    case 0:
      return null;
    case 1:
      return rand() < 0.5;
    case 2:
      return Math.floor((rand() - 0.5) * 2 ** Math.floor(rand() * 54));
    case 3: {
      const specials = opts.nonFinite ? [NaN, Infinity, -Infinity, 0.1, 1e300, -5e-324, 2 ** 60] : [0.1, 1e300, -5e-324, 2 ** 60, 1.5];
      return rand() < 0.3 ? pick(specials) : (rand() - 0.5) * 10 ** Math.floor(rand() * 20);
    }
    case 4: {
      const big = BigInt(Math.floor(rand() * 2 ** 52)) * 2n ** BigInt(2 + Math.floor(rand() * 100)) + 2n ** 53n;
      return rand() < 0.5 ? big : -big;
    }
    case 5:
      return pick(STRINGS);
    case 6:
      return randomString(rand);
    case 7:
      return Uint8Array.from({ length: Math.floor(rand() * 40) }, () => Math.floor(rand() * 256));
    default:
      return Math.floor(rand() * 300);
  }
}

export function randomString(rand: () => number): string {
  const n = Math.floor(rand() * 20);
  let s = '';
  for (let i = 0; i < n; i++) {
    const r = rand();
    s += r < 0.7 ? String.fromCharCode(32 + Math.floor(rand() * 95)) : r < 0.9 ? String.fromCharCode(0xa0 + Math.floor(rand() * 0x2000)) : String.fromCodePoint(0x1f600 + Math.floor(rand() * 80));
  }
  return s;
}

/** One random mutation: flip, insert, delete, truncate, duplicate a chunk, or splice a token. */
export function mutate(rand: () => number, input: Uint8Array, tokens: readonly Uint8Array[]): Uint8Array {
  const b = Array.from(input);
  const rounds = 1 + Math.floor(rand() * 4);
  for (let k = 0; k < rounds; k++) {
    const at = Math.floor(rand() * (b.length + 1));
    switch (Math.floor(rand() * 6)) {
      case 0:
        if (b.length) b[Math.min(at, b.length - 1)] ^= 1 << Math.floor(rand() * 8);
        break;
      case 1:
        b.splice(at, 0, Math.floor(rand() * 256));
        break;
      case 2:
        b.splice(at, 1 + Math.floor(rand() * 4));
        break;
      case 3:
        b.length = Math.floor(rand() * b.length);
        break;
      case 4: {
        const len = Math.floor(rand() * 16);
        b.splice(at, 0, ...b.slice(Math.max(0, at - len), at));
        break;
      }
      default:
        if (tokens.length) b.splice(at, 0, ...tokens[Math.floor(rand() * tokens.length)]);
    }
  }
  return Uint8Array.from(b);
}

/** Checks that `v` is inside the value model (what a decoder may return). */
export function assertInModel(v: unknown, depth = 0): void {
  if (depth > 10_000) throw new Error('value too deep');
  if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return;
  if (typeof v === 'bigint') {
    assert.ok(v > 9007199254740991n || v < -9007199254740991n, `small bigint ${v} should be a number`);
    return;
  }
  if (v instanceof Uint8Array) return assert.is(Object.getPrototypeOf(v), Uint8Array.prototype, 'bytes must be a plain Uint8Array');
  if (Array.isArray(v)) return v.forEach((x) => assertInModel(x, depth + 1));
  assert.type(v, 'object');
  const proto = Object.getPrototypeOf(v);
  assert.ok(proto === Object.prototype || proto === null, 'objects must be plain');
  for (const k of Object.keys(v as object)) assertInModel((v as Record<string, unknown>)[k], depth + 1);
}

export interface FuzzReport {
  inputs: number;
  accepted: number;
  rejected: number;
  slowestMs: number;
}

/**
 * Feeds `count` random byte strings and `count` mutated encodings of random values to
 * `codec.decode`: every outcome must be a value inside the model or a CodecError from the
 * codec's own checks (never an internal error, a crash or a hang).
 */
export function fuzz(codec: Codec, seed: number, count: number, tokens: readonly Uint8Array[], valueOpts: ValueOptions = {}): FuzzReport {
  const rand = prng(seed);
  const report: FuzzReport = { inputs: 0, accepted: 0, rejected: 0, slowestMs: 0 };
  const feed = (input: Uint8Array) => {
    report.inputs++;
    const t0 = performance.now();
    try {
      assertInModel(codec.decode(input));
      report.accepted++;
    } catch (err) {
      if (!(err instanceof CodecError) || (err as Error).cause !== undefined) {
        throw new Error(`${codec.name} threw ${String(err)} (cause: ${String((err as Error).cause)}) for ${Buffer.from(input).toString('hex')}`);
      }
      report.rejected++;
    }
    report.slowestMs = Math.max(report.slowestMs, performance.now() - t0);
  };
  for (let i = 0; i < count; i++) {
    const len = Math.floor(rand() * 64);
    feed(Uint8Array.from({ length: len }, () => Math.floor(rand() * 256)));
  }
  const bases = Array.from({ length: 64 }, () => codec.encode(randomValue(rand, valueOpts)));
  for (let i = 0; i < count; i++) feed(mutate(rand, bases[i % bases.length], tokens));
  return report;
}
