/**
 * Applying a re-read configuration to a running balancer: strategy first (it is the step that
 * can still fail, on an unknown id or bad options, before anything has changed), then timeouts,
 * then the back-end list and weights in one step. Connections are never closed: requests in
 * flight finish on the back-end and strategy instance that took them.
 */
import type { Balancer, BackendAddress, BalancerTimeouts, ForwardHeader, HealthCheckOptions } from '@trellis/sdk/balancer';

/** Everything `trellis lb` runs with: the configuration file plus the flags on top. */
export interface Settings {
  host: string;
  port: number;
  mode: 'http' | 'tcp';
  engine: 'raw' | 'undici';
  strategy: string;
  strategyOptions: Record<string, unknown>;
  backends: BackendAddress[];
  healthCheck: HealthCheckOptions | false;
  retries: number;
  timeouts: Required<Omit<BalancerTimeouts, never>>;
  drainMs: number;
  adminPort: number | undefined;
  tokenFile: string | undefined;
  pluginDirs: string[];
  /** undefined: the default (all three families). */
  forwardHeaders: ForwardHeader[] | undefined;
}

/** Fields a reload cannot change in place (they need a restart). */
export const RESTART_ONLY = ['host', 'port', 'mode', 'engine', 'healthCheck', 'adminPort', 'tokenFile', 'pluginDirs', 'forwardHeaders'] as const;

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Applies `next` over `prev`; resolves with what changed, and what needs a restart to change. */
export async function applySettings(balancer: Balancer, prev: Settings, next: Settings): Promise<Record<string, unknown>> {
  const changed: string[] = [];
  if (next.strategy !== prev.strategy || !same(next.strategyOptions, prev.strategyOptions)) {
    await balancer.setStrategy(next.strategy, next.strategyOptions);
    changed.push('strategy');
  }
  if (!same(next.timeouts, prev.timeouts) || next.retries !== prev.retries) {
    balancer.setTimeouts(next.timeouts, next.retries);
    changed.push('timeouts');
  }
  if (!same(next.backends, prev.backends)) {
    await balancer.setBackendList(next.backends);
    changed.push('backends');
  }
  const ignored = RESTART_ONLY.filter((k) => !same(next[k], prev[k]));
  return { changed, ...(ignored.length > 0 ? { needsRestart: ignored } : {}) };
}
