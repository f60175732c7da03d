/**
 * The TypeScript client of the Trellis broker: connect with a codec, publish (optionally
 * acknowledged), subscribe as an async iterator, unsubscribe, list topics, close. The codec is a
 * `Codec` object or a name / wire id resolved once through a plugin host.
 *
 * @example
 * ```ts
 * const client = await connect({ port: 5000, codec: 'json', plugins: createHost() });
 * const sub = await client.subscribe('/weather');
 * await client.publish('/weather/temperature', 21.5, { ack: true });
 * for await (const { topic, value } of sub) console.log(topic, value);
 * ```
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { SafeEmitter } from '../safe-emitter.js';
import { DisposedError, InvalidArgumentError, TimeoutError } from '../errors.js';
import type { PluginHost } from '../plugin-host.js';
import type { Codec, Value } from '../areas/serialization.js';
import { FrameReader } from '../framing/frame-reader.js';
import { FrameQueue } from '../framing/frame-writer.js';
import {
  BrokerError,
  BrokerErrorCode,
  FrameType,
  PROTOCOL_VERSION,
  Role,
  checkFilter,
  checkTopic,
  helloFrame,
  isWildcard,
  pingFrame,
  idFrame,
  publishFrame,
  readError,
  readString,
  readTopics,
  topicMatches,
  topicRequestFrame,
} from './protocol.js';
import type { BrokerStats } from './broker.js';

export interface ConnectOptions {
  readonly port: number;
  /** Broker address (default 127.0.0.1). */
  readonly hostname?: string;
  /** Local address to connect from (e.g. another loopback address). */
  readonly localAddress?: string;
  /**
   * Connect with TLS: `true` verifies the broker against the system CAs (or `ca`); an object is
   * passed to `tls.connect` (e.g. `{ ca, servername }`).
   */
  readonly tls?: boolean | ConnectionOptions;
  /** Certificate authorities (PEM) to verify the broker with, when `tls` is on. */
  readonly ca?: string | Buffer | (string | Buffer)[];
  /** Credentials for a broker with access control (sent in HELLO). */
  readonly username?: string;
  readonly password?: string;
  /** The codec to speak: a `Codec`, or a name / wire id resolved through `plugins`. */
  readonly codec: Codec | string | number;
  /** Resolves a codec given by name or wire id. */
  readonly plugins?: PluginHost;
  /** What this client announces (default 'both'). */
  readonly role?: 'producer' | 'consumer' | 'both';
  /** Largest frame accepted from the broker (default 64 MiB). */
  readonly maxFrameBytes?: number;
  /** Messages a subscription may buffer before the client stops reading the socket (default 10,000). */
  readonly highWaterMark?: number;
  /** Connect + HELLO deadline (default 10 s). */
  readonly timeoutMs?: number;
}

export interface BrokerMessage {
  readonly topic: string;
  readonly value: Value;
  /** True for the last value sent when subscribing, false for a live publish. */
  readonly retained: boolean;
}

export interface ClientEvents {
  /** Every message received, before it is handed to matching subscriptions. */
  message: [message: BrokerMessage];
  /** The broker sent an ERROR (it closes the connection after it) or the socket failed. */
  error: [error: Error];
  close: [error: Error | undefined];
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

/** One subscription: an async iterator of messages on its topic and the topics under it. */
export class Subscription implements AsyncIterableIterator<BrokerMessage> {
  /** How many retained values the broker announced for this subscription. */
  retained = 0;
  readonly #client: BrokerClient;
  /** `topic/`, for the common prefix subscription; undefined for `/` and wildcard filters. */
  readonly #prefix: string | undefined;
  #buffer: BrokerMessage[] = [];
  #head = 0;
  #waiter: { resolve(r: IteratorResult<BrokerMessage>): void; reject(err: Error): void } | undefined;
  #done = false;
  #error: Error | undefined;

  constructor(
    client: BrokerClient,
    readonly topic: string,
  ) {
    this.#client = client;
    this.#prefix = topic === '/' || isWildcard(topic) ? undefined : `${topic}/`;
  }

