/**
 * host.reload(id): a strategy plugin folder is re-read from disk and swapped in while a bounded
 * client loop runs through the balancer: no request fails, the new code's picks show afterwards,
 * events tell the app. A reload that cannot load keeps the old code serving.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHost, StateError } from '@trellis/sdk';
import { createBalancer } from '@trellis/sdk/balancer';
import { createBroker, connect } from '@trellis/sdk/broker';
import { memoryLogger } from './helpers.js';

const test = suite('reload');

/** A strategy plugin whose select() always picks back-end number `index`. */
function writePlugin(dir: string, index: number | string): void {
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'live-strategy', version: '1.0.0', type: 'module', main: './index.js', engines: { trellis: '*' }, contributes: { strategies: [{ id: 'live', title: 'Live' }] } }),
  );
  writeFileSync(
    join(dir, 'index.js'),
    typeof index === 'string'
      ? index
      : `export function activate(ctx) {\n  ctx.routing.registerStrategy('live', ({ backends }) => {\n    let list = backends;\n    return { select: () => list[${index}], update() {}, setBackends(b) { list = b; } };\n  });\n}\n`,
  );
}

async function backend(name: string): Promise<Server> {
  const server = createServer((_req, res) => res.end(name));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

test('reloading a strategy plugin under a client loop: 0 failed requests, new picks afterwards', async () => {
  const root = mkdtempSync(join(tmpdir(), 'trellis-reload-'));
  const dir = join(root, 'live-strategy');
  mkdirSync(dir);
  writePlugin(dir, 0);
  const a = await backend('A');
  const b = await backend('B');
  const host = createHost({ builtins: false, dirs: [root], logger: memoryLogger() });
  const events: string[] = [];
  host.on('provider-replaced', (area, id) => events.push(`replaced ${area} ${id}`));
  host.on('reloaded', (info, version) => events.push(`reloaded ${info.id} ${version}`));
  host.on('provider-removed', (area, id) => events.push(`removed ${area} ${id}`));
  const port = (s: Server) => (s.address() as { port: number }).port;
  const lb = await createBalancer({ host, strategy: 'live', backends: [`127.0.0.1:${port(a)}`, `127.0.0.1:${port(b)}`], healthCheck: false });
  try {
    const { port: lbPort } = await lb.listen(0, '127.0.0.1');
    const answers: string[] = [];
    let failed = 0;
    let reloadedAt = -1;
    const TOTAL = 400;
    let sent = 0;
    const worker = async () => {
      while (sent < TOTAL) {
        sent++;
        try {
          const res = await fetch(`http://127.0.0.1:${lbPort}/`);
          const text = await res.text();
          if (res.status !== 200) failed++;
          answers.push(text);
        } catch {
          failed++;
        }
      }
    };
    const reloader = (async () => {
      while (answers.length < 100) await new Promise((r) => setTimeout(r, 2));
      writePlugin(dir, 1);
      await host.reload('live-strategy');
      reloadedAt = answers.length;
    })();
    await Promise.all([worker(), worker(), worker(), worker(), reloader]);
    assert.is(failed, 0);
    assert.is(answers.length, TOTAL);
    assert.ok(reloadedAt > 0 && reloadedAt < TOTAL - 20, `reloaded at ${reloadedAt}`);
    assert.ok(answers.slice(0, 100).every((x) => x === 'A'));
    assert.ok(answers.slice(-20).every((x) => x === 'B'), answers.slice(-20).join(''));
    assert.equal(events, ['replaced strategies live', 'reloaded live-strategy 1']);

    // a reload that cannot load keeps the previous code serving
    writePlugin(dir, 'export function activate( {');
    const failures: boolean[] = [];
    host.on('reload-failed', (_info, _err, kept) => failures.push(kept));
    await host.reload('live-strategy').then(
      () => assert.unreachable('a broken module reloaded'),
      (err: Error) => assert.match(err.message, /loading .*index\.js failed/),
    );
    assert.equal(failures, [true]);
    const res = await fetch(`http://127.0.0.1:${lbPort}/`);
    assert.is(await res.text(), 'B');
    assert.is(host.plugin('live-strategy')!.state, 'active');
  } finally {
    await lb.close({ timeoutMs: 1000 });
    await host.dispose();
    a.close();
    b.close();
    rmSync(root, { recursive: true, force: true });
  }
});

test('a multi-file plugin: files reached by relative imports are re-evaluated on reload', async () => {
  const root = mkdtempSync(join(tmpdir(), 'trellis-reload-'));
  const dir = join(root, 'split-strategy');
  mkdirSync(join(dir, 'lib'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'split-strategy', version: '1.0.0', type: 'module', main: './index.js', engines: { trellis: '*' }, contributes: { strategies: [{ id: 'split', title: 'Split' }] } }));
  writeFileSync(join(dir, 'index.js'), `import { pick } from './lib/pick.js';\nexport function activate(ctx) {\n  ctx.routing.registerStrategy('split', ({ backends }) => {\n    let list = backends;\n    return { select: () => list[pick()], update() {}, setBackends(b) { list = b; } };\n  });\n}\n`);
  const writePick = (i: number) => writeFileSync(join(dir, 'lib', 'pick.js'), `import { offset } from '../offset.js';\nexport const pick = () => ${i} + offset;\n`);
  writeFileSync(join(dir, 'offset.js'), 'export const offset = 0;\n');
  writePick(0);
  const host = createHost({ builtins: false, dirs: [root], logger: memoryLogger() });
  try {
    const list = [0, 1, 2].map((i) => ({ id: `127.0.0.1:${5000 + i}`, host: '127.0.0.1', port: 5000 + i }));
    assert.is((await host.routing.createStrategy('split', { backends: list, options: {} })).select()?.port, 5000);
    writePick(1);
    await host.reload('split-strategy');
    assert.is((await host.routing.createStrategy('split', { backends: list, options: {} })).select()?.port, 5001);
    // a file two imports deep changes too
    writeFileSync(join(dir, 'offset.js'), 'export const offset = 1;\n');
    await host.reload('split-strategy');
    assert.is((await host.routing.createStrategy('split', { backends: list, options: {} })).select()?.port, 5002);
  } finally {
    await host.dispose();
    rmSync(root, { recursive: true, force: true });
  }
});

