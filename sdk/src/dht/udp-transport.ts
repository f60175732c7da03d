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
 *
 * Messages too large for one datagram (values up to megabytes) go over a stream side channel: a
 * TCP listener on the same port number. A frame is `u32 length | u16 sender's UDP port | payload`
 * (the payload exactly what a datagram would carry, ring-key tag included). TCP brings ordering,
 * retransmission and flow control, and its handshake proves the sender's IP, so there is no
 * reassembly state for strangers to fill. Port 0 in a frame marks a client: its answers come back
 * as frames on the same connection.
 */
import { createServer, connect, type Server, type Socket as TcpSocket } from 'node:net';
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
  /** Largest stream frame accepted or sent (default 8 MiB). */
  maxStreamBytes?: number;
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
  /** Messages sent and received over the stream side channel. */
  streamSent: number;
  streamReceived: number;
}

/** Stream frame header: u32 payload length, u16 sender's UDP port (0 = a client). */
const FRAME_HEADER = 6;
/** Open stream connections kept, each way. */
const MAX_CONNECTIONS = 256;

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
  #socket: Socket;
  readonly #maxStream: number;
  #server: Server | undefined;
  /** Outgoing stream connections by `ip:port`. */
  readonly #conns = new Map<string, TcpSocket>();
  readonly #incoming = new Set<TcpSocket>();
  readonly #resolved = new Map<string, string>();
  readonly #resolving = new Map<string, Promise<string>>();
  #receiver: Receiver | undefined;
  #dropListener: ((from: Address, reason: string) => void) | undefined;
  #address: Address = { host: '0.0.0.0', port: 0 };
  #closed = false;
  readonly #key: Buffer | undefined;
  readonly #maxSkew: number;
  readonly counters: UdpTransportStats = { received: 0, sent: 0, dropped: 0, sendErrors: 0, badTags: 0, streamSent: 0, streamReceived: 0 };

  constructor(options: UdpTransportOptions) {
    this.#codec = options.codec;
    if (options.ringKey !== undefined && options.ringKey.byteLength < 16) throw new SendError('a ring key must be at least 16 bytes');
    this.#key = options.ringKey ? Buffer.from(options.ringKey) : undefined;
    this.#maxSkew = options.maxSkewMs ?? 60_000;
    this.#max = Math.min(options.maxDatagramBytes ?? MAX_DATAGRAM_BYTES, MAX_DATAGRAM_BYTES);
    this.#maxStream = options.maxStreamBytes ?? 8 * 1024 * 1024;
    this.#log = options.logger ?? createLogger('trellis:dht:udp');
    this.#socket = this.#createSocket();
  }

  #createSocket(): Socket {
    const socket = createSocket({ type: 'udp4' });
    socket.on('message', (buf, rinfo) => this.#onDatagram(buf, { host: rinfo.address, port: rinfo.port }));
    socket.on('error', (err) => {
      this.counters.sendErrors++;
      this.#log.error(`socket error: ${err.message}`);
    });
    return socket;
  }

  get address(): Address {
    return this.#address;
  }

  get keyed(): boolean {
    return this.#key !== undefined;
  }

  /**
   * Binds the UDP socket and the stream listener on the same port number. With port 0, a port
   * whose TCP twin is taken is given back and another one tried.
   */
  async bind(port: number, host: string): Promise<void> {
    const ip = await this.#resolve(host);
    for (let attempt = 0; ; attempt++) {
      await this.#bindUdp(port, ip);
      const server = createServer((sock) => this.#onConnection(sock));
      const err = await new Promise<Error | undefined>((resolve) => {
        server.once('error', resolve);
        server.listen({ port: this.#socket.address().port, host: ip, exclusive: true }, () => resolve(undefined));
      });
      if (!err) {
        server.on('error', (e) => this.#log.error(`stream listener error: ${e.message}`));
        this.#server = server;
        break;
      }
      if (port !== 0 || attempt >= 8) {
        const taken = this.#socket.address().port;
        await new Promise<void>((r) => this.#socket.close(() => r()));
        throw new SendError(`the stream side channel cannot listen on TCP ${ip}:${taken}: ${err.message}`, { cause: err });
      }
      await new Promise<void>((r) => this.#socket.close(() => r()));
      this.#socket = this.#createSocket();
    }
    const a = this.#socket.address();
    this.#address = Object.freeze({ host: a.address, port: a.port });
  }

  async #bindUdp(port: number, ip: string): Promise<void> {
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
    if (bytes.byteLength > this.#max && (!options.stream || bytes.byteLength > this.#maxStream)) {
      this.counters.sendErrors++;
      const limit = options.stream ? `${this.#maxStream}-byte stream frame limit` : `${this.#max}-byte datagram limit`;
      throw new SendError(`${message.method} to ${to.host}:${to.port} is ${bytes.byteLength} bytes, over the ${limit}`, { bytes: bytes.byteLength });
    }
    this.counters.sent++;
    const big = bytes.byteLength > this.#max;
    // Datagrams go without a completion callback: Node then tries a synchronous send first, while a
    // callback forces a queued send and a loop turn per datagram (about +1 ms p50 on a 16-node ring).
    // Sizes are checked above, so EMSGSIZE cannot happen; a rarer late error reaches the socket's
    // 'error' listener, which counts it in sendErrors.
    const ip = this.#resolved.get(to.host);
    if (ip !== undefined && !big) {
      this.#socket.send(bytes, to.port, ip);
      return;
    }
    const done = (err: Error | null) => {
      if (!err) return;
      this.counters.sendErrors++;
      const e = new SendError(`could not send ${message.method} to ${to.host}:${to.port}: ${err.message}`, { cause: err });
      if (options.onError) options.onError(e);
      else this.#log.warn(e.message);
    };
    this.#resolve(to.host).then(
      (addr) => {
        if (this.#closed) return;
        if (big) this.#streamSend(addr, to.port, bytes, done);
        else this.#socket.send(bytes, to.port, addr);
      },
      (err) => done(new Error(`cannot resolve ${to.host}: ${(err as Error).message}`)),
    );
  }

  /** Sends one frame over the (reused) stream connection to `ip:port`. */
  #streamSend(ip: string, port: number, payload: Uint8Array, done: (err: Error | null) => void): void {
    const key = `${ip}:${port}`;
    let conn = this.#conns.get(key);
    if (!conn || conn.destroyed) {
      if (this.#conns.size >= MAX_CONNECTIONS) {
        const [oldKey, old] = this.#conns.entries().next().value!;
        this.#conns.delete(oldKey);
        old.destroy();
      }
      conn = connect({ host: ip, port });
      conn.setNoDelay(true);
      conn.setTimeout(30_000, () => conn!.destroy());
      conn.on('error', () => undefined); // reported through the write callbacks
      conn.on('close', () => this.#conns.get(key) === conn && this.#conns.delete(key));
      conn.on('data', () => undefined); // nodes answer over UDP or their own connection
      this.#conns.set(key, conn);
    }
    const header = Buffer.allocUnsafe(FRAME_HEADER);
    header.writeUInt32BE(payload.byteLength, 0);
    header.writeUInt16BE(this.#address.port, 4);
    this.counters.streamSent++;
    conn.write(header);
    conn.write(payload, (err) => done(err ?? null));
  }

  /** Reads frames from a stream connection; a bad frame closes that connection only. */
  #onConnection(sock: TcpSocket): void {
    if (this.#closed || this.#incoming.size >= MAX_CONNECTIONS) {
      sock.destroy();
      return;
    }
    this.#incoming.add(sock);
    sock.on('close', () => this.#incoming.delete(sock));
    sock.on('error', () => undefined);
    sock.setTimeout(60_000, () => sock.destroy());
    const ip = (sock.remoteAddress ?? '').replace(/^::ffff:/, '');
    let chunks: Buffer[] = [];
    let have = 0;
    sock.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      have += chunk.byteLength;
      while (have >= FRAME_HEADER) {
        const buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, have);
        chunks = [buf];
        const length = buf.readUInt32BE(0);
        if (length > this.#maxStream) {
          this.#drop({ host: ip, port: sock.remotePort ?? 0 }, `a ${length}-byte stream frame is over the ${this.#maxStream}-byte limit`);
          sock.destroy();
          return;
        }
        if (have < FRAME_HEADER + length) return;
        const senderPort = buf.readUInt16BE(4);
        const payload = buf.subarray(FRAME_HEADER, FRAME_HEADER + length);
        const rest = buf.subarray(FRAME_HEADER + length);
        chunks = rest.byteLength > 0 ? [rest] : [];
        have = rest.byteLength;
        this.counters.streamReceived++;
        const from = { host: ip, port: senderPort === 0 ? sock.remotePort ?? 0 : senderPort };
        const reply = senderPort === 0 ? (message: WireMessage) => this.#frameReply(sock, message) : undefined;
        this.#onDatagram(payload, from, true, reply);
      }
    });
  }

  #frameReply(sock: TcpSocket, message: WireMessage): void {
    if (sock.destroyed) return;
    let bytes: Uint8Array;
    try {
      bytes = this.#codec.encode(message as unknown as Value);
    } catch (err) {
      this.counters.sendErrors++;
      this.#log.warn(`cannot encode a ${message.method} reply: ${(err as Error).message}`);
      return;
    }
    const header = Buffer.allocUnsafe(FRAME_HEADER);
    header.writeUInt32BE(bytes.byteLength, 0);
    header.writeUInt16BE(0, 4);
    sock.write(header);
    sock.write(bytes);
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
    for (const c of this.#conns.values()) c.destroy();
    this.#conns.clear();
    for (const c of this.#incoming) c.destroy();
    this.#incoming.clear();
    const server = this.#server;
    await Promise.all([
      new Promise<void>((resolve) => this.#socket.close(() => resolve())),
      server ? new Promise<void>((resolve) => server.close(() => resolve())) : undefined,
    ]);
  }

  #onDatagram(buf: Buffer, from: Address, viaStream = false, reply?: (message: WireMessage) => void): void {
    this.counters.received++;
    if (!viaStream && buf.byteLength > this.#max) {
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
    this.#receiver?.(message, from, { authenticated, reply });
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
