import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  createHost,
  ActivationError,
  ActivationTimeoutError,
  ContributionError,
  DependencyError,
  ErrorCodes,
  NoProviderError,
  TrellisError,
  type PluginHost,
  type TrellisError as TE,
} from '@trellis/sdk';
import { FIXTURES, memoryLogger, backends } from './helpers.js';
import { registryOf } from '../src/areas/registry.js';

const test = suite('plugin host');
const g = globalThis as Record<string, any>;

function fixtureHost(options: { activationTimeoutMs?: number } = {}): PluginHost {
  return createHost({ dirs: [FIXTURES], builtins: false, logger: memoryLogger(), ...options });
}

test('scanning reads manifests without running plugin code and records invalid folders', async () => {
  const host = fixtureHost();
  await host.scan();
  const byId = new Map(host.plugins().map((p) => [p.id, p]));
  assert.is(byId.get('first-strategy')?.state, 'discovered');
  assert.is(byId.get('never-resolves')?.state, 'discovered', 'never-resolves was not run by the scan');
  assert.is(g.__trellisHangCtx, undefined);
  const invalid = host.plugins().filter((p) => p.state === 'invalid');
  const names = invalid.map((p) => p.dir!.split('/').pop()).sort();
  assert.equal(names, ['bad-contributes', 'bad-engine-range', 'bad-json', 'bad-no-engines', 'bad-serializer-wireid', 'bad-version']);
  for (const p of invalid) assert.ok(p.error instanceof TrellisError, `${p.dir} has a typed error`);
  const mismatch = invalid.find((p) => p.dir!.endsWith('bad-engine-range'))!;
  assert.is(mismatch.error!.code, ErrorCodes.ENGINE_MISMATCH);
  assert.not.ok(byId.has('not-a-plugin'));
  await host.dispose();
});

test('a plugin activates lazily on its first activation event, once, for concurrent callers', async () => {
  const host = fixtureHost();
  const events: string[] = [];
  host.on('activated', (info) => events.push(info.id));
  await host.scan();
  assert.is(host.plugin('first-strategy')?.state, 'discovered');
  const [a, b] = await Promise.all([
    host.routing.createStrategy('first', { backends: backends(2), options: {} }),
    host.routing.createStrategy('first', { backends: backends(2), options: {} }),
  ]);
  assert.is(a.select()?.port, 5000);
  assert.is(b.select()?.port, 5000);
  assert.equal(events, ['first-strategy'], 'activated exactly once');
  const mod: { activations: number } = await import('./fixtures/plugins/first-strategy/index.js' as string);
  assert.is(mod.activations, 1);
  assert.is(host.plugin('first-strategy')?.state, 'active');
  await host.dispose();
});

test('a plugin that throws in activate is marked failed and the host keeps serving others', async () => {
  const host = fixtureHost();
  const failed: TE[] = [];
  host.on('activation-failed', (_info, err) => failed.push(err));
  try {
    await host.routing.createStrategy('boom', { backends: backends(1), options: {} });
    assert.unreachable();
  } catch (err) {
    assert.ok(err instanceof ActivationError);
    assert.is((err as ActivationError).plugin, 'throws-on-activate');
    assert.match((err as Error).message, /kaboom in activate/);
  }
  assert.is(host.plugin('throws-on-activate')?.state, 'failed');
  assert.is(failed.length, 1);
  const ok = await host.routing.createStrategy('first', { backends: backends(1), options: {} });
  assert.is(ok.select()?.port, 5000);
  await host.dispose();
});

test('a plugin whose activate never resolves fails with a timeout error and cannot register later', async () => {
  const host = fixtureHost({ activationTimeoutMs: 50 });
  const started = Date.now();
  try {
    await host.activate('never-resolves');
    assert.unreachable();
  } catch (err) {
    assert.ok(err instanceof ActivationTimeoutError);
    assert.is((err as TE).code, ErrorCodes.ACTIVATION_TIMEOUT);
  }
  assert.ok(Date.now() - started < 2000);
  assert.is(host.plugin('never-resolves')?.state, 'failed');
  const ctx = g.__trellisHangCtx;
  assert.throws(() => ctx.routing.registerStrategy('hang', () => ({})), (e: TE) => e.code === ErrorCodes.DISPOSED);
  await host.dispose();
});

test('registering an id the manifest does not declare is a contribution error', async () => {
  const host = fixtureHost();
  try {
    await host.activate('undeclared-id');
    assert.unreachable();
  } catch (err) {
    assert.ok(err instanceof ActivationError);
    const cause = (err as Error).cause;
    assert.ok(cause instanceof ContributionError, 'the cause is a ContributionError');
    assert.is((cause as ContributionError).id, 'not-declared');
    assert.is((cause as TE).code, ErrorCodes.UNDECLARED_CONTRIBUTION);
  }
  // the declared registration made before the throw was rolled back
  try {
    await host.routing.createStrategy('declared', { backends: [], options: {} });
    assert.unreachable();
  } catch (err) {
    assert.ok(err instanceof ActivationError);
  }
  await host.dispose();
});

