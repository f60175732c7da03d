import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHost, createLogger, type DhtNode } from '@trellis/sdk';
import { MemoryNetwork, ChordNode } from '@trellis/sdk/dht';

const quiet = createLogger('test', 'silent');

test('the plugin activates lazily on onDhtRouting:chord-fingers and builds m-entry finger tables', async () => {
  const host = createHost({ logger: quiet });
  try {
    await host.scan();
    assert.is(host.plugin('@trellis/plugin-chord-fingers')?.state, 'discovered');
    const self = { id: 10n, host: '127.0.0.1', port: 1 };
    const table = await host.dhtRouting.createRouting('chord-fingers', { self, bits: 4, options: {} });
    assert.is(host.plugin('@trellis/plugin-chord-fingers')?.state, 'active');
    assert.equal(table.refresh().map((e) => e.start), [11n, 12n, 14n, 2n]);
    assert.is(table.entries().length, 4);
  } finally {
    await host.dispose();
  }
});

test("a node reports finished lookups and successor changes to the host's DHT routing hooks", async () => {
  const seen: string[] = [];
  const host = createHost({
    logger: quiet,
    builtins: true,
    plugins: [
      {
        manifest: { name: 'dht-observer', version: '0.1.0', engines: { trellis: '^0.1.0' }, activationEvents: ['*'] },
        activate(ctx) {
          ctx.dhtRouting.tap('lookup', (_node: DhtNode, id: bigint, hops: number) => seen.push(`lookup ${id} ${hops}`));
          ctx.dhtRouting.tap('successorChanged', (node: DhtNode, succ: DhtNode) => seen.push(`successor ${node.id}->${succ.id}`));
        },
      },
    ],
  });
  await host.activateByEvent('*');
  const routing = await host.dhtRouting.factory('chord-fingers');
  const network = new MemoryNetwork();
  const mk = (id: bigint) => new ChordNode({ transport: network, clock: network.clock, bits: 8, id, routing, hooks: host.dhtRouting.hooks, stabilizeMs: 20 });
  const a = mk(1n);
  const b = mk(100n);
  try {
    await a.listen(0, 'sim');
    await b.listen(0, 'sim');
    let done = false;
    const joined = b.join(a.address).finally(() => (done = true));
    await network.clock.runWhile(() => !done, 5000, 5);
    await joined;
    await network.clock.advance(500);
    done = false;
    const found = a.lookup(50n).finally(() => (done = true));
    await network.clock.runWhile(() => !done, 5000, 5);
    assert.is((await found).node.id, 100n);
    assert.ok(seen.includes('successor 100->1'), seen.join(', '));
    assert.ok(seen.includes('successor 1->100'), seen.join(', '));
    assert.ok(seen.includes('lookup 50 1'), seen.join(', '));
  } finally {
    await a.close({ graceful: false });
    await b.close({ graceful: false });
    await host.dispose();
  }
});

test.run();
