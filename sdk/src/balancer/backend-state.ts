/**
 * What the balancer knows about one back-end: its address, health, counters and latency window,
 * and in HTTP mode its undici `Pool` of keep-alive connections.
 */
import { Pool } from 'undici';
import type { Backend } from '../areas/routing.js';
import { LatencyWindow } from './latency-window.js';
import { UpstreamPool } from './raw/upstream-pool.js';

export interface BackendAddress {
  host: string;
  port: number;
  /** Stable id; `host:port` by default. */
  id?: string;
  /** Relative share of traffic, an integer 0..256 (default 1); 0 drains it (no new requests). */
  weight?: number;
  /** Free-form labels custom strategies may route on. */
  tags?: readonly string[];
}

/** Largest back-end weight (HAProxy's range, 0..256). */
export const MAX_WEIGHT = 256;

/** A frozen `Backend` for `address`. */
export function backendOf(address: BackendAddress): Backend {
  return Object.freeze({
    id: address.id ?? `${address.host}:${address.port}`,
    host: address.host,
    port: address.port,
    weight: address.weight ?? 1,
    tags: Object.freeze([...(address.tags ?? [])]),
  });
}

/** Per back-end figures, as `stats()` and `/-/stats` report them. */
export interface BackendStats {
  id: string;
  host: string;
  port: number;
  weight: number;
  tags: string[];
  healthy: boolean;
  /** Why it is down (health check, passive ejection), when it is. */
  downReason: string | null;
  active: number;
  requests: number;
  errors: number;
  meanMs: number;
  p99Ms: number;
  /** Open keep-alive sockets to this back-end (raw engine; 0 otherwise), and how many are idle. */
  connections: number;
  idleConnections: number;
}

export interface PoolOptions {
  /** Max connections to the back-end (default 128). */
  connections: number;
  connectTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** Requests waiting for a socket when all `connections` are busy (raw engine). */
  maxPending: number;
  /** TLS towards back-ends (raw engine). */
  tls?: { ca?: Buffer } | undefined;
}

export class BackendState {
  /** Replaced (never mutated) when its weight or tags change at run time. */
  backend: Backend;
  healthy = true;
  downReason: string | null = null;
  active = 0;
  requests = 0;
  errors = 0;
  /** Consecutive health-check results, for rise/fall. */
  passes = 0;
  failures = 0;
  readonly latency = new LatencyWindow();
  /** HTTP mode with the undici engine. */
  pool: Pool | undefined;
  /** HTTP mode with the raw engine. */
  upstream: UpstreamPool | undefined;

  constructor(address: BackendAddress) {
    this.backend = backendOf(address);
  }

  /** The undici pool, created on first use so TCP mode and unused back-ends hold no sockets. */
  httpPool(options: PoolOptions): Pool {
    if (this.pool === undefined) {
      const host = this.backend.host.includes(':') ? `[${this.backend.host}]` : this.backend.host;
      this.pool = new Pool(`http://${host}:${this.backend.port}`, {
        connections: options.connections,
        pipelining: 1,
        connectTimeout: options.connectTimeoutMs,
        keepAliveTimeout: options.keepAliveTimeoutMs,
        keepAliveMaxTimeout: Math.max(options.keepAliveTimeoutMs, 10_000),
        // the balancer applies its own per-request upstream timeouts
        headersTimeout: 0,
        bodyTimeout: 0,
      });
    }
    return this.pool;
  }

  /** The raw engine's keep-alive sockets to this back-end, created on first use. */
  upstreamPool(options: PoolOptions): UpstreamPool {
    return (this.upstream ??= new UpstreamPool(this.backend.host, this.backend.port, {
      connections: options.connections,
      connectTimeoutMs: options.connectTimeoutMs,
      keepAliveMs: options.keepAliveTimeoutMs,
      maxPending: options.maxPending,
      tls: options.tls,
    }));
  }

  /** Records the end of a request or connection routed here. */
  finish(durationMs: number, ok: boolean): void {
    this.active--;
    this.requests++;
    if (!ok) this.errors++;
    this.latency.record(durationMs);
  }

  stats(): BackendStats {
    return {
      id: this.backend.id,
      host: this.backend.host,
      port: this.backend.port,
      weight: this.backend.weight ?? 1,
      tags: [...(this.backend.tags ?? [])],
      healthy: this.healthy,
      downReason: this.downReason,
      active: this.active,
      requests: this.requests,
      errors: this.errors,
      meanMs: round(this.latency.mean()),
      p99Ms: round(this.latency.quantile(0.99)),
      connections: this.upstream?.size ?? 0,
      idleConnections: this.upstream?.idle ?? 0,
    };
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    this.upstream?.close();
    this.upstream = undefined;
    if (pool) await pool.destroy().catch(() => undefined);
  }
}

const round = (n: number) => Math.round(n * 1000) / 1000;
