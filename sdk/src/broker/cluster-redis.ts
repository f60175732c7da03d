/**
 * Several broker processes serving one topic space through Redis (`ioredis`): every publish or
 * clear a node accepts is published on a Redis channel, and every other node delivers it to its
 * own subscribers (plain and acknowledged) as if it had been published there (a producer's PUBACK
 * waits until Redis has the message); last values live
 * in a Redis hash, so a node that starts — or restarts — serves them at once. Redis keeps the
 * order of one connection's messages, so one producer's messages reach every node in order.
 *
 * Persistent sessions live in Redis too: their descriptions in a hash every node mirrors (so a
 * publish accepted on any node is numbered and kept, in Redis, for every session it matches,
 * before its PUBACK), their queues in one hash per session. The node a session's client is
 * connected to delivers what Redis announces; a client that reconnects to another node resumes
 * there (that node claims the session, the old one drops its connection), gets what was not
 * acknowledged again marked duplicate, then the rest, in number order.
 *
 * @example
 * ```ts
 * const cluster = await joinRedisCluster(broker, { url: 'redis://10.0.0.5:6379' });  // before listen()
 * await broker.listen(7000);
 * ```
 */
import { randomUUID } from 'node:crypto';
// ioredis is loaded by joinRedisCluster only, so importing the broker does not load it
import type { Redis } from 'ioredis';
import type { Broker } from './broker.js';
import type { BrokerStore, StoredMessage, StoredSession, StoredSessionMeta } from './persistence.js';
import type { ClusterItem } from './sessions.js';

// Numbers, keeps (bounded) and announces messages for persistent sessions, atomically.
// ARGV: prefix, max messages, max bytes, then (client id, epoch, subscription id, entry) quadruples;
// a message routed by a node that still knew an earlier session of that id (another epoch) is not kept.
const ENQUEUE = `
local p = ARGV[1]
local maxN = tonumber(ARGV[2])
local maxB = tonumber(ARGV[3])
for i = 4, #ARGV, 4 do
  local cid = ARGV[i]
  local sid = ARGV[i + 2]
  local entry = ARGV[i + 3]
  if redis.call('HGET', p .. ':epochs', cid) == ARGV[i + 1] then
    local sn = p .. ':sn:' .. cid
    local n = tonumber(redis.call('HGET', sn, 'n') or '0')
    local b = tonumber(redis.call('HGET', sn, 'b') or '0')
    local seq = 0
    -- kept with whether a node holds the client now (it may have been sent: a later resend is a duplicate)
    local kept = (redis.call('EXISTS', p .. ':owner:' .. cid) == 1 and 's' or 'n') .. entry
    if n < maxN and b + #kept <= maxB then
      seq = redis.call('HINCRBY', sn, 's' .. sid, 1)
      redis.call('HSET', p .. ':sq:' .. cid, sid .. ':' .. seq, kept)
      redis.call('HINCRBY', sn, 'n', 1)
      redis.call('HINCRBY', sn, 'b', #kept)
    end
    redis.call('PUBLISH', p .. ':deliver', seq .. ':' .. entry)
  end
end
return 1
`;
// Removes acknowledged messages. ARGV: prefix, client id, then "subId:seq" fields.
const REMOVE = `
local p = ARGV[1]
local sq = p .. ':sq:' .. ARGV[2]
local sn = p .. ':sn:' .. ARGV[2]
for i = 3, #ARGV do
  local len = redis.call('HSTRLEN', sq, ARGV[i])
  if len > 0 then
    redis.call('HDEL', sq, ARGV[i])
    redis.call('HINCRBY', sn, 'n', -1)
    redis.call('HINCRBY', sn, 'b', -len)
  end
end
return 1
`;

// The node lets go of a session whose client left (only if it still holds it). ARGV: key, node.
const RELEASE = `
if redis.call('GET', ARGV[1]) == ARGV[2] then redis.call('DEL', ARGV[1]) end
return 1
`;

interface SessionRedis extends Redis {
  trellisRelease(key: string, node: string): Promise<unknown>;
  trellisEnqueue(...args: (string | number | Buffer)[]): Promise<unknown>;
  trellisRemove(...args: (string | number)[]): Promise<unknown>;
}

