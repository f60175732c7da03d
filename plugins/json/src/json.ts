/**
 * The JSON codec, usable on its own. UTF-8 JSON (RFC 8259) over the Trellis value model:
 * integers beyond 2^53 are written as plain integer literals and read back exactly as bigint,
 * bytes are `{"$bytes": "<base64>"}`, and `__proto__` / `constructor.prototype` keys are refused.
 * Speed comes from letting V8's `JSON.parse`/`JSON.stringify` do the work and checking only
 * what the input could contain: cheap substring probes decide whether a validating walk or the
 * exact parser is needed at all.
 */
import type { Value } from '@trellis/sdk';

/** Builds the error thrown for bad input; `offset` is a character position when known. */
export type ErrorFactory = (message: string, offset?: number) => Error;

export interface JsonOptions {
  /** Deepest container nesting accepted (decode and encode). Default 512. */
  readonly maxDepth?: number;
  /** Largest document accepted by decode, in bytes. Default 16 MiB. */
  readonly maxBytes?: number;
  /** Error factory; defaults to a plain `JsonCodecError` with code TRELLIS_ERR_CODEC. */
  readonly error?: ErrorFactory;
}

/** The fallback error when no factory is passed; same code as the SDK's CodecError. */
export class JsonCodecError extends Error {
  readonly code = 'TRELLIS_ERR_CODEC';
  override readonly name = 'JsonCodecError';
  constructor(
    message: string,
    readonly offset?: number,
  ) {
    super(`json: ${message}`);
  }
}

const defaultError: ErrorFactory = (message, offset) => new JsonCodecError(message, offset);
const DEFAULT_MAX_DEPTH = 512;
const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;
/** CPython's limit on decimal digits of an int read from text (as the xml and pickle codecs): a longer one costs superlinear time to convert, and Python consumers could not read it. */
const MAX_INT_DIGITS = 4300;
/** The key of the one-key object that carries bytes. */
export const BYTES_KEY = '$bytes';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Internal: bad input found by this module, rethrown through the caller's factory. */
class Bad {
  constructor(
    readonly message: string,
    readonly offset?: number,
  ) {}
}

function bad(message: string, offset?: number): never {
  throw new Bad(message, offset);
}

function rethrow(err: unknown, makeError: ErrorFactory, what: string): never {
  if (err instanceof Bad) throw makeError(err.message, err.offset);
  if (err instanceof SyntaxError) throw makeError(err.message.replace(/^JSON\.parse: /, ''));
  const e = makeError(`internal ${what} error: ${err instanceof Error ? err.message : String(err)}`);
  (e as { cause?: unknown }).cause = err;
  throw e;
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** Decodes UTF-8 JSON bytes into a value. */
export function decode(bytes: Uint8Array, options: JsonOptions = {}): Value {
  const makeError = options.error ?? defaultError;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  if (!(bytes instanceof Uint8Array)) throw makeError('decode expects a Uint8Array');
  if (bytes.length > maxBytes) throw makeError(`document of ${bytes.length} bytes exceeds the ${maxBytes}-byte limit`, 0);
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw makeError('document is not valid UTF-8');
  }
  try {
    if (text.length <= 2 * maxDepth + 1) {
      // Short: too short to nest past maxDepth (two characters per level), so probe the text.
      // A 16-digit integer may exceed 2^53, which JSON.parse would round: parse exactly.
      if (hasLongInteger(text)) return new ExactParser(text, maxDepth).document();
      const value = JSON.parse(text);
      // "proto" is in both __proto__ and prototype; escapes (\u...) could spell any key.
      if (text.indexOf('proto') >= 0 || text.indexOf('\\u') >= 0 || text.indexOf(BYTES_KEY) >= 0) return checkParsed(value, 0, maxDepth) as Value;
      return value;
    }
    // Long: one walk checks depth and notes numbers beyond 2^53; keys and bytes too if a probe fires.
    const parsed = JSON.parse(text);
    sawHugeNumber = typeof parsed === 'number' && (parsed >= 9007199254740992 || parsed <= -9007199254740992);
    let value: unknown = parsed;
    if (text.indexOf('proto') >= 0 || text.indexOf('\\u') >= 0 || text.indexOf(BYTES_KEY) >= 0) value = checkParsed(parsed, 0, maxDepth);
    else if (parsed !== null && typeof parsed === 'object') checkDepth(parsed, 0, maxDepth);
    if (sawHugeNumber && hasLongInteger(text)) return new ExactParser(text, maxDepth).document();
    return value as Value;
  } catch (err) {
    rethrow(err, makeError, 'decoder');
  }
}

