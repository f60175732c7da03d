/**
 * Entity and depth bombs against the XML codec, with time and memory bounds generous enough for
 * a loaded 2-core machine: each is refused with a typed error, nothing is expanded.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { errors, CodecError } from '@trellis/sdk';
import { createXmlCodec } from '../src/index.js';

const codec = createXmlCodec(errors);
const enc = (s: string) => new TextEncoder().encode(s);

function measured(fn: () => unknown): { error: unknown; ms: number; heapGrowthMb: number } {
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

const lol = ['<!ENTITY lol0 "lol">', ...Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i};`.repeat(10)}">`)].join('');
const bombs: Record<string, string> = {
  'billion laughs (internal DTD)': `<?xml version="1.0"?><!DOCTYPE lolz [${lol}]><str>&lol9;</str>`,
  'quadratic blowup (one 100 KB entity used 10,000 times)': `<!DOCTYPE q [<!ENTITY a "${'a'.repeat(100_000)}">]><str>${'&a;'.repeat(10_000)}</str>`,
  'external entity': '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><str>&e;</str>',
  'parameter entity': '<!DOCTYPE x [<!ENTITY % p "<!ENTITY e \'x\'>"> %p;]><str>&e;</str>',
  'undeclared entity without a DTD': `<str>${'&lol;'.repeat(100_000)}</str>`,
  'depth bomb: 1,000,000 nested lists': '<list>'.repeat(1_000_000),
  'depth bomb: 600 nested dicts': '<dict><item key="k">'.repeat(600) + '<null/>' + '</item></dict>'.repeat(600),
  'an integer of 100,000 digits': `<int>${'9'.repeat(100_000)}</int>`,
};

for (const [name, doc] of Object.entries(bombs)) {
  test(`xml refuses: ${name}`, () => {
    const bytes = enc(doc);
    const r = measured(() => codec.decode(bytes));
    assert.ok(r.error instanceof CodecError, `${name}: ${String(r.error)}`);
    assert.ok(r.ms < 3000, `${name}: ${r.ms} ms`);
    assert.ok(r.heapGrowthMb < 200, `${name}: heap grew ${r.heapGrowthMb} MB`);
  });
}

test('numeric character references expand one character each (linear, allowed)', () => {
  const doc = enc(`<str>${'&#65;'.repeat(200_000)}</str>`);
  const r = measured(() => codec.decode(doc));
  assert.is(r.error, undefined);
  assert.ok(r.ms < 3000, `${r.ms} ms`);
});

test.run();
