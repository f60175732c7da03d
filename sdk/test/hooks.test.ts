import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SyncHook } from 'tapable';
import { createHost, untap, tapSync, PluginError, type PluginContext, type RouteInfo } from '@trellis/sdk';
import { memoryLogger, backends } from './helpers.js';

const test = suite('hook areas');

const info: RouteInfo = { balancer: 'b', mode: 'http', backend: backends(1)[0]! };
const outcome = { durationMs: 1, ok: true };

function observerHost(activate: (ctx: PluginContext) => void, name = 'observer') {
  const host = createHost({ builtins: false, logger: memoryLogger() });
  host.register({ manifest: { name, version: '1.0.0', engines: { trellis: '*' }, activationEvents: ['onStartup'] }, activate });
  return host;
}

test('hook objects are frozen, webpack style', () => {
  const host = createHost({ builtins: false, logger: memoryLogger() });
  assert.ok(Object.isFrozen(host.routing.hooks));
  assert.ok(Object.isFrozen(host.serialization.hooks));
  assert.ok(Object.isFrozen(host.dhtRouting.hooks));
  assert.is(typeof host.routing.hooks.requestEnd.tap, 'function');
  assert.equal(host.routing.hooks.requestEnd.taps, []);
});

test('untap removes a tap from a compiled hook: it is never called again', () => {
  const hook = new SyncHook<[number]>(['n']);
  const seen: string[] = [];
  const a = (n: number) => void seen.push(`a${n}`);
  const b = (n: number) => void seen.push(`b${n}`);
  hook.tap('a', a);
  hook.tap('b', b);
  hook.call(1); // compiles the call with both taps
  assert.ok(untap(hook, a));
  hook.call(2);
  hook.call(3);
  assert.equal(seen, ['a1', 'b1', 'b2', 'b3']);
  assert.not.ok(untap(hook, a), 'a second untap finds nothing');
});

test('a disposed plugin tap is never called again, and others keep firing', async () => {
  const calls: string[] = [];
  let keep: { dispose(): void } | undefined;
  let drop: { dispose(): void } | undefined;
  const host = observerHost((ctx) => {
    drop = ctx.routing.tap('requestEnd', () => void calls.push('drop'));
    keep = ctx.routing.tap('requestEnd', () => void calls.push('keep'));
  });
  await host.activateByEvent('onStartup');
  host.routing.hooks.requestEnd.call(info, outcome);
  drop!.dispose();
  host.routing.hooks.requestEnd.call(info, outcome);
  host.routing.hooks.requestEnd.call(info, outcome);
  assert.equal(calls, ['drop', 'keep', 'keep', 'keep']);
  assert.is(host.routing.hooks.requestEnd.taps.length, 1);
  keep!.dispose();
  await host.dispose();
});

test('deactivating a plugin removes every tap it made', async () => {
  let calls = 0;
  const host = observerHost((ctx) => {
    ctx.routing.tap('requestStart', () => void calls++);
    ctx.dhtRouting.tap('lookup', () => void calls++);
  });
  await host.activateByEvent('onStartup');
  host.routing.hooks.requestStart.call(info);
  await host.deactivate('observer');
  host.routing.hooks.requestStart.call(info);
  host.dhtRouting.hooks.lookup.call({ id: 1n, host: 'h', port: 1 }, 2n, 3);
  assert.is(calls, 1);
  assert.is(host.routing.hooks.requestStart.taps.length, 0);
  assert.is(host.dhtRouting.hooks.lookup.taps.length, 0);
  await host.dispose();
});

test('a throwing listener surfaces as a PluginError with plugin id and hook name, and the call goes on', async () => {
  const errors: PluginError[] = [];
  let after = 0;
  const host = observerHost((ctx) => {
    ctx.routing.tap('backendDown', () => {
      throw new Error('listener bug');
    });
    ctx.routing.tap('backendDown', () => void after++);
  }, 'buggy');
  host.on('plugin-error', (e) => errors.push(e));
  await host.activateByEvent('onStartup');
  host.routing.hooks.backendDown.call(info.backend, 'health check failed');
  assert.is(after, 1, 'the next listener still ran');
  assert.is(errors.length, 1);
  assert.ok(errors[0] instanceof PluginError);
  assert.is(errors[0]!.plugin, 'buggy');
  assert.is(errors[0]!.hook, 'routing.backendDown');
  assert.match(errors[0]!.message, /listener bug/);
  await host.dispose();
});

test('tapSync reports to its sink and returns undefined so SyncBail hooks are not short-circuited', () => {
  const hook = new SyncHook<[string]>(['s']);
  const sink: PluginError[] = [];
  const d = tapSync(hook, 'h', 'p', (s) => {
    if (s === 'bad') throw new Error('no');
  }, (e) => sink.push(e));
  hook.call('ok');
  hook.call('bad');
  assert.is(sink.length, 1);
  d.dispose();
  d.dispose();
  assert.is(hook.taps.length, 0);
});

test('a codec must match the wire id its manifest declares', async () => {
  const host = createHost({ builtins: false, logger: memoryLogger() });
  host.register({
    manifest: { name: 'codec', version: '1.0.0', engines: { trellis: '*' }, contributes: { serializers: [{ id: 'raw', title: 'Raw', wireId: 7 }] } },
    activate(ctx) {
      ctx.serialization.registerCodec({ wireId: 8, name: 'raw', encode: () => new Uint8Array(), decode: () => null });
    },
  });
  await host.serialization.codec(7).then(
    () => assert.unreachable(),
    (err) => assert.match(String(err.cause?.message), /wireId 8 but the manifest declares 7/),
  );
  await host.dispose();
});

test('codecs resolve by name or wire id, activating their plugin once', async () => {
  let activations = 0;
  const host = createHost({ builtins: false, logger: memoryLogger() });
  host.register({
    manifest: { name: 'codec', version: '1.0.0', engines: { trellis: '*' }, contributes: { serializers: [{ id: 'raw', title: 'Raw', wireId: 7 }] } },
    activate(ctx) {
      activations++;
      ctx.serialization.registerCodec({ wireId: 7, name: 'raw', encode: (v) => new TextEncoder().encode(String(v)), decode: (b) => new TextDecoder().decode(b) });
    },
  });
  const a = await host.serialization.codec('raw');
  const b = await host.serialization.codec(7);
  assert.is(a, b);
  assert.is(activations, 1);
  assert.is(a.decode(a.encode('hi')), 'hi');
  await host.serialization.codec(9).then(
    () => assert.unreachable(),
    (err) => assert.is(err.code, 'TRELLIS_ERR_NO_PROVIDER'),
  );
  await host.dispose();
});

test.run();
