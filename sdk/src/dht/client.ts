/**
 * A client of the reference protocol: each request goes from the client's own UDP socket to any
 * node, and one reply datagram comes back on that socket (`ACK`, `ACK` + value, or `NACK`).
 * Requests are sent one at a time, like the original client, since replies carry no request id.
 *
 * A request too large for one datagram (a big value) goes over the node's stream side channel
 * instead: TCP to the same port number, one `u32 length | u16 0 | pickle` frame each way. A GET
 * whose value does not fit a datagram is NACKed with that reason and retried there.
 */
import { createSocket, type Socket } from 'node:dgram';
import { connect } from 'node:net';
import type { Codec, Value } from '../areas/serialization.js';
import { ProtocolError, TimeoutError } from '../errors.js';
import type { Address } from './transport.js';

/** The largest UDP payload over IPv4; larger requests take the stream side channel. */
const MAX_DATAGRAM = 65_507;

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
    let rep = await this.request(node, { method: 'GET', args: { key } });
    if (rep.method === 'NACK' && /stream side channel/.test(String((rep.args as Record<string, Value> | undefined)?.error ?? ''))) {
      rep = await this.streamRequest(node, { method: 'GET', args: { key } });
    }
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
      if (bytes.byteLength > MAX_DATAGRAM) return this.#stream(node, bytes, message.method);
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

  /** Sends one request over the node's stream side channel (TCP, same port) and reads the one reply frame. */
  streamRequest(node: Address, message: { method: string; args?: Value }): Promise<{ method: string; args: Value | undefined }> {
    return this.#stream(node, this.#codec.encode(message as unknown as Value), message.method);
  }

  #stream(node: Address, bytes: Uint8Array, method: string): Promise<{ method: string; args: Value | undefined }> {
    return new Promise((resolve, reject) => {
      const sock = connect({ host: node.host === 'localhost' ? '127.0.0.1' : node.host, port: node.port });
      let chunks: Buffer[] = [];
      let have = 0;
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new TimeoutError(`${method} to ${node.host}:${node.port} (stream) got no reply within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      const done = (err: Error | undefined, value?: { method: string; args: Value | undefined }) => {
        clearTimeout(timer);
        sock.destroy();
        if (err) reject(err);
        else resolve(value!);
      };
      sock.on('error', (err) => done(new ProtocolError(`${method} to ${node.host}:${node.port} over the stream side channel failed: ${err.message}`)));
      sock.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        have += chunk.byteLength;
        if (have < 6) return;
        const buf = Buffer.concat(chunks, have);
        chunks = [buf];
        const length = buf.readUInt32BE(0);
        if (have < 6 + length) return;
        let m: { method?: unknown; args?: Value };
        try {
          m = this.#codec.decode(buf.subarray(6, 6 + length)) as typeof m;
        } catch (err) {
          return done(err as Error);
        }
        if (typeof m !== 'object' || m === null || typeof m.method !== 'string') done(new ProtocolError('the reply is not a {method, args} dict'));
        else done(undefined, { method: m.method, args: m.args });
      });
      const header = Buffer.alloc(6);
      header.writeUInt32BE(bytes.byteLength, 0);
      sock.write(header);
      sock.write(bytes);
    });
  }

  async close(): Promise<void> {
    await this.#ready;
    await new Promise<void>((resolve) => this.#socket.close(() => resolve()));
  }
}
