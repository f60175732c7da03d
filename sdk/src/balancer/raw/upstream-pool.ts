/**
 * Keep-alive connections to one back-end for the raw engine: idle sockets are reused most recent
 * first, new ones are opened up to a limit, and callers wait in FIFO order beyond it. A socket
 * carries one exchange at a time (no pipelining), so its bytes always belong to that exchange.
 */
import { connect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/**
 * Every back-end socket reads into this one buffer (`onread`), which skips the per-read
 * allocation and the stream machinery. Safe because reads are delivered one at a time and users
 * copy what they keep or write (see `UpstreamUser.onUpstreamData`).
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** What an exchange must handle on the socket it was given. */
export interface UpstreamUser {
  /** A socket is ready; `reused` says whether it served a request before (it may be stale). */
  onUpstream(conn: UpstreamConnection, reused: boolean): void;
  /** Connecting failed: nothing was sent. */
  onUpstreamConnectError(err: NodeJS.ErrnoException): void;
  /** `chunk` is valid only during the call (a shared read buffer): copy what outlives it. */
  onUpstreamData(chunk: Buffer): void;
  /** The socket closed (by the back-end, an error, or a destroy) while this user held it. */
  onUpstreamClose(err: NodeJS.ErrnoException | undefined): void;
  onUpstreamDrain(): void;
}

export class UpstreamConnection {
  readonly socket: Socket;
  user: UpstreamUser | null = null;
  idleSince = 0;
  #error: NodeJS.ErrnoException | undefined;

  constructor(socket: Socket, pool: UpstreamPool) {
    this.socket = socket;
    socket.on('drain', () => this.user?.onUpstreamDrain());
    socket.on('error', (err: NodeJS.ErrnoException) => (this.#error = err));
    socket.on('close', () => {
      pool.forget(this);
      const user = this.user;
      this.user = null;
      user?.onUpstreamClose(this.#error);
    });
  }
}

export interface UpstreamPoolOptions {
  connections: number;
  connectTimeoutMs: number;
  /** Idle sockets older than this are closed by `sweep()`. */
  keepAliveMs: number;
  /** Users waiting beyond the connection limit (0: none may wait). */
  maxPending: number;
  /** TLS towards the back-end, certificate verified against `ca` (or the system roots). */
  tls?: { ca?: Buffer } | undefined;
}

export class UpstreamPool {
  readonly host: string;
  readonly port: number;
  readonly #options: UpstreamPoolOptions;
  readonly #idle: UpstreamConnection[] = [];
  readonly #all = new Set<UpstreamConnection>();
  readonly #waiting: UpstreamUser[] = [];
  #connecting = 0;
  #closed = false;

  constructor(host: string, port: number, options: UpstreamPoolOptions) {
    this.host = host;
    this.port = port;
    this.#options = options;
  }

  get size(): number {
    return this.#all.size + this.#connecting;
  }

  get idle(): number {
    return this.#idle.length;
  }

  /** Users waiting for a socket. */
  get pending(): number {
    return this.#waiting.length;
  }

  /**
   * Hands `user` a socket now, after connecting, or when one is released. False (and nothing
   * else happens) when every connection is busy and the pending queue is full.
   */
  acquire(user: UpstreamUser): boolean {
    const conn = this.#idle.pop();
    if (conn !== undefined) {
      conn.user = user;
      user.onUpstream(conn, true);
      return true;
    }
    if (this.size < this.#options.connections) this.#open(user);
    else if (this.#waiting.length < this.#options.maxPending) this.#waiting.push(user);
    else return false;
    return true;
  }

  /** Withdraws a user still waiting for a socket (its client went away). */
  cancel(user: UpstreamUser): void {
    const i = this.#waiting.indexOf(user);
    if (i >= 0) this.#waiting.splice(i, 1);
  }

  #open(user: UpstreamUser): void {
    this.#connecting++;
    let conn: UpstreamConnection | undefined;
    const tls = this.#options.tls;
    const common = {
      host: this.host,
      port: this.port,
      noDelay: true,
      onread: {
        buffer: READ_BUFFER,
        callback: (n: number) => {
          if (conn !== undefined) this.onData(conn, n);
          else socket.destroy();
          return true; // backpressure pauses the socket explicitly
        },
      },
    };
    // TLS: the back-end's certificate must verify (chain to `ca` or the system roots, and match
    // the back-end's host name or IP); a failure is a connect failure (nothing was sent)
    const socket: Socket =
      tls === undefined
        ? connect(common)
        : tlsConnect({ ...common, ...(tls.ca ? { ca: tls.ca } : {}), rejectUnauthorized: true, ALPNProtocols: ['http/1.1'], ...(isIP(this.host) === 0 ? { servername: this.host } : {}) });
    let timer: NodeJS.Timeout | undefined = setTimeout(() => {
      timer = undefined;
      socket.destroy(Object.assign(new Error(`connect to ${this.host}:${this.port} timed out after ${this.#options.connectTimeoutMs} ms`), { code: 'UND_ERR_CONNECT_TIMEOUT' }));
    }, this.#options.connectTimeoutMs);
    const onError = (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      this.#connecting--;
      socket.destroy();
      user.onUpstreamConnectError(err);
      this.#next();
    };
    socket.once('error', onError);
    socket.once(tls === undefined ? 'connect' : 'secureConnect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      this.#connecting--;
      if (this.#closed) {
        socket.destroy();
        user.onUpstreamConnectError(Object.assign(new Error('the balancer is closing'), { code: 'UND_ERR_CLOSED' }));
        return;
      }
      const c = new UpstreamConnection(socket, this);
      conn = c;
      this.#all.add(c);
      c.user = user;
      user.onUpstream(c, false);
    });
  }

  /** The exchange is done with `conn`: reuse it, or destroy it when it cannot be reused. */
  release(conn: UpstreamConnection, reusable: boolean): void {
    conn.user = null;
    if (!reusable || this.#closed || conn.socket.destroyed) {
      conn.socket.destroy();
      this.#next();
      return;
    }
    const waiter = this.#waiting.shift();
    if (waiter !== undefined) {
      conn.user = waiter;
      waiter.onUpstream(conn, true);
      return;
    }
    conn.idleSince = Date.now();
    this.#idle.push(conn);
  }

  /** A slot freed up: open a connection for the next waiter. */
  #next(): void {
    if (this.#waiting.length > 0 && this.size < this.#options.connections) this.#open(this.#waiting.shift()!);
  }

  /** Bytes read from `conn`'s socket, in the shared read buffer. */
  onData(conn: UpstreamConnection, n: number): void {
    if (conn.user !== null) conn.user.onUpstreamData(READ_BUFFER.subarray(0, n));
    else conn.socket.destroy(); // bytes nobody asked for: the connection is out of sync
  }

  forget(conn: UpstreamConnection): void {
    this.#all.delete(conn);
    const i = this.#idle.indexOf(conn);
    if (i >= 0) this.#idle.splice(i, 1);
    this.#next();
  }

  /** Closes every idle socket (after one turned out to be stale). */
  flushIdle(): void {
    for (const conn of this.#idle.splice(0)) conn.socket.destroy();
  }

  /** Closes idle sockets past the keep-alive time. */
  sweep(now: number): void {
    for (let i = this.#idle.length - 1; i >= 0; i--) {
      const conn = this.#idle[i]!;
      if (now - conn.idleSince > this.#options.keepAliveMs) conn.socket.destroy();
    }
  }

  close(): void {
    this.#closed = true;
    for (const conn of this.#all) conn.socket.destroy();
    const waiting = this.#waiting.splice(0);
    for (const w of waiting) w.onUpstreamConnectError(Object.assign(new Error('the balancer is closing'), { code: 'UND_ERR_CLOSED' }));
  }
}
