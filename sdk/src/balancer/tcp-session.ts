/**
 * One proxied TCP connection: the client is held paused while a back-end is chosen and connected
 * (trying another one if the connect fails, since no byte has been sent yet), then bytes are
 * piped both ways with backpressure and half-close, and the outcome is settled once both sides
 * are closed.
 */
import { connect, type Socket } from 'node:net';
import type { Pick, RoutingCore } from './routing-core.js';
import { TcpRoutingContext } from './routing-context.js';

export interface TcpSessionOptions {
  /** Idle time after which both sides are closed (0: never). */
  idleTimeoutMs: number;
  connectTimeoutMs: number;
}

export class TcpSession {
  readonly #core: RoutingCore;
  readonly #client: Socket;
  readonly #options: TcpSessionOptions;
  #upstream: Socket | undefined;
  #pick: Pick | undefined;
  #attempts = 0;
  #failed = false;
  #lastBytes = 0;
  #lastActive = Date.now();
  #ctx: TcpRoutingContext | undefined;

  constructor(core: RoutingCore, client: Socket, options: TcpSessionOptions) {
    this.#core = core;
    this.#client = client;
    this.#options = options;
    client.pause();
    client.setNoDelay(true);
    client.on('error', () => this.#fail());
    client.once('close', () => {
      const up = this.#upstream;
      if (up === undefined || up.destroyed) this.#settle(!this.#failed);
      else closeAfterWrites(up);
    });
  }

  /**
   * Timer sweep: closes a connection that moved no byte either way for the idle timeout. Byte
   * counters are compared per tick, so the data path carries no timer work at all.
   */
  sweep(now: number): void {
    if (this.#options.idleTimeoutMs <= 0) return;
    const c = this.#client;
    const bytes = c.bytesRead + c.bytesWritten;
    if (bytes !== this.#lastBytes) {
      this.#lastBytes = bytes;
      this.#lastActive = now;
    } else if (now - this.#lastActive > this.#options.idleTimeoutMs) {
      this.#core.countLocal('timeouts');
      this.#fail();
    }
  }

  start(): void {
    if (this.#client.destroyed) return;
    const ctx = (this.#ctx ??= new TcpRoutingContext(this.#client));
    ctx.reset();
    const pick = this.#core.pick(ctx, undefined, undefined);
    if (pick instanceof Error) {
      this.#core.countLocal('noBackend');
      this.#client.destroy();
      return;
    }
    this.#pick = pick;
    this.#attempts++;
    const { host, port } = pick.state.backend;
    const upstream = connect({ host, port, allowHalfOpen: true, noDelay: true, timeout: this.#options.connectTimeoutMs });
    this.#upstream = upstream;
    let connected = false;
    upstream.once('timeout', () => {
      if (!connected) upstream.destroy(Object.assign(new Error(`connect timed out after ${this.#options.connectTimeoutMs} ms`), { code: 'ETIMEDOUT' }));
    });
    upstream.once('connect', () => {
      connected = true;
      upstream.setTimeout(0); // idle time is the balancer's sweep, which sees traffic both ways
      const client = this.#client;
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (connected || this.#client.destroyed) {
        this.#fail();
        return;
      }
      // nothing was sent yet: eject this back-end and try another
      upstream.destroy();
      this.#upstream = undefined;
      this.#settle(false);
      this.#core.eject(pick.state, `${err.code ?? 'error'}: ${err.message}`);
      if (this.#attempts <= this.#core.settings.retries) {
        this.#core.countLocal('retries');
        this.start();
      } else {
        this.#core.countLocal('upstreamErrors');
        this.#client.destroy();
      }
    });
    upstream.once('close', () => {
      if (this.#upstream !== upstream) return;
      if (this.#client.destroyed) this.#settle(!this.#failed);
      else closeAfterWrites(this.#client);
    });
  }

  #settle(ok: boolean): void {
    const pick = this.#pick;
    if (pick === undefined) return;
    this.#pick = undefined;
    this.#core.settle(pick, ok, 0, undefined, undefined);
  }

  /** An error or timeout on either side: drop both at once. */
  #fail(): void {
    this.#failed = true;
    this.#upstream?.destroy();
    this.#client.destroy();
  }
}

/** The other side is gone: let `socket` flush what it was given, then close it. */
function closeAfterWrites(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.writableFinished) {
    socket.destroy();
    return;
  }
  socket.end();
  socket.once('finish', () => socket.destroy());
}
