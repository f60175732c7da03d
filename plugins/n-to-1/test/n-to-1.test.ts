import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { createHost, type Backend } from '@trellis/sdk';
import { replay, weighted } from '../../../sdk/test/strategy-replay.js';
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

test('n-to-1 with all weights equal replays the unweighted picks exactly', () => {
  for (const seed of [1, 2, 3, 42]) {
    const make = (list: Backend[]) => createNToOne({ backends: list, options: {} });
    assert.equal(replay(make, weighted(four, 4), seed), replay(make, four, seed), `seed ${seed}`);
  }
});

test('n-to-1 with weights sends everything to the highest weight, ties → list order', () => {
  const s = createNToOne({ backends: weighted(four, (i) => [1, 2, 2, 1][i]!), options: {} });
  assert.equal(picks(s, 2), ['b1', 'b1']);
  s.setBackends(weighted(four, (i) => [1, 2, 2, 1][i]!).filter((b) => b.id !== 'b1'));
  assert.equal(picks(s, 2), ['b2', 'b2']);
  s.setBackends(weighted(four, (i) => [1, 1, 1, 5][i]!));
  assert.equal(picks(s, 1), ['b3']);
});

test.run();
