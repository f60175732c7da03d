/**
 * Where the broker keeps what must survive a restart: the last value of every topic, the
 * persistent sessions and the messages they hold. Two stores: `memoryStore()` keeps nothing
 * (state lives only in the broker's memory) and `openLmdbStore(dir)` writes to an LMDB
 * environment (the `lmdb` package: prebuilt binaries from npm, batched asynchronous
 * transactions). The broker answers PUBACK only after `flushed()`, so an acknowledged publish is
 * on disk before the producer hears about it.
 */
import { mkdirSync } from 'node:fs';

export interface StoredRetained {
  readonly topic: string;
  /** The codec wire id the payload is in (the producer's). */
  readonly wire: number;
  readonly payload: Buffer;
  readonly owner: string;
  /** When the value expires (ms since the epoch), if it was published with an expiry. */
  readonly expiresAt?: number;
}

export interface StoredMessage {
  readonly seq: number;
  readonly topic: string;
  readonly payload: Buffer;
  readonly retained: boolean;
  readonly sent: boolean;
}

export interface StoredSessionMeta {
  readonly clientId: string;
  readonly wire: number;
  readonly owner: string;
  /** The authenticated user who owns it (access control), if any. */
  readonly user?: string;
  readonly subs: readonly { readonly id: number; readonly filter: string; readonly next: number }[];
}

export interface StoredSession extends StoredSessionMeta {
  readonly subs: readonly { readonly id: number; readonly filter: string; readonly next: number; readonly messages: StoredMessage[] }[];
}

export interface BrokerStore {
  /** Whether anything outlives the process. */
  readonly durable: boolean;
  /** A description for logs (`memory`, `lmdb:/var/lib/trellis`). */
  readonly where: string;
  load(): Promise<{ retained: StoredRetained[]; sessions: StoredSession[] }>;
  putRetained(r: StoredRetained): void;
  deleteRetained(topic: string): void;
  putSession(meta: StoredSessionMeta): void;
  /** Removes a session and every message it holds. */
  deleteSession(clientId: string): void;
  putMessage(clientId: string, subId: number, m: StoredMessage): void;
  deleteMessage(clientId: string, subId: number, seq: number): void;
  /** Resolves once every write made so far is committed to disk. */
  flushed(): Promise<void>;
  close(): Promise<void>;
}

/** A store that keeps nothing: the broker's state lives and dies with the process. */
export function memoryStore(): BrokerStore {
  const done = Promise.resolve();
  return {
    durable: false,
    where: 'memory',
    load: async () => ({ retained: [], sessions: [] }),
    putRetained() {},
    deleteRetained() {},
    putSession() {},
    deleteSession() {},
    putMessage() {},
    deleteMessage() {},
    flushed: () => done,
    close: async () => undefined,
  };
}

// Keys (lmdb's ordered-binary arrays): ['r', topic] → retained, ['s', clientId] → session meta,
// ['m', clientId, subId, seq] → message. Values are msgpack (Buffers kept as bytes).
const END = Number.MAX_SAFE_INTEGER;

interface LmdbDatabase {
  put(key: unknown, value: unknown): Promise<boolean>;
  remove(key: unknown): Promise<boolean>;
  getRange(options: { start?: unknown; end?: unknown }): Iterable<{ key: unknown; value: unknown }>;
  getKeys(options: { start?: unknown; end?: unknown }): Iterable<unknown>;
  flushed: Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Opens (creating it if needed) the LMDB store in `dir`. Writes are batched by lmdb into one
 * transaction per event-loop turn and committed with a sync to disk.
 */
export async function openLmdbStore(dir: string): Promise<BrokerStore> {
  mkdirSync(dir, { recursive: true });
  const { open } = await import('lmdb');
  // noSubdir false: a directory named like a file (`state.v1`) is still a directory
  const db = open({ path: dir, compression: false, noSubdir: false }) as unknown as LmdbDatabase;
  let last: Promise<unknown> = Promise.resolve();
  const track = (p: Promise<unknown>): void => {
    last = p;
  };
  const asBuffer = (b: Uint8Array): Buffer => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  return {
    durable: true,
    where: `lmdb:${dir}`,
    async load() {
      const retained: StoredRetained[] = [];
      for (const { key, value } of db.getRange({ start: ['r'], end: ['s'] })) {
        const v = value as { wire: number; payload: Uint8Array; owner: string; expiresAt?: number };
        retained.push({ topic: (key as [string, string])[1], wire: v.wire, payload: asBuffer(v.payload), owner: v.owner, ...(v.expiresAt !== undefined ? { expiresAt: v.expiresAt } : {}) });
      }
      const sessions: StoredSession[] = [];
      for (const { value } of db.getRange({ start: ['s'], end: ['t'] })) {
        const meta = value as StoredSessionMeta;
        const subs = meta.subs.map((s) => ({ ...s, messages: [] as StoredMessage[] }));
        const byId = new Map(subs.map((s) => [s.id, s]));
        for (const { key, value: mv } of db.getRange({ start: ['m', meta.clientId], end: ['m', meta.clientId, END] })) {
          const [, , subId] = key as [string, string, number, number];
          const m = mv as StoredMessage;
          byId.get(subId)?.messages.push({ ...m, payload: asBuffer(m.payload) });
        }
        sessions.push({ ...meta, subs });
      }
      return { retained, sessions };
    },
    putRetained(r) {
      track(db.put(['r', r.topic], { wire: r.wire, payload: r.payload, owner: r.owner, ...(r.expiresAt !== undefined ? { expiresAt: r.expiresAt } : {}) }));
    },
    deleteRetained(topic) {
      track(db.remove(['r', topic]));
    },
    putSession(meta) {
      track(db.put(['s', meta.clientId], { clientId: meta.clientId, wire: meta.wire, owner: meta.owner, ...(meta.user !== undefined ? { user: meta.user } : {}), subs: meta.subs.map((s) => ({ id: s.id, filter: s.filter, next: s.next })) }));
    },
    deleteSession(clientId) {
      track(db.remove(['s', clientId]));
      for (const key of db.getKeys({ start: ['m', clientId], end: ['m', clientId, END] })) track(db.remove(key));
    },
    putMessage(clientId, subId, m) {
      track(db.put(['m', clientId, subId, m.seq], { seq: m.seq, topic: m.topic, payload: m.payload, retained: m.retained, sent: m.sent }));
    },
    deleteMessage(clientId, subId, seq) {
      track(db.remove(['m', clientId, subId, seq]));
    },
    async flushed() {
      await last;
    },
    async close() {
      await last;
      await db.close();
    },
  };
}
