import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'node:http';
import { connect, createServer as createTcpServer, type AddressInfo } from 'node:net';
import { createHost, createRoutingContext, cookieValue, type RoutingContext, type Backend, type StrategyInit } from '@trellis/sdk';
import { createBalancer } from '@trellis/sdk/balancer';
import { startPis, silent } from './helpers.js';

interface Seen {
  mode: string;
  clientAddress: string;
  clientPort: number;
  method: string | undefined;
  host: string | undefined;
  path: string | undefined;
  tenant: string | undefined;
  accept: string | undefined;
  sid: string | undefined;
  hashKey: string | undefined;
}

/** A host whose `capture` strategy records what each select(ctx) saw and routes to the first back-end. */
function captureHost(seen: Seen[]) {
  const host = createHost({ logger: silent });
  host.register({
    manifest: { name: 'capture', version: '1.0.0', engines: { trellis: '*' }, contributes: { strategies: [{ id: 'capture', title: 'Capture' }] } },
    activate(ctx) {
      ctx.subscriptions.push(
        ctx.routing.registerStrategy('capture', (init: StrategyInit) => {
          let list: readonly Backend[] = init.backends;
          return {
            select(c?: RoutingContext) {
              const r = c!;
              seen.push({
                mode: r.mode,
                clientAddress: r.clientAddress,
                clientPort: r.clientPort,
                method: r.method,
                host: r.host,
                path: r.path,
                tenant: r.header('X-Tenant'),
                accept: r.header('accept'),
                sid: r.cookie('sid'),
                hashKey: r.hashKey,
              });
              r.addResponseHeader('x-routed-by', 'capture');
              r.addResponseHeader('bad\r\nname', 'dropped');
              r.addResponseHeader('x-evil', 'a\r\nset-cookie: pwned=1');
              return list[0];
            },
            update() {},
            setBackends(b: readonly Backend[]) {
              list = b;
            },
          };
        }),
      );
    },
  });
  return host;
}

/** One request on a fresh connection; resolves with the reply and the client's local port. */
function send(port: number, path: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, unknown>; localPort: number }> {
  return new Promise((resolve, reject) => {
    let localPort = 0;
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', agent: false, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, localPort }));
    });
    req.on('socket', (s) => s.on('connect', () => (localPort = s.localPort!)));
    req.on('error', reject);
    req.end();
  });
}

for (const engine of ['raw', 'undici'] as const) {
  test(`HTTP mode (${engine} engine) fills the routing context of each request`, async () => {
    const seen: Seen[] = [];
    const host = captureHost(seen);
    const { servers, ports } = await startPis(1);
    const lb = await createBalancer({ host, strategy: 'capture', engine, backends: ports.map((p) => ({ host: '127.0.0.1', port: p })), healthCheck: false });
    try {
      const { port } = await lb.listen(0);
      const r = await send(port, '/12?digits=yes', { 'x-tenant': 'acme', cookie: 'theme=dark; sid="s-42"', accept: 'application/json', host: 'shop.example:8080' });
      assert.is(r.status, 200);
      assert.is(r.headers['x-routed-by'], 'capture', 'the strategy added a response header');
      assert.is(r.headers['bad\r\nname'], undefined);
      assert.is(r.headers['x-evil'], undefined, 'a value with CR/LF is dropped');
      assert.is(r.headers['set-cookie'], undefined, 'no header injection');
      assert.is(seen.length, 1);
      assert.equal(seen[0], {
        mode: 'http',
        clientAddress: '127.0.0.1',
        clientPort: r.localPort,
        method: 'GET',
        host: 'shop.example:8080',
        path: '/12',
        tenant: 'acme',
        accept: 'application/json',
        sid: 's-42',
        hashKey: undefined,
      });
      // a header absent from this request is absent: nothing leaks from the previous request
      const r2 = await send(port, '/5', { accept: 'text/html', host: 'other.example' });
      assert.is(r2.status, 200);
      assert.is(seen[1]!.tenant, undefined);
      assert.is(seen[1]!.sid, undefined);
      assert.is(seen[1]!.host, 'other.example');
      assert.is(seen[1]!.path, '/5');
    } finally {
      await lb.close({ timeoutMs: 1000 });
      await host.dispose();
      await Promise.all(servers.map((s) => s.close()));
    }
  });

  test(`a beforeSelect observer can set ctx.hashKey (${engine} engine), reset for the next request`, async () => {
    const seen: Seen[] = [];
    const host = captureHost(seen);
    host.register({
      manifest: { name: 'keyer', version: '1.0.0', engines: { trellis: '*' }, activationEvents: ['onStartup'] },
      activate(ctx) {
        ctx.subscriptions.push(
          ctx.routing.tap('beforeSelect', (c) => {
            const t = c.header('x-tenant');
            if (t !== undefined) c.hashKey = `tenant:${t}`;
          }),
        );
      },
    });
    await host.activateByEvent('onStartup');
    const { servers, ports } = await startPis(1);
    const lb = await createBalancer({ host, strategy: 'capture', engine, backends: ports.map((p) => ({ host: '127.0.0.1', port: p })), healthCheck: false });
    try {
      const { port } = await lb.listen(0);
      await send(port, '/3', { 'x-tenant': 'blue' });
      await send(port, '/3', {});
      assert.is(seen[0]!.hashKey, 'tenant:blue');
      assert.is(seen[1]!.hashKey, undefined);
    } finally {
      await lb.close({ timeoutMs: 1000 });
      await host.dispose();
      await Promise.all(servers.map((s) => s.close()));
    }
  });
}