  /** Whether `topic` is delivered to this subscription (its topic or under it; `/` is every topic; wildcards). */
  matches(topic: string): boolean {
    if (this.#prefix !== undefined) return topic === this.topic || topic.startsWith(this.#prefix);
    return topicMatches(this.topic, topic);
  }

  /** Messages received but not yet consumed. */
  get buffered(): number {
    return this.#buffer.length - this.#head;
  }

  get closed(): boolean {
    return this.#done;
  }

  /** @internal */
  push(message: BrokerMessage): void {
    if (this.#done) return;
    const w = this.#waiter;
    if (w) {
      this.#waiter = undefined;
      w.resolve({ value: message, done: false });
    } else {
      this.#buffer.push(message);
    }
  }

  /** @internal Ends the iterator; buffered messages are still handed out first unless `error`. */
  end(error?: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#error = error;
    const w = this.#waiter;
    this.#waiter = undefined;
    if (w) {
      if (error) w.reject(error);
      else w.resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<BrokerMessage>> {
    if (this.#head < this.#buffer.length) {
      const value = this.#buffer[this.#head++]!;
      if (this.#head === this.#buffer.length) {
        this.#buffer = [];
        this.#head = 0;
      } else if (this.#head > 1024 && this.#head * 2 > this.#buffer.length) {
        this.#buffer = this.#buffer.slice(this.#head);
        this.#head = 0;
      }
      this.#client.consumed();
      return Promise.resolve({ value, done: false });
    }
    if (this.#done) return this.#error ? Promise.reject(this.#error) : Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => (this.#waiter = { resolve, reject }));
  }

  /** Leaving a `for await` loop cancels the subscription. */
  async return(): Promise<IteratorResult<BrokerMessage>> {
    await this.unsubscribe().catch(() => undefined);
    return { value: undefined, done: true };
  }

  /** Cancels: nothing more is delivered to this iterator, and the broker stops sending the topic. */
  unsubscribe(): Promise<void> {
    return this.#client.unsubscribe(this.topic);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

export class BrokerClient extends SafeEmitter<ClientEvents> {
  readonly codec: Codec;
  /** The broker's maximum frame size, from WELCOME. */
  maxFrameBytes = 0;
  readonly #socket: Socket;
  readonly #queue: FrameQueue;
  readonly #reader: FrameReader;
  readonly #pending = new Map<number, Pending>();
  readonly #pings: Pending[] = [];
  readonly #subs: Subscription[] = [];
  readonly #highWater: number;
  #nextId = 1;
  #welcome: Pending | undefined;
  #closed = false;
  #closeError: Error | undefined;
  #paused = false;
  readonly #closedPromise: Promise<void>;

  /** @internal use `connect()` */
  constructor(socket: Socket, codec: Codec, options: ConnectOptions) {
    super();
    this.codec = codec;
    this.#socket = socket;
    this.#queue = new FrameQueue(socket);
    this.#highWater = options.highWaterMark ?? 10_000;
    this.#reader = new FrameReader({ maxFrameBytes: options.maxFrameBytes ?? 64 * 1024 * 1024 }, (body) => this.#onFrame(body));
    socket.on('data', (chunk: Buffer) => {
      try {
        this.#reader.push(chunk);
      } catch (err) {
        this.#shutdown(err as Error);
        socket.destroy();
      }
    });
    socket.on('error', (err) => this.#shutdown(err));
    this.#closedPromise = new Promise((resolve) => socket.on('close', () => {
      this.#shutdown(undefined);
      resolve();
    }));
  }

  /** @internal sends HELLO and waits for WELCOME. */
  handshake(role: number, credentials?: { username: string; password: string }): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#welcome = { resolve: resolve as (v: unknown) => void, reject };
      this.#queue.write(helloFrame(this.codec.wireId, role as 1 | 2 | 3, PROTOCOL_VERSION, credentials));
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Output bytes not yet handed to the kernel (for producers pacing themselves). */
  get pendingBytes(): number {
    return this.#queue.pending;
  }

  /** Resolves once queued output is down to the socket's high-water mark (at once if it is). */
  drained(): Promise<void> {
    this.#queue.flush();
    if (this.#closed || !this.#socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.#socket.off('drain', done);
        this.#socket.off('close', done);
        resolve();
      };
      this.#socket.on('drain', done);
      this.#socket.on('close', done);
    });
  }

  /**
   * Publishes `value` on `topic`. Without `ack` it returns at once; with `{ ack: true }` the
   * promise resolves when the broker has the message (stored as last value and queued to every
   * subscriber).
   */
  publish(topic: string, value: Value): void;
  publish(topic: string, value: Value, options: { ack: true; expirySeconds?: number }): Promise<void>;
  publish(topic: string, value: Value, options?: { ack?: boolean; expirySeconds?: number }): Promise<void> | void;
  publish(topic: string, value: Value, options?: { ack?: boolean; expirySeconds?: number }): Promise<void> | void {
    this.#assertOpen();
    const problem = checkTopic(topic);
    if (problem) throw new InvalidArgumentError(`topic ${JSON.stringify(topic)}: ${problem}`);
    const expirySeconds = options?.expirySeconds;
    if (expirySeconds !== undefined && !(Number.isInteger(expirySeconds) && expirySeconds >= 1 && expirySeconds <= 0xffffffff)) {
      throw new InvalidArgumentError(`expirySeconds must be a whole number of seconds from 1 to 2^32-1, got ${expirySeconds}`);
    }
    const payload = this.codec.encode(value);
    const id = options?.ack ? this.#id() : 0;
    const frame = publishFrame(topic, payload, id, expirySeconds !== undefined ? { expirySeconds } : {});
    // the broker would close the connection for it: refuse it here, the connection stays usable
    if (frame.length - 4 > this.maxFrameBytes) {
      throw new InvalidArgumentError(`a ${payload.length}-byte message exceeds the broker's ${this.maxFrameBytes}-byte frame limit`);
    }
    if (id === 0) {
      this.#queue.write(frame);
      return;
    }
    const done = this.#request<void>(id);
    this.#queue.write(frame);
    return done;
  }

  /**
   * Subscribes to `topic` and everything under it, or to a wildcard filter (`/a/+/c`, `/a/#`:
   * MQTT semantics); resolves once the broker confirms.
   */
  async subscribe(topic: string): Promise<Subscription> {
    this.#assertOpen();
    const problem = isWildcard(topic) ? checkFilter(topic) : checkTopic(topic, { root: true });
    if (problem) throw new InvalidArgumentError(`topic ${JSON.stringify(topic)}: ${problem}`);
    const sub = new Subscription(this, topic);
    this.#subs.push(sub); // before the request, so retained values that follow SUBACK land in it
    const id = this.#id();
    const done = this.#request<number>(id);
    this.#queue.write(topicRequestFrame(FrameType.SUBSCRIBE, id, topic));
    try {
      sub.retained = await done;
    } catch (err) {
      this.#remove(sub);
      throw err;
    }
    return sub;
  }

  /** Cancels every subscription on exactly `topic`: their iterators end at once. */
  async unsubscribe(topic: string): Promise<void> {
    const mine = this.#subs.filter((s) => s.topic === topic);
    for (const s of mine) {
      s.end();
      this.#remove(s);
    }
    this.consumed(); // a dropped buffer may have been what paused reading
    if (this.#closed) return;
    if (this.#subs.some((s) => s.topic === topic)) return;
    const id = this.#id();
    const done = this.#request<void>(id);
    this.#queue.write(topicRequestFrame(FrameType.UNSUBSCRIBE, id, topic));
    await done;
  }

  /** Clears the last value of `topic` (it is no longer listed or sent to new subscribers); resolves once done. */
  clear(topic: string): Promise<void> {
    this.#assertOpen();
    const problem = checkTopic(topic);
    if (problem) throw new InvalidArgumentError(`topic ${JSON.stringify(topic)}: ${problem}`);
    const id = this.#id();
    const done = this.#request<void>(id);
    this.#queue.write(publishFrame(topic, new Uint8Array(0), id, { clear: true }));
    return done;
  }

  /** Sends a PING; resolves when the broker's PONG arrives (a liveness check). */
  ping(): Promise<void> {
    this.#assertOpen();
    return new Promise<void>((resolve, reject) => {
      this.#pings.push({ resolve: resolve as (v: unknown) => void, reject });
      this.#queue.write(pingFrame(FrameType.PING));
    });
  }

  /** Topics holding a value, sorted. */
  listTopics(): Promise<string[]> {
    this.#assertOpen();
    const id = this.#id();
    const done = this.#request<string[]>(id);
    this.#queue.write(idFrame(FrameType.LIST_TOPICS, id));
    return done;
  }

  /** The broker's `stats()`. */
  stats(): Promise<BrokerStats> {
    this.#assertOpen();
    const id = this.#id();
    const done = this.#request<BrokerStats>(id);
    this.#queue.write(idFrame(FrameType.STATS, id));
    return done;
  }

  /** Flushes what is queued, closes the connection, and ends every subscription. */
  async close(): Promise<void> {
    if (!this.#socket.destroyed) {
      this.#queue.flush();
      this.#socket.end();
    }
    const timer = setTimeout(() => this.#socket.destroy(), 2000);
    await this.#closedPromise;
    clearTimeout(timer);
  }

  /** @internal a subscription handed out a message: resume reading if every buffer is low again. */
  consumed(): void {
    if (!this.#paused) return;
    for (const s of this.#subs) if (s.buffered > this.#highWater / 2) return;
    this.#paused = false;
    this.#socket.resume();
  }

  // ------------------------------------------------------------------ extension hooks (reliable-client.ts)

  /** @internal frames the base client does not know go here first (true = handled). */
  extension: ((body: Buffer) => boolean) | undefined;

  /** @internal queues a request built with a fresh id; resolves with what its reply settles. */
  sendRequest<T>(build: (id: number) => Buffer): Promise<T> {
    this.#assertOpen();
    const id = this.#id();
    const done = this.#request<T>(id);
    this.#queue.write(build(id));
    return done;
  }

  /** @internal queues a frame that has no reply. */
  sendFrame(frame: Buffer): void {
    if (!this.#closed) this.#queue.write(frame);
  }

  /** @internal settles the request `id` (for extension replies). */
  settleRequest(id: number, value: unknown): void {
    this.#settle(id, value);
  }

  /** Destroys the connection at once, as a crash would (nothing queued is sent). */
  destroy(): void {
    this.#socket.destroy();
  }

  #id(): number {
    const id = this.#nextId;
    this.#nextId = id >= 0xffffffff ? 1 : id + 1;
    return id;
  }

  #request<T>(id: number): Promise<T> {
    return new Promise<T>((resolve, reject) => this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject }));
  }

  #settle(id: number, value: unknown): void {
    const p = this.#pending.get(id);
    if (!p) throw new BrokerError(BrokerErrorCode.MALFORMED, `reply to unknown request ${id}`);
    this.#pending.delete(id);
    p.resolve(value);
  }

  #remove(sub: Subscription): void {
    const i = this.#subs.indexOf(sub);
    if (i >= 0) this.#subs.splice(i, 1);
  }

  #assertOpen(): void {
    if (this.#closed) throw this.#closeError ?? new DisposedError('the broker connection');
  }

  #onFrame(body: Buffer): void {
    switch (body[0]) {
      case FrameType.MESSAGE: {
        if (body.length < 4) throw new BrokerError(BrokerErrorCode.MALFORMED, 'MESSAGE frame is truncated');
        const [topic, end] = readString(body, 2, 'MESSAGE');
        const message: BrokerMessage = { topic, value: this.codec.decode(body.subarray(end)), retained: (body[1]! & 1) === 1 };
        this.emit('message', message);
        let full = false;
        for (const s of this.#subs) {
          if (!s.matches(topic)) continue;
          s.push(message);
          if (s.buffered > this.#highWater) full = true;
        }
        if (full && !this.#paused) {
          this.#paused = true;
          this.#socket.pause();
        }
        return;
      }
      case FrameType.PING:
        this.#queue.write(pingFrame(FrameType.PONG)); // the broker checks that idle clients are alive
        return;
      case FrameType.PONG:
        this.#pings.shift()?.resolve(undefined);
        return;
      case FrameType.PUBACK:
      case FrameType.UNSUBACK:
        return this.#settle(body.readUInt32BE(1), undefined);
      case FrameType.SUBACK:
        return this.#settle(body.readUInt32BE(1), body.readUInt32BE(5));
      case FrameType.TOPICS: {
        const { id, topics } = readTopics(body);
        return this.#settle(id, topics);
      }
      case FrameType.STATS_REPLY:
        return this.#settle(body.readUInt32BE(1), JSON.parse(body.toString('utf8', 5)));
      case FrameType.WELCOME: {
        if (body[1] !== PROTOCOL_VERSION) throw new BrokerError(BrokerErrorCode.UNSUPPORTED_VERSION, `broker speaks protocol ${body[1]}`);
        this.maxFrameBytes = body.readUInt32BE(2);
        const w = this.#welcome;
        this.#welcome = undefined;
        w?.resolve(undefined);
        return;
      }
      case FrameType.ERROR: {
        const { code, message } = readError(body);
        const err = new BrokerError(code, message);
        this.#shutdown(err);
        return;
      }
      default:
        if (this.extension?.(body)) return;
        throw new BrokerError(BrokerErrorCode.MALFORMED, `unexpected frame type 0x${body[0]!.toString(16)} from the broker`);
    }
  }

  /** Fails everything waiting, ends subscriptions (with the error, if any), reports once. */
  #shutdown(err: Error | undefined): void {
    if (this.#closed) {
      return;
    }
    this.#closed = true;
    this.#closeError = err;
    const reason = err ?? new DisposedError('the broker connection');
    this.#welcome?.reject(reason);
    this.#welcome = undefined;
    for (const p of this.#pending.values()) p.reject(reason);
    this.#pending.clear();
    for (const p of this.#pings.splice(0)) p.reject(reason);
    for (const s of this.#subs.splice(0)) s.end(err);
    if (err) this.emit('error', err);
    if (this.#paused) this.#socket.resume();
    this.#closedPromise?.then(() => this.emit('close', err));
  }
}

/** Connects to a broker, sends HELLO with the codec, and resolves once the broker welcomes it. */
export async function connect(options: ConnectOptions): Promise<BrokerClient> {
  const codec = await resolveCodec(options);
  const role = options.role === 'producer' ? Role.PRODUCER : options.role === 'consumer' ? Role.CONSUMER : Role.BOTH;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const host = options.hostname ?? '127.0.0.1';
  const base = { port: options.port, host, noDelay: true, ...(options.localAddress ? { localAddress: options.localAddress } : {}) };
  const socket: Socket = options.tls
    ? tlsConnect({ ...base, ...(options.ca !== undefined ? { ca: options.ca } : {}), ...(typeof options.tls === 'object' ? options.tls : {}) })
    : netConnect(base);
  const ready = options.tls ? 'secureConnect' : 'connect';
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new TimeoutError(`no connection to the broker at ${options.hostname ?? '127.0.0.1'}:${options.port} within ${timeoutMs} ms`)), timeoutMs);
      socket.once(ready, resolve);
      socket.once('error', reject);
    });
    socket.removeAllListeners('error');
    const client = new BrokerClient(socket, codec, options);
    await Promise.race([
      client.handshake(role, options.username !== undefined ? { username: options.username, password: options.password ?? '' } : undefined),
      new Promise((_, reject) => {
        clearTimeout(timer);
        timer = setTimeout(() => reject(new TimeoutError(`the broker did not answer HELLO within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return client;
  } catch (err) {
    socket.destroy();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

async function resolveCodec(options: ConnectOptions): Promise<Codec> {
  const c = options.codec;
  if (typeof c === 'object' && c !== null && typeof c.encode === 'function') return c;
  if (typeof c !== 'string' && typeof c !== 'number') throw new InvalidArgumentError('connect() needs a codec: a Codec object, a name or a wire id');
  if (!options.plugins) throw new InvalidArgumentError(`connect(): codec ${JSON.stringify(c)} is given by name, so pass { plugins: host } to resolve it`);
  return options.plugins.serialization.codec(c);
}
