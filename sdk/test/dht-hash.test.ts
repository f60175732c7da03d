import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { addressRepr, fnv1aHash, inHalfOpen, inOpen, resolveHash, sha1Hash } from '../src/dht/index.js';

test('the reference hash maps "(\'localhost\', 5000)" to 770 and "A" to 716 with m = 10', () => {
  assert.is(addressRepr('localhost', 5000), "('localhost', 5000)");
  assert.is(fnv1aHash("('localhost', 5000)", 10), 770n);
  assert.is(fnv1aHash('A', 10), 716n);
  assert.is(fnv1aHash('2', 10), 981n);
});

test('the reference hash equals unbounded-integer FNV-1a mod 2^m for m above 32', () => {
  // Python: h = 2166136261; for c in s: h = (h ^ ord(c)) * 16777619; h % 2**m
  let h = 2166136261n;
  for (const c of 'héllo, wörld ✓') h = (h ^ BigInt(c.codePointAt(0)!)) * 16777619n;
  for (const m of [33, 64, 100]) assert.is(fnv1aHash('héllo, wörld ✓', m), h % (1n << BigInt(m)));
  assert.is(fnv1aHash('héllo, wörld ✓', 32), h % (1n << 32n));
});

test('sha1 keeps the leading m bits of the digest', () => {
  // sha1("abc") = a9993e36...
  assert.is(sha1Hash('abc', 8), 0xa9n);
  assert.is(sha1Hash('abc', 32), 0xa9993e36n);
  assert.throws(() => resolveHash('sha1', 161), /1\.\.160/);
  assert.throws(() => resolveHash('md5' as never, 10), /unknown DHT hash/);
});

test('ring intervals wrap past zero; (a, a] is the whole ring and (a, a) all but a', () => {
  assert.ok(inHalfOpen(10n, 20n, 20n));
  assert.not.ok(inHalfOpen(10n, 20n, 10n));
  assert.ok(inHalfOpen(1000n, 5n, 3n));
  assert.ok(inHalfOpen(1000n, 5n, 1010n));
  assert.not.ok(inHalfOpen(1000n, 5n, 500n));
  assert.ok(inHalfOpen(7n, 7n, 7n));
  assert.ok(inHalfOpen(7n, 7n, 3n));
  assert.not.ok(inOpen(10n, 20n, 20n));
  assert.ok(inOpen(1000n, 5n, 0n));
  assert.not.ok(inOpen(7n, 7n, 7n));
  assert.ok(inOpen(7n, 7n, 8n));
});

test('a tuple repr quotes like Python', () => {
  assert.is(addressRepr('127.0.0.1', 1), "('127.0.0.1', 1)");
  assert.is(addressRepr("it's", 2), `("it's", 2)`);
});

test.run();
