import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from 'node:net';
import { startPis, startBalancer, startServer, get, raw } from './helpers.js';

test('a malformed request gets 400 and the connection closes; others keep being served', async () => {
  const { servers, ports } = await startPis(1);
  const lb = await startBalancer(ports);
  try {
    const bad = await raw(lb.port, 'GET / HTTP/1.1\r\nHost: x\r\nbroken header line\r\n\r\n');
    assert.match(bad.text, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(bad.text, /connection: close/i);
    assert.ok(bad.closed);
    const garbage = await raw(lb.port, '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n');
    assert.match(garbage.text, /^HTTP\/1\.1 400 /);
    const connect = await raw(lb.port, 'CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n');
    assert.match(connect.text, /^HTTP\/1\.1 400 /);
    assert.ok(connect.closed);
    assert.is((await get(lb.port, '/5')).status, 200);
    assert.is(lb.lb.stats().badRequests, 3);
  } finally {
    await lb.close();
    await servers[0]!.close();
  }
});

test('a client dribbling headers one byte at a time is cut off at the headers timeout', async () => {
  const { servers, ports } = await startPis(1);
  const lb = await startBalancer(ports, { timeouts: { headersMs: 300 } });
  try {
    const socket = connect({ host: '127.0.0.1', port: lb.port });
    let text = '';
    socket.on('data', (c) => (text += c));
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    socket.on('error', () => {});
    const started = Date.now();
    const request = 'GET /5 HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(200);
    let i = 0;
    const timer = setInterval(() => {
      if (!socket.destroyed && i < request.length) socket.write(request[i++]!);
    }, 20);
    await closed;
    clearInterval(timer);
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 2500, `cut after ${elapsed} ms`);
    assert.ok(i < request.length, 'the server must not wait for the whole dribble');
    assert.match(text, /^HTTP\/1\.1 408 /);
    assert.ok(lb.lb.stats().timeouts >= 1);
  } finally {
    await lb.close();
    await servers[0]!.close();
  }
});

test('a client that stalls in the middle of its request body gets 408, the back-end is not blamed', async () => {
  const echo = await startServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('done'));
  });
  const lb = await startBalancer([echo.port], { timeouts: { requestMs: 300 } });
  try {
    const r = await raw(lb.port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b', { timeoutMs: 3000 });
    assert.match(r.text, /^HTTP\/1\.1 408 /);
    assert.ok(r.closed);
    const b = lb.lb.stats().backends[0]!;
    assert.is(b.errors, 0);
    assert.is(b.healthy, true);
    assert.is(lb.lb.stats().active, 0);
  } finally {
    await lb.close();
    await echo.close();
  }
});

test('a back-end that does not answer in time gets 504', async () => {
  const silentServer = await startServer(() => {
    /* never answers */
  });
  const lb = await startBalancer([silentServer.port], { timeouts: { upstreamMs: 200 }, healthCheck: false });
  try {
    const t0 = Date.now();
    const r = await get(lb.port, '/slow');
    assert.is(r.status, 504);
    assert.match(r.body, /did not answer within 200 ms/);
    assert.ok(Date.now() - t0 < 2000);
    assert.is(lb.lb.stats().backends[0]!.errors, 1);
    assert.is(lb.lb.stats().backends[0]!.healthy, true, 'a slow back-end is not ejected');
  } finally {
    await lb.close();
    await silentServer.close();
  }
});