/** Set by checkParsed when a number's magnitude exceeds 2^53 (it may have been a rounded integer). */
let sawHugeNumber = false;

/**
 * True when `s` may hold an integer literal of 16+ digits (one JSON.parse could round). Probes
 * one character in 16; a long run right after "." or before "." / "e" is a float and is skipped.
 */
function hasLongInteger(s: string): boolean {
  const n = s.length;
  for (let i = 15; i < n; i += 16) {
    if (!isDigit(s.charCodeAt(i))) continue;
    let j = i - 1;
    while (j >= 0 && isDigit(s.charCodeAt(j))) j--;
    let k = i + 1;
    while (k < n && isDigit(s.charCodeAt(k))) k++;
    if (k - j - 1 >= 16) {
      const before = s.charCodeAt(j);
      const after = s.charCodeAt(k);
      if (before !== 0x2e && after !== 0x2e && after !== 0x65 && after !== 0x45) return true;
    }
    i = k - 1; // the next probe, i + 16, is the first that a new run could hold
  }
  return false;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** Walks a JSON.parse result: depth, forbidden keys, and `$bytes` objects turned into bytes. */
function checkParsed(v: unknown, depth: number, maxDepth: number): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (depth >= maxDepth) bad(`nesting deeper than ${maxDepth}`);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const item = v[i];
      if (typeof item === 'object') {
        if (item === null) continue;
        const out = checkParsed(item, depth + 1, maxDepth);
        if (out !== item) v[i] = out;
      } else if (typeof item === 'number' && (item >= 9007199254740992 || item <= -9007199254740992)) sawHugeNumber = true;
    }
    return v;
  }
  const o = v as Record<string, unknown>;
  let keys = 0;
  for (const k in o) {
    keys++;
    checkKey(k, o[k]);
    const item = o[k];
    if (typeof item === 'object') {
      if (item === null) continue;
      const out = checkParsed(item, depth + 1, maxDepth);
      if (out !== item) o[k] = out;
    } else if (typeof item === 'number' && (item >= 9007199254740992 || item <= -9007199254740992)) sawHugeNumber = true;
  }
  return keys === 1 ? bytesObject(o) : o;
}

/** The light walk for long documents no probe flagged: depth and numbers beyond 2^53 only. */
function checkDepth(v: unknown, depth: number, maxDepth: number): void {
  if (depth >= maxDepth) bad(`nesting deeper than ${maxDepth}`);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const item = v[i];
      if (typeof item === 'object') {
        if (item !== null) checkDepth(item, depth + 1, maxDepth);
      } else if (typeof item === 'number' && (item >= 9007199254740992 || item <= -9007199254740992)) sawHugeNumber = true;
    }
    return;
  }
  const o = v as Record<string, unknown>;
  for (const k in o) {
    const item = o[k];
    if (typeof item === 'object') {
      if (item !== null) checkDepth(item, depth + 1, maxDepth);
    } else if (typeof item === 'number' && (item >= 9007199254740992 || item <= -9007199254740992)) sawHugeNumber = true;
  }
}

