/**
 * A client of the reference protocol: each request goes from the client's own UDP socket to any
 * node, and one reply datagram comes back on that socket (`ACK`, `ACK` + value, or `NACK`).
 * Requests are sent one at a time, like the original client, since replies carry no request id.
 */
import { createSocket, type Socket } from 'node:dgram';
import type { Codec, Value } from '../areas/serialization.js';
import { ProtocolError, TimeoutError } from '../errors.js';
import type { Address } from './transport.js';

export interface DhtClientOptions {
  codec: Codec;
  /** Per-request deadline (default 2 s). */
  timeoutMs?: number;
}

export class DhtClient {
  readonly #codec: Codec;
  readonly #timeoutMs: number;
  readonly #socket: Socket;
  #queue: Promise<unknown> = Promise.resolve();
  #waiter: ((msg: Value) => void) | undefined;
  #ready: Promise<void>;

  constructor(options: DhtClientOptions) {
    this.#codec = options.codec;
    this.#timeoutMs = options.timeoutMs ?? 2000;
    this.#socket = createSocket('udp4');
    this.#socket.on('message', (buf) => {
      let msg: Value;
      try {
        msg = this.#codec.decode(buf);
      } catch {
        return; // a garbage datagram is not an answer
      }
      const w = this.#waiter;
      this.#waiter = undefined;
      w?.(msg);
    });
    this.#ready = new Promise((resolve) => this.#socket.bind(0, '0.0.0.0', () => resolve()));
  }

  /** Stores `value` under `key`; true on `ACK` (the reference's `put`). */
  async put(node: Address, key: string, value: Value): Promise<boolean> {
    const rep = await this.request(node, { method: 'PUT', args: { key, value } });
    return rep.method === 'ACK';
  }

  /** Reads `key`; undefined on `NACK` (the reference's `get`). */
  async get(node: Address, key: string): Promise<Value | undefined> {
    const rep = await this.request(node, { method: 'GET', args: { key } });
    return rep.method === 'ACK' ? rep.args : undefined;
  }

  /** A node's INFO: id, address, predecessor, successor list, finger table, key count. */
  async info(node: Address): Promise<Record<string, Value>> {
    const rep = await this.request(node, { method: 'INFO' });
    if (rep.method !== 'ACK' || typeof rep.args !== 'object' || rep.args === null) throw new ProtocolError('INFO got no usable answer');
    return rep.args as Record<string, Value>;
  }

  /** Asks `node` to look `key` up: the owner `[id, [host, port]]`, hops and the path taken. */
  async lookup(node: Address, key: string): Promise<Record<string, Value>> {
    const rep = await this.request(node, { method: 'LOOKUP', args: { key } });
    if (rep.method !== 'ACK' || typeof rep.args !== 'object' || rep.args === null) throw new ProtocolError(`LOOKUP ${key} failed (${rep.method})`);
    return rep.args as Record<string, Value>;
  }

  /** Sends one request and waits for the one reply datagram. */
  request(node: Address, message: { method: string; args?: Value }): Promise<{ method: string; args: Value | undefined }> {
    const run = async () => {
      await this.#ready;
      const bytes = this.#codec.encode(message as unknown as Value);
      return new Promise<{ method: string; args: Value | undefined }>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.#waiter = undefined;
          reject(new TimeoutError(`${message.method} to ${node.host}:${node.port} got no reply within ${this.#timeoutMs} ms`));
        }, this.#timeoutMs);
        this.#waiter = (msg) => {
          clearTimeout(timer);
          const m = msg as { method?: unknown; args?: Value };
          if (typeof m !== 'object' || m === null || typeof m.method !== 'string') reject(new ProtocolError('the reply is not a {method, args} dict'));
          else resolve({ method: m.method, args: m.args });
        };
        this.#socket.send(bytes, node.port, node.host === 'localhost' ? '127.0.0.1' : node.host);
      });
    };
    const p = this.#queue.then(run, run);
    this.#queue = p.catch(() => undefined);
    return p;
  }

  async close(): Promise<void> {
    await this.#ready;
    await new Promise<void>((resolve) => this.#socket.close(() => resolve()));
  }
}
