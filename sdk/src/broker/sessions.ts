/**
 * Acknowledged (at-least-once) delivery and persistent sessions for the broker. A subscription
 * made with SUBSCRIBE_ACKED numbers its messages (1, 2, 3, … per subscription), keeps each one
 * until the client ACKs it (cumulatively), and sends again, marked duplicate, whatever was not
 * acked when the client comes back. A session named by a client id (SESSION) outlives its
 * connection: its subscriptions keep collecting messages, bounded in count and bytes, while the
 * client is away, and a connection that names the id again resumes it. Everything a session
 * holds is written to the broker's store, so a durable store keeps it across restarts.
 *
 * The broker engine calls in at a few hook points (`frame`, `route`/`commit`, `detach`); this
 * module never touches sockets, only the `Link` the engine gives it for each connection.
 */
import type { Codec } from '../areas/serialization.js';
import type { Logger } from '../logger.js';
import { FilterTrie, type FilterNode } from './topic-tree.js';
import { BrokerError, BrokerErrorCode, FrameType, checkFilter, checkTopic, idFrame, isWildcard, subackFrame, topicMatches } from './protocol.js';
import {
  DeliveryFlag,
  ReliableFrame,
  SESSION_TAKEN_OVER,
  deliveryFrame,
  overflowFrame,
  readIdPair,
  readSession,
  readSubscribeAcked,
  sessionAckFrame,
} from './reliable-protocol.js';
import type { BrokerStore, StoredSession, StoredSessionMeta } from './persistence.js';

/** A message for a persistent session, handed to the cluster to be numbered and kept in Redis. */
export interface ClusterItem {
  readonly clientId: string;
  readonly subId: number;
  readonly topic: Buffer;
  readonly payload: Buffer;
  readonly retained: boolean;
}

/**
 * Where persistent sessions live in cluster mode (cluster-redis.ts): every node knows every
 * session's subscriptions; the node that accepts a publish has Redis number and keep it for each
 * matching session (`enqueue`, awaited through the store's `flushed()` before PUBACK); the node
 * the session's client is connected to delivers what Redis announces (`clusterDeliver`).
 */
export interface SessionCluster {
  /** Numbers, keeps (bounded) and announces messages for persistent sessions. */
  enqueue(items: readonly ClusterItem[]): void;
  /** Makes this node the session's owner (the previous owner drops its connection) and reads what Redis holds. */
  claim(clientId: string): Promise<StoredSession | undefined>;
  /** The session's client left this node (Redis then knows nobody is sending its messages). */
  release(clientId: string): void;
}

/** One connection as the session engine sees it. */
export interface Link {
  readonly id: number;
  readonly owner: string;
  readonly codec: Codec;
  readonly wire: number;
  readonly consumer: boolean;
  /** The authenticated user, when the broker has access control (a session is only resumed by its user). */
  readonly user: string | undefined;
  /** Whether the access provider lets this connection subscribe to `filter`; throws the refusal if not. */
  authorizeSubscribe(filter: string): void;
  /** Queues a frame to the connection (bounded like every other output). */
  send(frame: Buffer): void;
  /** Output bytes waiting to be sent on the connection. */
  pending(): number;
  isOpen(): boolean;
  /** Sends ERROR and closes the connection. */
  drop(code: number, message: string): void;
}

/** A last value as handed to a new acknowledged subscription. */
export interface LastValue {
  readonly pathBytes: Buffer;
  readonly payload: Buffer;
}

export interface SessionOptions {
  readonly store: BrokerStore;
  readonly log: Logger;
  /** Messages one session may hold unacknowledged or queued, over all its subscriptions (default 10,000). */
  readonly maxSessionMessages?: number;
  /** Payload bytes one session may hold (default 8 MiB). */
  readonly maxSessionBytes?: number;
  /** Persistent sessions the broker keeps (default 10,000). */
  readonly maxSessions?: number;
  /** Persistent sessions one client address may own (default 100). */
  readonly maxSessionsPerClient?: number;
  /** Subscriptions per session (default 10,000). */
  readonly maxSubscriptions?: number;
  /** A persistent session whose client stays away this long is discarded (default 1 hour). */
  readonly sessionExpiryMs?: number;
  /** A resumed backlog is sent while the connection has less than this waiting (default 1 MiB). */
  readonly resumeWindowBytes?: number;
  /** Charges an acknowledged subscription to its owner's per-client budget (throws LIMIT when over); `refund` gives it back. */
  readonly charge?: (owner: string, filter: string) => void;
  readonly refund?: (owner: string, filter: string) => void;
}

export interface SessionStats {
  /** Persistent sessions kept (connected or not). */
  readonly sessions: number;
  readonly sessionsConnected: number;
  /** Acknowledged subscriptions (persistent and per-connection). */
  readonly ackedSubscriptions: number;
  /** Messages held for acknowledged subscriptions (unacked or waiting for their client). */
  readonly queued: number;
  readonly queuedBytes: number;
  /** Messages dropped because a session's queue was full. */
  readonly overflows: number;
  /** Messages sent again, marked duplicate, to a resuming client. */
  readonly redeliveries: number;
  readonly acked: number;
}

