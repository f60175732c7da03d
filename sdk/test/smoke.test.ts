import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHost, type Strategy } from '@trellis/sdk';

test('an in-process strategy plugin activates lazily and is called directly', async () => {
  let activations = 0;
  const host = createHost({
    builtins: false,
    plugins: [
      {
        manifest: { name: 'first', version: '1.0.0', engines: { trellis: '*' }, contributes: { strategies: [{ id: 'first', title: 'First' }] } },
        activate(ctx) {
          activations++;
          ctx.routing.registerStrategy('first', ({ backends }) => {
            let list = backends;
            return { select: () => list[0], update() {}, setBackends: (b) => void (list = b) } satisfies Strategy;
          });
        },
      },
    ],
  });
  assert.is(activations, 0);
  const s = await host.routing.createStrategy('first', { backends: [{ id: 'a', host: '127.0.0.1', port: 1 }], options: {} });
  assert.is(activations, 1);
  assert.is(s.select()?.id, 'a');
  await host.dispose();
});

test.run();