test('an idle keep-alive client connection is closed after the idle timeout', async () => {
  const { servers, ports } = await startPis(1);
  const lb = await startBalancer(ports, { timeouts: { idleMs: 200 } });
  try {
    const r = await raw(lb.port, 'GET /5 HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 3000 });
    assert.match(r.text, /^HTTP\/1\.1 200 /);
    assert.ok(r.closed, 'closed by the balancer');
  } finally {
    await lb.close();
    await servers[0]!.close();
  }
});

test('a 5xx from the back-end is relayed and counted as a failure', async () => {
  const failing = await startServer((_req, res) => {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end('oops');
  });
  const lb = await startBalancer([failing.port]);
  try {
    const r = await get(lb.port, '/');
    assert.is(r.status, 500);
    assert.is(r.body, 'oops');
    const b = lb.lb.stats().backends[0]!;
    assert.is(b.errors, 1);
    assert.is(b.requests, 1);
  } finally {
    await lb.close();
    await failing.close();
  }
});

test('the Pi back-end rejects bad and huge precisions with 400', async () => {
  const { servers, ports } = await startPis(1, { maxPrecision: 1000 });
  try {
    for (const path of ['/abc', '/-1', '/1.5', '/1001', '/99999999999']) {
      const r = await get(ports[0]!, path);
      assert.is(r.status, 400, path);
      assert.ok(JSON.parse(r.body).error, path);
    }
    const ok = await get(ports[0]!, '/30');
    assert.equal(JSON.parse(ok.body).pi, '3.141592653589793238462643383279');
    const html = await get(ports[0]!, '/10', { headers: { accept: 'text/html' } });
    assert.match(html.headers['content-type']!, /text\/html/);
    assert.match(html.body, /3\.1415926535/);
  } finally {
    await servers[0]!.close();
  }
});

test('the serial Pi back-end serves one request at a time', async () => {
  const { servers, ports } = await startPis(1, { serial: true, msPerDigit: 1 });
  try {
    const t0 = Date.now();
    await Promise.all([get(ports[0]!, '/100'), get(ports[0]!, '/100'), get(ports[0]!, '/100')]);
    assert.ok(Date.now() - t0 >= 290, `3 × 100 ms in series, took ${Date.now() - t0}`);
  } finally {
    await servers[0]!.close();
  }
});

test('the admin port serves JSON stats, Prometheus metrics and health', async () => {
  const { createAdminServer } = await import('@trellis/sdk/balancer');
  const { servers, ports } = await startPis(2);
  const lb = await startBalancer(ports);
  const admin = createAdminServer(lb.lb);
  try {
    const { port } = await admin.listen(0);
    await get(lb.port, '/5');
    await get(lb.port, '/5');
    const stats = JSON.parse((await get(port, '/-/stats')).body);
    assert.is(stats.requests, 2);
    assert.is(stats.backends.length, 2);
    assert.equal(stats.backends.map((b: { requests: number }) => b.requests), [1, 1]);
    assert.ok(stats.backends.every((b: { healthy: boolean; p99Ms: number }) => b.healthy && b.p99Ms > 0));
    const metrics = await get(port, '/-/metrics');
    assert.match(metrics.headers['content-type']!, /text\/plain; version=0\.0\.4/);
    assert.match(metrics.body, new RegExp(`trellis_lb_backend_requests_total\\{balancer="lb",backend="127\\.0\\.0\\.1:${ports[0]}"\\} 1`));
    assert.match(metrics.body, /# TYPE trellis_lb_backend_up gauge/);
    assert.match(metrics.body, /trellis_lb_backend_response_ms_p99\{/);
    assert.is((await get(port, '/-/health')).status, 200);
    assert.is((await get(port, '/nope')).status, 404);
  } finally {
    await admin.close();
    await lb.close();
    await Promise.all(servers.map((s) => s.close()));
  }
});

test('the admin event feed streams stats, back-ends going down and strategy switches', async () => {
  const { createAdminServer } = await import('@trellis/sdk/balancer');
  const { request } = await import('node:http');
  const { servers, ports } = await startPis(2);
  const lb = await startBalancer(ports, { healthCheck: { intervalMs: 40, fall: 1, rise: 1, timeoutMs: 200 } });
  const admin = createAdminServer(lb.lb, { statsEveryMs: 100 });
  try {
    const { port } = await admin.listen(0);
    let text = '';
    const req = request({ host: '127.0.0.1', port, path: '/-/events' }, (res) => {
      assert.match(res.headers['content-type']!, /text\/event-stream/);
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
    });
    req.on('error', () => {});
    req.end();
    const until = async (re: RegExp) => {
      for (let i = 0; i < 300 && !re.test(text); i++) await new Promise((r) => setTimeout(r, 10));
      assert.match(text, re);
    };
    await until(/^event: stats\ndata: \{"name":"lb"/);
    await servers[1]!.kill();
    await until(new RegExp(`event: backend-down\ndata: \\{"backend":\\{"id":"127\\.0\\.0\\.1:${ports[1]}"`));
    await lb.lb.setStrategy('n-to-1');
    await until(/event: strategy-changed\ndata: \{"strategy":"n-to-1"\}/);
    req.destroy();
  } finally {
    await admin.close();
    await lb.close();
    await servers[0]!.close();
  }
});

test.run();