interface Entry {
  readonly seq: number;
  readonly topic: Buffer;
  readonly payload: Buffer;
  readonly retained: boolean;
  /** Written to a connection at least once: a later send is marked duplicate. */
  sent: boolean;
  /** To be written on the current connection (a resumed backlog, sent as the connection drains). */
  due: boolean;
}

class AckedSub {
  next = 1;
  readonly queue: Entry[] = [];
  /** Dropped on overflow since the client was last told. */
  dropped = 0;
  node!: FilterNode<AckedSub>;
  /** Charged to its owner's budget (a cluster node's copy of another node's session is not). */
  charged = true;
  constructor(
    readonly session: ClientSession,
    readonly id: number,
    readonly filter: string,
  ) {}
}

class ClientSession {
  link: Link | undefined;
  readonly subs = new Map<number, AckedSub>();
  count = 0;
  bytes = 0;
  /** Entries due on the current connection; new messages queue behind them to keep the order. */
  backlog = 0;
  pumpTimer: NodeJS.Timeout | undefined;
  lastSeen = Date.now();
  /** Cluster mode: announced deliveries buffered while the session loads from Redis. */
  loading: { subId: number; seq: number; topic: Buffer; payload: Buffer; retained: boolean }[] | undefined;
  /** Cluster mode: attached on this node since another node last took it (this node expires it). */
  home = false;
  constructor(
    /** Undefined for the per-connection session of a client that named no id. */
    readonly clientId: string | undefined,
    readonly codec: Codec,
    readonly owner: string,
    readonly user: string | undefined,
  ) {}
}

/** The filter as matched in the trie: a prefix subscription `P` is `P/#` (`/` is `#`). */
export function trieFilter(filter: string): string {
  if (filter === '/') return '#';
  return isWildcard(filter) ? filter : `${filter}/#`;
}

export class SessionEngine {
  #store: BrokerStore;
  #cluster: SessionCluster | undefined;
  /** Cluster mode: frames of connections whose SESSION is loading from Redis, replayed after it. */
  readonly #waiting = new Map<number, (() => void)[]>();
  readonly #log: Logger;
  readonly #maxMessages: number;
  readonly #maxBytes: number;
  readonly #maxSessions: number;
  readonly #maxPerClient: number;
  readonly #maxSubs: number;
  readonly #expiryMs: number;
  readonly #window: number;
  readonly #charge: (owner: string, filter: string) => void;
  readonly #refund: (owner: string, filter: string) => void;
  readonly #trie = new FilterTrie<AckedSub>();
  readonly #byId = new Map<string, ClientSession>();
  readonly #byLink = new Map<number, ClientSession>();
  readonly #perOwner = new Map<string, number>();
  readonly #toReport = new Set<AckedSub>();
  #reportScheduled = false;
  #subCount = 0;
  #queued = 0;
  #queuedBytes = 0;
  readonly #counters = { overflows: 0, redeliveries: 0, acked: 0 };
  /** Per-publish scratch: the subscriptions a message goes to and its payload for each. */
  readonly #planSubs: AckedSub[] = [];
  readonly #planPayloads: Buffer[] = [];

  constructor(options: SessionOptions) {
    this.#store = options.store;
    this.#log = options.log;
    this.#maxMessages = options.maxSessionMessages ?? 10_000;
    this.#maxBytes = options.maxSessionBytes ?? 8 * 1024 * 1024;
    this.#maxSessions = options.maxSessions ?? 10_000;
    this.#maxPerClient = options.maxSessionsPerClient ?? 100;
    this.#maxSubs = options.maxSubscriptions ?? 10_000;
    this.#expiryMs = options.sessionExpiryMs ?? 60 * 60 * 1000;
    this.#window = options.resumeWindowBytes ?? 1024 * 1024;
    this.#charge = options.charge ?? (() => undefined);
    this.#refund = options.refund ?? (() => undefined);
  }

  /** Whether `type` is a frame this engine handles. */
  handles(type: number): boolean {
    return type === ReliableFrame.SESSION || type === ReliableFrame.SUBSCRIBE_ACKED || type === ReliableFrame.UNSUBSCRIBE_ACKED || type === ReliableFrame.ACK;
  }

  /** Whether any acknowledged subscription exists (the publish path skips `route` otherwise). */
  get active(): boolean {
    return this.#subCount > 0;
  }