/** A session message in Redis: `u16 client id length | client id | u32 sub id | u8 retained | u16 topic length | topic | payload`. */
function encodeEntry(clientId: string, subId: number, topic: Buffer, payload: Buffer, retained: boolean): Buffer {
  const c = Buffer.from(clientId, 'utf8');
  const out = Buffer.allocUnsafe(2 + c.length + 4 + 1 + 2 + topic.length + payload.length);
  let o = out.writeUInt16BE(c.length, 0);
  o += c.copy(out, o);
  o = out.writeUInt32BE(subId, o);
  o = out.writeUInt8(retained ? 1 : 0, o);
  o = out.writeUInt16BE(topic.length, o);
  o += topic.copy(out, o);
  payload.copy(out, o);
  return out;
}

function decodeEntry(m: Buffer): { clientId: string; subId: number; retained: boolean; topic: Buffer; payload: Buffer } {
  const cl = m.readUInt16BE(0);
  const clientId = m.toString('utf8', 2, 2 + cl);
  let o = 2 + cl;
  const subId = m.readUInt32BE(o);
  const retained = m.readUInt8(o + 4) === 1;
  const tl = m.readUInt16BE(o + 5);
  o += 7;
  return { clientId, subId, retained, topic: m.subarray(o, o + tl), payload: m.subarray(o + tl) };
}

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
  stats(): { relayed: number; received: number; failures: number; sessionMessages: number };
  /** Leaves the cluster (the broker goes on serving alone). */
  close(): Promise<void>;
}

const PUBLISH = 1;
const CLEAR = 2;

/**
 * `u8 kind | u16 node length | node | u16 topic length | topic | u8 wire | f64 expiresAt | u16 n |
 * n × (u16 length | client id) | payload`: the n client ids are the persistent sessions the
 * accepting node kept the message for.
 */
function encodeMessage(kind: number, node: Buffer, topic: string, wire: number, expiresAt: number, payload: Buffer, routed: readonly string[] = []): Buffer {
  const t = Buffer.from(topic, 'utf8');
  const ids = routed.map((c) => Buffer.from(c, 'utf8'));
  let idBytes = 0;
  for (const c of ids) idBytes += 2 + c.length;
  const out = Buffer.allocUnsafe(1 + 2 + node.length + 2 + t.length + 1 + 8 + 2 + idBytes + payload.length);
  let o = out.writeUInt8(kind, 0);
  o = out.writeUInt16BE(node.length, o);
  o += node.copy(out, o);
  o = out.writeUInt16BE(t.length, o);
  o += t.copy(out, o);
  o = out.writeUInt8(wire, o);
  o = out.writeDoubleBE(expiresAt, o);
  o = out.writeUInt16BE(ids.length, o);
  for (const c of ids) {
    o = out.writeUInt16BE(c.length, o);
    o += c.copy(out, o);
  }
  payload.copy(out, o);
  return out;
}

