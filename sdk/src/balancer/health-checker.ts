/**
 * Active health checks with rise/fall, as in haproxy: every interval each back-end is probed (a
 * TCP connect, or an HTTP GET of `path` answering below 500); `fall` consecutive failures mark it
 * down and `rise` consecutive passes mark it up again.
 */
import { connect } from 'node:net';
import { request } from 'node:http';
import type { BackendState } from './backend-state.js';

export interface HealthCheckOptions {
  /** Probe period (default 2000 ms); 0 disables active checks. */
  intervalMs?: number;
  /** How long one probe may take (default 1000 ms). */
  timeoutMs?: number;
  /** Consecutive passes to mark a down back-end up (default 2). */
  rise?: number;
  /** Consecutive failures to mark an up back-end down (default 3). */
  fall?: number;
  /** HTTP path to GET; without it the probe is a TCP connect. */
  path?: string;
}

export type ResolvedHealthCheck = Required<Omit<HealthCheckOptions, 'path'>> & { path: string | undefined };

export function resolveHealthCheck(o: HealthCheckOptions | false | undefined): ResolvedHealthCheck {
  if (o === false) return { intervalMs: 0, timeoutMs: 1000, rise: 2, fall: 3, path: undefined };
  return {
    intervalMs: o?.intervalMs ?? 2000,
    timeoutMs: o?.timeoutMs ?? 1000,
    rise: Math.max(1, o?.rise ?? 2),
    fall: Math.max(1, o?.fall ?? 3),
    path: o?.path,
  };
}

/** One probe: resolves with null on success or the reason it failed. */
export function probe(state: BackendState, options: ResolvedHealthCheck): Promise<string | null> {
  const { host, port } = state.backend;
  return new Promise((resolve) => {
    let settled = false;
    const done = (reason: string | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(reason);
    };
    const timer = setTimeout(() => {
      done(`health check timed out after ${options.timeoutMs} ms`);
      cleanup();
    }, options.timeoutMs);
    let cleanup: () => void;
    if (options.path === undefined) {
      const socket = connect({ host, port });
      cleanup = () => socket.destroy();
      socket.once('connect', () => {
        socket.destroy();
        done(null);
      });
      socket.once('error', (err: NodeJS.ErrnoException) => done(`health check: ${err.code ?? err.message}`));
    } else {
      const req = request({ host, port, path: options.path, method: 'GET', agent: false, headers: { connection: 'close', 'user-agent': 'trellis-health-check' } }, (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        done(status < 500 ? null : `health check: HTTP ${status}`);
        res.once('end', () => req.destroy());
      });
      cleanup = () => req.destroy();
      req.once('error', (err: NodeJS.ErrnoException) => done(`health check: ${err.code ?? err.message}`));
      req.end();
    }
  });
}

/** Runs probes on a timer and reports transitions through `onResult`. */
export class HealthChecker {
  readonly #options: ResolvedHealthCheck;
  readonly #targets: () => readonly BackendState[];
  readonly #onResult: (state: BackendState, reason: string | null) => void;
  #timer: NodeJS.Timeout | undefined;
  #running = false;

  constructor(options: ResolvedHealthCheck, targets: () => readonly BackendState[], onResult: (state: BackendState, reason: string | null) => void) {
    this.#options = options;
    this.#targets = targets;
    this.#onResult = onResult;
  }

  get enabled(): boolean {
    return this.#options.intervalMs > 0;
  }

  start(): void {
    if (!this.enabled || this.#timer) return;
    this.#timer = setInterval(() => void this.runOnce(), this.#options.intervalMs);
    this.#timer.unref();
  }

  /** Probes every back-end once (skipped if the previous round is still running). */
  async runOnce(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      await Promise.all(
        this.#targets().map(async (state) => {
          const reason = await probe(state, this.#options);
          if (this.#timer !== undefined || !this.enabled) this.#onResult(state, reason);
        }),
      );
    } finally {
      this.#running = false;
    }
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