  stats(): SessionStats {
    let connected = 0;
    for (const s of this.#byId.values()) if (s.link) connected++;
    return { sessions: this.#byId.size, sessionsConnected: connected, ackedSubscriptions: this.#subCount, queued: this.#queued, queuedBytes: this.#queuedBytes, ...this.#counters };
  }

  /** Handles one of the extension's client frames. `lastValues` lists retained values for a filter, encoded for the link. */
  frame(link: Link, type: number, body: Buffer, lastValues: (trieFilter: string, codec: Codec) => LastValue[]): void {
    const waiting = this.#waiting.get(link.id);
    if (waiting) {
      waiting.push(() => this.frame(link, type, body, lastValues));
      return;
    }
    if (!link.consumer) throw new BrokerError(BrokerErrorCode.NOT_ALLOWED, 'this connection announced itself as a producer; acknowledged subscriptions and sessions are for consumers');
    switch (type) {
      case ReliableFrame.SESSION:
        return this.#session(link, body);
      case ReliableFrame.SUBSCRIBE_ACKED:
        return this.#subscribe(link, body, lastValues);
      case ReliableFrame.UNSUBSCRIBE_ACKED: {
        const [id, subId] = readIdPair(body, 'UNSUBSCRIBE_ACKED');
        const session = this.#byLink.get(link.id);
        const sub = session?.subs.get(subId);
        if (session && sub) this.#removeSub(session, sub);
        link.send(idFrame(FrameType.UNSUBACK, id));
        return;
      }
      case ReliableFrame.ACK: {
        const [subId, seq] = readIdPair(body, 'ACK');
        const sub = this.#byLink.get(link.id)?.subs.get(subId);
        if (sub) this.#ack(sub, seq);
        return;
      }
    }
  }

  #session(link: Link, body: Buffer): void {
    const { id, clean, clientId } = readSession(body);
    const current = this.#byLink.get(link.id);
    if (current) {
      throw new BrokerError(BrokerErrorCode.OUT_OF_ORDER, current.clientId !== undefined ? 'this connection already has a session' : 'SESSION must come before any acknowledged subscription on the connection');
    }
    if (this.#cluster) return this.#clusterSession(link, id, clean, clientId, this.#cluster);
    let session = this.#byId.get(clientId);
    if (session && clean) {
      this.#discard(session);
      session = undefined;
    }
    if (session && session.user !== link.user) {
      throw new BrokerError(BrokerErrorCode.NOT_ALLOWED, `session ${JSON.stringify(clientId)} belongs to another user`);
    }
    if (session && session.codec.wireId !== link.wire) {
      throw new BrokerError(BrokerErrorCode.NOT_ALLOWED, `session ${JSON.stringify(clientId)} speaks ${session.codec.name}; resume it with that codec, or start it clean`);
    }
    if (!session) {
      if (this.#byId.size >= this.#maxSessions) throw new BrokerError(BrokerErrorCode.LIMIT, `the broker keeps at most ${this.#maxSessions} persistent sessions`);
      const mine = this.#perOwner.get(link.owner) ?? 0;
      if (mine >= this.#maxPerClient) throw new BrokerError(BrokerErrorCode.LIMIT, `a client (${link.owner}) may own at most ${this.#maxPerClient} persistent sessions`);
      session = new ClientSession(clientId, link.codec, link.owner, link.user);
      this.#byId.set(clientId, session);
      this.#perOwner.set(link.owner, mine + 1);
      this.#persistSession(session);
      this.#attach(session, link);
      link.send(sessionAckFrame(id, false, []));
      return;
    }
    const previous = session.link;
    if (previous) {
      this.#byLink.delete(previous.id);
      session.link = undefined;
      previous.drop(SESSION_TAKEN_OVER, `session ${JSON.stringify(clientId)} was resumed by another connection`);
    }
    this.#attach(session, link);
    this.#recheck(session, link); // the access rules may have changed while it was away (or across a restart)
    link.send(sessionAckFrame(id, true, [...session.subs.values()].map((s) => ({ id: s.id, filter: s.filter }))));
    // everything kept, in number order per subscription: unacked ones again (duplicates), then what queued while away
    // everything kept is due on this connection, sent as fast as the connection drains it
    session.backlog = 0;
    for (const sub of session.subs.values()) {
      for (const e of sub.queue) e.due = true;
      session.backlog += sub.queue.length;
      if (sub.dropped > 0) this.#report(sub);
    }
    this.#pump(session);
  }

  /** Sends the due backlog in number order per subscription while the connection keeps up. */
  #pump(session: ClientSession): void {
    clearTimeout(session.pumpTimer);
    session.pumpTimer = undefined;
    const link = session.link;
    if (!link || !link.isOpen() || session.backlog === 0) return;
    for (const sub of session.subs.values()) {
      for (const e of sub.queue) {
        if (!e.due) continue;
        if (link.pending() > this.#window) {
          session.pumpTimer = setTimeout(() => this.#pump(session), 5);
          return;
        }
        e.due = false;
        session.backlog--;
        this.#write(sub, e);
        if (session.link !== link) return;
      }
    }
  }

  #attach(session: ClientSession, link: Link): void {
    session.link = link;
    session.lastSeen = Date.now();
    this.#byLink.set(link.id, session);
  }

  #subscribe(link: Link, body: Buffer, lastValues: (trieFilter: string, codec: Codec) => LastValue[]): void {
    const { id, subId, filter } = readSubscribeAcked(body);
    const problem = isWildcard(filter) ? checkFilter(filter) : checkTopic(filter, { root: true });
    if (problem) throw new BrokerError(BrokerErrorCode.BAD_TOPIC, `${JSON.stringify(filter.slice(0, 100))}: ${problem}`);
    link.authorizeSubscribe(filter);
    let session = this.#byLink.get(link.id);
    if (!session) {
      session = new ClientSession(undefined, link.codec, link.owner, link.user);
      this.#attach(session, link);
    }
    const old = session.subs.get(subId);
    if (old && old.filter !== filter) this.#removeSub(session, old);
    let sub = session.subs.get(subId);
    if (!sub) {
      if (session.subs.size >= this.#maxSubs) throw new BrokerError(BrokerErrorCode.LIMIT, `a session may hold at most ${this.#maxSubs} acknowledged subscriptions`);
      this.#charge(session.owner, filter);
      sub = new AckedSub(session, subId, filter);
      sub.node = this.#trie.add(trieFilter(filter), sub);
      session.subs.set(subId, sub);
      this.#subCount++;
      this.#persistSession(session);
    }
    const values = lastValues(trieFilter(filter), session.codec);
    link.send(subackFrame(id, values.length));
    if (this.#cluster && session.clientId !== undefined) {
      const cid = session.clientId;
      if (values.length > 0) this.#cluster.enqueue(values.map((v) => ({ clientId: cid, subId: sub.id, topic: v.pathBytes, payload: v.payload, retained: true })));
    } else for (const v of values) this.#enqueue(sub, v.pathBytes, v.payload, true);
  }

  #removeSub(session: ClientSession, sub: AckedSub): void {
    if (session.subs.get(sub.id) !== sub) return;
    session.subs.delete(sub.id);
    this.#trie.remove(sub.node, sub);
    if (sub.charged) this.#refund(session.owner, sub.filter);
    this.#subCount--;
    for (const e of sub.queue) {
      this.#forget(session, e);
      if (session.clientId !== undefined) this.#store.deleteMessage(session.clientId, sub.id, e.seq);
    }
    sub.queue.length = 0;
    this.#toReport.delete(sub);
    this.#persistSession(session);
  }

  #ack(sub: AckedSub, seq: number): void {
    const session = sub.session;
    let n = 0;
    while (n < sub.queue.length && sub.queue[n]!.seq <= seq && sub.queue[n]!.sent) n++;
    if (n === 0) return;
    for (const e of sub.queue.splice(0, n)) {
      this.#forget(session, e);
      if (session.clientId !== undefined) this.#store.deleteMessage(session.clientId, sub.id, e.seq);
    }
    this.#counters.acked += n;
  }

  #forget(session: ClientSession, e: Entry): void {
    if (e.due) {
      e.due = false;
      session.backlog--;
    }
    session.count--;
    session.bytes -= e.payload.length;
    this.#queued--;
    this.#queuedBytes -= e.payload.length;
  }

