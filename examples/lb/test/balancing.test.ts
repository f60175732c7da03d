import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Agent } from 'node:http';
import { createHost, type Backend, type Strategy } from '@trellis/sdk';
import { startPis, startBalancer, get, serverOf, silent } from './helpers.js';

const name = (port: number) => `127.0.0.1:${port}`;

test('round-robin balances per request on one keep-alive client connection', async () => {
  const { servers, ports } = await startPis(4);
  const lb = await startBalancer(ports, { strategy: 'round-robin' });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) seen.push(serverOf(await get(lb.port, '/10', { agent })));
    assert.equal(seen, [0, 1, 2, 3, 0, 1].map((i) => name(ports[i]!)));
    assert.is(lb.lb.stats().requests, 6);
  } finally {
    agent.destroy();
    await lb.close();
    await Promise.all(servers.map((s) => s.close()));
  }
});

test('n-to-1 sends every request to the first back-end', async () => {
  const { servers, ports } = await startPis(4);
  const lb = await startBalancer(ports, { strategy: 'n-to-1' });
  try {
    const seen = await Promise.all(Array.from({ length: 8 }, () => get(lb.port, '/10').then(serverOf)));
    assert.equal(new Set(seen), new Set([name(ports[0]!)]));
  } finally {
    await lb.close();
    await Promise.all(servers.map((s) => s.close()));
  }
});

test('least-connections spreads concurrent slow requests one per back-end, then reuses the first when idle', async () => {
  const { servers, ports } = await startPis(4, { serial: true, msPerDigit: 2 });
  const lb = await startBalancer(ports, { strategy: 'least-connections' });
  try {
    // 300 ms each: all four are in flight together even on a loaded machine
    const seen = await Promise.all(Array.from({ length: 4 }, () => get(lb.port, '/150').then(serverOf)));
    assert.equal(new Set(seen), new Set(ports.map(name)));
    // all idle again: ties go to list order
    assert.is(serverOf(await get(lb.port, '/1')), name(ports[0]!));
    assert.is(serverOf(await get(lb.port, '/1')), name(ports[0]!));
  } finally {
    await lb.close();
    await Promise.all(servers.map((s) => s.close()));
  }
});

test('least-response-time steers sequential requests away from the slow back-end', async () => {
  // back-end 0 spends 4 ms per digit (160 ms here); the others only compute (well under 1 ms)
  const { servers, ports } = await startPis(4, (i) => ({ msPerDigit: i === 0 ? 4 : 0 }));
  const lb = await startBalancer(ports, { strategy: 'least-response-time' });
  try {
    // warm-up: one concurrent request each (all means 0: fewest active, then list order)
    const warm = await Promise.all(Array.from({ length: 4 }, () => get(lb.port, '/40').then(serverOf)));
    assert.equal(new Set(warm), new Set(ports.map(name)));
    const after: string[] = [];
    for (let i = 0; i < 12; i++) after.push(serverOf(await get(lb.port, '/40')));
    assert.not.ok(after.includes(name(ports[0]!)), `the slow back-end was picked: ${after.join(' ')}`);
    const slow = lb.lb.stats().backends[0]!;
    assert.is(slow.requests, 1);
    assert.ok(slow.meanMs >= 150, `slow mean ${slow.meanMs}`);
  } finally {
    await lb.close();
    await Promise.all(servers.map((s) => s.close()));
  }
});

test('forwarding headers are added and hop-by-hop headers dropped', async () => {
  const { startServer } = await import('./helpers.js');
  let seen: Record<string, string | string[] | undefined> = {};
  const echo = await startServer((req, res) => {
    seen = req.headers;
    res.writeHead(200, { 'content-type': 'text/plain', connection: 'keep-alive, x-hop', 'x-hop': 'secret', 'x-kept': 'yes', via: '1.0 origin' });
    res.end('ok');
  });
  const lb = await startBalancer([echo.port]);
  try {
    const r = await get(lb.port, '/path?q=1', { headers: { 'x-forwarded-for': '10.0.0.1', forwarded: 'for=10.0.0.1', connection: 'keep-alive, x-private', 'x-private': 'drop me', 'keep-alive': 'timeout=5', host: 'example.test' } });
    assert.is(r.status, 200);
    assert.is(r.body, 'ok');
    assert.is(seen['x-forwarded-for'], '10.0.0.1, 127.0.0.1');
    assert.is(seen.forwarded, 'for=10.0.0.1, for=127.0.0.1;proto=http;host="example.test"');
    assert.is(seen['x-forwarded-proto'], 'http');
    assert.is(seen['x-forwarded-host'], 'example.test');
    assert.is(seen.host, 'example.test');
    assert.is(seen.via, '1.1 trellis');
    assert.is(seen['x-private'], undefined);
    assert.is(seen['keep-alive'], undefined);
    assert.is(r.headers['x-kept'], 'yes');
    assert.is(r.headers['x-hop'], undefined);
    assert.is(r.headers.via, '1.0 origin, 1.1 trellis');
  } finally {
    await lb.close();
    await echo.close();
  }
});

