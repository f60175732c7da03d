/**
 * Several broker processes serving one topic space through Redis (`ioredis`): every publish or
 * clear a node accepts is published on a Redis channel, and every other node delivers it to its
 * own subscribers (plain and acknowledged) as if it had been published there (a producer's PUBACK
 * waits until Redis has the message); last values live
 * in a Redis hash, so a node that starts — or restarts — serves them at once. Redis keeps the
 * order of one connection's messages, so one producer's messages reach every node in order.
 *
 * Not (yet) shared through Redis: persistent sessions. A session lives on the node its client
 * uses (and in that node's store); a client that moves to another node starts a new session there.
 *
 * @example
 * ```ts
 * const cluster = await joinRedisCluster(broker, { url: 'redis://10.0.0.5:6379' });  // before listen()
 * await broker.listen(7000);
 * ```
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Broker } from './broker.js';

export interface RedisClusterOptions {
  /** `redis://HOST:PORT` (with `/DB`, user and password as ioredis reads them). */
  readonly url: string;
  /** Key and channel prefix, to let several clusters share one Redis (default `trellis:broker`). */
  readonly prefix?: string;
  /** This node's name in the messages it relays (default a random UUID). */
  readonly nodeId?: string;
}

export interface RedisCluster {
  readonly nodeId: string;
  /** Messages relayed to and received from the other nodes. */
  stats(): { relayed: number; received: number; failures: number };
  /** Leaves the cluster (the broker goes on serving alone). */
  close(): Promise<void>;
}

const PUBLISH = 1;
const CLEAR = 2;

/** `u8 kind | u16 node length | node | u16 topic length | topic | u8 wire | f64 expiresAt | payload`. */
function encodeMessage(kind: number, node: Buffer, topic: string, wire: number, expiresAt: number, payload: Buffer): Buffer {
  const t = Buffer.from(topic, 'utf8');
  const out = Buffer.allocUnsafe(1 + 2 + node.length + 2 + t.length + 1 + 8 + payload.length);
  let o = out.writeUInt8(kind, 0);
  o = out.writeUInt16BE(node.length, o);
  o += node.copy(out, o);
  o = out.writeUInt16BE(t.length, o);
  o += t.copy(out, o);
  o = out.writeUInt8(wire, o);
  o = out.writeDoubleBE(expiresAt, o);
  payload.copy(out, o);
  return out;
}

function decodeMessage(m: Buffer): { kind: number; node: string; topic: string; wire: number; expiresAt: number; payload: Buffer } {
  let o = 0;
  const kind = m.readUInt8(o++);
  const nl = m.readUInt16BE(o);
  const node = m.toString('utf8', o + 2, o + 2 + nl);
  o += 2 + nl;
  const tl = m.readUInt16BE(o);
  const topic = m.toString('utf8', o + 2, o + 2 + tl);
  o += 2 + tl;
  const wire = m.readUInt8(o++);
  const expiresAt = m.readDoubleBE(o);
  return { kind, node, topic, wire, expiresAt, payload: m.subarray(o + 8) };
}

/**
 * Joins `broker` to the cluster behind the Redis at `options.url`: loads the cluster's last
 * values into it, then relays both ways. Call before `broker.listen()`.
 */
export async function joinRedisCluster(broker: Broker, options: RedisClusterOptions): Promise<RedisCluster> {
  const prefix = options.prefix ?? 'trellis:broker';
  const nodeId = options.nodeId ?? randomUUID();
  const me = Buffer.from(nodeId, 'utf8');
  const channel = `${prefix}:messages`;
  const lastValues = `${prefix}:retained`;
  const counters = { relayed: 0, received: 0, failures: 0 };
  // auto-pipelining: the commands of one event-loop turn go to Redis in one write
  const pub = new Redis(options.url, { lazyConnect: true, maxRetriesPerRequest: 20, enableAutoPipelining: true });
  const sub = new Redis(options.url, { lazyConnect: true, maxRetriesPerRequest: 20 });
  const report = (what: string) => (err: unknown) => {
    counters.failures++;
    broker.log.warn(`cluster: ${what}: ${err instanceof Error ? err.message : String(err)}`);
  };
  pub.on('error', report('redis connection'));
  sub.on('error', report('redis subscriber connection'));
  try {
    await pub.connect();
    await sub.connect();
    // messages that arrive while the last values load are applied after them, in order
    const early: Buffer[] = [];
    let loading = true;
    const apply = (m: Buffer): void => {
      const msg = decodeMessage(m);
      if (msg.node === nodeId) return;
      counters.received++;
      if (msg.kind === CLEAR) broker.clearRemote(msg.topic);
      else broker.deliverRemote(msg.topic, msg.wire, msg.payload, msg.expiresAt).catch(report(`message on ${msg.topic} from node ${msg.node}`));
    };
    sub.on('messageBuffer', (_ch: Buffer, m: Buffer) => (loading ? early.push(m) : apply(m)));
    await sub.subscribe(channel);
    const stored = await pub.hgetallBuffer(lastValues);
    for (const [topic, entry] of Object.entries(stored)) {
      const wire = entry.readUInt8(0);
      const expiresAt = entry.readDoubleBE(1);
      await broker.deliverRemote(topic, wire, entry.subarray(9), expiresAt).catch(report(`stored last value of ${topic}`));
    }
    loading = false;
    for (const m of early.splice(0)) apply(m);
  } catch (err) {
    pub.disconnect();
    sub.disconnect();
    throw err;
  }
  broker.setRelay({
    published(topic, wire, payload, expiresAt) {
      counters.relayed++;
      const entry = Buffer.allocUnsafe(9 + payload.length);
      entry.writeUInt8(wire, 0);
      entry.writeDoubleBE(expiresAt, 1);
      payload.copy(entry, 9);
      // one connection, commands in order: the hash and the channel see one producer's messages in order
      const stored = pub.hset(lastValues, topic, entry);
      const sent = pub.publish(channel, encodeMessage(PUBLISH, me, topic, wire, expiresAt, payload));
      // the producer's PUBACK waits for both (a failure is reported and fails that ack)
      return Promise.all([stored, sent]).catch((err: unknown) => {
        report(`relaying ${topic}`)(err);
        throw err;
      });
    },
    cleared(topic) {
      counters.relayed++;
      pub.hdel(lastValues, topic).catch(report(`clearing the last value of ${topic}`));
      pub.publish(channel, encodeMessage(CLEAR, me, topic, 0, 0, Buffer.alloc(0))).catch(report(`relaying the clear of ${topic}`));
    },
  });
  return {
    nodeId,
    stats: () => ({ ...counters }),
    async close() {
      broker.setRelay(undefined);
      await Promise.allSettled([sub.quit(), pub.quit()]);
    },
  };
}
