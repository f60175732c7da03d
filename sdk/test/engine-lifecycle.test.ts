/**
 * Lifecycle reaches the balancer: when the plugin that provides its strategy is deactivated, new
 * requests get a clear 503 (never the disposed strategy object); when a provider of the same id is
 * registered again, the balancer takes a fresh instance and serves again. Host events tell the app.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:http';
import { serialize, deserialize } from 'node:v8';
import { createHost, type Backend, type Codec, type PluginContext, type Value } from '@trellis/sdk';
import { createBalancer } from '@trellis/sdk/balancer';
import { createBroker, connect, type BrokerClient } from '@trellis/sdk/broker';
import { createUdpNode } from '@trellis/sdk/dht';
import { memoryLogger } from './helpers.js';

const test = suite('engine lifecycle');

test('deactivating the strategy plugin stops the balancer using it; activating it again brings a new instance', async () => {
  const server: Server = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  let instances = 0;
  let disposedUsed = 0;
  const host = createHost({
    discover: false,
    logger: memoryLogger(),
    plugins: [
      {
        manifest: { name: 'first-plugin', version: '1.0.0', engines: { trellis: '*' }, contributes: { strategies: [{ id: 'first', title: 'First' }] } },
        activate(ctx) {
          let alive = true;
          ctx.subscriptions.push({ dispose: () => void (alive = false) });
          ctx.routing.registerStrategy('first', ({ backends }) => {
            instances++;
            let list: readonly Backend[] = backends;
            return {
              select: () => {
                if (!alive) disposedUsed++;
                return list[0];
              },
              update() {},
              setBackends: (b) => void (list = b),
            };
          });
        },
      },
    ],
  });
  const events: string[] = [];
  host.on('provider-removed', (area, id, plugin) => events.push(`removed ${area} ${id} ${plugin}`));
  host.on('provider-added', (area, id, plugin) => events.push(`added ${area} ${id} ${plugin}`));
  const lb = await createBalancer({ host, strategy: 'first', backends: [`127.0.0.1:${port}`], healthCheck: false });
  try {
    const { port: lbPort } = await lb.listen(0, '127.0.0.1');
    const get = async () => {
      const res = await fetch(`http://127.0.0.1:${lbPort}/`);
      return `${res.status} ${(await res.text()).trim()}`;
    };
    assert.is(await get(), '200 ok');
    await host.deactivate('first-plugin');
    const refused = await get();
    assert.match(refused, /^503 .*no plugin contributes strategy "first"/);
    assert.is(disposedUsed, 0, 'the disposed strategy object was called');
    await host.activate('first-plugin');
    const deadline = Date.now() + 5000;
    let answer = await get();
    while (answer !== '200 ok' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      answer = await get();
    }
    assert.is(answer, '200 ok');
    assert.is(instances, 2);
    assert.is(disposedUsed, 0);
    assert.equal(events, ['added strategies first first-plugin', 'removed strategies first first-plugin', 'added strategies first first-plugin']);
  } finally {
    await lb.close({ timeoutMs: 1000 });
    await host.dispose();
    server.close();
  }
});

test('a request in flight when the strategy plugin goes finishes and settles on the instance that routed it', async () => {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const server: Server = createServer((_req, res) => void held.then(() => res.end('late')));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const updates: string[] = [];
  let instance = 0;
  const host = createHost({
    discover: false,
    logger: memoryLogger(),
    plugins: [
      {
        manifest: { name: 'held-plugin', version: '1.0.0', engines: { trellis: '*' }, contributes: { strategies: [{ id: 'held', title: 'Held' }] } },
        activate(ctx) {
          ctx.routing.registerStrategy('held', ({ backends }) => {
            const n = ++instance;
            let list: readonly Backend[] = backends;
            return { select: () => list[0], update: (_b, o) => void updates.push(`${n} ${o.ok}`), setBackends: (b) => void (list = b) };
          });
        },
      },
    ],
  });
  const lb = await createBalancer({ host, strategy: 'held', backends: [`127.0.0.1:${port}`], healthCheck: false });
  try {
    const { port: lbPort } = await lb.listen(0, '127.0.0.1');
    const inFlight = fetch(`http://127.0.0.1:${lbPort}/`).then(async (res) => `${res.status} ${await res.text()}`);
    const deadline = Date.now() + 5000;
    while (lb.stats().active === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await host.deactivate('held-plugin');
    release();
    assert.is(await inFlight, '200 late');
    assert.equal(updates, ['1 true']);
  } finally {
    release();
    await lb.close({ timeoutMs: 1000 });
    await host.dispose();
    server.close();
  }
});

test('a balancer that fails to start leaves no listener on the host', async () => {
  const host = createHost({ discover: false, logger: memoryLogger() });
  await createBalancer({ host, strategy: 'missing', backends: ['127.0.0.1:9'], healthCheck: false }).then(
    () => assert.unreachable('should fail'),
    () => undefined,
  );
  assert.is(host.listenerCount('provider-removed'), 0);
  assert.is(host.listenerCount('provider-added'), 0);
  await host.dispose();
});

/** A codec plugin made in the test: `name` on wire id `wireId`, V8 structured clone. */
function codecPlugin(plugin: string, name: string, wireId: number) {
  return {
    manifest: { name: plugin, version: '1.0.0', engines: { trellis: '*' }, contributes: { serializers: [{ id: name, title: name, wireId }] } },
    activate(ctx: PluginContext) {
      ctx.serialization.registerCodec(v8Codec(name, wireId));
    },
  };
}
const v8Codec = (name: string, wireId: number): Codec => ({ wireId, name, encode: (v: Value) => serialize(v), decode: (b: Uint8Array) => deserialize(b) as Value });

