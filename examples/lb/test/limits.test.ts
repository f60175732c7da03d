import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type Socket } from 'node:net';
import { createAdminServer } from '@trellis/sdk/balancer';
import { startBalancer, startServer, raw, get, sleep, waitFor } from './helpers.js';

// Abuse limits of the front door: connection caps, per-client caps and rate, bounded back-end
// queues, the headers deadline; each refusal shows on /-/metrics.

function open(port: number): Promise<{ socket: Socket; text: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let text = '';
    socket.on('data', (c) => (text += c.toString('latin1')));
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    socket.on('error', () => {});
    socket.once('connect', () => resolve({ socket, text: () => text, closed }));
    socket.once('error', reject);
  });
}

for (const engine of ['raw', 'undici'] as const) {
  test(`${engine} engine: --max-connections: connections beyond the cap are dropped at accept and counted`, async () => {
    const be = await startServer((_req, res) => res.end('ok'));
    const lb = await startBalancer([be.port], { engine, limits: { maxConnections: 2 } });
    const sockets: Socket[] = [];
    try {
      const a = await open(lb.port);
      const b = await open(lb.port);
      sockets.push(a.socket, b.socket);
      await waitFor(() => lb.lb.stats().clientConnections === 2, 3000, 'two connections');
      const c = await open(lb.port);
      sockets.push(c.socket);
      const outcome = await Promise.race([c.closed.then(() => 'closed'), sleep(3000).then(() => 'open')]);
      assert.is(outcome, 'closed');
      assert.is(c.text(), '');
      assert.is(lb.lb.stats().droppedConnections, 1);
      // the two admitted connections are served
      a.socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      await a.closed;
      assert.match(a.text(), /^HTTP\/1\.1 200 /);
      // a slot freed: a new client gets in
      assert.is((await get(lb.port, '/')).status, 200);
    } finally {
      for (const s of sockets) s.destroy();
      await lb.close();
      await be.close();
    }
  });

  test(`${engine} engine: per-client connection limit: a 429 beyond it, other connections unaffected`, async () => {
    const be = await startServer((_req, res) => res.end('ok'));
    const lb = await startBalancer([be.port], { engine, limits: { maxConnectionsPerClient: 2 } });
    const sockets: Socket[] = [];
    try {
      const a = await open(lb.port);
      const b = await open(lb.port);
      sockets.push(a.socket, b.socket);
      await waitFor(() => lb.lb.stats().clientConnections === 2, 3000, 'two connections');
      const c = await raw(lb.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.match(c.text, /^HTTP\/1\.1 429 /);
      assert.ok(c.closed);
      assert.is(lb.lb.stats().clientLimited, 1);
      a.socket.destroy();
      await waitFor(() => lb.lb.stats().clientConnections === 1, 3000, 'a slot to free');
      assert.is((await get(lb.port, '/')).status, 200);
    } finally {
      for (const s of sockets) s.destroy();
      await lb.close();
      await be.close();
    }
  });

  test(`${engine} engine: per-client request rate: bursts beyond the rate get 429, then the bucket refills`, async () => {
    const be = await startServer((_req, res) => res.end('ok'));
    const lb = await startBalancer([be.port], { engine, limits: { requestsPerSecondPerClient: 5 } });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 10; i++) statuses.push((await get(lb.port, '/')).status);
      const limited = statuses.filter((s) => s === 429).length;
      assert.ok(limited >= 3, `statuses ${statuses.join(',')}`);
      assert.ok(statuses.filter((s) => s === 200).length >= 5);
      assert.is(lb.lb.stats().rateLimited, limited);
      await sleep(1100);
      assert.is((await get(lb.port, '/')).status, 200);
    } finally {
      await lb.close();
      await be.close();
    }
  });

  test(`${engine} engine: a full back-end queue answers 503 at once; metrics count every refusal`, async () => {
    const held: (() => void)[] = [];
    const be = await startServer((_req, res) => held.push(() => res.end('ok')));
    const lb = await startBalancer([be.port], { engine, connectionsPerBackend: 1, limits: { maxPendingPerBackend: 1 }, healthCheck: false });
    const admin = createAdminServer(lb.lb);
    try {
      const first = get(lb.port, '/1');
      await waitFor(() => held.length === 1, 3000, 'the first request at the back-end');
      const second = get(lb.port, '/2'); // waits in the queue
      await sleep(100);
      const third = await get(lb.port, '/3');
      assert.is(third.status, 503);
      assert.match(third.body, /too many requests waiting/);
      assert.is(lb.lb.stats().queueFull, 1);
      held.shift()!();
      assert.is((await first).status, 200);
      await waitFor(() => held.length === 1, 3000, 'the queued request at the back-end');
      held.shift()!();
      assert.is((await second).status, 200);
      const { port } = await admin.listen(0);
      const metrics = await get(port, '/-/metrics');
      assert.match(metrics.body, /trellis_lb_local_responses_total\{balancer="lb",kind="queue_full"\} 1/);
      assert.match(metrics.body, /kind="rate_limited"\} 0/);
      assert.match(metrics.body, /kind="client_connection_limited"\} 0/);
      assert.match(metrics.body, /trellis_lb_dropped_connections_total\{balancer="lb"\} 0/);
    } finally {
      for (const h of held) h();
      await admin.close();
      await lb.close();
      await be.close();
    }
  });
}

test('a header trickle cannot extend the headers deadline, nor can an idle keep-alive linger', async () => {
  const be = await startServer((_req, res) => res.end('ok'));
  const lb = await startBalancer([be.port], { timeouts: { headersMs: 500, idleMs: 400 } });
  try {
    // a byte every 50 ms, for longer than the deadline
    const c = await open(lb.port);
    const request = 'GET / HTTP/1.1\r\nHost: x\r\nX-Trickle: ' + 'a'.repeat(200);
    let i = 0;
    const timer = setInterval(() => {
      if (!c.socket.destroyed && i < request.length) c.socket.write(request[i++]!);
    }, 50);
    const outcome = await Promise.race([c.closed.then(() => 'closed'), sleep(5000).then(() => 'open')]);
    clearInterval(timer);
    assert.is(outcome, 'closed');
    assert.match(c.text(), /^HTTP\/1\.1 408 /);
    // an idle kept-alive connection is closed after idleMs
    const k = await open(lb.port);
    k.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const idle = await Promise.race([k.closed.then(() => 'closed'), sleep(5000).then(() => 'open')]);
    assert.is(idle, 'closed');
    assert.match(k.text(), /^HTTP\/1\.1 200 /);
  } finally {
    await lb.close();
    await be.close();
  }
});

test.run();
