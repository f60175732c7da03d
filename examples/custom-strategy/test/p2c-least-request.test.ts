/**
 * The custom strategy plugin, loaded the way a user loads it: a real PluginHost scanning the
 * plugin's folder (no build step; the plugin is plain ESM JavaScript).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { createHost, PluginError, InvalidArgumentError, type Backend, type PluginHost, type Strategy } from '@trellis/sdk';

const PLUGIN_DIR = fileURLToPath(new URL('../p2c-least-request', import.meta.url));
const ID = 'p2c-least-request';

const backends: Backend[] = [5000, 5001, 5002, 5003].map((port) => ({ id: `127.0.0.1:${port}`, host: '127.0.0.1', port }));

async function withStrategy(options: Record<string, unknown>, fn: (s: Strategy, host: PluginHost) => void | Promise<void>, list: Backend[] = backends): Promise<void> {
  const host = createHost({ dirs: [PLUGIN_DIR], builtins: false });
  try {
    await fn(await host.routing.createStrategy(ID, { backends: list, options }), host);
  } finally {
    await host.dispose();
  }
}

/** The reference's PRNG (mulberry32), written here independently to predict the plugin's picks. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('the host discovers the plugin from its folder and activates it only when the strategy is asked for', async () => {
  const host = createHost({ dirs: [PLUGIN_DIR], builtins: false });
  await host.scan();
  const before = host.plugin(ID);
  assert.is(before?.state, 'discovered');
  assert.is(before?.version, '0.1.0');
  assert.equal(before?.manifest?.contributes.strategies.map((s) => s.id), [ID]);
  assert.ok(host.routing.strategies().includes(ID));
  await host.routing.createStrategy(ID, { backends, options: { seed: 1 } });
  assert.is(host.plugin(ID)?.state, 'active');
  await host.dispose();
  assert.is(host.plugin(ID)?.state, 'deactivated');
});

test('p2c-least-request picks exactly what Envoy P2C predicts for a seeded sequence', async () => {
  await withStrategy({ seed: 7 }, (s) => {
    // Model: two distinct indexes by a partial Fisher-Yates over a persistent permutation; fewer active wins, ties go to the first.
    const random = mulberry32(7);
    const active = new Map(backends.map((b) => [b.id, 0]));
    const order = backends.map((_, i) => i);
    const inflight: Backend[] = [];
    for (let step = 0; step < 400; step++) {
      let best: Backend | undefined;
      for (let i = 0; i < 2; i++) {
        const j = i + Math.floor(random() * (backends.length - i));
        [order[i], order[j]] = [order[j]!, order[i]!];
        const candidate = backends[order[i]!]!;
        if (best === undefined || active.get(candidate.id)! < active.get(best.id)!) best = candidate;
      }
      active.set(best!.id, active.get(best!.id)! + 1);
      const picked = s.select();
      assert.is(picked?.id, best!.id, `pick ${step}`);
      inflight.push(picked!);
      // Finish the oldest request every other step so active counts differ between back-ends.
      if (step % 2 === 1) {
        const done = inflight.shift()!;
        s.update(done, { durationMs: 1, ok: true });
        active.set(done.id, active.get(done.id)! - 1);
      }
    }
  });
});

test('p2c-least-request never sends to a back-end that is busier than every other one', async () => {
  await withStrategy({ seed: 3 }, (s) => {
    // Load back-end 2 with 50 long requests through the strategy itself (a full scan would also avoid it).
    const heavy = backends[2]!;
    s.setBackends([heavy]);
    for (let i = 0; i < 50; i++) assert.is(s.select()?.id, heavy.id);
    s.setBackends(backends);
    for (let i = 0; i < 2000; i++) {
      const b = s.select()!;
      assert.is.not(b.id, heavy.id);
      s.update(b, { durationMs: 1, ok: true });
    }
  });
});

test('p2c-least-request samples two distinct back-ends: with two, it always takes the idler one', async () => {
  await withStrategy({ seed: 11 }, (s) => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 1000; i++) {
      const b = s.select()!;
      counts.set(b.id, (counts.get(b.id) ?? 0) + 1);
      // Never released: held requests accumulate, and two distinct samples keep them balanced to within one.
      const [x = 0, y = 0] = [...counts.values()];
      assert.ok(Math.abs(x - y) <= 1, `unbalanced after ${i + 1} picks: ${x} vs ${y}`);
    }
    assert.is(counts.size, 2);
  }, backends.slice(0, 2));
});

test('p2c-least-request spreads idle traffic evenly over four back-ends', async () => {
  await withStrategy({ seed: 5 }, (s) => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 8000; i++) {
      const b = s.select()!;
      counts.set(b.id, (counts.get(b.id) ?? 0) + 1);
      s.update(b, { durationMs: 1, ok: true });
    }
    for (const b of backends) {
      const n = counts.get(b.id) ?? 0;
      assert.ok(n > 1700 && n < 2300, `${b.id} got ${n} of 8000`);
    }
  });
});

test('the same seed gives the same picks, a different seed different ones', async () => {
  const run = async (seed: number) => {
    const picks: string[] = [];
    await withStrategy({ seed }, (s) => {
      for (let i = 0; i < 64; i++) {
        const b = s.select()!;
        picks.push(b.id);
        if (i % 3 === 0) s.update(b, { durationMs: 1, ok: true });
      }
    });
    return picks;
  };
  assert.equal(await run(42), await run(42));
  assert.not.equal(await run(42), await run(43));
});

test('p2c-least-request keeps active counts across setBackends and forgets removed back-ends', async () => {
  await withStrategy({ seed: 9 }, (s) => {
    const [a, b, c] = backends as [Backend, Backend, Backend];
    s.setBackends([a, b]);
    const held = [s.select()!, s.select()!, s.select()!]; // 2 + 1 held over a and b
    s.setBackends([a, b, c]);
    // c is new with 0 active; a and b keep theirs, so the next picks prefer c until it catches up.
    const busy = new Map([[a.id, 0], [b.id, 0]]);
    for (const h of held) busy.set(h.id, busy.get(h.id)! + 1);
    const next = s.select()!;
    if (next.id !== c.id) assert.ok(busy.get(next.id)! <= 1, `picked ${next.id} with ${busy.get(next.id)} active over the idle new back-end`);
    s.setBackends([c]);
    // Updates for back-ends no longer in the list are ignored, not errors.
    for (const h of held) s.update(h, { durationMs: 1, ok: false });
    for (let i = 0; i < 10; i++) assert.is(s.select()?.id, c.id);
    s.setBackends([]);
    assert.is(s.select(), undefined);
  });
});

test('bad options are a typed error attributed to the plugin', async () => {
  for (const options of [{ seed: 'x' }, { seed: 1.5 }, { choiceCount: 1 }, { choiceCount: '2' }]) {
    const host = createHost({ dirs: [PLUGIN_DIR], builtins: false });
    try {
      await host.routing.createStrategy(ID, { backends, options });
      assert.unreachable(`accepted ${JSON.stringify(options)}`);
    } catch (err) {
      assert.instance(err, PluginError);
      assert.is((err as PluginError).plugin, ID);
      assert.instance((err as Error).cause, InvalidArgumentError);
    } finally {
      await host.dispose();
    }
  }
});

test('choiceCount above the back-end count degenerates to a full least-request scan', async () => {
  await withStrategy({ seed: 2, choiceCount: 8 }, (s) => {
    const held: Backend[] = [];
    for (let i = 0; i < 40; i++) held.push(s.select()!);
    const counts = backends.map((b) => held.filter((h) => h.id === b.id).length);
    assert.equal(counts, [10, 10, 10, 10]);
  });
});

test.run();
