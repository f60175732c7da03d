/**
 * The broker over WebSocket (the `ws` package), so a web page can publish and subscribe. A
 * WebSocket carries exactly the TCP protocol's byte stream in binary messages — the same frames,
 * the same HELLO, the same limits and access control — so the engine serves it through the same
 * path as a TCP connection. A frame may span messages and a message may hold several frames.
 *
 * @example
 * ```ts
 * const ws = await attachWebSocket(broker, { port: 7001 });   // ws://127.0.0.1:7001/
 * // in the page: new WebSocket('ws://127.0.0.1:7001/'), binaryType 'arraybuffer', send HELLO…
 * ```
 */
import type { Server as HttpServer, IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
// ws is loaded by attachWebSocket only, so importing the broker does not load it
import type { WebSocket, WebSocketServer } from 'ws';
import type { Broker } from './broker.js';

export interface WebSocketOptions {
  /** Listen on this port (0 = a free one) … */
  readonly port?: number;
  readonly host?: string;
  /** … or share an existing HTTP server (upgrades on `path`). */
  readonly server?: HttpServer;
  /** The URL path WebSocket upgrades are accepted on (default any path with `port`, `/broker` with `server`). */
  readonly path?: string;
  /** Browser origins allowed to connect (default: any). A page from another origin is refused at the upgrade. */
  readonly origins?: readonly string[];
  /** Largest WebSocket message accepted (default 1 MiB + 64 KiB); frames inside are checked by the broker as usual. */
  readonly maxPayload?: number;
}

export interface WebSocketTransport {
  /** The listening address (with `port`), or null when sharing a server. */
  readonly address: { host: string; port: number } | null;
  /** Stops accepting WebSocket connections and closes the open ones. */
  close(): Promise<void>;
}

/** Serves the broker's protocol to WebSocket clients. */
export async function attachWebSocket(broker: Broker, options: WebSocketOptions): Promise<WebSocketTransport> {
  const origins = options.origins ? new Set(options.origins) : undefined;
  const verifyClient = origins ? (info: { origin: string }) => origins.has(info.origin) : undefined;
  const common = { maxPayload: options.maxPayload ?? 1024 * 1024 + 64 * 1024, perMessageDeflate: false, ...(verifyClient ? { verifyClient } : {}) };
  const { WebSocketServer: Server, createWebSocketStream } = await import('ws');
  let wss: WebSocketServer;
  if (options.server) {
    wss = new Server({ ...common, server: options.server, path: options.path ?? '/broker' });
  } else {
    wss = new Server({ ...common, port: options.port ?? 0, host: options.host ?? '127.0.0.1', ...(options.path ? { path: options.path } : {}) });
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', resolve);
      wss.once('error', reject);
    });
  }
  wss.on('error', (err) => broker.emit('error', err));
  wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
    const stream = createWebSocketStream(ws) as Duplex & { remoteAddress?: string; remotePort?: number };
    stream.remoteAddress = req.socket.remoteAddress;
    stream.remotePort = req.socket.remotePort;
    stream.on('error', () => undefined); // reported through 'close'; the broker drops the session
    broker.acceptStream(stream);
  });
  const a = wss.address();
  const address = typeof a === 'object' && a !== null && !options.server ? { host: a.address, port: a.port } : null;
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  };
}
