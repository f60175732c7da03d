/**
 * The UDP transport: one datagram per message, encoded with a codec (pickle, for compatibility
 * with the original Python nodes and client). Oversized or undecodable datagrams are dropped with
 * a log line and counted; the socket keeps serving.
 */
import { createSocket, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import type { Codec, Value } from '../areas/serialization.js';
import type { Logger } from '../logger.js';
import { createLogger } from '../logger.js';
import { ProtocolError, TrellisError } from '../errors.js';
import type { Address, DhtTransport, Receiver, TransportFactory, WireMessage } from './transport.js';

/** The largest UDP payload over IPv4. */
export const MAX_DATAGRAM_BYTES = 65_507;

export interface UdpTransportOptions {
  codec: Codec;
  /** Datagrams above this many bytes are dropped on receipt and refused on send (default 65507). */
  maxDatagramBytes?: number;
  logger?: Logger;
}

export interface UdpTransportStats {
  received: number;
  sent: number;
  dropped: number;
}

/** A factory binding UDP sockets that speak `codec`. */
export function udpTransport(options: UdpTransportOptions): TransportFactory {
  return {
    async bind(port: number, host: string): Promise<DhtTransport> {
      const t = new UdpTransport(options);
      await t.bind(port, host);
      return t;
    },
  };
}

export class UdpTransport implements DhtTransport {
  readonly #codec: Codec;
  readonly #max: number;
  readonly #log: Logger;
  readonly #socket: Socket;
  readonly #resolved = new Map<string, string>();
  #receiver: Receiver | undefined;
  #dropListener: ((from: Address, reason: string) => void) | undefined;
  #address: Address = { host: '0.0.0.0', port: 0 };
  #closed = false;
  readonly counters: UdpTransportStats = { received: 0, sent: 0, dropped: 0 };

  constructor(options: UdpTransportOptions) {
    this.#codec = options.codec;
    this.#max = Math.min(options.maxDatagramBytes ?? MAX_DATAGRAM_BYTES, MAX_DATAGRAM_BYTES);
    this.#log = options.logger ?? createLogger('trellis:dht:udp');
    this.#socket = createSocket({ type: 'udp4' });
    this.#socket.on('message', (buf, rinfo) => this.#onDatagram(buf, { host: rinfo.address, port: rinfo.port }));
    this.#socket.on('error', (err) => this.#log.error(`socket error: ${err.message}`));
  }

  get address(): Address {
    return this.#address;
  }

  async bind(port: number, host: string): Promise<void> {
    const ip = await this.#resolve(host);
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.#socket.once('error', onError);
      this.#socket.bind(port, ip, () => {
        this.#socket.off('error', onError);
        resolve();
      });
    });
    try {
      // room for bursts (key transfers, many peers); the kernel may cap it at net.core.rmem_max
      this.#socket.setRecvBufferSize(4 * 1024 * 1024);
    } catch {
      /* keep the default */
    }
    const a = this.#socket.address();
    this.#address = Object.freeze({ host: a.address, port: a.port });
  }

  onMessage(receiver: Receiver): void {
    this.#receiver = receiver;
  }

  onDrop(listener: (from: Address, reason: string) => void): void {
    this.#dropListener = listener;
  }

  send(to: Address, message: WireMessage): void {
    if (this.#closed) return;
    let bytes: Uint8Array;
    try {
      bytes = this.#codec.encode(message as unknown as Value);
    } catch (err) {
      throw new ProtocolError(`cannot encode ${message.method} for ${to.host}:${to.port}: ${(err as Error).message}`, { cause: err });
    }
    if (bytes.byteLength > this.#max) {
      throw new ProtocolError(`${message.method} to ${to.host}:${to.port} is ${bytes.byteLength} bytes, over the ${this.#max}-byte datagram limit`);
    }
    this.counters.sent++;
    const ip = this.#resolved.get(to.host);
    if (ip !== undefined) {
      this.#socket.send(bytes, to.port, ip);
      return;
    }
    this.#resolve(to.host).then(
      (addr) => !this.#closed && this.#socket.send(bytes, to.port, addr),
      (err) => this.#log.warn(`cannot resolve ${to.host}: ${(err as Error).message}`),
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await new Promise<void>((resolve) => this.#socket.close(() => resolve()));
  }

  #onDatagram(buf: Buffer, from: Address): void {
    this.counters.received++;
    if (buf.byteLength > this.#max) {
      this.#drop(from, `a ${buf.byteLength}-byte datagram is over the ${this.#max}-byte limit`);
      return;
    }
    let message: Value;
    try {
      message = this.#codec.decode(buf);
    } catch (err) {
      this.#drop(from, err instanceof TrellisError ? err.message : `undecodable datagram: ${(err as Error).message}`);
      return;
    }
    this.#receiver?.(message, from);
  }

  #drop(from: Address, why: string): void {
    this.counters.dropped++;
    if (this.#dropListener) this.#dropListener(from, why);
    else this.#log.warn(`dropped datagram from ${from.host}:${from.port}: ${why}`);
  }

  /** Names resolve once (IPv4, like the socket); 'localhost' must not cost a lookup per datagram. */
  async #resolve(host: string): Promise<string> {
    const known = this.#resolved.get(host);
    if (known !== undefined) return known;
    const ip = /^\d+\.\d+\.\d+\.\d+$/.test(host) ? host : (await lookup(host, { family: 4 })).address;
    this.#resolved.set(host, ip);
    return ip;
  }
}
