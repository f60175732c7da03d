/**
 * One guarded path for every call into listener code: a listener tapped straight on the public
 * hook objects (app code, not a plugin context) that throws becomes a `PluginError` with the tap
 * name and hook name, is reported as `plugin-error`, and the caller — a running balancer
 * included — keeps serving. The providers' registries are not reachable from the areas.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:http';
import { createHost, PluginError, type PluginContext } from '@trellis/sdk';
import { createBalancer } from '@trellis/sdk/balancer';
import { memoryLogger } from './helpers.js';

const test = suite('guarded hooks');

const backend = { id: 'a', host: '127.0.0.1', port: 1 };

test('a throwing public tap is reported with its name and hook; the other listeners still run', async () => {
  const host = createHost({ discover: false, logger: memoryLogger() });
  const errors: PluginError[] = [];
  host.on('plugin-error', (e) => errors.push(e));
  const seen: string[] = [];
  host.routing.hooks.requestEnd.tap('my-app', () => {
    throw new Error('app bug');
  });
  host.routing.hooks.requestEnd.tap('after', () => seen.push('after'));
  host.routing.hooks.requestEnd.call({ balancer: 'lb', mode: 'http', backend }, { durationMs: 1, ok: true });
  assert.equal(seen, ['after']);
  assert.is(errors.length, 1);
  assert.ok(errors[0] instanceof PluginError);
  assert.is(errors[0]!.plugin, 'my-app');
  assert.is(errors[0]!.hook, 'routing.requestEnd');
  assert.match(errors[0]!.message, /app bug/);
  host.serialization.hooks.codecError.tap('codec-watch', () => {
    throw new Error('x');
  });
  host.dhtRouting.hooks.lookup.tap('dht-watch', () => {
    throw new Error('y');
  });
  host.serialization.hooks.codecError.call(...([] as unknown as Parameters<typeof host.serialization.hooks.codecError.call>));
  host.dhtRouting.hooks.lookup.call({ id: 1n, host: '127.0.0.1', port: 1 }, 2n, 3);
  assert.equal(errors.map((e) => `${e.plugin} ${e.hook}`), ['my-app routing.requestEnd', 'codec-watch serialization.codecError', 'dht-watch dhtRouting.lookup']);
  await host.dispose();
});

test('a plugin-context tap is wrapped once and still unsubscribes', async () => {
  const host = createHost({ discover: false, logger: memoryLogger() });
  const errors: PluginError[] = [];
  host.on('plugin-error', (e) => errors.push(e));
  let ctx: PluginContext | undefined;
  host.register({ manifest: { name: 'obs', version: '1.0.0', engines: { trellis: '*' }, activationEvents: ['onStartup'] }, activate: (c) => void (ctx = c) });
  await host.start();
  let calls = 0;
  const sub = ctx!.routing.tap('requestStart', () => {
    calls++;
    throw new Error('boom');
  });
  host.routing.hooks.requestStart.call({ balancer: 'lb', mode: 'http', backend });
  assert.is(calls, 1);
  assert.equal(errors.map((e) => `${e.plugin} ${e.hook}`), ['obs routing.requestStart']);
  sub.dispose();
  host.routing.hooks.requestStart.call({ balancer: 'lb', mode: 'http', backend });
  assert.is(calls, 1);
  await host.dispose();
});

test('a balancer keeps serving while a public requestEnd tap throws on every request', async () => {
  const server: Server = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const host = createHost({
    discover: false,
    logger: memoryLogger(),
    plugins: [
      {
        manifest: { name: 'first', version: '1.0.0', engines: { trellis: '*' }, contributes: { strategies: [{ id: 'first', title: 'First' }] } },
        activate(ctx) {
          ctx.routing.registerStrategy('first', ({ backends }) => {
            let list = backends;
            return { select: () => list[0], update() {}, setBackends: (b) => void (list = b) };
          });
        },
      },
    ],
  });
  const errors: PluginError[] = [];
  host.on('plugin-error', (e) => errors.push(e));
  host.routing.hooks.requestEnd.tap('metrics', () => {
    throw new Error('metrics exploded');
  });
  const lb = await createBalancer({ host, strategy: 'first', backends: [`127.0.0.1:${port}`], healthCheck: false });
  try {
    const { port: lbPort } = await lb.listen(0, '127.0.0.1');
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`http://127.0.0.1:${lbPort}/`);
      assert.is(res.status, 200);
      assert.is(await res.text(), 'ok');
    }
    const deadline = Date.now() + 5000;
    while (errors.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(errors.length >= 3, `plugin-error events: ${errors.length}`);
    assert.ok(errors.every((e) => e.plugin === 'metrics' && e.hook === 'routing.requestEnd'));
  } finally {
    await lb.close({ timeoutMs: 1000 });
    await host.dispose();
    server.close();
  }
});

test('the provider registries are not reachable from the areas', async () => {
  const host = createHost({ discover: false, logger: memoryLogger() });
  for (const area of [host.routing, host.serialization, host.dhtRouting]) {
    assert.not.ok('registry' in area);
    assert.equal(Object.getOwnPropertySymbols(area), []);
  }
  await host.dispose();
});

test.run();
