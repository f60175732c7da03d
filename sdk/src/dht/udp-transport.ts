/**
 * The UDP transport: one datagram per message, encoded with a codec (pickle, for compatibility
 * with the original Python nodes and client). Oversized or undecodable datagrams are dropped with
 * a log line and counted; the socket keeps serving.
 *
 * With a ring key, node-to-node datagrams are framed `00 'TRK' | u64 ms timestamp | HMAC-SHA256 |
 * payload`, the tag covering the header and payload; a tagged datagram with a bad tag or a
 * timestamp more than `maxSkewMs` away is dropped. Untagged datagrams (clients) still arrive,
 * marked unauthenticated, and the node decides what they may do. Decoding is bounded per datagram:
 * the decoded value may expand (shared references counted each time) to at most 4 values per byte.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import type { Codec, Value } from '../areas/serialization.js';
import type { Logger } from '../logger.js';
import { createLogger } from '../logger.js';
import { SendError, TrellisError } from '../errors.js';
import type { Address, DhtTransport, Receiver, SendOptions, TransportFactory, WireMessage } from './transport.js';

/** The largest UDP payload over IPv4. */
export const MAX_DATAGRAM_BYTES = 65_507;

export interface UdpTransportOptions {
  codec: Codec;
  /** Datagrams above this many bytes are dropped on receipt and refused on send (default 65507). */
  maxDatagramBytes?: number;
  logger?: Logger;
  /** The shared ring key: node-to-node datagrams are HMAC-tagged with it (at least 16 bytes). */
  ringKey?: Uint8Array;
  /** Largest clock difference a tagged datagram's timestamp may show (default 60 s). */
  maxSkewMs?: number;
}

export interface UdpTransportStats {
  received: number;
  sent: number;
  dropped: number;
  /** Datagrams that could not be sent: encoding failed, too large, or a local socket error. */
  sendErrors: number;
  /** Tagged datagrams whose tag or timestamp did not check out. */
  badTags: number;
}

