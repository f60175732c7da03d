/**
 * Alias and memo bombs: a pickle may refer to one object many times (memo GET/BINGET, DUP). The
 * decoder must count what the value expands to — the produced size — not the opcodes it read,
 * and refuse quickly, without allocating the expansion.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { errors, CodecError } from '@trellis/sdk';
import { createPickleCodec } from '../src/index.js';

const codec = createPickleCodec(errors);

/** Little builder for hand-assembled pickles. */
function pickle(...parts: (number | number[] | Uint8Array)[]): Uint8Array {
  const out: number[] = [0x80, 0x04];
  for (const p of parts) {
    if (typeof p === 'number') out.push(p);
    else for (const b of p) out.push(b);
  }
  out.push(0x2e);
  return Uint8Array.from(out);
}
const POP = 0x30, MARK = 0x28, LIST = 0x6c, APPENDS = 0x65, EMPTY_LIST = 0x5d, MEMOIZE = 0x94, DUP = 0x32;
const binget = (i: number) => [0x68, i];
function binunicode(s: string): number[] {
  const b = Buffer.from(s, 'utf8');
  const out = [0x58, b.length & 0xff, (b.length >> 8) & 0xff, (b.length >> 16) & 0xff, b.length >>> 24];
  for (const x of b) out.push(x);
  return out;
}
function binbytes(n: number): number[] {
  const out = [0x42, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24];
  for (let i = 0; i < n; i++) out.push(7);
  return out;
}
function repeat<T>(n: number, item: T[]): T[] {
  const out: T[] = [];
  for (let i = 0; i < n; i++) for (const x of item) out.push(x);
  return out;
}

/** Runs `fn`, returning its error and the time and memory it took. */
function measured(fn: () => unknown): { error: unknown; ms: number; heapGrowthMb: number } {
  globalThis.gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  let error: unknown;
  try {
    fn();
  } catch (err) {
    error = err;
  }
  return { error, ms: performance.now() - t0, heapGrowthMb: (process.memoryUsage().heapUsed - heap0) / 1e6 };
}

test('one 100 KB string fetched from the memo 3,000 times (300 MB expanded) is refused quickly', () => {
  const bomb = pickle(EMPTY_LIST, MARK, binunicode('x'.repeat(100_000)), MEMOIZE, repeat(2999, binget(0)), APPENDS);
  assert.ok(bomb.length < 110_000, `${bomb.length}-byte input`);
  const r = measured(() => codec.decode(bomb));
  assert.ok(r.error instanceof CodecError, String(r.error));
  assert.match(String(r.error), /expands to more than .* bytes/);
  assert.ok(r.ms < 5000, `${r.ms} ms`);
  assert.ok(r.heapGrowthMb < 100, `${r.heapGrowthMb} MB`);
});

test('byte strings duplicated with DUP count each time too', () => {
  const bomb = pickle(MARK, binbytes(1_000_000), repeat(100, [DUP]), LIST);
  const r = measured(() => codec.decode(bomb));
  assert.ok(r.error instanceof CodecError, String(r.error));
  assert.match(String(r.error), /expands to more than/);
});

test('nested shared lists (a 10 KB string reaching 10^6 leaves, 10 GB expanded) are refused quickly', () => {
  const bomb = pickle(
    binunicode('y'.repeat(10_000)), MEMOIZE, POP, // memo 0: the string
    MARK, repeat(100, binget(0)), LIST, MEMOIZE, POP, // memo 1: 100 × string
    MARK, repeat(100, binget(1)), LIST, MEMOIZE, POP, // memo 2: 100 × memo 1
    MARK, repeat(100, binget(2)), LIST, // 100 × memo 2
  );
  assert.ok(bomb.length < 11_000, `${bomb.length}-byte input`);
  const r = measured(() => codec.decode(bomb));
  assert.ok(r.error instanceof CodecError, String(r.error));
  assert.match(String(r.error), /expands to more than/);
  assert.ok(r.ms < 5000, `${r.ms} ms`);
  assert.ok(r.heapGrowthMb < 100, `${r.heapGrowthMb} MB`);
});

test('honest sharing below the limit still decodes: repeated dict keys, a string used twice', () => {
  const keys = pickle(MARK, MARK, binunicode('key'), MEMOIZE, binunicode('a'), 0x64, MARK, binget(0), binunicode('b'), 0x64, LIST);
  assert.equal(codec.decode(keys), [{ key: 'a' }, { key: 'b' }]);
  const twice = pickle(MARK, binunicode('s'.repeat(1000)), MEMOIZE, binget(0), LIST);
  assert.equal(codec.decode(twice), ['s'.repeat(1000), 's'.repeat(1000)]);
  const limited = createPickleCodec(errors, { maxExpandedBytes: 1500 });
  assert.throws(() => limited.decode(twice), /expands to more than 1500 bytes/);
});

test('fuzz: 300 random memo-alias pickles are refused or decode within the expanded-size limit, quickly', () => {
  let seed = 0x5eed1e55;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed % n;
  };
  const limit = 8 * 1024 * 1024;
  const limited = createPickleCodec(errors, { maxExpandedBytes: limit });
  /** Text and bytes the value holds with every reference expanded, counted up to `cap`. */
  const expanded = (v: unknown, cap: number): number => {
    let total = 0;
    const walk = (x: unknown): void => {
      if (total > cap) return;
      if (typeof x === 'string' || x instanceof Uint8Array) total += x.length;
      else if (Array.isArray(x)) for (const y of x) walk(y);
    };
    walk(v);
    return total;
  };
  let refused = 0;
  let accepted = 0;
  const heap0 = process.memoryUsage().heapUsed;
  for (let i = 0; i < 300; i++) {
    const parts: (number | number[])[] = [];
    let memo = 0;
    for (let k = 1 + rand(3); k > 0; k--) {
      parts.push(rand(2) ? binunicode('s'.repeat(1 + rand(50_000))) : binbytes(1 + rand(50_000)), MEMOIZE, POP);
      memo++;
    }
    for (let level = rand(5); level > 0; level--) {
      parts.push(MARK);
      for (let n = 1 + rand(150); n > 0; n--) parts.push(rand(4) === 0 ? [0x4b, rand(256)] : binget(rand(memo)));
      parts.push(LIST, MEMOIZE, POP);
      memo++;
    }
    parts.push(binget(memo - 1));
    const bomb = pickle(...parts);
    const t0 = performance.now();
    let value: unknown;
    try {
      value = limited.decode(bomb);
      accepted++;
    } catch (err) {
      assert.ok(err instanceof CodecError, String(err));
      refused++;
    }
    assert.ok(performance.now() - t0 < 2000, `input ${i} took ${performance.now() - t0} ms`);
    if (value !== undefined) assert.ok(expanded(value, limit + bomb.length) <= limit, `input ${i} was accepted but expands past the limit`);
  }
  assert.ok(refused > 20 && accepted > 20, `refused ${refused}, accepted ${accepted}`);
  assert.ok((process.memoryUsage().heapUsed - heap0) / 1e6 < 300, 'heap stayed bounded');
});

test.run();
