/** The embedding app's in-process strategy plugin, registered through `createHost({ plugins })`. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHost, PluginError, type Backend } from '@trellis/sdk';
import { weightedRoundRobinPlugin, WEIGHTED_ROUND_ROBIN } from '../src/weighted-round-robin.js';

const [a, b, c] = [1, 2, 3].map((n) => ({ id: `127.0.0.1:${5000 + n}`, host: '127.0.0.1', port: 5000 + n })) as [Backend, Backend, Backend];

test('an in-process plugin is registered without a folder and activates on first use', async () => {
  const host = createHost({ builtins: false, plugins: [weightedRoundRobinPlugin] });
  const info = host.plugin('embedded-weighted-round-robin');
  assert.is(info?.state, 'discovered');
  assert.is(info?.dir, undefined);
  await host.routing.createStrategy(WEIGHTED_ROUND_ROBIN, { backends: [a], options: {} });
  assert.is(host.plugin('embedded-weighted-round-robin')?.state, 'active');
  await host.dispose();
});

test('smooth weighted round robin interleaves 3:1 as a a b a, never a a a b', async () => {
  const host = createHost({ builtins: false, plugins: [weightedRoundRobinPlugin] });
  const s = await host.routing.createStrategy(WEIGHTED_ROUND_ROBIN, { backends: [a, b], options: { weights: { [a.id]: 3, [b.id]: 1 } } });
  const picks = Array.from({ length: 12 }, () => s.select()!.id);
  assert.equal(picks, [a, a, b, a, a, a, b, a, a, a, b, a].map((x) => x.id));
  await host.dispose();
});

test('weights default to 1, and setBackends drops removed back-ends from the rotation', async () => {
  const host = createHost({ builtins: false, plugins: [weightedRoundRobinPlugin] });
  const s = await host.routing.createStrategy(WEIGHTED_ROUND_ROBIN, { backends: [a, b, c], options: {} });
  assert.equal(Array.from({ length: 6 }, () => s.select()!.id), [a, b, c, a, b, c].map((x) => x.id));
  s.setBackends([c]);
  assert.equal(Array.from({ length: 3 }, () => s.select()!.id), [c, c, c].map((x) => x.id));
  s.setBackends([]);
  assert.is(s.select(), undefined);
  await host.dispose();
});

test('a bad weight is a PluginError naming the in-process plugin', async () => {
  const host = createHost({ builtins: false, plugins: [weightedRoundRobinPlugin] });
  try {
    await host.routing.createStrategy(WEIGHTED_ROUND_ROBIN, { backends: [a], options: { weights: { [a.id]: 0 } } });
    assert.unreachable('accepted weight 0');
  } catch (err) {
    assert.instance(err, PluginError);
    assert.is((err as PluginError).plugin, 'embedded-weighted-round-robin');
  } finally {
    await host.dispose();
  }
});

test.run();
