/**
 * One guarded path for every call into plugin code: strategy, codec and DHT routing-table calls
 * reach the engine as a `PluginError` naming plugin and method, reported once (`plugin-error`);
 * a codec's `CodecError` goes to the `codecError` hook and on to the caller unchanged.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:http';
import { createHost, CodecError, PluginError, type PluginContext, type Value } from '@trellis/sdk';
import { createBalancer, createAdminServer } from '@trellis/sdk/balancer';
import { driverOf, SAMPLE_EVERY } from '../src/plugin-driver.js';
import { backends, memoryLogger } from './helpers.js';

const test = suite('plugin driver');

const manifest = (name: string, contributes: Record<string, unknown>) => ({ name, version: '1.0.0', engines: { trellis: '*' }, contributes });

function hostWith(failing: { select?: boolean; encode?: boolean; table?: boolean }) {
  let selects = 0;
  const host = createHost({
    discover: false,
    builtins: false,
    logger: memoryLogger(),
    plugins: [
      {
        manifest: manifest('flaky-strategy', { strategies: [{ id: 'flaky', title: 'Flaky' }] }),
        activate(ctx: PluginContext) {
          ctx.routing.registerStrategy('flaky', ({ backends: list }) => {
            let current = list;
            return {
              select() {
                // every other call throws when failing
                if (failing.select && selects++ % 2 === 0) throw new Error('select exploded');
                return current[0];
              },
              update() {},
              setBackends: (b) => void (current = b),
            };
          });
        },
      },
      {
        manifest: manifest('flaky-codec', { serializers: [{ id: 'flaky', title: 'Flaky', wireId: 30 }] }),
        activate(ctx: PluginContext) {
          ctx.serialization.registerCodec({
            wireId: 30,
            name: 'flaky',
            encode(value: Value) {
              if (failing.encode) throw new TypeError('encode exploded');
              return new TextEncoder().encode(JSON.stringify(value));
            },
            decode(bytes: Uint8Array) {
              try {
                return JSON.parse(new TextDecoder().decode(bytes)) as Value;
              } catch (err) {
                throw new ctx.errors.CodecError('flaky', (err as Error).message);
              }
            },
          });
        },
      },
      {
        manifest: manifest('flaky-routing', { dhtRouting: [{ id: 'flaky', title: 'Flaky' }] }),
        activate(ctx: PluginContext) {
          ctx.dhtRouting.registerRouting('flaky', () => ({
            closestPrecedingNode() {
              if (failing.table) throw new RangeError('table exploded');
              return undefined;
            },
            successorChanged() {},
            nodeFailed() {},
            refresh: () => [],
            update() {},
            entries: () => [],
          }));
        },
      },
    ],
  });
  const errors: PluginError[] = [];
  host.on('plugin-error', (e) => errors.push(e));
  return { host, errors };
}

test('a strategy throw arrives as a PluginError naming plugin and method, reported once', async () => {
  const { host, errors } = hostWith({ select: true });
  const strategy = await host.routing.createStrategy('flaky', { backends: backends(2), options: {} });
  let thrown: unknown;
  try {
    strategy.select();
  } catch (err) {
    thrown = err;
  }
  assert.instance(thrown, PluginError);
  assert.is((thrown as PluginError).plugin, 'flaky-strategy');
  assert.is((thrown as PluginError).hook, 'strategy:flaky.select');
  assert.is(errors.length, 1);
  assert.is(strategy.select()?.port, 5000, 'the next call goes through');
  // an engine that reports what it caught again does not double-report
  host.pluginError('flaky-strategy', 'strategy:flaky.select', thrown);
  assert.is(errors.length, 1);
  const stats = driverOf(strategy)!.stats();
  assert.is(stats.calls, 2, 'select calls are counted');
  assert.is(stats.failed, 1);
  await host.dispose();
});

test('the balancer answers a failing select with a 503 and keeps serving; one plugin-error per failure', async () => {
  const { host, errors } = hostWith({ select: true });
  const server: Server = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const lb = await createBalancer({ host, strategy: 'flaky', backends: [`127.0.0.1:${(server.address() as { port: number }).port}`], healthCheck: false });
  try {
    const { port } = await lb.listen(0, '127.0.0.1');
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      await res.arrayBuffer();
      statuses.push(res.status);
    }
    assert.equal(statuses, [503, 200, 503, 200]);
    assert.is(errors.length, 2);
    assert.ok(errors.every((e) => e.hook === 'strategy:flaky.select' && e.plugin === 'flaky-strategy'));
  } finally {
    await lb.close({ timeoutMs: 1000 });
    await host.dispose();
    server.close();
  }
});

test('codec calls: a CodecError goes to the codecError hook unchanged; any other throw is a PluginError', async () => {
  const { host, errors } = hostWith({ encode: true });
  const seen: [string, unknown][] = [];
  host.serialization.hooks.codecError.tap('observer', (codec, err) => void seen.push([codec.name, err]));
  const codec = await host.serialization.codec('flaky');
  assert.is(codec.wireId, 30);
  assert.is(codec.name, 'flaky');
  assert.throws(() => codec.decode(new TextEncoder().encode('{nope')), (err: unknown) => err instanceof CodecError);
  assert.is(seen.length, 1);
  assert.is(seen[0]![0], 'flaky');
  assert.instance(seen[0]![1], CodecError);
  assert.is(errors.length, 0, 'bad input is not a plugin failure');
  assert.throws(() => codec.encode(1), (err: unknown) => err instanceof PluginError && err.hook === 'serializer:flaky.encode' && err.plugin === 'flaky-codec');
  assert.is(errors.length, 1);
  assert.is(await host.serialization.codec(30), codec, 'one stand-in per registration');
  await host.dispose();
});

test('DHT routing-table calls go through the same path', async () => {
  const { host, errors } = hostWith({ table: true });
  const self = { id: 1n, host: '127.0.0.1', port: 1 };
  const table = await host.dhtRouting.createRouting('flaky', { self, bits: 8, options: {} });
  assert.throws(() => table.closestPrecedingNode(5n), (err: unknown) => err instanceof PluginError && err.hook === 'dhtRouting:flaky.closestPrecedingNode' && err.plugin === 'flaky-routing');
  assert.is(errors.length, 1);
  const factory = await host.dhtRouting.factory('flaky');
  assert.throws(() => factory({ self, bits: 8, options: {} }).closestPrecedingNode(5n), (err: unknown) => err instanceof PluginError);
  assert.is(errors.length, 2);
  await host.dispose();
});

test('calls are timed on a sample; a slow call is counted', async () => {
  const { host } = hostWith({});
  const strategy = await host.routing.createStrategy('flaky', { backends: backends(1), options: {} });
  for (let i = 0; i < SAMPLE_EVERY * 4; i++) strategy.select();
  const stats = driverOf(strategy)!.stats();
  assert.is(stats.calls, SAMPLE_EVERY * 4);
  assert.is(stats.timed, 4);
  assert.is(stats.thresholdMs, 1);
  await host.dispose();
});

test('slow select() calls are counted and shown on the balancer\'s /-/stats', async () => {
  const host = createHost({
    discover: false,
    builtins: false,
    logger: memoryLogger(),
    plugins: [
      {
        manifest: manifest('slow-strategy', { strategies: [{ id: 'slow', title: 'Slow' }] }),
        activate(ctx: PluginContext) {
          ctx.routing.registerStrategy('slow', ({ backends: list }) => {
            let current = list;
            return {
              select() {
                const until = performance.now() + 3; // a synchronous 3 ms select
                while (performance.now() < until);
                return current[0];
              },
              update() {},
              setBackends: (b) => void (current = b),
            };
          });
        },
      },
    ],
  });
  const server: Server = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const lb = await createBalancer({ host, strategy: 'slow', backends: [`127.0.0.1:${(server.address() as { port: number }).port}`], healthCheck: false });
  const admin = createAdminServer(lb);
  try {
    const { port } = await lb.listen(0, '127.0.0.1');
    const { port: adminPort } = await admin.listen(0, '127.0.0.1');
    for (let i = 0; i < SAMPLE_EVERY * 2; i++) await (await fetch(`http://127.0.0.1:${port}/`)).arrayBuffer();
    const stats = (await (await fetch(`http://127.0.0.1:${adminPort}/-/stats`)).json()) as { strategyCalls: { plugin: string; calls: number; timed: number; slow: number; maxMs: number; thresholdMs: number } };
    assert.is(stats.strategyCalls.plugin, 'slow-strategy');
    assert.is(stats.strategyCalls.calls, SAMPLE_EVERY * 2);
    assert.is(stats.strategyCalls.timed, 2);
    assert.is(stats.strategyCalls.slow, 2);
    assert.ok(stats.strategyCalls.maxMs >= 3);
    assert.is(stats.strategyCalls.thresholdMs, 1);
  } finally {
    await admin.close();
    await lb.close({ timeoutMs: 1000 });
    await host.dispose();
    server.close();
  }
});

test.run();
