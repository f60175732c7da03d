/**
 * SDK overhead benchmark (issue: "calling a strategy through the SDK costs at most 1.5x a direct
 * call, or under 20 ns"; "scanning and activating 100 plugins takes under 100 ms").
 *
 * 1. The same round-robin class is called directly and as resolved through the plugin host from
 *    its folder, with and without the engine's observer-hook dispatch. Alternating rounds, medians.
 * 2. 100 plugin folders are written to a temp dir, then scanned and activated by a fresh host.
 *
 * Run: npm run bench:sdk
 */
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHost, createLogger, type Strategy, type Backend, type RouteInfo } from '@trellis/sdk';
// @ts-expect-error plain JS fixture without types
import { RoundRobin } from './fixtures/rr/index.js';
import { HttpRoutingContext } from '../src/balancer/routing-context.js';
import { registryOf } from '../src/areas/registry.js';
import type { StrategyFactory } from '../src/areas/routing.js';
import type { Socket } from 'node:net';

const CALLS = 5_000_000;
const ROUNDS = 9;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

const backends: Backend[] = Array.from({ length: 4 }, (_, i) => ({ id: `127.0.0.1:${5000 + i}`, host: '127.0.0.1', port: 5000 + i }));
const outcome = { durationMs: 1, ok: true };

async function hotPath() {
  const host = createHost({ builtins: false, dirs: [fileURLToPath(new URL('./fixtures/rr', import.meta.url))], logger: createLogger('bench', 'silent') });
  const viaSdk: Strategy = await host.routing.createStrategy('bench-rr', { backends, options: {} });
  const direct: Strategy = new RoundRobin(backends);
  // Before the guarded path (issue 10): the plugin's own object as the registry holds it, called
  // by the engine without the PluginDriver stand-in. Same run, so the two compare.
  const unguarded: Strategy = registryOf<StrategyFactory>(host.routing).get('bench-rr')!.value({ backends, options: {} });
  const hooks = host.routing.hooks;
  const tapped = createHost({ builtins: false, logger: createLogger('bench', 'silent') });
  let observed = 0;
  tapped.register({ manifest: { name: 'observer', version: '1.0.0', engines: { trellis: '*' }, activationEvents: ['onStartup'] }, activate: (ctx) => void ctx.routing.tap('requestEnd', () => void observed++) });
  await tapped.activateByEvent('onStartup');
  const info: RouteInfo = { balancer: 'bench', mode: 'http', backend: backends[0]! };

  // What an engine does per request: select, report the outcome, notify observers when any.
  const loop = (s: Strategy, h: typeof hooks | undefined) => {
    let sink = 0;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < CALLS; i++) {
      const b = s.select()!;
      s.update(b, outcome);
      if (h !== undefined && h.requestEnd.taps.length > 0) h.requestEnd.call(info, outcome);
      sink += b.port;
    }
    const ns = Number(process.hrtime.bigint() - t0) / CALLS;
    if (sink === 42) console.log('');
    return ns;
  };

  // What the raw engine adds per request since select(ctx): refill the connection's context, pass it.
  const ctx = new HttpRoutingContext({ remoteAddress: '127.0.0.1', remotePort: 40000 } as Socket, '127.0.0.1');
  const head = 'GET /100 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: */*';
  const loopCtx = (s: Strategy, h: typeof hooks | undefined) => {
    let sink = 0;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < CALLS; i++) {
      ctx.fillRaw('GET', '/100', head);
      if (h !== undefined && h.beforeSelect.taps.length > 0) h.beforeSelect.call(ctx);
      const b = s.select(ctx)!;
      s.update(b, outcome);
      if (h !== undefined && h.requestEnd.taps.length > 0) h.requestEnd.call(info, outcome);
      sink += b.port;
    }
    const ns = Number(process.hrtime.bigint() - t0) / CALLS;
    if (sink === 42) console.log('');
    return ns;
  };

  const cases: [string, () => number][] = [
    ['direct method call', () => loop(direct, undefined)],
    ['before the guarded path: the plugin object unwrapped', () => loop(unguarded, undefined)],
    ['through the SDK (resolved plugin strategy, guarded path)', () => loop(viaSdk, undefined)],
    ['through the SDK + observer hooks, 0 taps', () => loop(viaSdk, hooks)],
    ['through the SDK + observer hooks, 1 tap', () => loop(viaSdk, tapped.routing.hooks)],
    ['direct method call + routing context (fill + select(ctx))', () => loopCtx(direct, undefined)],
    ['before the guarded path + routing context (fill + select(ctx)) + hooks, 0 taps', () => loopCtx(unguarded, hooks)],
    ['through the SDK + routing context (fill + select(ctx)) + hooks, 0 taps', () => loopCtx(viaSdk, hooks)],
  ];
  const results = new Map<string, number[]>(cases.map(([n]) => [n, []]));
  for (const [, fn] of cases) fn(); // warm-up
  for (let r = 0; r < ROUNDS; r++) for (const [name, fn] of cases) results.get(name)!.push(fn());
  const base = median(results.get('direct method call')!);
  console.log(`\nHot path: select(ctx) + update() per request, ${CALLS.toLocaleString()} calls x ${ROUNDS} alternating rounds (median)`);
  const baseCtx = median(results.get('direct method call + routing context (fill + select(ctx))')!);
  console.log('| path | ns/request | ratio to direct | ratio to direct with the same context |\n|---|---:|---:|---:|');
  for (const [name] of cases) {
    const m = median(results.get(name)!);
    console.log(`| ${name} | ${m.toFixed(2)} | ${(m / base).toFixed(2)}x | ${name.includes('routing context') ? `${(m / baseCtx).toFixed(2)}x` : ''} |`);
  }
  if (observed === 0) throw new Error('the tapped observer never ran');
  await host.dispose();
  await tapped.dispose();
}

async function activation() {
  const times: number[] = [];
  for (let r = 0; r < 5; r++) {
    const dir = mkdtempSync(join(tmpdir(), 'trellis-bench-'));
    for (let i = 0; i < 100; i++) {
      const p = join(dir, `plugin-${i}`);
      mkdirSync(p);
      writeFileSync(join(p, 'package.json'), JSON.stringify({ name: `plugin-${i}`, version: '1.0.0', type: 'module', main: './index.js', engines: { trellis: '^0.1.0' }, contributes: { strategies: [{ id: `s${i}`, title: `S${i}` }] } }));
      writeFileSync(join(p, 'index.js'), `export function activate(ctx) { ctx.routing.registerStrategy('s${i}', () => ({ select() {}, update() {}, setBackends() {} })); }\n`);
    }
    const t0 = performance.now();
    const host = createHost({ builtins: false, dirs: [dir], logger: createLogger('bench', 'silent') });
    await host.scan();
    await Promise.all(host.plugins().map((p) => host.activate(p.id)));
    const ms = performance.now() - t0;
    if (host.plugins().filter((p) => p.state === 'active').length !== 100) throw new Error('not every plugin activated');
    times.push(ms);
    await host.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\nScan + activate 100 plugin folders from disk (fresh host and folder each run): median ${median(times).toFixed(1)} ms over ${times.length} runs (min ${Math.min(...times).toFixed(1)}, max ${Math.max(...times).toFixed(1)})`);
}

await hotPath();
await activation();
