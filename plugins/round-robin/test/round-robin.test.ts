import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { createHost, type Backend } from '@trellis/sdk';
import { createRoundRobin } from '../src/strategy.js';

const four: Backend[] = [5000, 5001, 5002, 5003].map((port) => ({ id: `b${port - 5000}`, host: '127.0.0.1', port }));
const picks = (s: { select(): Backend | undefined }, n: number) => Array.from({ length: n }, () => s.select()?.id);

test('round-robin cycles in list order and ignores outcomes', () => {
  const s = createRoundRobin({ backends: four, options: {} });
  assert.equal(picks(s, 5), ['b0', 'b1', 'b2', 'b3', 'b0']);
  s.update(four[1]!, { durationMs: 5000, ok: false });
  s.update(four[0]!, { durationMs: 1, ok: true });
  assert.equal(picks(s, 5), ['b1', 'b2', 'b3', 'b0', 'b1']);
});

test('round-robin moves on to the next survivor when the back-end due next is removed', () => {
  const s = createRoundRobin({ backends: four, options: {} });
  assert.equal(picks(s, 2), ['b0', 'b1']);
  s.setBackends([four[0]!, four[1]!, four[3]!]); // b2 down
  assert.equal(picks(s, 4), ['b3', 'b0', 'b1', 'b3']);
});

test('round-robin keeps its place when a back-end it already served is removed', () => {
  const s = createRoundRobin({ backends: four, options: {} });
  assert.equal(picks(s, 2), ['b0', 'b1']);
  s.setBackends([four[0]!, four[2]!, four[3]!]); // b1, already served, goes down
  assert.equal(picks(s, 3), ['b2', 'b3', 'b0']);
});

test('round-robin includes a back-end that comes back at its list position', () => {
  const s = createRoundRobin({ backends: [four[0]!, four[3]!], options: {} });
  assert.equal(picks(s, 1), ['b0']);
  s.setBackends(four);
  assert.equal(picks(s, 5), ['b3', 'b0', 'b1', 'b2', 'b3']);
});

test('round-robin answers undefined with no usable back-end, then recovers', () => {
  const s = createRoundRobin({ backends: four, options: {} });
  s.setBackends([]);
  assert.is(s.select(), undefined);
  s.setBackends([four[2]!, four[1]!]);
  assert.equal(picks(s, 3), ['b2', 'b1', 'b2']);
});

test('the round-robin plugin loads lazily through the plugin host', async () => {
  const host = createHost({ dirs: [fileURLToPath(new URL('..', import.meta.url))], builtins: false });
  const s = await host.routing.createStrategy('round-robin', { backends: four, options: {} });
  assert.equal(picks(s, 5), ['b0', 'b1', 'b2', 'b3', 'b0']);
  await host.dispose();
});

test.run();
