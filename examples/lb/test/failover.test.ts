import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Agent } from 'node:http';
import { startPis, startBalancer, get, serverOf, waitFor, sleep } from './helpers.js';
import { createPiServer } from '../src/pi-server.js';

/**
 * Privileged ports nothing listens on here: a connect is refused for sure, whereas the port of a
 * server a test just closed may be handed to another process on a busy machine.
 */
const REFUSED = [1, 2];

test('a back-end killed during load costs zero failed GETs', async () => {
  const { servers, ports } = await startPis(3);
  const lb = await startBalancer(ports, { strategy: 'round-robin', healthCheck: { intervalMs: 100, rise: 2, fall: 2, timeoutMs: 200 } });
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  const statuses = new Map<number, number>();
  let failures = 0;
  let done = 0;
  let stop = false;
  const worker = async () => {
    while (!stop) {
      try {
        const r = await get(lb.port, '/50', { agent });
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      } catch {
        failures++;
      }
      done++;
    }
  };
  try {
    const workers = Array.from({ length: 16 }, worker);
    await waitFor(() => done > 300, 5000, 'load');
    await servers[1]!.kill();
    const killedAt = done;
    await waitFor(() => done > killedAt + 600, 8000, 'load after the kill');
    stop = true;
    await Promise.all(workers);
    assert.is(failures, 0, 'client-side failures');
    assert.equal([...statuses.keys()], [200], `statuses ${JSON.stringify([...statuses])}`);
    const dead = lb.lb.stats().backends[1]!;
    assert.is(dead.healthy, false);
    assert.ok(lb.lb.stats().retries >= 1, 'the failed requests were retried elsewhere');
  } finally {
    stop = true;
    agent.destroy();
    await lb.close();
    await Promise.all([servers[0]!.close(), servers[2]!.close()]);
  }
});

test('a back-end coming back is used again after its health checks pass', async () => {
  const { servers, ports } = await startPis(2);
  const lb = await startBalancer(ports, { strategy: 'round-robin', healthCheck: { intervalMs: 50, rise: 2, fall: 1, timeoutMs: 200 } });
  const ups: string[] = [];
  const downs: string[] = [];
  lb.lb.on('backend-up', (b) => ups.push(b.id));
  lb.lb.on('backend-down', (b) => downs.push(b.id));
  const revived = createPiServer();
  try {
    await servers[1]!.kill();
    await waitFor(() => !lb.lb.stats().backends[1]!.healthy, 3000, 'the dead back-end to be marked down');
    for (let i = 0; i < 4; i++) assert.is(serverOf(await get(lb.port, '/5')), `127.0.0.1:${ports[0]}`);
    await revived.listen(ports[1]);
    await waitFor(() => lb.lb.stats().backends[1]!.healthy, 3000, 'the revived back-end to be marked up');
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add(serverOf(await get(lb.port, '/5')));
    assert.equal(seen, new Set([`127.0.0.1:${ports[0]}`, `127.0.0.1:${ports[1]}`]));
    assert.equal(downs, [`127.0.0.1:${ports[1]}`]);
    assert.equal(ups, [`127.0.0.1:${ports[1]}`]);
  } finally {
    await lb.close();
    await Promise.all([servers[0]!.close(), revived.close()]);
  }
});

test('a connect failure is retried on another back-end and the dead one is ejected at once', async () => {
  const { servers, ports } = await startPis(1);
  const lb = await startBalancer([REFUSED[0], ports[0]!], { strategy: 'n-to-1', healthCheck: false, ejectMs: 60_000 });
  try {
    const r = await get(lb.port, '/5');
    assert.is(r.status, 200);
    assert.is(serverOf(r), `127.0.0.1:${ports[0]}`);
    const s = lb.lb.stats();
    assert.is(s.retries, 1);
    assert.is(s.backends[0]!.healthy, false);
    assert.match(s.backends[0]!.downReason!, /ECONNREFUSED/);
  } finally {
    await lb.close();
    await servers[0]!.close();
  }
});

test('a POST whose connections were all refused was never sent: retried, then 502 with a clear body', async () => {
  const lb = await startBalancer(REFUSED, { healthCheck: false });
  try {
    const r = await get(lb.port, '/5', { method: 'POST', body: 'payload' });
    assert.is(r.status, 502);
    assert.match(r.body, /Bad Gateway: back-end 127\.0\.0\.1:\d+ failed: ECONNREFUSED/);
    assert.is(lb.lb.stats().retries, 2);
  } finally {
    await lb.close();
  }
});

test('all back-ends down answers 503 with a clear body, never a hang', async () => {
  const lb = await startBalancer(REFUSED, { healthCheck: { intervalMs: 30, fall: 1, rise: 2 } });
  try {
    await waitFor(() => lb.lb.stats().backends.every((b) => !b.healthy), 3000, 'both down');
    const t0 = Date.now();
    const r = await get(lb.port, '/5');
    assert.is(r.status, 503);
    assert.match(r.body, /no healthy back-end: 2 of 2 are marked down/);
    assert.is(r.headers['retry-after'], '1');
    assert.ok(Date.now() - t0 < 1000);
    assert.is(lb.lb.stats().noBackend, 1);
  } finally {
    await lb.close();
  }
});

test('graceful close drains a request in flight and refuses new connections', async () => {
  const { servers, ports } = await startPis(1, { msPerDigit: 3 });
  const lb = await startBalancer(ports);
  try {
    const pending = get(lb.port, '/100'); // ~300 ms
    await sleep(50);
    const closing = lb.lb.close({ timeoutMs: 3000 });
    const r = await pending;
    assert.is(r.status, 200);
    assert.is(r.headers.connection, 'close');
    await closing;
    await get(lb.port, '/1').then(
      () => assert.unreachable('connected after close'),
      (err) => assert.is(err.code, 'ECONNREFUSED'),
    );
  } finally {
    await lb.close();
    await servers[0]!.close();
  }
});

test.run();
