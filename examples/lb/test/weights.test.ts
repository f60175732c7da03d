import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'node:http';
import { createHost, InvalidArgumentError } from '@trellis/sdk';
import { createBalancer, createAdminServer, parseBackend, prometheusText } from '@trellis/sdk/balancer';
import { PassThrough } from 'node:stream';
import { runCommand } from '@trellis/sdk/cli';
import { lb as lbCommand } from '../src/cli.js';
import { startPis, get, serverOf, silent, waitFor } from './helpers.js';
import { freePort } from '../bench/tools.js';

const TOKEN = 'a-long-enough-admin-token';

function post(port: number, path: string, body: string, token?: string): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', agent: false, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function shares(port: number, n: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const r = await get(port, '/5');
    assert.is(r.status, 200);
    const s = serverOf(r);
    out[s] = (out[s] ?? 0) + 1;
  }
  return out;
}

test('parseBackend reads HOST:PORT[,weight=W][,tag=T] and refuses bad weights and options', () => {
  assert.equal(parseBackend('10.0.0.1:80,weight=3,tag=group:api,tag=zone-a'), { host: '10.0.0.1', port: 80, weight: 3, tags: ['group:api', 'zone-a'] });
  assert.equal(parseBackend('[::1]:8080'), { host: '::1', port: 8080 });
  assert.equal(parseBackend('h:1,weight=0'), { host: 'h', port: 1, weight: 0 });
  for (const bad of ['h:1,weight=257', 'h:1,weight=-1', 'h:1,weight=1.5', 'h:1,foo=1', 'h:1,tag=', 'h:1,weight']) {
    assert.throws(() => parseBackend(bad), (e: unknown) => e instanceof InvalidArgumentError, bad);
  }
  assert.throws(() => parseBackend({ host: 'h', port: 1, weight: 1000 }), (e: unknown) => e instanceof InvalidArgumentError);
});

test('weights shape round robin through the balancer; stats and metrics show them; weight 0 drains', async () => {
  const { servers, ports } = await startPis(2);
  const host = createHost({ logger: silent });
  const lb = await createBalancer({ host, strategy: 'round-robin', backends: [`127.0.0.1:${ports[0]},weight=3,tag=big`, `127.0.0.1:${ports[1]}`], healthCheck: false });
  try {
    const { port } = await lb.listen(0);
    const a = `127.0.0.1:${ports[0]}`;
    const b = `127.0.0.1:${ports[1]}`;
    const s = await shares(port, 8);
    assert.equal(Object.values(s).sort(), [2, 6]);
    const stats = lb.stats();
    assert.equal(stats.backends.map((x) => [x.weight, x.tags]), [[3, ['big']], [1, []]]);
    assert.ok(prometheusText(stats).includes(`trellis_lb_backend_weight{balancer="lb",backend="${a}"} 3`));
    lb.setWeight(a, 0);
    const drained = await shares(port, 4);
    assert.equal(Object.values(drained), [4]);
    assert.is(lb.stats().backends[0]!.requests, 6, 'no new request reached the drained back-end');
    lb.setWeight(a, 1);
    lb.setWeight(b, 1);
    assert.equal(Object.values(await shares(port, 4)), [2, 2]);
    assert.throws(() => lb.setWeight(a, 999), (e: unknown) => e instanceof InvalidArgumentError);
    assert.throws(() => lb.setWeight('nope:1', 1), (e: unknown) => e instanceof InvalidArgumentError);
  } finally {
    await lb.close({ timeoutMs: 1000 });
    await host.dispose();
    await Promise.all(servers.map((x) => x.close()));
  }
});

test('the admin API changes a weight at run time only with the bearer token', async () => {
  const { servers, ports } = await startPis(2);
  const host = createHost({ logger: silent });
  const lb = await createBalancer({ host, strategy: 'least-connections', backends: ports.map((p) => `127.0.0.1:${p}`), healthCheck: false });
  const admin = createAdminServer(lb, { token: TOKEN });
  const closed = createAdminServer(lb);
  try {
    await lb.listen(0);
    const { port } = await admin.listen(0);
    const { port: closedPort } = await closed.listen(0);
    const id = encodeURIComponent(`127.0.0.1:${ports[0]}`);
    const path = `/-/backends/${id}/weight`;
    assert.is((await post(closedPort, path, '{"weight":5}', TOKEN)).status, 403, 'no token configured: writes disabled');
    assert.is((await post(port, path, '{"weight":5}')).status, 401);
    assert.is((await post(port, path, '{"weight":5}', 'wrong-token-of-some-length')).status, 401);
    assert.is(lb.backends()[0]!.weight, 1, 'refused writes changed nothing');
    const ok = await post(port, path, '{"weight":5}', TOKEN);
    assert.is(ok.status, 200);
    assert.equal(ok.json, { backend: `127.0.0.1:${ports[0]}`, weight: 5 });
    assert.is(lb.backends()[0]!.weight, 5);
    assert.is((await post(port, path, '{"weight":300}', TOKEN)).status, 400);
    assert.is((await post(port, path, 'not json', TOKEN)).status, 400);
    assert.is((await post(port, '/-/backends/nope%3A1/weight', '{"weight":2}', TOKEN)).status, 404);
    assert.is((await post(port, '/-/reload', '', TOKEN)).status, 404, 'no configuration file to reload');
  } finally {
    await admin.close();
    await closed.close();
    await lb.close({ timeoutMs: 1000 });
    await host.dispose();
    await Promise.all(servers.map((x) => x.close()));
  }
});

test('trellis lb --backend HOST:PORT,weight=W: weighted picks; a bad weight is a one-line usage error', async () => {
  const out = { text: '', err: '' };
  const io = () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    stdout.on('data', (c) => (out.text += c));
    stderr.on('data', (c) => (out.err += c));
    const controller = new AbortController();
    return { stdout, stderr, signal: controller.signal, stop: () => controller.abort() };
  };
  const bad = io();
  assert.is(await runCommand('trellis lb', lbCommand, ['--backend', '127.0.0.1:5000,weight=999'], bad), 2);
  assert.match(out.err, /--backend: .*weight must be an integer in 0\.\.256/);
  const { servers, ports } = await startPis(2);
  const port = await freePort();
  const cli = io();
  const running = runCommand('trellis lb', lbCommand, ['-p', String(port), '--health-interval', '0', '--backend', `127.0.0.1:${ports[0]},weight=2`, '--backend', `${ports[1]}`, '--quiet'], cli);
  try {
    await waitFor(() => out.text.includes('lb: http mode'), 5000, 'the balancer to start');
    assert.match(out.text, new RegExp(`127\\.0\\.0\\.1:${ports[0]},weight=2 127\\.0\\.0\\.1:${ports[1]}`));
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) seen.push(serverOf(await get(port, '/2')));
    const a = `127.0.0.1:${ports[0]}`;
    const b = `127.0.0.1:${ports[1]}`;
    assert.equal(seen, [a, b, a, a, b, a], 'smooth weighted round robin 2:1');
  } finally {
    cli.stop();
    assert.is(await running, 0);
    await Promise.all(servers.map((x) => x.close()));
  }
});

test.run();