  /**
   * First half of a publish: the acknowledged subscriptions the topic matches and the payload
   * for each (`payloadFor` encodes once per codec and throws when a codec cannot carry the value,
   * before anyone receives it).
   */
  route(segments: readonly string[], payloadFor: (codec: Codec) => Buffer): void {
    const subs = this.#planSubs;
    const payloads = this.#planPayloads;
    this.#trie.match(segments, (set) => {
      for (const sub of set) {
        subs.push(sub);
        payloads.push(payloadFor(sub.session.codec));
      }
    });
  }

  /** Second half: numbers, keeps, stores and sends what `route` planned; returns the deliveries written. */
  commit(pathBytes: Buffer, remote: boolean | ReadonlySet<string> = false): number {
    const subs = this.#planSubs;
    const payloads = this.#planPayloads;
    let sent = 0;
    let items: ClusterItem[] | undefined;
    for (let i = 0; i < subs.length; i++) {
      const sub = subs[i]!;
      if (this.#cluster && sub.session.clientId !== undefined) {
        // cluster: the node that accepted the publish has Redis number it; a relayed copy is skipped,
        // unless that node had not heard of the session yet (`remote` = the sessions it routed)
        // and its client is here: then this node has Redis keep it
        const cid = sub.session.clientId;
        const routedThere = remote === true || (remote !== false && (remote.has(cid) || !sub.session.link));
        if (!routedThere) (items ??= []).push({ clientId: cid, subId: sub.id, topic: pathBytes, payload: payloads[i]!, retained: false });
      } else if (this.#enqueue(sub, pathBytes, payloads[i]!, false)) sent++;
    }
    this.release();
    this.lastRouted = remote === false && items ? items.map((it) => it.clientId) : [];
    if (items) this.#cluster!.enqueue(items);
    return sent;
  }

  /** Clears the per-publish scratch (also when the publish was refused between route and commit). */
  release(): void {
    // most publishes plan nothing: setting an array's length is not free
    if (this.#planSubs.length !== 0) this.#planSubs.length = 0;
    if (this.#planPayloads.length !== 0) this.#planPayloads.length = 0;
  }

  /** Numbers and keeps one message for `sub`, and sends it if its client is here; false if not sent. */
  #enqueue(sub: AckedSub, topic: Buffer, payload: Buffer, retained: boolean): boolean {
    const session = sub.session;
    if (session.count >= this.#maxMessages || session.bytes + payload.length > this.#maxBytes) {
      sub.dropped++;
      this.#counters.overflows++;
      if (session.link) this.#report(sub);
      return false;
    }
    const e: Entry = { seq: sub.next++, topic, payload, retained, sent: false, due: false };
    sub.queue.push(e);
    session.count++;
    session.bytes += payload.length;
    this.#queued++;
    this.#queuedBytes += payload.length;
    const online = session.link !== undefined && session.link.isOpen();
    if (session.clientId !== undefined) this.#store.putMessage(session.clientId, sub.id, { seq: e.seq, topic: topic.toString('utf8'), payload, retained, sent: online });
    if (!online) return false;
    if (session.backlog > 0) {
      // behind a resumed backlog: sent in order when it drains
      e.due = true;
      session.backlog++;
      return false;
    }
    this.#write(sub, e);
    return true;
  }

  #write(sub: AckedSub, e: Entry): void {
    const link = sub.session.link;
    if (!link || !link.isOpen()) return;
    let flags = e.retained ? DeliveryFlag.RETAINED : 0;
    if (e.sent) {
      flags |= DeliveryFlag.DUPLICATE;
      this.#counters.redeliveries++;
    }
    e.sent = true;
    link.send(deliveryFrame(sub.id, e.seq, e.topic, e.payload, flags));
  }

  /** Tells the client, once per tick, how many messages its full queue dropped. */
  #report(sub: AckedSub): void {
    this.#toReport.add(sub);
    if (this.#reportScheduled) return;
    this.#reportScheduled = true;
    setImmediate(() => {
      this.#reportScheduled = false;
      for (const s of this.#toReport) {
        const link = s.session.link;
        if (!link || !link.isOpen() || s.dropped === 0) continue;
        link.send(overflowFrame(s.id, s.dropped, `the session holds at most ${this.#maxMessages} messages / ${this.#maxBytes} bytes unacknowledged; ${s.dropped} message(s) for ${s.filter} were dropped`));
        s.dropped = 0;
      }
      this.#toReport.clear();
    });
  }

  /** The connection closed: a persistent session stays (and keeps collecting), a per-connection one ends. */
  detach(link: Link): void {
    const session = this.#byLink.get(link.id);
    if (!session) return;
    this.#byLink.delete(link.id);
    if (session.link !== link) return;
    session.link = undefined;
    session.lastSeen = Date.now();
    clearTimeout(session.pumpTimer);
    for (const sub of session.subs.values()) for (const e of sub.queue) e.due = false;
    session.backlog = 0;
    // cluster: Redis holds the queue while the client is away (a resume, here or elsewhere, reads it back)
    if (this.#cluster && session.clientId !== undefined) {
      this.#clearQueues(session);
      this.#cluster.release(session.clientId);
    }
    if (session.clientId === undefined) {
      for (const sub of [...session.subs.values()]) this.#removeSub(session, sub);
    }
  }

  /**
   * Removes every acknowledged subscription its session's user may no longer read (the access
   * rules changed: `mayRead(user, filter)`), connected or not, with the messages it held; returns
   * how many were removed. A cluster node's copy of a session another node holds is changed here
   * only (that node, reloaded too, updates Redis; a resume checks again).
   */
  revoke(mayRead: (user: string | undefined, filter: string) => boolean): number {
    let removed = 0;
    for (const session of new Set([...this.#byId.values(), ...this.#byLink.values()])) {
      if (session.loading) continue; // checked when the resume completes
      for (const sub of [...session.subs.values()]) {
        if (mayRead(session.user, sub.filter)) continue;
        if (this.#cluster && session.clientId !== undefined && !session.link && !session.home) this.#dropSub(session, sub);
        else this.#removeSub(session, sub);
        removed++;
      }
    }
    return removed;
  }

  /** Drops the subscriptions of a session being resumed that its user may no longer read. */
  #recheck(session: ClientSession, link: Link): void {
    for (const sub of [...session.subs.values()]) {
      try {
        link.authorizeSubscribe(sub.filter);
      } catch {
        this.#removeSub(session, sub);
      }
    }
  }

  /** Discards persistent sessions whose client has been away longer than the expiry. */
  expire(now = Date.now()): void {
    for (const s of this.#byId.values()) if (!s.link && (!this.#cluster || s.home) && now - s.lastSeen > this.#expiryMs) this.#discard(s);
  }

  #discard(session: ClientSession): void {
    clearTimeout(session.pumpTimer);
    for (const sub of [...session.subs.values()]) {
      this.#trie.remove(sub.node, sub);
      if (sub.charged) this.#refund(session.owner, sub.filter);
      this.#subCount--;
      for (const e of sub.queue) this.#forget(session, e);
      this.#toReport.delete(sub);
    }
    session.subs.clear();
    if (session.clientId !== undefined) {
      this.#byId.delete(session.clientId);
      const left = (this.#perOwner.get(session.owner) ?? 1) - 1;
      if (left > 0) this.#perOwner.set(session.owner, left);
      else this.#perOwner.delete(session.owner);
      this.#store.deleteSession(session.clientId);
    }
  }

  #persistSession(session: ClientSession): void {
    if (session.clientId === undefined) return;
    this.#store.putSession({
      clientId: session.clientId,
      wire: session.codec.wireId,
      owner: session.owner,
      ...(session.user !== undefined ? { user: session.user } : {}),
      subs: [...session.subs.values()].map((s) => ({ id: s.id, filter: s.filter, next: s.next })),
    });
  }

  /** Brings back sessions read from the store (at startup); `codecFor` resolves each session's codec. */
  restore(stored: readonly StoredSession[], codecFor: (wire: number) => Codec | undefined): void {
    if (this.#cluster) {
      if (stored.length > 0) this.#log.warn(`cluster mode: ${stored.length} persistent session(s) in the local store are ignored (sessions live in Redis)`);
      return;
    }
    for (const rec of stored) {
      const codec = codecFor(rec.wire);
      if (!codec) {
        this.#log.warn(`persistent session ${JSON.stringify(rec.clientId)} speaks codec ${rec.wire}, which no plugin provides now; discarded`);
        this.#store.deleteSession(rec.clientId);
        continue;
      }
      const session = new ClientSession(rec.clientId, codec, rec.owner, rec.user);
      this.#byId.set(rec.clientId, session);
      this.#perOwner.set(rec.owner, (this.#perOwner.get(rec.owner) ?? 0) + 1);
      for (const s of rec.subs) {
        try {
          this.#charge(rec.owner, s.filter);
        } catch (err) {
          this.#log.warn(`restored session ${JSON.stringify(rec.clientId)}: ${err instanceof Error ? err.message : String(err)}; subscription ${s.filter} dropped`);
          this.#store.putSession({ ...rec, subs: rec.subs.filter((x) => x !== s) });
          continue;
        }
        const sub = new AckedSub(session, s.id, s.filter);
        sub.node = this.#trie.add(trieFilter(s.filter), sub);
        session.subs.set(s.id, sub);
        this.#subCount++;
        let next = s.next;
        for (const m of s.messages) {
          // after a restart nobody knows whether it reached the client: a possible duplicate
          sub.queue.push({ seq: m.seq, topic: Buffer.from(m.topic, 'utf8'), payload: m.payload, retained: m.retained, sent: true, due: false });
          session.count++;
          session.bytes += m.payload.length;
          this.#queued++;
          this.#queuedBytes += m.payload.length;
          if (m.seq >= next) next = m.seq + 1;
        }
        sub.next = next;
      }
    }
  }

  /** Numbers stored in the session records are refreshed so a restart does not reuse them. */
  checkpoint(): void {
    if (this.#cluster) return; // numbers live in Redis
    for (const s of this.#byId.values()) this.#persistSession(s);
  }
  // ------------------------------------------------------------------ cluster mode (cluster-redis.ts)

  /** Puts persistent sessions in Redis: `store` keeps them, `cluster` numbers and announces their messages. Call before any client. */
  setCluster(cluster: SessionCluster, store: BrokerStore): void {
    this.#cluster = cluster;
    this.#store = store;
  }

  /** Cluster mode: the sessions the last local publish was kept for (the relay tells the other nodes). */
  lastRouted: readonly string[] = [];

  /** The bounds Redis applies to one session's queue. */
  get limits(): { readonly maxSessionMessages: number; readonly maxSessionBytes: number } {
    return { maxSessionMessages: this.#maxMessages, maxSessionBytes: this.#maxBytes };
  }

  /**
   * A session as Redis describes it (`meta` undefined: discarded), announced by another node: its
   * subscriptions route publishes accepted here into Redis. Ignored while this node owns it.
   */
  clusterMeta(clientId: string, meta: StoredSessionMeta | undefined, codec: Codec | undefined): void {
    let session = this.#byId.get(clientId);
    if (session && (session.link || session.loading)) return;
    if (session && (!meta || !codec || session.codec !== codec || session.user !== meta.user || session.owner !== meta.owner)) {
      this.#forgetSession(session);
      session = undefined;
    }
    if (!meta || !codec) return;
    if (!session) {
      session = new ClientSession(clientId, codec, meta.owner, meta.user);
      this.#byId.set(clientId, session);
      this.#perOwner.set(meta.owner, (this.#perOwner.get(meta.owner) ?? 0) + 1);
    }
    session.home = false;
    this.#syncSubs(session, meta.subs);
  }

  /** Another node took the session over: a connection here that holds it is dropped. */
  clusterTaken(clientId: string): void {
    const session = this.#byId.get(clientId);
    if (!session) return;
    session.home = false;
    const previous = session.link;
    if (!previous) return;
    this.#byLink.delete(previous.id);
    session.link = undefined;
    clearTimeout(session.pumpTimer);
    this.#clearQueues(session);
    session.backlog = 0;
    previous.drop(SESSION_TAKEN_OVER, `session ${JSON.stringify(clientId)} was resumed on another node`);
  }

  /** A message Redis numbered (`seq`; 0 = dropped, the queue was full) for a session: delivered if its client is here. */
  clusterDeliver(clientId: string, subId: number, seq: number, topic: Buffer, payload: Buffer, retained: boolean): void {
    const session = this.#byId.get(clientId);
    if (!session) return;
    if (session.loading) {
      session.loading.push({ subId, seq, topic, payload, retained });
      return;
    }
    if (!session.link) return;
    const sub = session.subs.get(subId);
    if (!sub) return;
    if (seq === 0) {
      sub.dropped++;
      this.#counters.overflows++;
      this.#report(sub);
      return;
    }
    if (this.#stale(sub, seq, topic)) return;
    this.#place(sub, seq, topic, payload, retained, false, false);
  }

  /**
   * A message a node routed with an out-of-date view of the subscription (its id now names another
   * filter): removed from Redis, never delivered.
   */
  #stale(sub: AckedSub, seq: number, topic: Buffer): boolean {
    if (topicMatches(sub.filter, topic.toString('utf8'))) return false;
    this.#store.deleteMessage(sub.session.clientId!, sub.id, seq);
    return true;
  }

  /** Keeps an entry Redis numbered (in number order: an older or known number is skipped) and sends it or marks it due. */
  #place(sub: AckedSub, seq: number, topic: Buffer, payload: Buffer, retained: boolean, sent: boolean, due: boolean): void {
    if (seq < sub.next) return;
    const session = sub.session;
    const e: Entry = { seq, topic, payload, retained, sent, due: false };
    sub.next = seq + 1;
    sub.queue.push(e);
    session.count++;
    session.bytes += payload.length;
    this.#queued++;
    this.#queuedBytes += payload.length;
    if (!session.link?.isOpen()) return;
    if (due || session.backlog > 0) {
      e.due = true;
      session.backlog++;
      return;
    }
    this.#write(sub, e);
  }

  #clusterSession(link: Link, id: number, clean: boolean, clientId: string, cluster: SessionCluster): void {
    let session = this.#byId.get(clientId);
    if (session && session.user !== link.user) throw new BrokerError(BrokerErrorCode.NOT_ALLOWED, `session ${JSON.stringify(clientId)} belongs to another user`);
    if (session && !clean && session.codec.wireId !== link.wire) {
      throw new BrokerError(BrokerErrorCode.NOT_ALLOWED, `session ${JSON.stringify(clientId)} speaks ${session.codec.name}; resume it with that codec, or start it clean`);
    }
    if (session?.loading) throw new BrokerError(BrokerErrorCode.OUT_OF_ORDER, `session ${JSON.stringify(clientId)} is being resumed by another connection`);
    if (session && clean) {
      // started anew (maybe in another codec): what this node knew of it goes; Redis's copy is discarded after the claim
      const previous = session.link;
      if (previous) {
        this.#byLink.delete(previous.id);
        session.link = undefined;
        previous.drop(SESSION_TAKEN_OVER, `session ${JSON.stringify(clientId)} was started anew by another connection`);
      }
      clearTimeout(session.pumpTimer);
      this.#forgetSession(session);
      session = undefined;
    }
    if (!session) {
      if (this.#byId.size >= this.#maxSessions) throw new BrokerError(BrokerErrorCode.LIMIT, `the broker keeps at most ${this.#maxSessions} persistent sessions`);
      const mine = this.#perOwner.get(link.owner) ?? 0;
      if (mine >= this.#maxPerClient) throw new BrokerError(BrokerErrorCode.LIMIT, `a client (${link.owner}) may own at most ${this.#maxPerClient} persistent sessions`);
      session = new ClientSession(clientId, link.codec, link.owner, link.user);
      this.#byId.set(clientId, session);
      this.#perOwner.set(link.owner, mine + 1);
    }
    const s = session;
    // frames after SESSION wait for it; deliveries Redis announces meanwhile are kept for the merge
    const waiting: (() => void)[] = [];
    this.#waiting.set(link.id, waiting);
    s.loading = [];
    const fail = (err: unknown): void => {
      if (err instanceof BrokerError) link.drop(err.wireCode, err.detail);
      else {
        this.#log.error(`cluster: resuming session ${JSON.stringify(clientId)} failed`, err);
        link.drop(BrokerErrorCode.INTERNAL, 'the session could not be read from the cluster');
      }
    };
    cluster.claim(clientId).then(
      (stored) => {
        const announced = s.loading ?? [];
        s.loading = undefined;
        this.#waiting.delete(link.id);
        if (!link.isOpen()) {
          if (!s.link) cluster.release(clientId);
          return;
        }
        try {
          if (stored && stored.user !== link.user) throw new BrokerError(BrokerErrorCode.NOT_ALLOWED, `session ${JSON.stringify(clientId)} belongs to another user`);
          if (stored && clean) {
            this.#store.deleteSession(clientId);
            stored = undefined;
          }
          if (stored && stored.wire !== link.wire) throw new BrokerError(BrokerErrorCode.NOT_ALLOWED, `session ${JSON.stringify(clientId)} speaks another codec; resume it with that codec, or start it clean`);
          const previous = s.link;
          if (previous && previous !== link) {
            this.#byLink.delete(previous.id);
            s.link = undefined;
            previous.drop(SESSION_TAKEN_OVER, `session ${JSON.stringify(clientId)} was resumed by another connection`);
          }
          clearTimeout(s.pumpTimer);
          this.#clearQueues(s);
          this.#syncSubs(s, stored?.subs ?? []);
          this.#recheck(s, link); // another node may have kept a subscription the rules here no longer grant
          for (const sub of s.subs.values()) {
            sub.next = 1;
            if (!sub.charged) {
              try {
                this.#charge(s.owner, sub.filter);
                sub.charged = true;
              } catch (err) {
                this.#log.warn(`session ${JSON.stringify(clientId)}: ${err instanceof Error ? err.message : String(err)} (subscription ${sub.filter} kept, not charged)`);
              }
            }
          }
          s.home = true;
          s.backlog = 0;
          this.#attach(s, link);
          if (!stored) this.#persistSession(s);
          link.send(sessionAckFrame(id, stored !== undefined, [...s.subs.values()].map((x) => ({ id: x.id, filter: x.filter }))));
          // what Redis held (maybe sent by the node before: marked duplicate), then what was announced meanwhile
          for (const rec of stored?.subs ?? []) {
            const sub = s.subs.get(rec.id);
            if (sub) for (const m of rec.messages) if (!this.#stale(sub, m.seq, Buffer.from(m.topic, 'utf8'))) this.#place(sub, m.seq, Buffer.from(m.topic, 'utf8'), m.payload, m.retained, m.sent, true);
          }
          announced.sort((a, b) => a.seq - b.seq);
          for (const a of announced) {
            const sub = s.subs.get(a.subId);
            if (!sub) continue;
            if (a.seq === 0) {
              sub.dropped++;
              this.#counters.overflows++;
            } else if (!this.#stale(sub, a.seq, a.topic)) this.#place(sub, a.seq, a.topic, a.payload, a.retained, false, true);
          }
          for (const sub of s.subs.values()) if (sub.dropped > 0) this.#report(sub);
          this.#pump(s);
        } catch (err) {
          fail(err);
          return;
        }
        for (const f of waiting) {
          if (!link.isOpen()) break;
          try {
            f();
          } catch (err) {
            fail(err);
            break;
          }
        }
      },
      (err: unknown) => {
        s.loading = undefined;
        this.#waiting.delete(link.id);
        fail(err);
      },
    );
  }

  /** Makes the session's subscriptions those listed (a cluster copy is not charged to anyone here). */
  #syncSubs(session: ClientSession, subs: readonly { readonly id: number; readonly filter: string }[]): void {
    const want = new Map(subs.map((x) => [x.id, x.filter]));
    for (const sub of [...session.subs.values()]) if (want.get(sub.id) !== sub.filter) this.#dropSub(session, sub);
    for (const [subId, filter] of want) {
      if (session.subs.has(subId)) continue;
      const sub = new AckedSub(session, subId, filter);
      sub.charged = false;
      sub.node = this.#trie.add(trieFilter(filter), sub);
      session.subs.set(subId, sub);
      this.#subCount++;
    }
  }

  /** Removes a subscription from this node only (Redis is left as it is). */
  #dropSub(session: ClientSession, sub: AckedSub): void {
    session.subs.delete(sub.id);
    this.#trie.remove(sub.node, sub);
    if (sub.charged) this.#refund(session.owner, sub.filter);
    this.#subCount--;
    for (const e of sub.queue) this.#forget(session, e);
    sub.queue.length = 0;
    this.#toReport.delete(sub);
  }

  /** Forgets a session on this node only (another node discarded it). */
  #forgetSession(session: ClientSession): void {
    for (const sub of [...session.subs.values()]) this.#dropSub(session, sub);
    if (session.clientId === undefined) return;
    this.#byId.delete(session.clientId);
    const left = (this.#perOwner.get(session.owner) ?? 1) - 1;
    if (left > 0) this.#perOwner.set(session.owner, left);
    else this.#perOwner.delete(session.owner);
  }

  /** Empties the session's queues in memory (Redis keeps them). */
  #clearQueues(session: ClientSession): void {
    for (const sub of session.subs.values()) {
      for (const e of sub.queue) this.#forget(session, e);
      sub.queue.length = 0;
    }
    session.backlog = 0;
  }
}

export { ReliableFrame };