test('reloading a codec plugin keeps the broker connections that use it open and served', async () => {
  const root = mkdtempSync(join(tmpdir(), 'trellis-reload-'));
  const dir = join(root, 'text-codec');
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'text-codec', version: '1.0.0', type: 'module', main: './index.js', engines: { trellis: '*' }, contributes: { serializers: [{ id: 'text', title: 'Text', wireId: 40 }] } }));
  const writeCodec = (tag: string) =>
    writeFileSync(
      join(dir, 'index.js'),
      `export function activate(ctx) {\n  ctx.serialization.registerCodec({ wireId: 40, name: 'text', encode: (v) => new TextEncoder().encode(JSON.stringify(v)), decode: (b) => { globalThis.__codecTag = '${tag}'; return JSON.parse(new TextDecoder().decode(b)); } });\n}\n`,
    );
  writeCodec('v0');
  const host = createHost({ builtins: false, dirs: [root], logger: memoryLogger() });
  const broker = createBroker({ host, lingerMs: 200 });
  const g = globalThis as { __codecTag?: string };
  try {
    const { port } = await broker.listen(0);
    // the client's own codec object: only the broker's decodes go through the plugin
    const clientCodec = { wireId: 40, name: 'text', encode: (v: unknown) => new TextEncoder().encode(JSON.stringify(v)), decode: (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b)) };
    const client = await connect({ port, codec: clientCodec });
    let closed = false;
    client.on('close', () => void (closed = true));
    const sub = await client.subscribe('/r');
    const nextLive = async () => {
      for (;;) {
        const n = await Promise.race([sub.next(), new Promise<never>((_, reject) => setTimeout(() => reject(new Error('nothing arrived')), 5000))]);
        if (!n.value.retained) return n.value.value;
      }
    };
    client.publish('/r', 1);
    assert.is(await nextLive(), 1);
    assert.is(g.__codecTag, 'v0');
    writeCodec('v1');
    await host.reload('text-codec');
    client.publish('/r', 2);
    assert.is(await nextLive(), 2);
    assert.is(g.__codecTag, 'v1', "the broker decodes with the new code");
    assert.is(closed, false);
    await client.close();
  } finally {
    await broker.close({ timeoutMs: 1000 });
    await host.dispose();
    rmSync(root, { recursive: true, force: true });
    delete g.__codecTag;
  }
});

test('an in-process plugin cannot be reloaded', async () => {
  const host = createHost({ discover: false, builtins: false, logger: memoryLogger(), plugins: [{ manifest: { name: 'inline', version: '1.0.0', engines: { trellis: '*' } }, activate() {} }] });
  await host.reload('inline').then(
    () => assert.unreachable('reloaded'),
    (err: unknown) => assert.instance(err, StateError),
  );
  await host.dispose();
});

test.run();
