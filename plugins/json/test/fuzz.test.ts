import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { errors } from '@trellis/sdk';
import { createJsonCodec } from '../src/index.js';
import { fuzz, prng, randomValue } from '../../pickle/test/fuzz-kit.js';

const codec = createJsonCodec(errors);
const tokens = ['{', '}', '[', ']', ',', ':', '"', '\\', '\\u', '\\ud800', 'null', 'true', '-', '1e999', '12345678901234567890', '"__proto__"', '"constructor"', '{"prototype":1}', '"$bytes"', '{"$bytes":"AA=="}', '\u00e9', '\u0000', ' ']
  .map((t) => new TextEncoder().encode(t));

test('json: 20,000 random and mutated inputs give values or typed CodecErrors, never a crash or hang', () => {
  const r = fuzz(codec, 0x15011, 10_000, tokens);
  assert.is(r.inputs, 20_000);
  assert.ok(r.rejected > 1000 && r.accepted > 100, JSON.stringify(r));
  assert.ok(r.slowestMs < 2000, `one input took ${r.slowestMs} ms`);
});

test('json: 2,000 random values round-trip exactly', () => {
  const rand = prng(7);
  for (let i = 0; i < 2000; i++) {
    const v = randomValue(rand);
    assert.equal(codec.decode(codec.encode(v)), v);
  }
});

test.run();
