/**
 * Identifier hashing for the Chord ring. The reference hash is FNV-1a over a string's code
 * points, reduced mod 2^m (m = 10 by default), and a node's id is the hash of Python's tuple
 * repr of its address, `"('localhost', 5000)"`. SHA-1 truncated to m bits is the stronger option
 * for real deployments and large rings (it spreads ids evenly; FNV-1a clusters short inputs).
 */
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../errors.js';

/** Maps a string to an identifier in [0, 2^bits). */
export type DhtHash = (text: string, bits: number) => bigint;

const FNV_OFFSET = 2166136261;
const FNV_PRIME = 16777619;

/**
 * The reference `dht_hash`: FNV-1a over code points with unbounded integers, then mod 2^bits.
 * Reducing mod 2^bits at every step gives the same low bits, so no big intermediate is needed.
 */
export const fnv1aHash: DhtHash = (text, bits) => {
  if (bits <= 32) {
    let h = FNV_OFFSET >>> 0;
    for (const ch of text) h = Math.imul((h ^ ch.codePointAt(0)!) >>> 0, FNV_PRIME) >>> 0;
    return BigInt(h) & ((1n << BigInt(bits)) - 1n);
  }
  const mask = (1n << BigInt(bits)) - 1n;
  let h = BigInt(FNV_OFFSET);
  for (const ch of text) h = ((h ^ BigInt(ch.codePointAt(0)!)) * BigInt(FNV_PRIME)) & mask;
  return h & mask;
};

/** SHA-1 of the UTF-8 text, keeping the leading `bits` bits (bits ≤ 160). */
export const sha1Hash: DhtHash = (text, bits) => {
  const digest = createHash('sha1').update(text, 'utf8').digest('hex');
  return BigInt('0x' + digest) >> BigInt(160 - bits);
};

export const hashes = Object.freeze({ fnv1a: fnv1aHash, sha1: sha1Hash });
export type HashName = keyof typeof hashes;

/** Resolves a hash by name, checking the bit width it supports. */
export function resolveHash(hash: HashName | DhtHash, bits: number): DhtHash {
  if (!Number.isInteger(bits) || bits < 1 || bits > 160) throw new InvalidArgumentError(`bits must be an integer in 1..160, got ${bits}`);
  if (typeof hash === 'function') return hash;
  const fn = hashes[hash];
  if (!fn) throw new InvalidArgumentError(`unknown DHT hash "${String(hash)}"; use one of: ${Object.keys(hashes).join(', ')}`);
  return fn;
}

/** Python's repr of a `(host, port)` tuple, the text a node id is hashed from. */
export function addressRepr(host: string, port: number): string {
  return `(${pythonStrRepr(host)}, ${port})`;
}

/** Python's `repr(str)` for the printable strings hostnames are made of. */
function pythonStrRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  const body = s.replace(/\\/g, '\\\\').replace(quote === "'" ? /'/g : /"/g, `\\${quote}`);
  return `${quote}${body}${quote}`;
}