/** The frame header of a ring-key-tagged datagram; 0x00 never starts a pickle. */
const TAG_MAGIC = Buffer.from([0x00, 0x54, 0x52, 0x4b]);
const TAG_HEADER = 4 + 8;
const TAG_BYTES = 32;
/** Decoded values may expand to this many values per datagram byte (shared references counted). */
const NODES_PER_BYTE = 4;

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
  readonly #resolving = new Map<string, Promise<string>>();
  #receiver: Receiver | undefined;
  #dropListener: ((from: Address, reason: string) => void) | undefined;
  #address: Address = { host: '0.0.0.0', port: 0 };
  #closed = false;
  readonly #key: Buffer | undefined;
  readonly #maxSkew: number;
  readonly counters: UdpTransportStats = { received: 0, sent: 0, dropped: 0, sendErrors: 0, badTags: 0 };

  constructor(options: UdpTransportOptions) {
    this.#codec = options.codec;
    if (options.ringKey !== undefined && options.ringKey.byteLength < 16) throw new SendError('a ring key must be at least 16 bytes');
    this.#key = options.ringKey ? Buffer.from(options.ringKey) : undefined;
    this.#maxSkew = options.maxSkewMs ?? 60_000;
    this.#max = Math.min(options.maxDatagramBytes ?? MAX_DATAGRAM_BYTES, MAX_DATAGRAM_BYTES);
    this.#log = options.logger ?? createLogger('trellis:dht:udp');
    this.#socket = createSocket({ type: 'udp4' });
    this.#socket.on('message', (buf, rinfo) => this.#onDatagram(buf, { host: rinfo.address, port: rinfo.port }));
    this.#socket.on('error', (err) => this.#log.error(`socket error: ${err.message}`));
  }

  get address(): Address {
    return this.#address;
  }

  get keyed(): boolean {
    return this.#key !== undefined;
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

  send(to: Address, message: WireMessage, options: SendOptions = {}): void {
    if (this.#closed) return;
    let bytes: Uint8Array;
    try {
      bytes = this.#codec.encode(message as unknown as Value);
    } catch (err) {
      this.counters.sendErrors++;
      throw new SendError(`cannot encode ${message.method} for ${to.host}:${to.port}: ${(err as Error).message}`, { cause: err });
    }
    if (this.#key && options.authenticate !== false) bytes = this.#tag(bytes);
    if (bytes.byteLength > this.#max) {
      this.counters.sendErrors++;
      throw new SendError(`${message.method} to ${to.host}:${to.port} is ${bytes.byteLength} bytes, over the ${this.#max}-byte datagram limit`);
    }
    this.counters.sent++;
    const done = (err: Error | null) => {
      if (!err) return;
      this.counters.sendErrors++;
      const e = new SendError(`could not send ${message.method} to ${to.host}:${to.port}: ${err.message}`, { cause: err });
      if (options.onError) options.onError(e);
      else this.#log.warn(e.message);
    };
    const ip = this.#resolved.get(to.host);
    if (ip !== undefined) {
      this.#socket.send(bytes, to.port, ip, done);
      return;
    }
    this.#resolve(to.host).then(
      (addr) => !this.#closed && this.#socket.send(bytes, to.port, addr, done),
      (err) => done(new Error(`cannot resolve ${to.host}: ${(err as Error).message}`)),
    );
  }

  resolve(host: string): Promise<string> {
    return this.#resolve(host);
  }

  #tag(payload: Uint8Array): Buffer {
    const out = Buffer.allocUnsafe(TAG_HEADER + TAG_BYTES + payload.byteLength);
    TAG_MAGIC.copy(out, 0);
    out.writeBigUInt64BE(BigInt(Date.now()), 4);
    out.set(payload, TAG_HEADER + TAG_BYTES);
    const mac = createHmac('sha256', this.#key!).update(out.subarray(0, TAG_HEADER)).update(payload).digest();
    mac.copy(out, TAG_HEADER);
    return out;
  }

  /** The payload of a tagged datagram when its tag and timestamp check out; a reason otherwise. */
  #untag(buf: Buffer): Buffer | string {
    if (buf.byteLength < TAG_HEADER + TAG_BYTES) return 'a truncated ring-key frame';
    if (!this.#key) return 'a ring-key frame, but this node has no ring key';
    const payload = buf.subarray(TAG_HEADER + TAG_BYTES);
    const mac = createHmac('sha256', this.#key).update(buf.subarray(0, TAG_HEADER)).update(payload).digest();
    if (!timingSafeEqual(mac, buf.subarray(TAG_HEADER, TAG_HEADER + TAG_BYTES))) return 'a ring-key tag that does not verify (wrong key or altered datagram)';
    const skew = Math.abs(Date.now() - Number(buf.readBigUInt64BE(4)));
    if (skew > this.#maxSkew) return `a ring-key timestamp ${skew} ms away from this clock`;
    return payload;
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
    let authenticated = false;
    if (buf.byteLength >= 4 && buf[0] === 0x00 && buf.compare(TAG_MAGIC, 0, 4, 0, 4) === 0) {
      const payload = this.#untag(buf);
      if (typeof payload === 'string') {
        this.counters.badTags++;
        this.#drop(from, payload);
        return;
      }
      buf = payload;
      authenticated = true;
    }
    let message: Value;
    try {
      message = this.#codec.decode(buf, { maxNodes: 1024 + NODES_PER_BYTE * buf.byteLength });
    } catch (err) {
      this.#drop(from, err instanceof TrellisError ? err.message : `undecodable datagram: ${(err as Error).message}`);
      return;
    }
    this.#receiver?.(message, from, { authenticated });
  }

  #drop(from: Address, why: string): void {
    this.counters.dropped++;
    if (this.#dropListener) this.#dropListener(from, why);
    else this.#log.warn(`dropped datagram from ${from.host}:${from.port}: ${why}`);
  }

  /** Names resolve once (IPv4, like the socket); 'localhost' must not cost a lookup per datagram. */
  #resolve(host: string): Promise<string> {
    const known = this.#resolved.get(host);
    if (known !== undefined) return Promise.resolve(known);
    if (/^\d+\.\d+\.\d+\.\d+$/.test(host)) {
      this.#resolved.set(host, host);
      return Promise.resolve(host);
    }
    // one lookup per name even when many sends ask at once
    let pending = this.#resolving.get(host);
    if (!pending) {
      pending = lookup(host, { family: 4 }).then(
        ({ address }) => {
          this.#resolved.set(host, address);
          this.#resolving.delete(host);
          return address;
        },
        (err) => {
          this.#resolving.delete(host);
          throw err;
        },
      );
      this.#resolving.set(host, pending);
    }
    return pending;
  }
}