for (const engine of ['raw', 'undici'] as const) {
  test(`${engine} engine: forwardHeaders picks the families added; one left out passes through untouched`, async () => {
    const { startServer } = await import('./helpers.js');
    let seen: Record<string, string | string[] | undefined> = {};
    const echo = await startServer((req, res) => {
      seen = req.headers;
      res.writeHead(200, { 'content-type': 'text/plain', via: '1.0 origin' });
      res.end('ok');
    });
    const client = { 'x-forwarded-for': '10.0.0.1', 'x-forwarded-proto': 'gopher', 'x-forwarded-host': 'spoof.test', forwarded: 'for=10.0.0.1', via: '1.0 client', host: 'example.test' };
    const none = await startBalancer([echo.port], { engine, forwardHeaders: [], healthCheck: false });
    const onlyForwarded = await startBalancer([echo.port], { engine, forwardHeaders: ['forwarded'], healthCheck: false });
    try {
      let r = await get(none.port, '/', { headers: client });
      assert.is(r.status, 200);
      // nothing added, nothing stripped: the client's own headers reach the back-end as sent
      assert.is(seen['x-forwarded-for'], '10.0.0.1');
      assert.is(seen['x-forwarded-proto'], 'gopher');
      assert.is(seen['x-forwarded-host'], 'spoof.test');
      assert.is(seen.forwarded, 'for=10.0.0.1');
      assert.is(seen.via, '1.0 client');
      assert.is(r.headers.via, '1.0 origin');
      r = await get(onlyForwarded.port, '/', { headers: client });
      assert.is(seen.forwarded, 'for=10.0.0.1, for=127.0.0.1;proto=http;host="example.test"');
      assert.is(seen['x-forwarded-for'], '10.0.0.1');
      assert.is(seen['x-forwarded-proto'], 'gopher');
      assert.is(seen.via, '1.0 client');
      assert.is(r.headers.via, '1.0 origin');
      // the balancer's own answers carry no Via either when it is off
      await echo.close();
      const down = await get(none.port, '/');
      assert.ok(down.status >= 500, `status ${down.status}`);
      assert.is(down.headers.via, undefined);
    } finally {
      await none.close();
      await onlyForwarded.close();
      await echo.close().catch(() => undefined);
    }
  });
}

test('forwardHeaders: an unknown family is refused at creation', async () => {
  const { createBalancer } = await import('@trellis/sdk/balancer');
  const host = createHost({ logger: silent });
  try {
    await createBalancer({ host, strategy: 'round-robin', backends: ['127.0.0.1:1'], forwardHeaders: ['x-real-ip' as never] }).then(
      () => assert.unreachable('accepted an unknown family'),
      (err: Error & { code?: string }) => {
        assert.match(err.message, /unknown forwarding header "x-real-ip"/);
        assert.is(err.code, 'TRELLIS_ERR_INVALID_ARGUMENT');
      },
    );
  } finally {
    await host.dispose();
  }
});

test('request and response bodies stream through without being buffered whole', async () => {
  const { startServer } = await import('./helpers.js');
  const echo = await startServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' }); // chunked: no length
    req.pipe(res);
  });
  const lb = await startBalancer([echo.port]);
  try {
    const big = 'x'.repeat(3 * 1024 * 1024);
    const r = await get(lb.port, '/upload', { method: 'POST', body: big, headers: { 'content-type': 'application/octet-stream' } });
    assert.is(r.status, 200);
    assert.is(r.body.length, big.length);
  } finally {
    await lb.close();
    await echo.close();
  }
});

