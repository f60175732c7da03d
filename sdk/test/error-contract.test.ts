/**
 * One error contract across the engines: the same mistake is the same `TrellisError` subclass
 * with a code in the registry (`listen()` twice → `StateError`, a missing host →
 * `InvalidArgumentError`), library messages carry no command-line advice, and the CLI adds it.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Writable } from 'node:stream';
import { createHost, ErrorCodes, InvalidArgumentError, StateError, TrellisError, errors } from '@trellis/sdk';
import { createBalancer } from '@trellis/sdk/balancer';
import { createBroker } from '@trellis/sdk/broker';
import { ChordNode, MemoryNetwork } from '@trellis/sdk/dht';
import { defineCommand, runCommand } from '@trellis/sdk/cli';
import { memoryLogger } from './helpers.js';

const test = suite('error contract');

async function thrown(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

const registered = new Set<string>(Object.values(ErrorCodes));

test('every engine refuses a missing host with InvalidArgumentError', async () => {
  for (const make of [() => createBalancer(undefined as never), () => createBroker(undefined as never)]) {
    const err = await thrown(make);
    assert.ok(err instanceof InvalidArgumentError, String(err));
    assert.is((err as TrellisError).code, ErrorCodes.INVALID_ARGUMENT);
  }
});

test('listen() twice is a StateError in the balancer, the broker and the DHT node', async () => {
  const host = createHost({
    discover: false,
    logger: memoryLogger(),
    plugins: [
      {
        manifest: { name: 'first', version: '1.0.0', engines: { trellis: '*' }, contributes: { strategies: [{ id: 'first', title: 'First' }] } },
        activate(ctx) {
          ctx.routing.registerStrategy('first', ({ backends }) => ({ select: () => backends[0], update() {}, setBackends() {} }));
        },
      },
    ],
  });
  const lb = await createBalancer({ host, strategy: 'first', backends: ['127.0.0.1:9'], healthCheck: false });
  const broker = createBroker({ host });
  const net = new MemoryNetwork();
  const node = new ChordNode({ bits: 8, transport: net, clock: net.clock, id: 1n });
  try {
    await lb.listen(0, '127.0.0.1');
    await broker.listen(0, '127.0.0.1');
    await node.listen(1, '127.0.0.1');
    for (const again of [() => lb.listen(0, '127.0.0.1'), () => broker.listen(0, '127.0.0.1'), () => node.listen(2, '127.0.0.1')]) {
      const err = await thrown(again);
      assert.ok(err instanceof StateError, String(err));
      assert.is((err as TrellisError).code, ErrorCodes.STATE);
    }
  } finally {
    await lb.close({ timeoutMs: 1000 });
    await broker.close({ timeoutMs: 1000 });
    await node.close({ graceful: false });
    await host.dispose();
  }
});

test('every code an error class carries is in the registry, and plugins get StateError too', () => {
  for (const [name, Class] of Object.entries(errors)) {
    if (name === 'TrellisError') continue; // the base class takes its code as an argument
    const err = Reflect.construct(Class as never, name === 'NoProviderError' ? ['x', 'y', []] : ['x', 'y']) as TrellisError;
    assert.ok(registered.has(err.code), `${name}: ${err.code}`);
  }
  assert.is(errors.StateError, StateError);
});

test('library messages give no command-line advice; the CLI adds it', async () => {
  const host = createHost({ discover: false, logger: memoryLogger() });
  const err = (await thrown(() => host.activate('nope'))) as TrellisError;
  assert.is(err.code, ErrorCodes.PLUGIN_NOT_FOUND);
  assert.not.match(err.message, /trellis |--|npm /);
  let stderr = '';
  const sink = new Writable({ write: (chunk, _enc, done) => ((stderr += chunk), done()) });
  const cmd = defineCommand({ name: 'x', summary: 'x', options: {}, run: () => host.activate('nope').then(() => 0) });
  const code = await runCommand('trellis x', cmd, [], { stdout: sink, stderr: sink, signal: new AbortController().signal });
  assert.is(code, 1);
  assert.match(stderr, /TRELLIS_ERR_PLUGIN_NOT_FOUND\]; run "trellis plugins"/);
  await host.dispose();
});

test.run();
