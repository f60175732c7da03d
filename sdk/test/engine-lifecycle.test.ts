/**
 * Lifecycle reaches the balancer: when the plugin that provides its strategy is deactivated, new
 * requests get a clear 503 (never the disposed strategy object); when a provider of the same id is
 * registered again, the balancer takes a fresh instance and serves again. Host events tell the app.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:http';
import { createHost, type Backend } from '@trellis/sdk';
import { createBalancer } from '@trellis/sdk/balancer';
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

test.run();