test('a deactivated codec plugin: its broker clients get an UNKNOWN_CODEC error and are closed, others keep being served', async () => {
  const host = createHost({ discover: false, builtins: false, logger: memoryLogger(), plugins: [codecPlugin('alpha-codec', 'alpha', 20), codecPlugin('beta-codec', 'beta', 21)] });
  const broker = createBroker({ host, lingerMs: 200 });
  const clients: BrokerClient[] = [];
  try {
    const { port } = await broker.listen(0);
    const alpha = await connect({ port, codec: v8Codec('alpha', 20) });
    const beta = await connect({ port, codec: v8Codec('beta', 21) });
    clients.push(alpha, beta);
    const alphaClosed = new Promise<Error | undefined>((resolve) => alpha.once('close', resolve));
    const alphaErrors: Error[] = [];
    alpha.on('error', (err) => alphaErrors.push(err));
    const sub = await beta.subscribe('/t');
    await host.deactivate('alpha-codec');
    await Promise.race([alphaClosed, new Promise((_, reject) => setTimeout(() => reject(new Error('alpha client was not closed')), 5000))]);
    assert.ok(alphaErrors.some((e) => /UNKNOWN_CODEC|codec is gone/.test(`${(e as { code?: unknown }).code} ${e.message}`)), alphaErrors.map((e) => e.message).join('; '));
    assert.ok(alphaErrors.some((e) => /alpha codec is gone/.test(e.message)));
    // the other codec's client is still served
    beta.publish('/t', 42);
    const got = await Promise.race([sub.next(), new Promise<never>((_, reject) => setTimeout(() => reject(new Error('beta got nothing')), 5000))]);
    assert.is(got.value.value, 42);
    // a new alpha client activates the codec's plugin again (lazy activation) and is served
    const again = await connect({ port, codec: v8Codec('alpha', 20) });
    clients.push(again);
    const sub2 = await again.subscribe('/t');
    beta.publish('/t', 43);
    for (;;) {
      const next = await Promise.race([sub2.next(), new Promise<never>((_, reject) => setTimeout(() => reject(new Error('alpha got nothing')), 5000))]);
      if (next.value.retained) continue;
      assert.is(next.value.value, 43);
      break;
    }
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await broker.close({ timeoutMs: 1000 });
    await host.dispose();
  }
  assert.is(host.listenerCount('provider-removed'), 0);
});

test('the DHT node falls back to successor routing when its routing plugin goes, and re-adopts it when it comes back', async () => {
  const logger = memoryLogger();
  let tables = 0;
  const routingPlugin = {
    manifest: { name: 'test-routing-plugin', version: '1.0.0', engines: { trellis: '*' }, contributes: { dhtRouting: [{ id: 'test-routing', title: 'Test routing' }] } },
    activate(ctx: PluginContext) {
      ctx.dhtRouting.registerRouting('test-routing', ({ self }) => {
        tables++;
        return {
          closestPrecedingNode: () => undefined,
          successorChanged() {},
          nodeFailed() {},
          refresh: () => [],
          update() {},
          entries: () => [self],
        };
      });
    },
  };
  const host = createHost({ logger, plugins: [routingPlugin] });
  const node = await createUdpNode(host, { routing: 'test-routing', maintenance: false });
  const changes: (string | null)[] = [];
  node.on('routing-changed', (policy) => changes.push(policy));
  try {
    await node.listen(0, '127.0.0.1');
    assert.is(node.info().fingers.length, 1, 'the plugin table is in use');
    await host.deactivate('test-routing-plugin');
    assert.equal(changes, [null]);
    assert.is(node.info().fingers.length, 0, 'successor routing has no entries');
    assert.ok(logger.lines.some((l) => /falling back to successor routing/.test(l)), logger.lines.join('\n'));
    // still serving
    await node.put('k', 'v');
    assert.is(await node.get('k'), 'v');
    await host.activate('test-routing-plugin');
    const deadline = Date.now() + 5000;
    while (changes.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(changes, [null, 'test-routing']);
    assert.is(node.info().fingers.length, 1);
    assert.is(tables, 2);
  } finally {
    await node.close({ graceful: false });
    await host.dispose();
  }
  assert.is(host.listenerCount('provider-added'), 0);
});

test.run();
