/**
 * A broker client for acknowledged (at-least-once) delivery: it keeps a connection up, reconnecting
 * with exponential backoff (to the next of several brokers, for a cluster), names a persistent
 * session when given a client id, resubscribes what the broker did not keep, and acknowledges
 * each message once the application has taken the next one (or when it calls `ack()`).
 *
 * @example
 * ```ts
 * const client = await connectReliable({ port: 5000, codec: 'json', plugins, clientId: 'dashboard-1' });
 * const sub = await client.subscribe('/orders');
 * for await (const m of sub) handle(m.value); // acked when the loop asks for the next one
 * ```
 */
import { SafeEmitter } from '../safe-emitter.js';
import { DisposedError, InvalidArgumentError } from '../errors.js';
import type { Value } from '../areas/serialization.js';
import { connect, type BrokerClient, type BrokerMessage, type ConnectOptions } from './client.js';
import { BrokerError, BrokerErrorCode, checkFilter, checkTopic, isWildcard, topicMatches } from './protocol.js';
import {
  DeliveryFlag,
  ReliableFrame,
  SESSION_TAKEN_OVER,
  ackFrame,
  readDelivery,
  readOverflow,
  readSessionAck,
  sessionFrame,
  subscribeAckedFrame,
  unsubscribeAckedFrame,
} from './reliable-protocol.js';

export interface ReliableConnectOptions extends Omit<ConnectOptions, 'port'> {
  readonly port?: number;
  /** Brokers to use, tried in turn on each reconnect (nodes of a cluster). Default: `port`/`hostname`. */
  readonly servers?: readonly { readonly port: number; readonly hostname?: string }[];
  /** Names a persistent session: the broker keeps its subscriptions and messages while away. */
  readonly clientId?: string;
  /** Discard what the broker kept for `clientId` on the first connection (later reconnects resume). */
  readonly clean?: boolean;
  /** Reconnect backoff (default 100 ms doubling to 5 s, forever); `false` never reconnects. */
  readonly reconnect?: false | { readonly initialDelayMs?: number; readonly maxDelayMs?: number; readonly maxAttempts?: number };
}

export interface AckedMessage extends BrokerMessage {
  /** The message's number on its subscription (1, 2, 3, …). */
  readonly number: number;
  /** Sent before and maybe received: the broker had no acknowledgement for it. */
  readonly duplicate: boolean;
  /** Acknowledges this message and every earlier one of its subscription. */
  ack(): void;
}

export interface ReliableClientEvents {
  /** A connection is up (again); `resumed` when the broker kept the session. */
  connect: [info: { resumed: boolean; server: { port: number; hostname: string } }];
  disconnect: [error: Error | undefined];
  /** The broker dropped messages for a subscription because the session's queue was full. */
  overflow: [subscription: AckedSubscription, dropped: number, message: string];
  error: [error: Error];
}

/** One acknowledged subscription: an async iterator of numbered messages. */
export class AckedSubscription implements AsyncIterableIterator<AckedMessage> {
  /** Messages the broker reported dropped for this subscription (its queue was full). */
  dropped = 0;
  /** How many last values the broker sent when this subscription was made. */
  retained = 0;
  #buffer: AckedMessage[] = [];
  #waiter: { resolve(r: IteratorResult<AckedMessage>): void; reject(err: Error): void } | undefined;
  #handed: AckedMessage | undefined;
  #done = false;
  #error: Error | undefined;

  constructor(
    readonly client: ReliableClient,
    readonly id: number,
    readonly topic: string,
    /** `auto`: a message is acked when the next one is asked for (or the loop ends); `manual`: call `ack()`. */
    readonly ackMode: 'auto' | 'manual',
  ) {}

  matches(topic: string): boolean {
    return topicMatches(this.topic, topic);
  }

  get buffered(): number {
    return this.#buffer.length;
  }

  /** @internal */
  push(m: AckedMessage): void {
    if (this.#done) return;
    const w = this.#waiter;
    if (w) {
      this.#waiter = undefined;
      this.#hand(m);
      w.resolve({ value: m, done: false });
    } else this.#buffer.push(m);
  }

  /** @internal */
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

  #hand(m: AckedMessage): void {
    if (this.ackMode === 'auto') this.#handed = m;
  }

