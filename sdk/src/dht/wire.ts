/**
 * Wire shapes of the Chord messages: node references `[id, [host, port]]`, addresses
 * `[host, port]` (Python tuples in pickle), ids as integers. Readers throw `ProtocolError` on
 * a wrong shape so the node can drop the datagram with a log line and keep serving.
 */
import type { Value } from '../areas/serialization.js';
import type { DhtNode } from '../areas/dht-routing.js';
import { ProtocolError } from '../errors.js';
import type { Address } from './transport.js';

export type Args = { readonly [key: string]: Value };

/**
 * The version of Trellis's node-to-node wire, carried as a top-level `"v"` beside `method` and
 * `args` (the original reads only those two, so the mark costs it nothing). Version 1 is the
 * original protocol, which carries no mark; 2 is the checked protocol (rids, HOP_ACK, PING
 * proofs, addresses in STABILIZE). A node drops node-to-node messages of any other version.
 */
export const WIRE_VERSION = 2;

/** Which node protocol a node speaks: Trellis's versioned wire, or the original's (REFERENCE.md §3). */
export type WireMode = 'trellis' | 'reference';

export function isArgs(v: unknown): v is Args {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** Ids travel as plain integers when they fit a double exactly, as big integers otherwise. */
export function wireId(id: bigint): number | bigint {
  return id <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(id) : id;
}

const kPickleTuple = Symbol.for('trellis.pickle.tuple');

/** Addresses are `(host, port)` tuples in the reference, and Python's `sendto` needs a tuple. */
export function wireAddr(a: Address): Value {
  return Object.defineProperty([a.host, a.port], kPickleTuple, { value: true });
}

export function wireNode(n: DhtNode): Value {
  return [wireId(n.id), wireAddr(n)];
}

export function readId(v: Value | undefined, field: string): bigint {
  if (typeof v === 'bigint' && v >= 0n) return v;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  throw new ProtocolError(`"${field}" must be a non-negative integer id`);
}

export function readAddr(v: Value | undefined, field: string): Address {
  if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && v[0].length > 0 && v[0].length <= 255) {
    const port = v[1];
    if (typeof port === 'number' && Number.isInteger(port) && port > 0 && port <= 65535) return { host: v[0], port };
  }
  throw new ProtocolError(`"${field}" must be a (host, port) pair`);
}

export function readNode(v: Value | undefined, field: string): DhtNode {
  if (!Array.isArray(v) || v.length !== 2) throw new ProtocolError(`"${field}" must be [id, (host, port)]`);
  const id = readId(v[0], field);
  const { host, port } = readAddr(v[1], field);
  return { id, host, port };
}

export function readNodes(v: Value | undefined, field: string, max = 256): DhtNode[] {
  if (!Array.isArray(v) || v.length > max) throw new ProtocolError(`"${field}" must be a list of at most ${max} nodes`);
  return v.map((n, i) => readNode(n, `${field}[${i}]`));
}

export function readString(v: Value | undefined, field: string): string {
  if (typeof v !== 'string') throw new ProtocolError(`"${field}" must be a string`);
  return v;
}

export function readInt(v: Value | undefined, field: string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  if (typeof v === 'bigint' && v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  throw new ProtocolError(`"${field}" must be an integer`);
}

/** A stored key entry on the wire: `[key, value, version]`. */
export function readEntries(v: Value | undefined, field: string): [string, Value, number][] {
  if (!Array.isArray(v) || v.length > 4096) throw new ProtocolError(`"${field}" must be a list of [key, value, version]`);
  return v.map((e, i) => {
    if (!Array.isArray(e) || e.length !== 3) throw new ProtocolError(`"${field}[${i}]" must be [key, value, version]`);
    return [readString(e[0], `${field}[${i}].key`), e[1]!, readInt(e[2], `${field}[${i}].version`)];
  });
}

export function sameNode(a: DhtNode | undefined, b: DhtNode | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.id === b.id && a.port === b.port && a.host === b.host);
}

/** A rough upper bound of a value's pickled size, to keep key batches inside one datagram. */
export function approxSize(v: Value): number {
  // long strings are measured (pickle writes UTF-8); short ones bounded at 3 bytes a unit
  if (typeof v === 'string') return 5 + (v.length > 1024 ? Buffer.byteLength(v, 'utf8') : v.length * 3);
  if (v instanceof Uint8Array) return 5 + v.byteLength;
  if (Array.isArray(v)) return v.reduce<number>((n, x) => n + approxSize(x), 4);
  if (v !== null && typeof v === 'object') {
    let n = 4;
    for (const k in v) n += 5 + k.length * 3 + approxSize((v as { [key: string]: Value })[k]!);
    return n;
  }
  return 10;
}

/** Splits `[key, value, version]` entries into batches of at most `budget` approximate bytes (and 64 entries). */
export function chunkEntries(entries: readonly Value[], budget = 24_000): Value[][] {
  const out: Value[][] = [];
  let batch: Value[] = [];
  let size = 0;
  for (const e of entries) {
    const s = approxSize(e);
    if (batch.length > 0 && (size + s > budget || batch.length >= 64)) {
      out.push(batch);
      batch = [];
      size = 0;
    }
    batch.push(e);
    size += s;
  }
  if (batch.length > 0) out.push(batch);
  return out;
}