function checkKey(k: string, value: unknown): void {
  if (k === '__proto__') bad('key "__proto__" is refused (prototype pollution)');
  if (k === 'constructor' && value !== null && typeof value === 'object' && Object.prototype.hasOwnProperty.call(value, 'prototype')) {
    bad('key "constructor" holding "prototype" is refused (prototype pollution)');
  }
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A one-key object `{"$bytes": "<base64>"}` becomes a Uint8Array; anything else stays. */
function bytesObject(o: Record<string, unknown>): unknown {
  const b64 = o[BYTES_KEY];
  if (typeof b64 !== 'string') return o;
  if (!BASE64.test(b64)) bad('"$bytes" holds invalid base64');
  return new Uint8Array(Buffer.from(b64, 'base64'));
}

const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;

/** A strict recursive-descent JSON parser that keeps big integers exact (the rare path). */
class ExactParser {
  #i = 0;
  constructor(
    readonly s: string,
    readonly maxDepth: number,
  ) {}

  document(): Value {
    const v = this.#value(0);
    this.#ws();
    if (this.#i < this.s.length) bad(`unexpected character after the document at ${this.#i}`, this.#i);
    return v as Value;
  }

  #ws(): void {
    const s = this.s;
    let i = this.#i;
    for (;;) {
      const c = s.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
    this.#i = i;
  }

  #value(depth: number): unknown {
    this.#ws();
    const s = this.s;
    const c = s.charCodeAt(this.#i);
    switch (c) {
      case 0x7b: // {
        return this.#object(depth);
      case 0x5b: // [
        return this.#array(depth);
      case 0x22: // "
        return this.#string();
      case 0x74:
        return this.#literal('true', true);
      case 0x66:
        return this.#literal('false', false);
      case 0x6e:
        return this.#literal('null', null);
      default:
        if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.#number();
        return bad(Number.isNaN(c) ? 'unexpected end of document' : `unexpected character at ${this.#i}`, this.#i);
    }
  }

  #literal(word: string, value: unknown): unknown {
    if (!this.s.startsWith(word, this.#i)) bad(`unexpected token at ${this.#i}`, this.#i);
    this.#i += word.length;
    return value;
  }

  #number(): number | bigint {
    NUMBER.lastIndex = this.#i;
    const m = NUMBER.exec(this.s);
    if (!m) return bad(`malformed number at ${this.#i}`, this.#i);
    this.#i += m[0].length;
    const text = m[0];
    if (m[1] === undefined && m[2] === undefined && text.length > 15) {
      const digits = text.length - (text.charCodeAt(0) === 0x2d ? 1 : 0);
      if (digits > MAX_INT_DIGITS) bad(`integer of ${digits} digits exceeds the ${MAX_INT_DIGITS}-digit limit at ${this.#i - text.length}`, this.#i - text.length);
      const big = BigInt(text);
      return big >= -9007199254740991n && big <= 9007199254740991n ? Number(big) : big;
    }
    return Number(text);
  }

  #string(): string {
    const s = this.s;
    const start = this.#i;
    let i = start + 1;
    for (;;) {
      const q = s.indexOf('"', i);
      if (q < 0) bad(`unterminated string at ${start}`, start);
      let slashes = 0;
      for (let k = q - 1; s.charCodeAt(k) === 0x5c; k--) slashes++;
      i = q + 1;
      if (slashes % 2 === 0) break;
    }
    this.#i = i;
    // JSON.parse of the token validates escapes and control characters.
    return JSON.parse(s.slice(start, i)) as string;
  }

  #array(depth: number): unknown[] {
    if (depth >= this.maxDepth) bad(`nesting deeper than ${this.maxDepth}`, this.#i);
    this.#i++;
    const out: unknown[] = [];
    this.#ws();
    if (this.s.charCodeAt(this.#i) === 0x5d) {
      this.#i++;
      return out;
    }
    for (;;) {
      out.push(this.#value(depth + 1));
      this.#ws();
      const c = this.s.charCodeAt(this.#i++);
      if (c === 0x5d) return out;
      if (c !== 0x2c) bad(`expected , or ] at ${this.#i - 1}`, this.#i - 1);
    }
  }

  #object(depth: number): unknown {
    if (depth >= this.maxDepth) bad(`nesting deeper than ${this.maxDepth}`, this.#i);
    this.#i++;
    const out: Record<string, unknown> = {};
    let keys = 0;
    this.#ws();
    if (this.s.charCodeAt(this.#i) === 0x7d) {
      this.#i++;
      return out;
    }
    for (;;) {
      this.#ws();
      if (this.s.charCodeAt(this.#i) !== 0x22) bad(`expected a string key at ${this.#i}`, this.#i);
      const key = this.#string();
      this.#ws();
      if (this.s.charCodeAt(this.#i++) !== 0x3a) bad(`expected : at ${this.#i - 1}`, this.#i - 1);
      const value = this.#value(depth + 1);
      checkKey(key, value);
      if (!Object.prototype.hasOwnProperty.call(out, key)) keys++;
      out[key] = value;
      this.#ws();
      const c = this.s.charCodeAt(this.#i++);
      if (c === 0x7d) return keys === 1 ? bytesObject(out) : out;
      if (c !== 0x2c) bad(`expected , or } at ${this.#i - 1}`, this.#i - 1);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding

const NEEDS_WRITER = 1;

/** Encodes a value as UTF-8 JSON. NaN, ±Infinity and anything outside the value model are refused. */
export function encode(value: Value, options: JsonOptions = {}): Uint8Array {
  const maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  try {
    // One validating walk; plain JSON data then goes straight to V8's serializer.
    const flags = value !== null && typeof value === 'object' ? scanObject(value, 0, maxDepth) : scan(value, 0, maxDepth);
    const text = flags & NEEDS_WRITER ? write(value) : JSON.stringify(value);
    return Buffer.from(text, 'utf8');
  } catch (err) {
    rethrow(err, options.error ?? defaultError, 'encoder');
  }
}

/** Validates `v`; returns NEEDS_WRITER when JSON.stringify alone would get it wrong. */
function scan(v: unknown, depth: number, maxDepth: number): number {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return 0;
    case 'number':
      return scanNumber(v);
    case 'bigint':
      return NEEDS_WRITER;
    case 'object':
      return v === null ? 0 : scanObject(v, depth, maxDepth);
    case 'undefined':
      return bad('cannot encode undefined');
    default:
      return bad(`cannot encode a ${typeof v}: outside the value model`);
  }
}

function scanNumber(v: number): number {
  if (!Number.isFinite(v)) bad(`cannot encode ${v}: JSON has no NaN or Infinity`);
  // Integral values beyond 2^53 would read back as bigint: the writer keeps them floats.
  return v > 9007199254740991 || v < -9007199254740991 ? NEEDS_WRITER : 0;
}

/** Containers; scalars are checked inline so the common case makes no call per item. */
function scanObject(v: object, depth: number, maxDepth: number): number {
  if (depth >= maxDepth) bad(`nesting deeper than ${maxDepth} (or a cyclic value)`);
  let flags = 0;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const item = v[i];
      const t = typeof item;
      if (t === 'string' || t === 'boolean') continue;
      if (t === 'number') flags |= scanNumber(item);
      else if (t === 'object') {
        if (item !== null) flags |= scanObject(item, depth + 1, maxDepth);
      } else if (item === undefined) bad(`cannot encode undefined (array index ${i})`);
      else flags |= scan(item, depth + 1, maxDepth);
    }
    return flags;
  }
  const proto = Object.getPrototypeOf(v);
  // Plain objects, the common case, skip the instanceof walk.
  if (proto !== Object.prototype && proto !== null) {
    if (v instanceof Uint8Array) return NEEDS_WRITER;
    bad(`cannot encode ${proto?.constructor?.name ?? 'object'}: outside the value model`);
  }
  const o = v as Record<string, unknown>;
  let keys = 0;
  for (const k in o) {
    keys++;
    const item = o[k];
    const t = typeof item;
    if (t === 'string' || t === 'boolean') continue;
    if (t === 'number') flags |= scanNumber(item as number);
    else if (t === 'object') {
      if (item !== null) flags |= scanObject(item as object, depth + 1, maxDepth);
    } else if (item === undefined) bad(`cannot encode undefined (key ${JSON.stringify(k)})`);
    else flags |= scan(item, depth + 1, maxDepth);
  }
  if (keys === 1 && typeof o[BYTES_KEY] === 'string') bad('an object whose only key is "$bytes" is reserved for bytes');
  return flags;
}

/** The general writer, for values holding bigint, bytes or integral floats beyond 2^53. */
function write(v: unknown): string {
  switch (typeof v) {
    case 'bigint':
      return v.toString();
    case 'number':
      return Number.isInteger(v) && (v > 9007199254740991 || v < -9007199254740991) ? v.toExponential() : JSON.stringify(v);
    case 'object': {
      if (v === null) return 'null';
      if (Array.isArray(v)) {
        let s = '[';
        for (let i = 0; i < v.length; i++) s += (i ? ',' : '') + write(v[i]);
        return s + ']';
      }
      if (v instanceof Uint8Array) {
        return `{"${BYTES_KEY}":"${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')}"}`;
      }
      let s = '{';
      let first = true;
      for (const k in v as Record<string, unknown>) {
        s += (first ? '' : ',') + JSON.stringify(k) + ':' + write((v as Record<string, unknown>)[k]);
        first = false;
      }
      return s + '}';
    }
    default:
      return JSON.stringify(v);
  }
}
