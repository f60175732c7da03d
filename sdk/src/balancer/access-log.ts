/**
 * The balancer's access log: one JSON line per request, written to a stream without ever
 * blocking the event loop. When the stream falls behind by more than `maxBufferedBytes`, lines
 * are dropped (and counted) rather than buffered without bound.
 *
 * Line format (keys always in this order):
 * `{"time":"2026-12-05T20:31:25.123Z","client":"203.0.113.9","method":"GET","path":"/x?y=1",
 *   "status":200,"bytes":1234,"backend":"10.0.0.5:8080","ms":1.42}`
 * - `method`/`path` are `"-"` when the request head could not be parsed (400, 408, 431, 429 at
 *   the connection limit); `backend` is `"-"` when the balancer answered itself.
 * - `status` 499: the client closed the connection before its response was complete.
 * - `bytes`: bytes written to the client for this response, head included.
 */
import type { Writable } from 'node:stream';

export interface AccessLogEntry {
  client: string;
  method: string;
  path: string;
  status: number;
  bytes: number;
  backend: string;
  ms: number;
}

export class AccessLog {
  readonly #out: Writable;
  readonly #maxBuffered: number;
  /** Lines dropped because the stream was too far behind. */
  dropped = 0;
  written = 0;

  constructor(out: Writable, { maxBufferedBytes = 4 * 1024 * 1024 } = {}) {
    this.#out = out;
    this.#maxBuffered = maxBufferedBytes;
    out.on('error', () => undefined); // a failing log must not take the balancer down
  }

  write(e: AccessLogEntry): void {
    if (this.#out.writableLength > this.#maxBuffered || this.#out.destroyed) {
      this.dropped++;
      return;
    }
    this.written++;
    this.#out.write(
      `{"time":"${new Date().toISOString()}","client":${JSON.stringify(e.client)},"method":${JSON.stringify(e.method)},"path":${JSON.stringify(e.path)},"status":${e.status},"bytes":${e.bytes},"backend":${JSON.stringify(e.backend)},"ms":${Math.round(e.ms * 100) / 100}}\n`,
    );
  }

  /** Flushes what is buffered and closes the stream (not stdout/stderr); gives up after `timeoutMs`. */
  close(timeoutMs = 2000): Promise<void> {
    const out = this.#out;
    if (out === process.stdout || out === process.stderr || out.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        out.destroy(); // a stream that cannot drain: what it still holds is lost
        resolve();
      }, timeoutMs);
      timer.unref();
      out.end(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