  next(): Promise<IteratorResult<AckedMessage>> {
    // asking for the next message means the previous one was handled
    this.#handed?.ack();
    this.#handed = undefined;
    const m = this.#buffer.shift();
    if (m) {
      this.#hand(m);
      return Promise.resolve({ value: m, done: false });
    }
    if (this.#done) return this.#error ? Promise.reject(this.#error) : Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => (this.#waiter = { resolve, reject }));
  }

  /** Leaving a `for await` loop acks the message in hand and cancels the subscription. */
  async return(): Promise<IteratorResult<AckedMessage>> {
    this.#handed?.ack();
    this.#handed = undefined;
    await this.unsubscribe().catch(() => undefined);
    return { value: undefined, done: true };
  }

  unsubscribe(): Promise<void> {
    return this.client.unsubscribe(this);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

export class ReliableClient extends SafeEmitter<ReliableClientEvents> {
  readonly #options: ReliableConnectOptions;
  readonly #servers: { port: number; hostname: string }[];
  readonly #subs = new Map<number, AckedSubscription>();
  /** Subscriptions the broker restored that the application has not asked for yet, by filter. */
  readonly #unclaimed = new Map<string, AckedSubscription>();
  #client: BrokerClient | undefined;
  #ready: Promise<BrokerClient>;
  #serverIndex = 0;
  #nextSub = 1;
  #closed = false;
  #firstSession = true;
  #retryTimer: NodeJS.Timeout | undefined;
  /** The connection that resumed the persistent session, and which session (generation) each connection had. */
  #resumedOn: BrokerClient | undefined;
  readonly #sessionOf = new WeakMap<BrokerClient, number>();
  #generation = 0;
  #wake: (() => void) | undefined;

  /** @internal use `connectReliable()` */
  constructor(options: ReliableConnectOptions) {
    super();
    this.#options = options;
    const servers = options.servers ?? (options.port !== undefined ? [{ port: options.port, hostname: options.hostname }] : []);
    if (servers.length === 0) throw new InvalidArgumentError('connectReliable() needs a port or servers');
    this.#servers = servers.map((s) => ({ port: s.port, hostname: s.hostname ?? '127.0.0.1' }));
    this.#ready = this.#connectLoop(true);
    this.#ready.catch(() => undefined);
  }

  /** @internal resolves once the first connection is up. */
  get ready(): Promise<BrokerClient> {
    return this.#ready;
  }

  get connected(): boolean {
    return this.#client !== undefined && !this.#client.closed;
  }

  get closed(): boolean {
    return this.#closed;
  }

  protected override onListenerError(event: string | symbol, err: unknown): void {
    queueMicrotask(() => {
      throw err;
    });
    void event;
  }

  /** Subscriptions the broker kept for this client id that nobody has claimed with `subscribe()` yet. */
  get restored(): AckedSubscription[] {
    return [...this.#unclaimed.values()];
  }

  /**
   * Subscribes with acknowledged delivery. With a client id whose session already holds this
   * filter, the kept subscription (and what queued for it) is handed back instead of a new one.
   */
  async subscribe(topic: string, options: { ack?: 'auto' | 'manual' } = {}): Promise<AckedSubscription> {
    if (this.#closed) throw new DisposedError('the reliable broker client');
    const problem = isWildcard(topic) ? checkFilter(topic) : checkTopic(topic, { root: true });
    if (problem) throw new InvalidArgumentError(`topic ${JSON.stringify(topic)}: ${problem}`);
    const kept = this.#unclaimed.get(topic);
    if (kept && (options.ack ?? 'auto') === kept.ackMode) {
      this.#unclaimed.delete(topic);
      return kept;
    }
    const sub = new AckedSubscription(this, this.#nextSub++, topic, options.ack ?? 'auto');
    this.#subs.set(sub.id, sub);
    for (;;) {
      const client = await this.#ready;
      try {
        sub.retained = await client.sendRequest<number>((id) => subscribeAckedFrame(id, sub.id, topic));
        return sub;
      } catch (err) {
        if (err instanceof BrokerError || this.#closed) {
          this.#subs.delete(sub.id);
          throw err;
        }
        // the connection dropped: the reconnect resubscribes it; wait for that
        await this.#ready;
        if (this.#subs.has(sub.id)) return sub;
      }
    }
  }

  /** @internal */
  async unsubscribe(sub: AckedSubscription): Promise<void> {
    sub.end();
    if (!this.#subs.delete(sub.id)) return;
    const client = this.#client;
    if (!client || client.closed) return;
    await client.sendRequest<void>((id) => unsubscribeAckedFrame(id, sub.id)).catch(() => undefined);
  }

  /**
   * Publishes like `BrokerClient.publish`. With `{ ack: true }` the publish is sent again on the
   * next connection until the broker acknowledges it (so it may arrive twice, never zero times).
   */
  async publish(topic: string, value: Value, options: { ack?: boolean } = {}): Promise<void> {
    for (;;) {
      if (this.#closed) throw new DisposedError('the reliable broker client');
      const client = await this.#ready;
      if (!options.ack) {
        client.publish(topic, value);
        return;
      }
      try {
        await client.publish(topic, value, { ack: true });
        return;
      } catch (err) {
        if (err instanceof BrokerError && err.wireCode !== BrokerErrorCode.SHUTDOWN) throw err;
        if (!(err instanceof BrokerError) && client.closed === false) throw err;
        // the connection went away before the PUBACK: try again on the next one
      }
    }
  }

  /** The broker's stats through the current connection. */
  async stats(): ReturnType<BrokerClient['stats']> {
    return (await this.#ready).stats();
  }

  /** Closes the connection for good (the broker keeps a persistent session for the client id). */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#wake?.();
    for (const s of this.#subs.values()) s.end();
    for (const s of this.#unclaimed.values()) s.end();
    await this.#client?.close();
  }

  /** Drops the current connection abruptly (tests: a network failure); the client reconnects. */
  interrupt(): void {
    this.#client?.destroy();
  }

  async #connectLoop(first: boolean): Promise<BrokerClient> {
    const policy = this.#options.reconnect;
    const tuning = policy === false ? {} : (policy ?? {});
    const initial = tuning.initialDelayMs ?? 100;
    const max = tuning.maxDelayMs ?? 5000;
    const attempts = policy === false && first ? 1 : (tuning.maxAttempts ?? Infinity);
    let delay = initial;
    let lastError: unknown;
    for (let attempt = 0; attempt < attempts && !this.#closed; attempt++) {
      const server = this.#servers[this.#serverIndex % this.#servers.length]!;
      try {
        return await this.#connectOnce(server);
      } catch (err) {
        lastError = err;
        if (err instanceof BrokerError && err.wireCode !== BrokerErrorCode.SHUTDOWN && err.wireCode !== SESSION_TAKEN_OVER) {
          // the broker refused this client (bad codec, limits): retrying would not help
          if (first) throw err;
        }
        if (policy === false && first) throw err;
        this.#serverIndex++;
        await new Promise<void>((r) => {
          this.#wake = r;
          this.#retryTimer = setTimeout(r, delay * (0.5 + Math.random() / 2));
        });
        delay = Math.min(max, delay * 2);
      }
    }
    throw this.#closed ? new DisposedError('the reliable broker client') : lastError;
  }

  async #connectOnce(server: { port: number; hostname: string }): Promise<BrokerClient> {
    const client = await connect({ ...this.#options, port: server.port, hostname: server.hostname, role: this.#options.role ?? 'both' });
    if (this.#closed) {
      await client.close();
      throw new DisposedError('the reliable broker client');
    }
    client.extension = (body) => this.#onFrame(client, body);
    client.on('error', (err) => {
      if (!(err instanceof BrokerError && err.wireCode === BrokerErrorCode.SHUTDOWN)) this.emit('error', err);
    });
    try {
      let resumed = false;
      let kept = new Map<number, string>();
      if (this.#options.clientId !== undefined) {
        const clean = this.#firstSession && this.#options.clean === true;
        const ack = await client.sendRequest<{ resumed: boolean; subscriptions: { id: number; filter: string }[] }>((id) => sessionFrame(id, this.#options.clientId!, clean));
        this.#firstSession = false;
        resumed = ack.resumed;
        if (resumed) this.#resumedOn = client;
        else this.#generation++;
        this.#sessionOf.set(client, this.#generation);
        kept = new Map(ack.subscriptions.map((s) => [s.id, s.filter]));
      }
      // what the broker did not keep is subscribed again (its retained values come again, numbered anew)
      const again = [...this.#subs.values()].filter((s) => kept.get(s.id) !== s.topic);
      this.#client = client;
      await Promise.all(again.map(async (s) => (s.retained = await client.sendRequest<number>((id) => subscribeAckedFrame(id, s.id, s.topic)))));
      client.once('close', (err) => this.#lost(client, err));
      if (client.closed) throw new DisposedError('the broker connection');
      this.emit('connect', { resumed, server });
      return client;
    } catch (err) {
      client.destroy();
      throw err;
    }
  }

  #lost(client: BrokerClient, err: Error | undefined): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    if (this.#closed) return;
    this.emit('disconnect', err);
    if (this.#options.reconnect === false) {
      for (const s of this.#subs.values()) s.end(err ?? new DisposedError('the broker connection'));
      return;
    }
    this.#serverIndex++;
    this.#ready = this.#connectLoop(false);
    this.#ready.catch((e) => {
      for (const s of this.#subs.values()) s.end(e as Error);
    });
  }

  /** Acks on the connection that delivered it, or on a later one that resumed the same session. */
  #ack(from: BrokerClient, subId: number, seq: number): void {
    const now = this.#client;
    if (!now || now.closed) return; // the broker sends it again, marked duplicate
    if (now === from || (this.#resumedOn === now && this.#sessionOf.get(from) === this.#sessionOf.get(now))) now.sendFrame(ackFrame(subId, seq));
  }

  #onFrame(client: BrokerClient, body: Buffer): boolean {
    switch (body[0]) {
      case ReliableFrame.DELIVERY: {
        const d = readDelivery(body);
        const sub = this.#subs.get(d.subId);
        if (!sub) return true; // unsubscribed meanwhile; the broker forgets it on UNSUBACK
        const subId = d.subId;
        const seq = d.seq;
        const message: AckedMessage = {
          topic: d.topic,
          value: client.codec.decode(d.payload),
          retained: (d.flags & DeliveryFlag.RETAINED) !== 0,
          duplicate: (d.flags & DeliveryFlag.DUPLICATE) !== 0,
          number: seq,
          ack: () => this.#ack(client, subId, seq),
        };
        sub.push(message);
        return true;
      }
      case ReliableFrame.SESSION_ACK: {
        const { id, resumed, subscriptions } = readSessionAck(body);
        // adopted before the frames that follow in the same read: the redelivered messages
        for (const { id: subId, filter } of subscriptions) {
          if (this.#subs.get(subId)?.topic === filter) continue;
          // kept by the broker for an earlier run of this client: held until `subscribe(filter)` claims it
          const sub = new AckedSubscription(this, subId, filter, 'auto');
          this.#subs.set(subId, sub);
          this.#unclaimed.set(filter, sub);
          if (subId >= this.#nextSub) this.#nextSub = subId + 1;
        }
        client.settleRequest(id, { resumed, subscriptions });
        return true;
      }
      case ReliableFrame.OVERFLOW: {
        const { subId, dropped, message } = readOverflow(body);
        const sub = this.#subs.get(subId);
        if (sub) {
          sub.dropped += dropped;
          this.emit('overflow', sub, dropped, message);
        }
        return true;
      }
      default:
        return false;
    }
  }
}

/** Connects with acknowledged delivery (and a persistent session, given `clientId`); resolves once connected. */
export async function connectReliable(options: ReliableConnectOptions): Promise<ReliableClient> {
  const client = new ReliableClient(options);
  try {
    await client.ready;
  } catch (err) {
    await client.close();
    throw err;
  }
  return client;
}
