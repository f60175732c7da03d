import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { createHost, type Backend } from '@trellis/sdk';
import { createNToOne } from '../src/strategy.js';

const four: Backend[] = [5000, 5001, 5002, 5003].map((port) => ({ id: `b${port - 5000}`, host: '127.0.0.1', port }));
const picks = (s: { select(): Backend | undefined }, n: number) => Array.from({ length: n }, () => s.select()?.id);

test('n-to-1 always picks the first back-end whatever the outcomes', () => {
  const s = createNToOne({ backends: four, options: {} });
  assert.equal(picks(s, 3), ['b0', 'b0', 'b0']);
  s.update(four[0]!, { durationMs: 900, ok: false });
  assert.equal(picks(s, 2), ['b0', 'b0']);
});

test('n-to-1 follows the list when the first back-end is marked down and comes back', () => {
  const s = createNToOne({ backends: four, options: {} });
  s.setBackends(four.slice(1));
  assert.equal(picks(s, 2), ['b1', 'b1']);
  s.setBackends(four);
  assert.is(s.select()?.id, 'b0');
});

test('n-to-1 answers undefined with no usable back-end', () => {
  const s = createNToOne({ backends: [], options: {} });
  assert.is(s.select(), undefined);
  s.setBackends([four[2]!]);
  assert.is(s.select()?.id, 'b2');
});

test('the n-to-1 plugin loads lazily through the plugin host', async () => {
  const host = createHost({ dirs: [fileURLToPath(new URL('..', import.meta.url))], builtins: false });
  const s = await host.routing.createStrategy('n-to-1', { backends: four, options: {} });
  assert.is(s.select()?.id, 'b0');
  assert.is(host.plugins().find((p) => p.id === '@trellis/plugin-n-to-1')?.state, 'active');
  await host.dispose();
});

test.run();