test('raw engine: repeated header fields are joined, keep-alive requests each get their own fields', async () => {
  const seen: Seen[] = [];
  const host = captureHost(seen);
  const { servers, ports } = await startPis(1);
  const lb = await createBalancer({ host, strategy: 'capture', backends: ports.map((p) => ({ host: '127.0.0.1', port: p })), healthCheck: false });
  try {
    const { port } = await lb.listen(0);
    const text = await new Promise<string>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port });
      let out = '';
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`two responses expected, got: ${out}`));
      }, 5000);
      s.on('data', (c) => {
        out += c.toString('latin1');
        if ((out.match(/HTTP\/1\.1 \d{3}/g) ?? []).length === 2) {
          clearTimeout(timer);
          s.end();
          resolve(out);
        }
      });
      s.on('error', reject);
      s.write('GET /2 HTTP/1.1\r\nHost: a.example\r\nX-Tenant: one\r\nx-tenant: two\r\nCookie: a=1\r\nCookie: sid=abc\r\n\r\n');
      s.write('POST /4?x HTTP/1.1\r\nHost: b.example\r\nContent-Length: 2\r\n\r\nhi');
    });
    assert.ok(text.includes('x-routed-by: capture'));
    assert.is(seen.length, 2);
    assert.is(seen[0]!.tenant, 'one, two');
    assert.is(seen[0]!.sid, 'abc');
    assert.is(seen[1]!.method, 'POST');
    assert.is(seen[1]!.path, '/4');
    assert.is(seen[1]!.host, 'b.example');
    assert.is(seen[1]!.tenant, undefined);
    assert.is(seen[0]!.clientPort, seen[1]!.clientPort, 'same connection, same client port');
  } finally {
    await lb.close({ timeoutMs: 1000 });
    await host.dispose();
    await Promise.all(servers.map((s) => s.close()));
  }
});

test('TCP mode fills the client address and port; request fields are undefined', async () => {
  const seen: Seen[] = [];
  const host = captureHost(seen);
  const echo = createTcpServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  const lb = await createBalancer({ host, strategy: 'capture', mode: 'tcp', backends: [{ host: '127.0.0.1', port: (echo.address() as AddressInfo).port }], healthCheck: false });
  try {
    const { port } = await lb.listen(0);
    const localPort = await new Promise<number>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port }, () => s.write('ping'));
      s.on('data', () => {
        const p = s.localPort!;
        s.destroy();
        resolve(p);
      });
      s.on('error', reject);
    });
    assert.equal(seen[0], { mode: 'tcp', clientAddress: '127.0.0.1', clientPort: localPort, method: undefined, host: undefined, path: undefined, tenant: undefined, accept: undefined, sid: undefined, hashKey: undefined });
  } finally {
    await lb.close({ timeoutMs: 1000 });
    await host.dispose();
    await new Promise<void>((r) => echo.close(() => r()));
  }
});

test('createRoutingContext and cookieValue for code that drives a strategy itself', () => {
  const c = createRoutingContext({ clientAddress: '10.0.0.7', target: '/a/b?c=d', headers: { Host: 'x.example', Cookie: 'k=v; sid="q"' } });
  assert.is(c.mode, 'http');
  assert.is(c.path, '/a/b');
  assert.is(c.method, 'GET');
  assert.is(c.host, 'x.example');
  assert.is(c.cookie('sid'), 'q');
  assert.is(c.cookie('nope'), undefined);
  c.addResponseHeader('set-cookie', 'sid=1');
  assert.equal(c.responseHeaders, [['set-cookie', 'sid=1']]);
  const t = createRoutingContext();
  assert.is(t.mode, 'tcp');
  assert.is(t.header('host'), undefined);
  assert.is(cookieValue('a=1;b=2; c = 3 ', 'c'), '3');
  assert.is(cookieValue('ab=1', 'b'), undefined);
  assert.is(cookieValue(undefined, 'b'), undefined);
});

test.run();