test('a dependency cycle is an error, not a hang, even for concurrent activations', async () => {
  const host = fixtureHost();
  const results = await Promise.allSettled([host.activate('cycle-a'), host.activate('cycle-b')]);
  for (const r of results) {
    assert.is(r.status, 'rejected');
    const err = (r as PromiseRejectedResult).reason;
    assert.ok(err instanceof DependencyError);
    assert.is(err.code, ErrorCodes.DEPENDENCY_CYCLE);
    assert.match(err.message, /cycle-a -> cycle-b -> cycle-a|cycle-b -> cycle-a -> cycle-b/);
  }
  await host.dispose();
});

test('dependencies activate first; a missing dependency is reported by name', async () => {
  const host = fixtureHost();
  g.__trellisOrder = [];
  await host.routing.createStrategy('uses-base', { backends: [], options: {} });
  assert.equal(g.__trellisOrder, ['dep-base', 'dep-user']);
  try {
    await host.activate('needs-missing');
    assert.unreachable();
  } catch (err) {
    assert.ok(err instanceof DependencyError);
    assert.match((err as Error).message, /"not-installed", which is not installed/);
  }
  await host.dispose();
});

test('a plugin whose main module is missing fails with a clear activation error', async () => {
  const host = fixtureHost();
  await host.activate('no-main-file').then(
    () => assert.unreachable(),
    (err) => {
      assert.ok(err instanceof ActivationError);
      assert.match(err.message, /missing\.js does not exist/);
    },
  );
  await host.dispose();
});

test('asking for a strategy nobody contributes names the available ones', async () => {
  const host = fixtureHost();
  await host.routing.createStrategy('nope', { backends: [], options: {} }).then(
    () => assert.unreachable(),
    (err) => {
      assert.ok(err instanceof NoProviderError);
      assert.match(err.message, /no plugin contributes strategy "nope"; available: .*first/);
    },
  );
  await host.dispose();
});

test('deactivate runs the plugin deactivate() then disposes its registrations', async () => {
  const host = fixtureHost();
  const events: string[] = [];
  host.on('deactivated', (i) => events.push(i.id));
  await host.activate('first-strategy');
  const before = g.__trellisFixtureDeactivated ?? 0;
  await host.deactivate('first-strategy');
  assert.is(g.__trellisFixtureDeactivated, before + 1);
  assert.equal(events, ['first-strategy']);
  assert.is(host.plugin('first-strategy')?.state, 'deactivated');
  assert.is(registryOf(host.routing).get('first'), undefined, 'the strategy registration is gone');
  // and it can be activated again on demand
  const s = await host.routing.createStrategy('first', { backends: backends(1), options: {} });
  assert.is(s.select()?.port, 5000);
  await host.dispose();
});

test('in-process plugins register without a folder and their manifests are validated', async () => {
  const host = createHost({ builtins: false, logger: memoryLogger() });
  assert.throws(
    () => host.register({ manifest: { name: 'x', version: 'bad' }, activate() {} }),
    (e: TE) => e.code === ErrorCodes.MANIFEST && /"version"/.test(e.message),
  );
  host.register({
    manifest: { name: 'inline', version: '1.0.0', engines: { trellis: '*' }, contributes: { strategies: [{ id: 'inline', title: 'Inline' }] } },
    activate(ctx) {
      ctx.routing.registerStrategy('inline', ({ backends: list }) => ({ select: () => list.at(-1), update() {}, setBackends() {} }));
    },
  });
  const s = await host.routing.createStrategy('inline', { backends: backends(3), options: {} });
  assert.is(s.select()?.port, 5002);
  await host.dispose();
});

test('dispose() deactivates everything and gives up at its deadline', async () => {
  const host = createHost({ builtins: false, logger: memoryLogger(), activationTimeoutMs: 10_000 });
  host.register({
    manifest: { name: 'slow-stop', version: '1.0.0', engines: { trellis: '*' } },
    activate() {},
    deactivate: () => new Promise(() => {}),
  });
  await host.activate('slow-stop');
  const started = Date.now();
  await host.dispose({ timeoutMs: 100 }).then(
    () => assert.unreachable(),
    (err) => assert.is(err.code, ErrorCodes.TIMEOUT),
  );
  assert.ok(Date.now() - started < 2000);
  assert.throws(() => host.register({ manifest: { name: 'late', version: '1.0.0' }, activate() {} }), (e: TE) => e.code === ErrorCodes.DISPOSED);
});

test('scanning and activating 100 plugins works and every one is active', async () => {
  const plugins = Array.from({ length: 100 }, (_, i) => ({
    manifest: { name: `bulk-${i}`, version: '1.0.0', engines: { trellis: '*' }, contributes: { strategies: [{ id: `bulk-${i}`, title: `Bulk ${i}` }] } },
    activate(ctx: any) {
      ctx.routing.registerStrategy(`bulk-${i}`, () => ({ select() {}, update() {}, setBackends() {} }));
    },
  }));
  const host = createHost({ builtins: false, logger: memoryLogger(), plugins });
  await Promise.all(host.routing.strategies().map((id) => host.routing.createStrategy(id, { backends: [], options: {} })));
  assert.is(host.plugins().filter((p) => p.state === 'active').length, 100);
  await host.dispose();
});

test.run();
