/**
 * The demo: every Trellis host in one process on loopback ports, with traffic, and the live web
 * view over them. `startDemo()` is what `trellis demo` (and `npm start`) runs; tests call it too.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createCommandHost } from '@trellis/sdk/cli';
import { createLogger, InvalidArgumentError, type Logger, type PluginHost } from '@trellis/sdk';
import { WebServer } from './web-server.js';
import { portPlan, DEFAULT_BASE_PORT, type PortPlan } from './ports.js';
import type { DemoPart } from './part.js';
import { unavailable, type BalancerView, type BrokerView, type ChordView, type DemoModel, type LookupView, type Snapshot, type Unavailable } from './view-model.js';

/** The plugin author's example, beside this package in a Trellis checkout (not part of the published package). */
const CUSTOM_STRATEGY_DIR = fileURLToPath(new URL('../../custom-strategy/', import.meta.url));

export interface DemoOptions {
  /** First port of the plan (web view); 0 puts every service on an ephemeral port. */
  readonly basePort?: number;
  /** Chord ring size (default 8). */
  readonly nodes?: number;
  /** Identifier bits of the Chord ring (default 10, as the reference). */
  readonly bits?: number;
  /** Snapshot interval of the live view (default 500 ms). */
  readonly intervalMs?: number;
  /** Requests per second the demo's load generator sends through the balancer (default 30). */
  readonly rate?: number;
  readonly logger?: Logger;
  /** Extra plugin folders (`--plugin-dir`); each must exist. */
  readonly pluginDirs?: readonly string[];
}

/** The parts a running demo may hold; each is absent when it failed to start. */
export interface BalancerPart extends DemoPart<BalancerView> {
  setStrategy(id: string): Promise<string>;
  setBackendRunning(id: string, running: boolean): Promise<boolean>;
}
export type BrokerPart = DemoPart<BrokerView>;
export interface ChordPart extends DemoPart<ChordView> {
  lookup(key: string, from?: number): Promise<LookupView>;
}

export interface PartContext {
  readonly host: PluginHost;
  readonly ports: PortPlan;
  readonly options: Required<Omit<DemoOptions, 'logger' | 'basePort' | 'pluginDirs'>>;
  readonly log: Logger;
}

type Starter<P> = (ctx: PartContext) => Promise<P>;

/** The engines the demo runs; each entry names where its part lives. */
export interface Starters {
  readonly balancer?: Starter<BalancerPart>;
  readonly broker?: Starter<BrokerPart>;
  readonly chord?: Starter<ChordPart>;
}

export interface RunningDemo {
  readonly ports: PortPlan;
  readonly webUrl: string;
  /** What to print: URLs and things to try. */
  readonly hints: readonly string[];
  /** Why a part is not running, by part name. */
  readonly failures: Readonly<Record<string, string>>;
  readonly model: DemoModel;
  /** The plugin host every part shares (shipped plugins plus examples/custom-strategy). */
  readonly host: PluginHost;
  close(): Promise<void>;
}

export async function startDemo(starters: Starters, options: DemoOptions = {}): Promise<RunningDemo> {
  const log = options.logger ?? createLogger('demo');
  const ports = portPlan(options.basePort ?? DEFAULT_BASE_PORT, { nodes: options.nodes ?? 8 });
  // The shipped plugins (this package's dependencies), --plugin-dir folders, and in a checkout the
  // plugin author's example, so p2c-least-request is on the menu.
  const dirs = [...(options.pluginDirs ?? []), ...(existsSync(CUSTOM_STRATEGY_DIR) ? [CUSTOM_STRATEGY_DIR] : [])];
  const host = createCommandHost(import.meta.url, dirs, { logger: log });
  const ctx: PartContext = {
    host,
    ports,
    options: { nodes: options.nodes ?? 8, bits: options.bits ?? 10, intervalMs: options.intervalMs ?? 500, rate: options.rate ?? 30 },
    log,
  };
  const failures: Record<string, string> = {};
  const start = async <P>(name: string, starter: Starter<P> | undefined, missing: string): Promise<P | undefined> => {
    if (!starter) {
      failures[name] = missing;
      return undefined;
    }
    try {
      return await starter(ctx);
    } catch (err) {
      failures[name] = err instanceof Error ? err.message : String(err);
      log.error(`the ${name} did not start: ${failures[name]}`);
      return undefined;
    }
  };
  // Parts fill in as they start; until then the page says so. The web port is bound first, so a
  // busy port fails fast, before any engine has started.
  let balancer: BalancerPart | undefined;
  let broker: BrokerPart | undefined;
  let chord: ChordPart | undefined;
  const view = <V>(part: DemoPart<V> | undefined, name: string): V | Unavailable => {
    if (!part) return unavailable(failures[name] ?? 'starting…');
    try {
      return part.snapshot();
    } catch (err) {
      return unavailable(`snapshot failed: ${(err as Error).message}`);
    }
  };
  const LABELS: Record<string, string> = { balancer: 'balancer', broker: 'broker', chord: 'Chord ring' };
  const notRunning = (name: string) => new InvalidArgumentError(`the ${LABELS[name]} is not running: ${failures[name] ?? 'still starting'}`);
  const model: DemoModel = {
    snapshot: (): Snapshot => ({ t: Date.now(), balancer: view(balancer, 'balancer'), broker: view(broker, 'broker'), chord: view(chord, 'chord') }),
    setStrategy: async (id) => {
      if (!balancer) throw notRunning('balancer');
      return balancer.setStrategy(id);
    },
    setBackendRunning: async (id, running) => {
      if (!balancer) throw notRunning('balancer');
      return balancer.setBackendRunning(id, running);
    },
    lookup: async (key, from) => {
      if (!chord) throw notRunning('chord');
      return chord.lookup(key, from);
    },
  };
  const web = new WebServer({ model, intervalMs: ctx.options.intervalMs, log });
  let address: { host: string; port: number };
  try {
    address = await web.listen(ports.web, '127.0.0.1');
  } catch (err) {
    await host.dispose().catch(() => undefined);
    throw err;
  }
  [balancer, broker, chord] = await Promise.all([
    start('balancer', starters.balancer, 'the load balancer engine is not part of this build'),
    start('broker', starters.broker, 'the broker engine is not part of this build'),
    start('chord', starters.chord, 'the DHT engine is not part of this build'),
  ]);
  const webUrl = `http://127.0.0.1:${address.port}/`;
  let closing: Promise<void> | undefined;
  return {
    ports,
    webUrl,
    hints: [`live view:    ${webUrl}`, ...(balancer?.hints ?? []), ...(broker?.hints ?? []), ...(chord?.hints ?? [])],
    failures,
    model,
    host,
    close() {
      closing ??= (async () => {
        await web.close();
        const results = await Promise.allSettled([balancer?.close(), broker?.close(), chord?.close()]);
        await host.dispose({ timeoutMs: 5_000 }).catch((err) => log.warn(`plugin host dispose: ${(err as Error).message}`));
        for (const r of results) if (r.status === 'rejected') log.warn(`a part did not close cleanly: ${(r.reason as Error)?.message}`);
      })();
      return closing;
    },
  };
}