function decodeMessage(m: Buffer): { kind: number; node: string; topic: string; wire: number; expiresAt: number; routed: Set<string>; payload: Buffer } {
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
  o += 8;
  const n = m.readUInt16BE(o);
  o += 2;
  const routed = new Set<string>();
  for (let i = 0; i < n; i++) {
    const l = m.readUInt16BE(o);
    routed.add(m.toString('utf8', o + 2, o + 2 + l));
    o += 2 + l;
  }
  return { kind, node, topic, wire, expiresAt, routed, payload: m.subarray(o) };
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
  const counters = { relayed: 0, received: 0, failures: 0, sessionMessages: 0 };
  const sessionsKey = `${prefix}:sessions`;
  const deliverChannel = `${prefix}:deliver`;
  const controlChannel = `${prefix}:control`;
  const engine = broker.sessionEngine;
  const epochsKey = `${prefix}:epochs`;
  /** Each session's epoch (a new one when a session of that id is created anew), as this node knows it. */
  const epochs = new Map<string, string>();
  // auto-pipelining: the commands of one event-loop turn go to Redis in one write
  const { Redis: RedisClient } = await import('ioredis');
  const pub = new RedisClient(options.url, { lazyConnect: true, maxRetriesPerRequest: 20, enableAutoPipelining: true });
  const sub = new RedisClient(options.url, { lazyConnect: true, maxRetriesPerRequest: 20 });
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
      else broker.deliverRemote(msg.topic, msg.wire, msg.payload, msg.expiresAt, msg.routed).catch(report(`message on ${msg.topic} from node ${msg.node}`));
    };
    // session deliveries (every node's, this one's too: they come in Redis's numbering order)
    const deliver = (m: Buffer): void => {
      const colon = m.indexOf(0x3a);
      const seq = Number(m.toString('latin1', 0, colon));
      const e = decodeEntry(m.subarray(colon + 1));
      engine.clusterDeliver(e.clientId, e.subId, seq, e.topic, e.payload, e.retained);
    };
    // session descriptions and takeovers, one at a time in the order Redis sent them
    let control: Promise<void> = Promise.resolve();
    const mirror = async (clientId: string): Promise<void> => {
      const raw = await pub.hget(sessionsKey, clientId);
      const meta = raw ? (JSON.parse(raw) as StoredSessionMeta & { epoch: string }) : undefined;
      if (meta) epochs.set(clientId, meta.epoch);
      else epochs.delete(clientId);
      const codec = meta ? await broker.codecFor(meta.wire).catch(() => undefined) : undefined;
      if (meta && !codec) broker.log.warn(`cluster: session ${JSON.stringify(clientId)} speaks codec ${meta.wire}, which no plugin provides here`);
      engine.clusterMeta(clientId, meta, codec);
    };
    const onControl = (m: Buffer): void => {
      const msg = JSON.parse(m.toString('utf8')) as { kind: 'changed' | 'taken'; node: string; clientId: string };
      if (msg.node === nodeId) return;
      control = control.then(() => (msg.kind === 'taken' ? engine.clusterTaken(msg.clientId) : mirror(msg.clientId))).catch(report(`session ${msg.clientId} from node ${msg.node}`));
    };
    sub.on('messageBuffer', (ch: Buffer, m: Buffer) => {
      const name = ch.toString('utf8');
      if (name === deliverChannel) deliver(m);
      else if (name === controlChannel) onControl(m);
      else if (loading) early.push(m);
      else apply(m);
    });
    await sub.subscribe(channel, deliverChannel, controlChannel);
    // every session the cluster keeps, mirrored here
    control = control.then(async () => {
      for (const clientId of await pub.hkeys(sessionsKey)) await mirror(clientId);
    });
    await control;
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
  const redis = pub as SessionRedis;
  redis.defineCommand('trellisEnqueue', { numberOfKeys: 0, lua: ENQUEUE });
  redis.defineCommand('trellisRemove', { numberOfKeys: 0, lua: REMOVE });
  redis.defineCommand('trellisRelease', { numberOfKeys: 0, lua: RELEASE });
  const { maxSessionMessages, maxSessionBytes } = engine.limits;
  let last: Promise<unknown> = Promise.resolve();
  const track = (p: Promise<unknown>): void => {
    last = p;
    p.catch(report('writing a session to redis'));
  };
  const announce = (kind: 'changed' | 'taken', clientId: string): Promise<unknown> => pub.publish(controlChannel, JSON.stringify({ kind, node: nodeId, clientId }));
  const sessionStore: BrokerStore = {
    durable: true,
    where: `redis:${prefix}`,
    load: async () => ({ retained: [], sessions: [] }),
    putRetained() {},
    deleteRetained() {},
    putSession(meta) {
      let epoch = epochs.get(meta.clientId);
      if (epoch === undefined) {
        // a session created here (anew): this node holds its client
        epoch = randomUUID();
        epochs.set(meta.clientId, epoch);
        track(pub.hset(epochsKey, meta.clientId, epoch));
        track(pub.set(`${prefix}:owner:${meta.clientId}`, nodeId));
      }
      track(pub.hset(sessionsKey, meta.clientId, JSON.stringify({ epoch, clientId: meta.clientId, wire: meta.wire, owner: meta.owner, ...(meta.user !== undefined ? { user: meta.user } : {}), subs: meta.subs.map((x) => ({ id: x.id, filter: x.filter, next: 0 })) })));
      track(announce('changed', meta.clientId));
    },
    deleteSession(clientId) {
      epochs.delete(clientId);
      track(pub.hdel(sessionsKey, clientId));
      track(pub.hdel(epochsKey, clientId));
      track(pub.del(`${prefix}:sq:${clientId}`, `${prefix}:sn:${clientId}`, `${prefix}:owner:${clientId}`));
      track(announce('changed', clientId));
    },
    putMessage(clientId, subId, m) {
      // the engine numbers cluster messages through Redis (enqueue); a direct put keeps the given number
      track(pub.hset(`${prefix}:sq:${clientId}`, `${subId}:${m.seq}`, Buffer.concat([Buffer.from(m.sent ? 's' : 'n'), encodeEntry(clientId, subId, Buffer.from(m.topic, 'utf8'), m.payload, m.retained)])));
    },
    deleteMessage(clientId, subId, seq) {
      track(redis.trellisRemove(prefix, clientId, `${subId}:${seq}`));
    },
    flushed: async () => {
      await last;
    },
    close: async () => undefined,
  };
  engine.setCluster(
    {
      enqueue(items: readonly ClusterItem[]) {
        const args: (string | number | Buffer)[] = [prefix, maxSessionMessages, maxSessionBytes];
        for (const it of items) args.push(it.clientId, epochs.get(it.clientId) ?? '', it.subId, encodeEntry(it.clientId, it.subId, it.topic, it.payload, it.retained));
        counters.sessionMessages += items.length;
        track(redis.trellisEnqueue(...args));
      },
      release(clientId: string) {
        track(redis.trellisRelease(`${prefix}:owner:${clientId}`, nodeId));
      },
      async claim(clientId: string): Promise<StoredSession | undefined> {
        // one pipeline, in this order: the owner key, the notice, then what Redis holds
        const [, , text, held] = await Promise.all([
          pub.set(`${prefix}:owner:${clientId}`, nodeId),
          announce('taken', clientId),
          pub.hget(sessionsKey, clientId),
          pub.hgetallBuffer(`${prefix}:sq:${clientId}`),
        ]);
        if (!text) return undefined;
        const meta = JSON.parse(text) as StoredSessionMeta & { epoch: string };
        epochs.set(clientId, meta.epoch);
        const bySub = new Map<number, StoredMessage[]>();
        for (const [field, entry] of Object.entries(held)) {
          const [subId, seq] = field.split(':').map(Number) as [number, number];
          const e = decodeEntry(entry.subarray(1));
          const list = bySub.get(subId) ?? [];
          list.push({ seq, topic: e.topic.toString('utf8'), payload: Buffer.from(e.payload), retained: e.retained, sent: entry[0] === 0x73 /* s */ });
          bySub.set(subId, list);
        }
        return { ...meta, subs: meta.subs.map((x) => ({ ...x, messages: (bySub.get(x.id) ?? []).sort((a, b) => a.seq - b.seq) })) };
      },
    },
    sessionStore,
  );
  broker.setRelay({
    published(topic, wire, payload, expiresAt) {
      counters.relayed++;
      const entry = Buffer.allocUnsafe(9 + payload.length);
      entry.writeUInt8(wire, 0);
      entry.writeDoubleBE(expiresAt, 1);
      payload.copy(entry, 9);
      // one connection, commands in order: the hash and the channel see one producer's messages in order
      const stored = pub.hset(lastValues, topic, entry);
      const routed = engine.lastRouted; // set by this publish's commit, read once
      engine.lastRouted = [];
      const sent = pub.publish(channel, encodeMessage(PUBLISH, me, topic, wire, expiresAt, payload, routed));
      // the producer's PUBACK waits for both (a failure is reported and fails that ack)
      // and for the copies kept for persistent sessions (enqueued while the publish was routed)
      return Promise.all([stored, sent, last]).catch((err: unknown) => {
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
