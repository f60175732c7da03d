import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Agent } from 'node:http';
import { startPis, startBalancer, startServer, get, serverOf, raw } from './helpers.js';

// HTTP mode's alternative engine (node:http towards clients, undici pools towards back-ends)

test('undici engine: round-robin per request on one keep-alive connection', async () => {
  const { servers, ports } = await startPis(3);
  const lb = await startBalancer(ports, { engine: 'undici' });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const seen: string[] = [];
    for (let i = 0; i < 4; i++) seen.push(serverOf(await get(lb.port, '/5', { agent })));
    assert.equal(seen, [0, 1, 2, 0].map((i) => `127.0.0.1:${ports[i]}`));
    assert.is(lb.lb.stats().engine, 'undici');
  } finally {
    agent.destroy();
    await lb.close();
    await Promise.all(servers.map((s) => s.close()));
  }
});

test('undici engine: forwarding headers, 400 on malformed input, 504 on a silent back-end', async () => {
  let seen: Record<string, unknown> = {};
  const echo = await startServer((req, res) => {
    seen = req.headers;
    if (req.url === '/silent') return;
    res.end('ok');
  });
  const lb = await startBalancer([echo.port], { engine: 'undici', timeouts: { upstreamMs: 200 }, healthCheck: false });
  try {
    const r = await get(lb.port, '/x', { headers: { 'x-forwarded-for': '10.1.1.1' } });
    assert.is(r.body, 'ok');
    assert.is(seen['x-forwarded-for'], '10.1.1.1, 127.0.0.1');
    assert.is(seen.via, '1.1 trellis');
    assert.match(String(seen.forwarded), /^for=127\.0\.0\.1;proto=http/);
    const bad = await raw(lb.port, 'GET / HTTP/1.1\r\nbad header\r\n\r\n');
    assert.match(bad.text, /^HTTP\/1\.1 400 /);
    assert.is((await get(lb.port, '/silent')).status, 504);
  } finally {
    await lb.close();
    await echo.close();
  }
});

test.run();