test('setStrategy switches strategy at run time and emits strategy-changed', async () => {
  const { servers, ports } = await startPis(2);
  const lb = await startBalancer(ports, { strategy: 'n-to-1' });
  const changes: string[] = [];
  lb.lb.on('strategy-changed', (id) => changes.push(id));
  try {
    assert.is(serverOf(await get(lb.port, '/5')), name(ports[0]!));
    assert.is(serverOf(await get(lb.port, '/5')), name(ports[0]!));
    await lb.lb.setStrategy('round-robin');
    assert.equal([serverOf(await get(lb.port, '/5')), serverOf(await get(lb.port, '/5'))], [name(ports[0]!), name(ports[1]!)]);
    assert.equal(changes, ['round-robin']);
    assert.is(lb.lb.stats().strategy, 'round-robin');
  } finally {
    await lb.close();
    await Promise.all(servers.map((s) => s.close()));
  }
});

test('observer hooks see every request start and end; the request event feeds the live view', async () => {
  const { servers, ports } = await startPis(2);
  const starts: string[] = [];
  const ends: boolean[] = [];
  const host = createHost({
    logger: silent,
    plugins: [
      {
        manifest: { name: 'observer', version: '1.0.0', engines: { trellis: '*' }, contributes: { strategies: [{ id: 'observe', title: 'observe' }] } },
        activate(ctx) {
          ctx.routing.tap('requestStart', (info) => starts.push(`${info.method} ${info.path} ${info.backend.port}`));
          ctx.routing.tap('requestEnd', (_info, outcome) => ends.push(outcome.ok));
          ctx.routing.registerStrategy('observe', ({ backends }) => {
            let list = backends;
            return { select: () => list[list.length - 1], update() {}, setBackends: (b) => void (list = b) };
          });
        },
      },
    ],
  });
  const lb = await startBalancer(ports, { host, strategy: 'observe' });
  const events: number[] = [];
  lb.lb.on('request', (e) => events.push(e.status));
  try {
    await get(lb.port, '/3');
    await get(lb.port, '/4');
    assert.equal(starts, [`GET /3 ${ports[1]}`, `GET /4 ${ports[1]}`]);
    assert.equal(ends, [true, true]);
    assert.equal(events, [200, 200]);
  } finally {
    await lb.close();
    await Promise.all(servers.map((s) => s.close()));
  }
});

test('a strategy that throws is reported as a plugin error and the balancer keeps serving', async () => {
  const { servers, ports } = await startPis(2);
  let calls = 0;
  const host = createHost({
    logger: silent,
    plugins: [
      {
        manifest: { name: 'flaky', version: '1.0.0', engines: { trellis: '*' }, contributes: { strategies: [{ id: 'flaky', title: 'flaky' }] } },
        activate(ctx) {
          ctx.routing.registerStrategy('flaky', ({ backends }) => {
            let list: readonly Backend[] = backends;
            return {
              select: () => {
                if (++calls === 1) throw new Error('boom');
                return list[0];
              },
              update() {},
              setBackends: (b) => void (list = b),
            } satisfies Strategy;
          });
        },
      },
    ],
  });
  const errors: string[] = [];
  host.on('plugin-error', (e) => errors.push(`${e.plugin}/${e.hook}`));
  const lb = await startBalancer(ports, { host, strategy: 'flaky' });
  try {
    const first = await get(lb.port, '/3');
    assert.is(first.status, 503);
    assert.match(first.body, /boom/);
    assert.equal(errors, ['flaky/strategy:flaky.select']);
    const second = await get(lb.port, '/3');
    assert.is(second.status, 200);
  } finally {
    await lb.close();
    await Promise.all(servers.map((s) => s.close()));
  }
});

test('listening on a busy port rejects and leaves the balancer able to listen elsewhere', async () => {
  const { servers, ports } = await startPis(1);
  const lb = await startBalancer(ports);
  const { createBalancer } = await import('@trellis/sdk/balancer');
  const second = await createBalancer({ host: lb.host, strategy: 'round-robin', backends: [`127.0.0.1:${ports[0]}`] });
  try {
    await second.listen(lb.port).then(
      () => assert.unreachable('bound a busy port'),
      (err) => assert.is(err.code, 'EADDRINUSE'),
    );
    const { port } = await second.listen(0);
    assert.is((await get(port, '/3')).status, 200);
  } finally {
    await second.close();
    await lb.close();
    await servers[0]!.close();
  }
});

test('an unknown strategy is a typed error naming the available ones', async () => {
  const host = createHost({ logger: silent });
  try {
    await startBalancer([1], { host, strategy: 'nope' });
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.is((err as { code?: string }).code, 'TRELLIS_ERR_NO_PROVIDER');
    assert.match((err as Error).message, /round-robin/);
  } finally {
    await host.dispose();
  }
});

test.run();
