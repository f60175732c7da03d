import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { errors } from '@trellis/sdk';
import { createXmlCodec } from '../src/index.js';
import { fuzz, prng, randomValue } from '../../pickle/test/fuzz-kit.js';

const codec = createXmlCodec(errors);
const tokens = ['<', '>', '/>', '</', '<list>', '</list>', '<dict>', '<item key="k">', '</item>', '<str>', '</str>', '<int>', '<float>', '<bytes>', '<null/>',
  '&amp;', '&lt;', '&#x1F600;', '&#0;', '&lol;', '&', '<!--', '-->', '<![CDATA[', ']]>', '<?xml version="1.0"?>', '<!DOCTYPE x [<!ENTITY a "b">]>', ' enc="json"', '"', "'", '=', '\r\n']
  .map((t) => new TextEncoder().encode(t));

test('xml: 20,000 random and mutated inputs give values or typed CodecErrors, never a crash or hang', () => {
  const r = fuzz(codec, 0xc0de, 10_000, tokens, { nonFinite: true });
  assert.is(r.inputs, 20_000);
  assert.ok(r.rejected > 1000 && r.accepted > 100, JSON.stringify(r));
  assert.ok(r.slowestMs < 2000, `one input took ${r.slowestMs} ms`);
});

test('xml: 2,000 random values round-trip exactly', () => {
  const rand = prng(99);
  for (let i = 0; i < 2000; i++) {
    const v = randomValue(rand, { nonFinite: true });
    assert.equal(codec.decode(codec.encode(v)), v);
  }
});

test.run();
