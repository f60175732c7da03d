/**
 * The load balancer inside the demo: four Pi back-ends of unequal speed (one request at a time,
 * as the reference's), the real balancer in front of them, and a steady open-loop load so the
 * page's chart shows how each strategy shares the work. The strategy can be switched and a
 * back-end stopped and restarted at run time, so health checks and failover show on the page.
 */
import { InvalidArgumentError } from '@trellis/sdk';
import { createAdminServer, createBalancer } from '@trellis/sdk/balancer';
import { createPiServer, type PiServer } from '@trellis/example-lb/pi-server';
import type { BalancerPart, PartContext } from './demo.js';

/** Pacing per digit of each back-end: a fast one, two middling ones and a slow one. */
const MS_PER_DIGIT = [0.2, 0.4, 0.8, 1.6] as const;
const INITIAL_STRATEGY = 'round-robin';
/** In-flight cap of the load generator, so a stalled balancer cannot pile up sockets. */
const MAX_IN_FLIGHT = 64;
/** Fast health checks, so a stopped back-end turns red within a second or two. */
const HEALTH = { intervalMs: 500, timeoutMs: 300, rise: 2, fall: 2 } as const;

/** One Pi back-end the demo can stop and start again on the same port. */
class PiSlot {
  readonly id: string;
  #server: PiServer | undefined;
  readonly #port: number;
  readonly #msPerDigit: number;

  private constructor(server: PiServer, address: { host: string; port: number }, msPerDigit: number) {
    this.#server = server;
    this.#port = address.port;
    this.#msPerDigit = msPerDigit;
    this.id = `${address.host}:${address.port}`;
  }

  static async start(port: number, msPerDigit: number): Promise<PiSlot> {
    const server = createPiServer({ serial: true, msPerDigit });
    return new PiSlot(server, await server.listen(port, '127.0.0.1'), msPerDigit);
  }

  get running(): boolean {
    return this.#server !== undefined;
  }

  async setRunning(running: boolean): Promise<void> {
    if (running === this.running) return;
    if (!running) {
      const server = this.#server!;
      this.#server = undefined;
      await server.kill();
      return;
    }
    const server = createPiServer({ serial: true, msPerDigit: this.#msPerDigit });
    await server.listen(this.#port, '127.0.0.1');
    this.#server = server;
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    await server?.close({ timeoutMs: 1_000 });
  }
}

export async function startBalancerPart(ctx: PartContext): Promise<BalancerPart> {
  const close: (() => Promise<unknown>)[] = [];
  const shutdown = async () => {
    for (const fn of close.splice(0).reverse()) await fn().catch(() => undefined);
  };
  try {
    const slots: PiSlot[] = [];
    for (const [i, port] of ctx.ports.pi.entries()) {
      const slot = await PiSlot.start(port, MS_PER_DIGIT[i % MS_PER_DIGIT.length]!);
      slots.push(slot);
      close.push(() => slot.close());
    }
    const backends = slots.map((s) => s.id);
    const balancer = await createBalancer({ host: ctx.host, strategy: INITIAL_STRATEGY, backends, name: 'demo', healthCheck: HEALTH, logger: ctx.log });
    const address = await balancer.listen(ctx.ports.balancer, '127.0.0.1');
    close.push(() => balancer.close({ timeoutMs: 2_000 }));
    const url = `http://127.0.0.1:${address.port}`;
    const admin = createAdminServer(balancer);
    const adminAddress = await admin.listen(ctx.ports.admin, '127.0.0.1');
    close.push(() => admin.close());
    const adminUrl = `http://127.0.0.1:${adminAddress.port}`;

    // Open-loop load: `rate` requests a second, precision 20…80, whatever the answers take.
    let inFlight = 0;
    let stopped = false;
    const controller = new AbortController();
    const fire = () => {
      if (stopped || inFlight >= MAX_IN_FLIGHT) return;
      inFlight++;
      const precision = 20 + Math.floor(Math.random() * 61);
      fetch(`${url}/${precision}`, { headers: { accept: 'application/json' }, signal: controller.signal })
        .then((res) => res.arrayBuffer())
        .catch(() => undefined)
        .finally(() => inFlight--);
    };
    const timer = ctx.options.rate > 0 ? setInterval(fire, 1000 / ctx.options.rate) : undefined;
    close.push(async () => {
      stopped = true;
      clearInterval(timer);
      controller.abort();
    });

    return {
      name: 'balancer',
      hints: [
        `balancer:     ${url}  (back-ends ${backends.join(', ')}, strategy ${INITIAL_STRATEGY})`,
        `  try: curl ${url}/100`,
        `       curl ${adminUrl}/-/stats     (and /-/metrics for Prometheus)`,
        `       npx trellis stress --url ${url}/100 --requests 200 --concurrency 8`,
      ],
      snapshot() {
        const s = balancer.stats();
        return {
          available: true,
          url,
          strategy: s.strategy,
          strategies: ctx.host.routing.strategies(),
          totals: { requests: s.requests, errors: s.errors },
          backends: s.backends.map((b) => ({
            id: b.id,
            running: slots.find((slot) => slot.id === b.id)?.running ?? true,
            healthy: b.healthy,
            downReason: b.downReason,
            active: b.active,
            requests: b.requests,
            errors: b.errors,
            meanMs: b.meanMs,
            p99Ms: b.p99Ms,
          })),
        };
      },
      async setStrategy(id) {
        if (!ctx.host.routing.strategies().includes(id)) {
          throw new InvalidArgumentError(`unknown strategy "${id}"; installed: ${ctx.host.routing.strategies().join(', ')}`);
        }
        await balancer.setStrategy(id);
        return id;
      },
      async setBackendRunning(id, running) {
        const slot = slots.find((s) => s.id === id);
        if (!slot) throw new InvalidArgumentError(`no back-end "${id}"; the demo runs ${backends.join(', ')}`);
        await slot.setRunning(running);
        return running;
      },
      close: shutdown,
    };
  } catch (err) {
    await shutdown();
    throw err;
  }
}
