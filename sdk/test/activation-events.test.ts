/**
 * Activation events with VS Code's meaning: `*` and `onStartup` activate at `host.start()`;
 * `onStrategy:<id>`, `onSerializer:<id>` and `onDhtRouting:<id>` activate every plugin that lists
 * the event when it fires — an observer with no contribution included — not only the contributor.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHost, type InProcessPlugin, type PluginContext } from '@trellis/sdk';
import { memoryLogger } from './helpers.js';

const test = suite('activation events');

const engines = { trellis: '*' };
const strategyPlugin: InProcessPlugin = {
  manifest: { name: 'rr', version: '1.0.0', engines, contributes: { strategies: [{ id: 'rr', title: 'RR' }] } },
  activate(ctx: PluginContext) {
    ctx.routing.registerStrategy('rr', ({ backends }) => ({ select: () => backends[0], update() {}, setBackends() {} }));
  },
};
const codecPlugin: InProcessPlugin = {
  manifest: { name: 'raw', version: '1.0.0', engines, contributes: { serializers: [{ id: 'raw', title: 'Raw', wireId: 7 }] } },
  activate(ctx: PluginContext) {
    ctx.serialization.registerCodec({ wireId: 7, name: 'raw', encode: () => new Uint8Array(0), decode: () => null });
  },
};
const dhtPlugin: InProcessPlugin = {
  manifest: { name: 'fingers', version: '1.0.0', engines, contributes: { dhtRouting: [{ id: 'fingers', title: 'F' }] } },
  activate(ctx: PluginContext) {
    ctx.dhtRouting.registerRouting('fingers', () => ({
      closestPrecedingNode: () => undefined,
      successorChanged() {},
      nodeFailed() {},
      refresh: () => [],
      update() {},
      entries: () => [],
    }));
  },
};

function observer(name: string, events: string[], log: string[], fail = false): InProcessPlugin {
  return {
    manifest: { name, version: '1.0.0', engines, activationEvents: events },
    activate() {
      log.push(name);
      if (fail) throw new Error(`${name} refuses`);
    },
  };
}

const backends = [{ id: 'a', host: '127.0.0.1', port: 1 }];

test('onStartup and * plugins activate at host.start(), not before; others stay discovered', async () => {
  const log: string[] = [];
  const host = createHost({ discover: false, logger: memoryLogger(), plugins: [observer('boot', ['onStartup'], log), observer('star', ['*'], log), observer('lazy', ['onStrategy:rr'], log), strategyPlugin] });
  await host.scan();
  assert.equal(log, []);
  assert.is(host.plugin('boot')?.state, 'discovered');
  await host.start();
  assert.equal(log.sort(), ['boot', 'star']);
  assert.is(host.plugin('boot')?.state, 'active');
  assert.is(host.plugin('star')?.state, 'active');
  assert.is(host.plugin('lazy')?.state, 'discovered');
  assert.is(host.plugin('rr')?.state, 'discovered');
  await host.start(); // idempotent
  assert.equal(log.sort(), ['boot', 'star']);
  await host.dispose();
});

test('onStrategy:<id> wakes every plugin that lists it along with the contributor', async () => {
  const log: string[] = [];
  const host = createHost({ discover: false, logger: memoryLogger(), plugins: [strategyPlugin, observer('watcher', ['onStrategy:rr'], log), observer('other', ['onStrategy:else'], log)] });
  await host.routing.createStrategy('rr', { backends, options: {} });
  assert.equal(log, ['watcher']);
  assert.is(host.plugin('watcher')?.state, 'active');
  assert.is(host.plugin('rr')?.state, 'active');
  assert.is(host.plugin('other')?.state, 'discovered');
  await host.dispose();
});

test('onSerializer:<id> and onDhtRouting:<id> wake their observers too', async () => {
  const log: string[] = [];
  const host = createHost({
    discover: false,
    logger: memoryLogger(),
    plugins: [codecPlugin, dhtPlugin, observer('codec-watcher', ['onSerializer:raw'], log), observer('dht-watcher', ['onDhtRouting:fingers'], log)],
  });
  await host.serialization.codec('raw');
  assert.equal(log, ['codec-watcher']);
  assert.is(host.plugin('dht-watcher')?.state, 'discovered');
  await host.dhtRouting.factory('fingers');
  assert.equal(log, ['codec-watcher', 'dht-watcher']);
  await host.dispose();
});

test('a failing observer is recorded as failed and never fails the contributor', async () => {
  const log: string[] = [];
  const host = createHost({ discover: false, logger: memoryLogger(), plugins: [strategyPlugin, observer('broken', ['onStrategy:rr'], log, true)] });
  const failed: string[] = [];
  host.on('activation-failed', (info) => failed.push(info.id));
  const s = await host.routing.createStrategy('rr', { backends, options: {} });
  assert.is(s.select()?.id, 'a');
  assert.is(host.plugin('broken')?.state, 'failed');
  assert.equal(failed, ['broken']);
  await host.dispose();
});

test.run();
