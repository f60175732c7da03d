import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startPis, startBalancer, get, serverOf } from './helpers.js';

for (const engine of ['raw', 'undici'] as const) {
  test(`consistent-hash through the balancer (${engine}): same header, same back-end; sticky cookie survives an added back-end`, async () => {
    const { servers, ports } = await startPis(5);
    const lb = await startBalancer(ports.slice(0, 3), { strategy: 'consistent-hash', strategyOptions: { hashOn: 'header:x-user', stickyCookie: 'trellis_lb' }, engine, healthCheck: false });
    try {
      const first = new Map<string, { server: string; cookie: string }>();
      for (let i = 0; i < 24; i++) {
        const r = await get(lb.port, '/5', { headers: { 'x-user': `user-${i}` } });
        assert.is(r.status, 200);
        const setCookie = r.headers['set-cookie'];
        assert.ok(Array.isArray(setCookie) && /^trellis_lb=[0-9a-z]+; Path=\/; HttpOnly; SameSite=Lax$/.test(setCookie[0]!), String(setCookie));
        first.set(`user-${i}`, { server: serverOf(r), cookie: setCookie![0]!.split(';')[0]! });
      }
      assert.ok(new Set([...first.values()].map((v) => v.server)).size > 1, 'keys spread over the back-ends');
      for (const [user, { server }] of first) assert.is(serverOf(await get(lb.port, '/5', { headers: { 'x-user': user } })), server, `${user} is stable`);
      lb.lb.addBackend({ host: '127.0.0.1', port: ports[3]! });
      lb.lb.addBackend({ host: '127.0.0.1', port: ports[4]! });
      for (const [user, { server, cookie }] of first) {
        const r = await get(lb.port, '/5', { headers: { 'x-user': user, cookie } });
        assert.is(serverOf(r), server, `${user} kept its back-end through the list change`);
        assert.is(r.headers['set-cookie'], undefined);
      }
    } finally {
      await lb.close();
      await Promise.all(servers.map((s) => s.close()));
    }
  });
}

test('consistent-hash in TCP mode hashes the client address: one client, one back-end', async () => {
  const { servers, ports } = await startPis(3);
  const lb = await startBalancer(ports, { strategy: 'consistent-hash', healthCheck: false });
  const tcp = await startBalancer(ports, { strategy: 'consistent-hash', mode: 'tcp', healthCheck: false });
  try {
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add(serverOf(await get(lb.port, '/3')));
    for (let i = 0; i < 6; i++) seen.add(`tcp:${serverOf(await get(tcp.port, '/3'))}`);
    assert.is(seen.size, 2, [...seen].join(' '));
    assert.ok(seen.has(`tcp:${[...seen][0]}`), 'HTTP and TCP mode agree on the key (the client address)');
  } finally {
    await lb.close();
    await tcp.close();
    await Promise.all(servers.map((s) => s.close()));
  }
});

test.run();
