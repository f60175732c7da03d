/** The guide's context example: `host-groups` routes by Host header to tagged back-end groups. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHost, createRoutingContext, errors, InvalidArgumentError, type Backend } from '@trellis/sdk';
import { createBalancer } from '@trellis/sdk/balancer';
// @ts-expect-error plain JS plugin without declaration files
import { createHostGroups, hostName } from '../host-groups/host-groups.js';

const DIR = fileURLToPath(new URL('../host-groups', import.meta.url));
const b = (port: number, ...tags: string[]): Backend => ({ id: `127.0.0.1:${port}`, host: '127.0.0.1', port, weight: 1, tags });
const api1 = b(1, 'api');
const api2 = b(2, 'api');
const web = b(3, 'web');
const cdn = b(4, 'static', 'web');
const at = (host?: string) => createRoutingContext(host === undefined ? { mode: 'tcp' } : { headers: { host } });
const routes = { 'api.example.com': 'api', '*.cdn.example.com': 'static' };

test('hostName lower-cases and drops the port', () => {
  assert.is(hostName('API.Example.com:8443'), 'api.example.com');
  assert.is(hostName('[::1]:80'), '::1');
  assert.is(hostName(undefined), '');
});

test('host-groups routes by Host to the tagged group, round robin inside it, fallback for the rest', () => {
  const s = createHostGroups({ backends: [api1, api2, web, cdn], options: { routes, fallback: 'web' } }, errors);
  assert.equal([1, 2, 3].map(() => s.select(at('api.example.com:8080'))!.id), [api1.id, api2.id, api1.id]);
  assert.is(s.select(at('img.cdn.example.com'))!.id, cdn.id, 'wildcard');
  assert.equal([1, 2].map(() => s.select(at('www.example.com'))!.id), [web.id, cdn.id], 'fallback group: every back-end tagged web');
  assert.is(s.select(at())!.id, web.id, 'no Host (TCP mode): fallback');
  // the api group goes down: its hosts get no back-end (503), the others are unaffected
  s.setBackends([web, cdn]);
  assert.is(s.select(at('api.example.com')), undefined);
  assert.is(s.select(at('img.cdn.example.com'))!.id, cdn.id);
});

test('host-groups without a fallback answers undefined for unknown hosts; bad options are refused', () => {
  const s = createHostGroups({ backends: [api1, web], options: { routes } }, errors);
  assert.is(s.select(at('unknown.example')), undefined);
  assert.throws(() => createHostGroups({ backends: [], options: { routes: { a: 5 } } }, errors), (e: unknown) => e instanceof InvalidArgumentError);
  assert.throws(() => createHostGroups({ backends: [], options: { fallback: 3 } }, errors), (e: unknown) => e instanceof InvalidArgumentError);
});

async function named(name: string): Promise<{ server: Server; port: number }> {
  const server = createServer((_req, res) => res.end(name));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, port: (server.address() as AddressInfo).port };
}

function get(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false, headers: { host } }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('host-groups loaded from its folder routes live HTTP traffic by Host through the balancer', async () => {
  const servers = await Promise.all(['api-1', 'api-2', 'web'].map(named));
  const host = createHost({ dirs: [DIR], builtins: false });
  const [a1, a2, w] = servers.map((s) => s.port) as [number, number, number];
  const lb = await createBalancer({
    host,
    strategy: 'host-groups',
    strategyOptions: { routes: { 'api.example.com': 'api' }, fallback: 'web' },
    backends: [`127.0.0.1:${a1},tag=api`, `127.0.0.1:${a2},tag=api`, `127.0.0.1:${w},tag=web`],
    healthCheck: false,
  });
  try {
    const { port } = await lb.listen(0);
    const bodies = [];
    for (let i = 0; i < 4; i++) bodies.push((await get(port, 'api.example.com')).body);
    assert.equal(bodies, ['api-1', 'api-2', 'api-1', 'api-2']);
    assert.is((await get(port, 'www.example.com')).body, 'web');
    lb.setWeight(`127.0.0.1:${w}`, 0); // drain the web group: its hosts now get a 503
    assert.is((await get(port, 'www.example.com')).status, 503);
    assert.is((await get(port, 'api.example.com')).status, 200);
  } finally {
    await lb.close({ timeoutMs: 1000 });
    await host.dispose();
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.server.close(() => r()))));
  }
});

test.run();
