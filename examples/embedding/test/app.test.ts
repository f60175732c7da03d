/**
 * The embedding example end to end: the app runs a balancer (with its in-process strategy) and a
 * broker inside this test's process, on real loopback sockets.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type BrokerMessage } from '@trellis/sdk/broker';
import { startEmbeddedApp } from '../src/app.js';

test('the embedded balancer shares requests 3:1 with its in-process plugin and the broker carries the request log', async () => {
  const app = await startEmbeddedApp();
  const consumer = await connect({ port: app.brokerPort, codec: 'json', plugins: app.host, role: 'consumer' });
  try {
    assert.is(app.host.plugin('embedded-weighted-round-robin')?.state, 'active');
    assert.is(app.balancer.stats().strategy, 'weighted-round-robin');
    const log = await consumer.subscribe('/requests');
    const served: string[] = [];
    for (let i = 0; i < 16; i++) {
      const res = await fetch(`${app.url}/item/${i}`);
      assert.is(res.status, 200);
      served.push(((await res.json()) as { service: string }).service);
    }
    assert.equal(served.slice(0, 4), ['primary', 'primary', 'secondary', 'primary'], 'smooth weighted round robin order');
    assert.is(served.filter((s) => s === 'primary').length, 12);
    assert.is(served.filter((s) => s === 'secondary').length, 4);

    const messages: BrokerMessage[] = [];
    for await (const m of log) if (messages.push(m) === 16) break;
    const [primary, secondary] = app.services.map((s) => `/requests/${s.replace(/[:.]/g, '_')}`);
    assert.is(messages.filter((m) => m.topic === primary).length, 12);
    assert.is(messages.filter((m) => m.topic === secondary).length, 4);
    assert.ok(messages.every((m) => (m.value as { status: number }).status === 200));
    assert.equal(new Set(messages.map((m) => (m.value as { path: string }).path)).size, 16);
  } finally {
    await consumer.close();
    await app.close();
  }
});

test.run();
