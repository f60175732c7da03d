/**
 * `trellis lb --workers N`: N balancer processes on one port through node:cluster (the primary
 * accepts and hands connections to the workers round robin), one admin view in the primary.
 * Each worker runs its own balancer: strategies, health checks and pools are per worker, as
 * with nginx worker processes. SIGTERM/SIGINT on the primary drains every worker.
 */
import cluster, { type Worker } from 'node:cluster';
import { SafeEmitter } from '@trellis/sdk';
import { type BalancerEvents, type BalancerStats, type Balancer } from '@trellis/sdk/balancer';

/** Message a worker sends the primary. */
export type WorkerMessage =
  | { trellis: 'lb-listening'; host: string; port: number }
  | { trellis: 'lb-stats'; stats: BalancerStats }
  | { trellis: 'lb-event'; event: 'backend-down' | 'backend-up' | 'strategy-changed'; args: unknown[] };

/** In a worker: reports stats every `everyMs` and forwards back-end events to the primary. */
export function reportToPrimary(balancer: Balancer, everyMs = 500): () => void {
  const send = (m: WorkerMessage) => {
    if (process.connected) process.send!(m);
  };
  const timer = setInterval(() => send({ trellis: 'lb-stats', stats: balancer.stats() }), everyMs);
  timer.unref();
  const forward = (event: 'backend-down' | 'backend-up' | 'strategy-changed') => (...args: unknown[]) => send({ trellis: 'lb-event', event, args });
  const down = forward('backend-down');
  const up = forward('backend-up');
  const strategy = forward('strategy-changed');
  balancer.on('backend-down', down as never);
  balancer.on('backend-up', up as never);
  balancer.on('strategy-changed', strategy as never);
  send({ trellis: 'lb-stats', stats: balancer.stats() });
  return () => {
    clearInterval(timer);
    send({ trellis: 'lb-stats', stats: balancer.stats() });
  };
}

const COUNTERS = ['active', 'requests', 'errors', 'retries', 'badRequests', 'noBackend', 'upstreamErrors', 'timeouts', 'aborted', 'rateLimited', 'clientLimited', 'queueFull', 'droppedConnections'] as const;

/**
 * The primary's view of its workers, for the admin port: counters summed, per back-end
 * requests/errors/active/connections summed, a back-end healthy only if every worker sees it
 * healthy, mean response time weighted by requests, p99 the worst worker's.
 */
export class WorkersView extends SafeEmitter<BalancerEvents> {
  readonly #latest = new Map<number, BalancerStats>();

  update(workerId: number, stats: BalancerStats): void {
    this.#latest.set(workerId, stats);
  }

  forget(workerId: number): void {
    this.#latest.delete(workerId);
  }

  get size(): number {
    return this.#latest.size;
  }

  stats(): BalancerStats & { workers: number } {
    const all = [...this.#latest.values()];
    const first = all[0];
    if (first === undefined) throw new Error('no worker has reported yet');
    const out = { ...first, workers: all.length, clientConnections: 0 } as BalancerStats & { workers: number };
    for (const k of COUNTERS) (out as unknown as Record<string, number>)[k] = all.reduce((a, s) => a + s[k], 0);
    out.clientConnections = all.reduce((a, s) => a + s.clientConnections, 0);
    out.uptimeMs = Math.max(...all.map((s) => s.uptimeMs));
    out.closing = all.some((s) => s.closing);
    const calls = all.map((s) => s.strategyCalls).filter((c): c is NonNullable<typeof c> => c != null);
    if (calls.length > 0) {
      const sum = (k: 'calls' | 'failed' | 'timed' | 'slow') => calls.reduce((a, c) => a + c[k], 0);
      out.strategyCalls = { ...calls[0]!, calls: sum('calls'), failed: sum('failed'), timed: sum('timed'), slow: sum('slow'), maxMs: Math.max(...calls.map((c) => c.maxMs)) };
    }
    out.backends = first.backends.map((b, i) => {
      const rows = all.map((s) => s.backends[i]).filter((x): x is NonNullable<typeof x> => x !== undefined && x.id === b.id);
      const requests = rows.reduce((a, r) => a + r.requests, 0);
      return {
        ...b,
        healthy: rows.every((r) => r.healthy),
        downReason: rows.find((r) => !r.healthy)?.downReason ?? null,
        active: rows.reduce((a, r) => a + r.active, 0),
        requests,
        errors: rows.reduce((a, r) => a + r.errors, 0),
        meanMs: requests === 0 ? 0 : rows.reduce((a, r) => a + r.meanMs * r.requests, 0) / requests,
        p99Ms: Math.max(...rows.map((r) => r.p99Ms)),
        connections: rows.reduce((a, r) => a + r.connections, 0),
        idleConnections: rows.reduce((a, r) => a + r.idleConnections, 0),
      };
    });
    return out;
  }
}

/**
 * Runs the primary: forks `n` workers with the same arguments, restarts a worker that dies
 * (unless shutting down), and on `signal` sends SIGTERM to every worker and waits for them to
 * drain (up to `drainMs` + 2 s, then kills). Resolves with the bound address once every worker
 * listens; `done` resolves when all workers are gone.
 */
export function runPrimary(n: number, view: WorkersView, signal: AbortSignal, drainMs: number, log: (line: string) => void): { listening: Promise<{ host: string; port: number }>; done: Promise<void> } {
  let stopping = false;
  const listeningIds = new Set<number>();
  let resolveListening!: (a: { host: string; port: number }) => void;
  let rejectListening!: (e: Error) => void;
  const listening = new Promise<{ host: string; port: number }>((res, rej) => {
    resolveListening = res;
    rejectListening = rej;
  });
  listening.catch(() => undefined);
  let address: { host: string; port: number } | undefined;
  const workers = new Set<Worker>();
  const fork = () => {
    const w = cluster.fork();
    workers.add(w);
    w.on('message', (m: WorkerMessage) => {
      if (m?.trellis === 'lb-stats') view.update(w.id, m.stats);
      else if (m?.trellis === 'lb-event') view.emit(m.event, ...(m.args as [never, never]));
      else if (m?.trellis === 'lb-listening') {
        address = { host: m.host, port: m.port };
        listeningIds.add(w.id);
        if (listeningIds.size === n) resolveListening(address);
      }
    });
    w.on('exit', (code, sig) => {
      workers.delete(w);
      view.forget(w.id);
      if (stopping) return;
      if (listeningIds.size < n && !listeningIds.has(w.id)) {
        // a worker that never came up (bad flags, port in use): give up rather than loop
        stopping = true;
        for (const other of workers) other.process.kill('SIGTERM');
        rejectListening(new Error(`worker ${w.process.pid} exited before listening (${sig ?? code})`));
        return;
      }
      log(`lb: worker ${w.process.pid} died (${sig ?? code}), starting another`);
      fork();
    });
  };
  for (let i = 0; i < n; i++) fork();
  const done = new Promise<void>((resolve) => {
    const finish = () => {
      if (workers.size === 0) resolve();
    };
    cluster.on('exit', finish);
    const stop = () => {
      stopping = true;
      for (const w of workers) w.process.kill('SIGTERM');
      const killer = setTimeout(() => {
        for (const w of workers) w.process.kill('SIGKILL');
      }, drainMs + 2000);
      killer.unref();
      finish();
    };
    if (signal.aborted) stop();
    else signal.addEventListener('abort', stop, { once: true });
    listening.catch(() => {
      if (workers.size === 0) resolve();
    });
  });
  return { listening, done };
}
