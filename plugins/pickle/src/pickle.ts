/**
 * A safe CPython pickle codec, usable on its own (the DHT imports it for UDP datagrams).
 * `decode` reads protocols 0–5 — FRAME, memo, the string/bytes/int/long/float/list/tuple/dict/
 * set/frozenset/bool/None opcodes — and refuses every opcode that imports or calls (GLOBAL,
 * STACK_GLOBAL, REDUCE, INST, OBJ, NEWOBJ, NEWOBJ_EX, BUILD, PERSID, BINPERSID, EXT1/2/4) the
 * moment it is read, before its argument is even looked at. `encode` writes protocol 4, which
 * every Python ≥ 3.4 reads. Errors come from a factory the caller passes, so this file has no
 * run-time dependency on the SDK.
 */
import type { Value } from '@trellis/sdk';

/** Builds the error thrown for bad input; `offset` is the byte position in the pickle. */
export type ErrorFactory = (message: string, offset?: number) => Error;

export interface PickleLimits {
  /** Deepest container nesting accepted (decode and encode). Default 512. */
  readonly maxDepth?: number;
  /** Largest pickle accepted by decode, in bytes. Default 16 MiB. */
  readonly maxBytes?: number;
  /**
   * Most values a decoded result may expand to (memo references count each time), and most
   * containers or stack entries a pickle may create. Default 4,000,000.
   */
  readonly maxNodes?: number;
  /**
   * Most bytes of text and binary data the decoded value holds when every shared reference is
   * expanded (a string fetched from the memo 3,000 times counts 3,000 times: every translation
   * writes it out that often). Default 64 MiB.
   */
  readonly maxExpandedBytes?: number;
}

export interface PickleOptions extends PickleLimits {
  /** Error factory; defaults to a plain `PickleError` with code TRELLIS_ERR_CODEC. */
  readonly error?: ErrorFactory;
  /**
   * Decode: mark tuples (non-enumerable `TUPLE` property) so re-encoding writes tuples again,
   * for relays of data they do not understand. Off by default: marking costs ~0.1 µs a tuple.
   */
  readonly tuples?: boolean;
}

/** Marks an array as a Python tuple: `encode` writes marked arrays as tuples; `decode` marks them with `tuples: true`. */
export const TUPLE: unique symbol = Symbol.for('trellis.pickle.tuple') as never;

/** Returns `items` marked as a tuple (a non-enumerable mark: equality and JSON ignore it). */
export function tuple<T extends Value[]>(...items: T): T {
  Object.defineProperty(items, TUPLE, { value: true });
  return items;
}

/** True when `value` is an array decoded from, or marked as, a Python tuple. */
export function isTuple(value: unknown): boolean {
  return Array.isArray(value) && (value as unknown as Record<symbol, unknown>)[TUPLE] === true;
}

/** The fallback error when no factory is passed; same code as the SDK's CodecError. */
export class PickleError extends Error {
  readonly code = 'TRELLIS_ERR_CODEC';
  override readonly name = 'PickleError';
  constructor(
    message: string,
    readonly offset?: number,
  ) {
    super(`pickle: ${message}`);
  }
}

const defaultError: ErrorFactory = (message, offset) => new PickleError(message, offset);

const DEFAULTS = { maxDepth: 512, maxBytes: 16 * 1024 * 1024, maxNodes: 4_000_000, maxExpandedBytes: 64 * 1024 * 1024 } as const;
/** The highest protocol this decoder understands (Python 3.8+'s HIGHEST_PROTOCOL). */
export const HIGHEST_PROTOCOL = 5;
/** The protocol `encode` writes. */
export const ENCODE_PROTOCOL = 4;
/** CPython 3.11's default limit on decimal digits of an int read from text. */
const MAX_INT_DIGITS = 4300;
/** Largest LONG4 payload accepted: 64 KiB of two's complement (~158,000 decimal digits). */
const MAX_LONG_BYTES = 65536;

// Opcodes (pickletools names).
const MARK = 0x28, STOP = 0x2e, POP = 0x30, POP_MARK = 0x31, DUP = 0x32;
const FLOAT = 0x46, INT = 0x49, BININT = 0x4a, BININT1 = 0x4b, LONG = 0x4c, BININT2 = 0x4d, NONE = 0x4e;
const STRING = 0x53, BINSTRING = 0x54, SHORT_BINSTRING = 0x55, UNICODE = 0x56, BINUNICODE = 0x58;
const APPEND = 0x61, BINGET = 0x68, LONG_BINGET = 0x6a, LIST = 0x6c, APPENDS = 0x65, DICT = 0x64, GET = 0x67;
const PUT = 0x70, BINPUT = 0x71, LONG_BINPUT = 0x72, SETITEM = 0x73, TUPLE_OP = 0x74, SETITEMS = 0x75;
const EMPTY_DICT = 0x7d, EMPTY_LIST = 0x5d, EMPTY_TUPLE = 0x29, BINFLOAT = 0x47;
const PROTO = 0x80, TUPLE1 = 0x85, TUPLE2 = 0x86, TUPLE3 = 0x87, NEWTRUE = 0x88, NEWFALSE = 0x89;
const LONG1 = 0x8a, LONG4 = 0x8b, BINBYTES = 0x42, SHORT_BINBYTES = 0x43;
const SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d, BINBYTES8 = 0x8e, EMPTY_SET = 0x8f, ADDITEMS = 0x90;
const FROZENSET = 0x91, MEMOIZE = 0x94, FRAME = 0x95, BYTEARRAY8 = 0x96, NEXT_BUFFER = 0x97, READONLY_BUFFER = 0x98;

/** Opcodes that import a global, call a callable or consult a persistent-id hook: never executed. */
export const FORBIDDEN_OPCODES: Readonly<Record<number, string>> = Object.freeze({
  0x63: 'GLOBAL',
  0x93: 'STACK_GLOBAL',
  0x52: 'REDUCE',
  0x69: 'INST',
  0x6f: 'OBJ',
  0x81: 'NEWOBJ',
  0x92: 'NEWOBJ_EX',
  0x62: 'BUILD',
  0x50: 'PERSID',
  0x51: 'BINPERSID',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
});

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

/** Internal: a decode that hit bad input. Rethrown through the caller's factory. */
class Bad {
  constructor(
    readonly message: string,
    readonly offset: number,
  ) {}
}

function bad(message: string, offset: number): never {
  throw new Bad(message, offset);
}

/** Decodes a pickle into the Trellis value model. Tuples, sets and frozensets become arrays. */
/**
 * `maxNodes`, when given, tightens `options.maxNodes` for this call only (the DHT passes a bound
 * per datagram). It is a separate argument so the options object keeps one shape: building
 * `{ ...options, maxNodes }` per call cost more than the decode of a small datagram itself.
 */
export function decode(bytes: Uint8Array, options: PickleOptions = {}, maxNodes?: number): Value {
  const makeError = options.error ?? defaultError;
  const maxBytes = options.maxBytes ?? DEFAULTS.maxBytes;
  if (!(bytes instanceof Uint8Array)) throw makeError('decode expects a Uint8Array');
  if (bytes.length > maxBytes) throw makeError(`pickle of ${bytes.length} bytes exceeds the ${maxBytes}-byte limit`, 0);
  try {
    return new Decoder(bytes, options, maxNodes).run();
  } catch (err) {
    if (err instanceof Bad) throw makeError(err.message, err.offset);
    // A bug or an engine limit must still surface as the codec's typed error, with the cause kept.
    const e = makeError(`internal decoder error: ${err instanceof Error ? err.message : String(err)}`);
    (e as { cause?: unknown }).cause = err;
    throw e;
  }
}

class Decoder {
  readonly #b: Uint8Array;
  readonly #maxDepth: number;
  readonly #maxNodes: number;
  readonly #maxExpanded: number;
  /** Bytes of strings and byte strings fetched again from the memo (or DUPed): aliasing's produced size. */
  #aliased = 0;
  #pos = 0;
  /** A container reached twice (memo GET or DUP) may be shared or cyclic: checked at STOP. */
  #shared = false;
  #memo: unknown[] = [];
  readonly #markTuples: boolean;
  /** Containers created and batch inserts so far: bounds allocation, not just the input size. */
  #containers = 0;
  /** Arrays built by EMPTY_SET, the only valid ADDITEMS targets. */
  #sets: WeakSet<unknown[]> | undefined;

  constructor(bytes: Uint8Array, limits: PickleOptions, maxNodes?: number) {
    this.#b = bytes;
    this.#maxDepth = limits.maxDepth ?? DEFAULTS.maxDepth;
    this.#maxNodes = maxNodes === undefined ? limits.maxNodes ?? DEFAULTS.maxNodes : Math.min(maxNodes, limits.maxNodes ?? maxNodes);
    this.#maxExpanded = limits.maxExpandedBytes ?? DEFAULTS.maxExpandedBytes;
    // what is read once is at most the input; every alias adds to it
    this.#aliased = bytes.length;
    this.#markTuples = limits.tuples === true;
  }

  #tuple(items: unknown[]): unknown[] {
    if (this.#markTuples) Object.defineProperty(items, TUPLE, { value: true });
    return items;
  }

  run(): Value {
    const b = this.#b;
    const end = b.length;
    // A manual stack pointer: truncating to a mark is one assignment, no pop() loop.
    const stack: unknown[] = [];
    let sp = 0;
    // Height of each stack slot (0 for scalars): nesting is bounded as containers are built.
    const hs: number[] = [];
    const marks: number[] = [];
    const maxNodes = this.#maxNodes;
    const memo = this.#memo;
    // The read position lives in a local for the hot opcodes; cold ones sync it with #pos.
    let pos = 0;
    for (;;) {
      if (pos >= end) bad(end === 0 ? 'empty input' : 'truncated pickle: no STOP opcode', pos);
      // Memory is bounded too: a pickle of a million EMPTY_LISTs must not allocate a million lists.
      if (sp > maxNodes) bad(`pickle creates more than ${maxNodes} values`, pos);
      const at = pos;
      const op = b[pos++];
      switch (op) {
        case 0x80: { // PROTO
          if (pos >= end) bad('truncated pickle', at);
          const v = b[pos++];
          if (v > HIGHEST_PROTOCOL) bad(`unsupported pickle protocol ${v} (this decoder reads 0-${HIGHEST_PROTOCOL})`, at);
          break;
        }
        case 0x95: { // FRAME
          this.#pos = pos;
          const n = this.#u64();
          pos = this.#pos;
          if (n > end - pos) bad(`truncated pickle: frame of ${n} bytes, ${end - pos} left`, at);
          break;
        }
        case 0x2e: { // STOP
          if (marks.length) bad('STOP inside an unclosed MARK', at);
          if (sp !== 1) bad(sp === 0 ? 'STOP with an empty stack' : `STOP with ${sp} values on the stack`, at);
          const result = stack[0];
          if (this.#shared) this.#check(result, at);
          return result as Value;
        }
        // --- stack and marks
        case 0x28: // MARK
          marks.push(sp);
          break;
        case 0x30: // POP
          if (sp > (marks.length ? marks[marks.length - 1] : 0)) sp--;
          else if (marks.length) marks.pop(); // POP of a bare mark, as CPython allows
          else bad('POP on an empty stack', at);
          break;
        case 0x31: // POP_MARK
          sp = this.#mark(marks, at);
          break;
        case 0x32: { // DUP
          const top = this.#top(stack, marks, at, sp);
          if (top !== null && typeof top === 'object' && !(top instanceof Uint8Array)) this.#shared = true;
          else this.#alias(top, at);
          hs[sp] = hs[sp - 1];
          stack[sp++] = top;
          break;
        }
        // --- constants
        case 0x4e: // NONE
          hs[sp] = 0;
          stack[sp++] = null;
          break;
        case 0x88: // NEWTRUE
          hs[sp] = 0;
          stack[sp++] = true;
          break;
        case 0x89: // NEWFALSE
          hs[sp] = 0;
          stack[sp++] = false;
          break;
        // --- integers
        case 0x4b: // BININT1
          if (pos >= end) bad('truncated pickle', at);
          hs[sp] = 0;
          stack[sp++] = b[pos++];
          break;
        case 0x4d: // BININT2
          if (pos + 2 > end) bad('truncated pickle', at);
          hs[sp] = 0;
          stack[sp++] = b[pos] | (b[pos + 1] << 8);
          pos += 2;
          break;
        case 0x4a: // BININT
          if (pos + 4 > end) bad('truncated pickle', at);
          hs[sp] = 0;
          stack[sp++] = b[pos] | (b[pos + 1] << 8) | (b[pos + 2] << 16) | (b[pos + 3] << 24);
          pos += 4;
          break;
        case 0x8a: { // LONG1
          this.#pos = pos;
          const n = this.#u8();
          hs[sp] = 0;
          stack[sp++] = this.#long(n, at);
          pos = this.#pos;
          break;
        }
        case 0x8b: { // LONG4
          this.#pos = pos;
          const n = this.#i32(at);
          if (n < 0) bad('LONG4 with a negative length', at);
          if (n > MAX_LONG_BYTES) bad(`integer of ${n} bytes exceeds the ${MAX_LONG_BYTES}-byte limit`, at);
          hs[sp] = 0;
          stack[sp++] = this.#long(n, at);
          pos = this.#pos;
          break;
        }
        case 0x49: { // INT
          this.#pos = pos;
          const line = this.#line(at);
          // Protocol 0 writes booleans as INT 01 / INT 00.
          hs[sp] = 0;
          stack[sp++] = line === '01' ? true : line === '00' ? false : this.#textInt(line, at);
          pos = this.#pos;
          break;
        }
        case 0x4c: { // LONG
          this.#pos = pos;
          const line = this.#line(at);
          hs[sp] = 0;
          stack[sp++] = this.#textInt(line.endsWith('L') ? line.slice(0, -1) : line, at);
          pos = this.#pos;
          break;
        }
        // --- floats
        case 0x47: // BINFLOAT
          if (pos + 8 > end) bad('truncated pickle', at);
          hs[sp] = 0;
          stack[sp++] = readFloat64BE(b, pos);
          pos += 8;
          break;
        case 0x46: // FLOAT
          this.#pos = pos;
          hs[sp] = 0;
          stack[sp++] = textFloat(this.#line(at), at);
          pos = this.#pos;
          break;
        // --- text
        case 0x8c: { // SHORT_BINUNICODE
          if (pos >= end) bad('truncated pickle', at);
          const n = b[pos++];
          if (n > end - pos) bad(`truncated pickle: ${n} bytes announced, ${end - pos} left`, at);
          hs[sp] = 0;
          stack[sp++] = this.#utf8At(pos, n, at);
          pos += n;
          break;
        }
        case 0x58: // BINUNICODE
          this.#pos = pos;
          hs[sp] = 0;
          stack[sp++] = this.#utf8(this.#u32(at), at);
          pos = this.#pos;
          break;
        case 0x8d: // BINUNICODE8
          this.#pos = pos;
          hs[sp] = 0;
          stack[sp++] = this.#utf8(this.#u64(), at);
          pos = this.#pos;
          break;
        case 0x56: // UNICODE
          this.#pos = pos;
          hs[sp] = 0;
          stack[sp++] = rawUnicodeEscape(this.#lineBytes(at), at);
          pos = this.#pos;
          break;
        // Python 2 `str`: Python 3 reads it as text; bytes above 0x7f are taken as Latin-1.
        case 0x55: { // SHORT_BINSTRING
          this.#pos = pos;
          const n = this.#u8();
          hs[sp] = 0;
          stack[sp++] = latin1(this.#take(n, at));
          pos = this.#pos;
          break;
        }
        case 0x54: { // BINSTRING
          this.#pos = pos;
          const n = this.#i32(at);
          if (n < 0) bad('BINSTRING with a negative length', at);
          hs[sp] = 0;
          stack[sp++] = latin1(this.#take(n, at));
          pos = this.#pos;
          break;
        }
        case 0x53: // STRING
          this.#pos = pos;
          hs[sp] = 0;
          stack[sp++] = latin1(stringEscape(this.#lineBytes(at), at));
          pos = this.#pos;
          break;
        // --- bytes
        case 0x43: { // SHORT_BINBYTES
          this.#pos = pos;
          const n = this.#u8();
          hs[sp] = 0;
          stack[sp++] = new Uint8Array(this.#take(n, at));
          pos = this.#pos;
          break;
        }
        case 0x42: // BINBYTES
          this.#pos = pos;
          hs[sp] = 0;
          stack[sp++] = new Uint8Array(this.#take(this.#u32(at), at));
          pos = this.#pos;
          break;
        case 0x8e: // BINBYTES8
        case 0x96: // BYTEARRAY8
          this.#pos = pos;
          hs[sp] = 0;
          stack[sp++] = new Uint8Array(this.#take(this.#u64(), at));
          pos = this.#pos;
          break;
        case 0x97: // NEXT_BUFFER
          return bad('NEXT_BUFFER: out-of-band buffers are not supported', at);
        case 0x98: // READONLY_BUFFER
          this.#top(stack, marks, at, sp);
          break;
        // --- lists
        case 0x5d: // EMPTY_LIST
          hs[sp] = 1;
          if (++this.#containers > maxNodes) bad(`pickle creates more than ${maxNodes} values`, at);
          stack[sp++] = [];
          break;
        case 0x6c: // LIST
          {
            const mark = this.#mark(marks, at);
            hs[mark] = this.#height(hs, mark, sp, at);
            stack[mark] = stack.slice(mark, sp);
            sp = mark + 1;
          }
          break;
        case 0x61: { // APPEND
          if (sp - 1 <= (marks.length ? marks[marks.length - 1] : 0)) bad('APPEND needs a list and an item', at);
          const item = stack[--sp];
          const list = stack[sp - 1];
          this.#grow(hs, sp - 1, hs[sp] + 1, at);
          if (!Array.isArray(list) || this.#sets?.has(list)) bad('APPEND to something that is not a list', at);
          list.push(item);
          break;
        }
        case 0x65: { // APPENDS
          const mark = this.#mark(marks, at);
          const list = this.#top(stack, marks, at, mark);
          if (!Array.isArray(list) || this.#sets?.has(list)) bad('APPENDS to something that is not a list', at);
          // Straight from the stack: no intermediate array per container.
          for (let i = mark; i < sp; i++) list.push(stack[i]);
          this.#grow(hs, mark - 1, this.#height(hs, mark, sp, at), at);
          sp = mark;
          break;
        }
        // --- tuples
        case 0x29: // EMPTY_TUPLE
          hs[sp] = 1;
          if (++this.#containers > maxNodes) bad(`pickle creates more than ${maxNodes} values`, at);
          stack[sp++] = this.#tuple([]);
          break;
        case 0x74: // TUPLE_OP
          {
            const mark = this.#mark(marks, at);
            hs[mark] = this.#height(hs, mark, sp, at);
            stack[mark] = this.#tuple(stack.slice(mark, sp));
            sp = mark + 1;
          }
          break;
        case 0x85: // TUPLE1
        case 0x86: // TUPLE2
        case 0x87: { // TUPLE3
          const n = op - TUPLE1 + 1;
          const floor = marks.length ? marks[marks.length - 1] : 0;
          if (sp - n < floor) bad(`TUPLE${n} needs ${n} items on the stack`, at);
          const h = this.#height(hs, sp - n, sp, at);
          const t = this.#tuple(stack.slice(sp - n, sp));
          sp -= n;
          hs[sp] = h;
          stack[sp++] = t;
          break;
        }
        // --- dicts
        case 0x7d: // EMPTY_DICT
          hs[sp] = 1;
          if (++this.#containers > maxNodes) bad(`pickle creates more than ${maxNodes} values`, at);
          stack[sp++] = {};
          break;
        case 0x64: { // DICT
          const mark = this.#mark(marks, at);
          const dict = {};
          if ((sp - mark) & 1) bad('odd number of items for a dict', at);
          for (let i = mark; i < sp; i += 2) this.#store(dict, stack[i], stack[i + 1], at);
          const h = this.#height(hs, mark, sp, at);
          sp = mark;
          hs[sp] = h;
          stack[sp++] = dict;
          break;
        }
        case 0x73: { // SETITEM
          if (sp - 3 < (marks.length ? marks[marks.length - 1] : 0)) bad('SETITEM needs a dict, a key and a value', at);
          sp -= 2;
          this.#setItem(stack[sp - 1], stack[sp], stack[sp + 1], at);
          this.#grow(hs, sp - 1, hs[sp + 1] + 1, at);
          break;
        }
        case 0x75: { // SETITEMS
          const mark = this.#mark(marks, at);
          const dict = this.#dict(this.#top(stack, marks, at, mark), at);
          if ((sp - mark) & 1) bad('odd number of items for a dict', at);
          for (let i = mark; i < sp; i += 2) {
            const key = stack[i];
            // The usual str key needs no conversion; everything else takes #store's checks.
            if (typeof key === 'string' && key !== '__proto__') dict[key] = stack[i + 1];
            else this.#store(dict, key, stack[i + 1], at);
          }
          this.#grow(hs, mark - 1, this.#height(hs, mark, sp, at), at);
          sp = mark;
          break;
        }
        // --- sets
        case 0x8f: { // EMPTY_SET
          const set: unknown[] = [];
          (this.#sets ??= new WeakSet()).add(set);
          hs[sp] = 1;
          if (++this.#containers > maxNodes) bad(`pickle creates more than ${maxNodes} values`, at);
          stack[sp++] = set;
          break;
        }
        case 0x90: { // ADDITEMS
          const mark = this.#mark(marks, at);
          const set = this.#top(stack, marks, at, mark);
          if (!Array.isArray(set) || !this.#sets?.has(set)) bad('ADDITEMS to something that is not a set', at);
          for (let i = mark; i < sp; i++) set.push(stack[i]);
          this.#grow(hs, mark - 1, this.#height(hs, mark, sp, at), at);
          sp = mark;
          break;
        }
        case 0x91: // FROZENSET
          {
            const mark = this.#mark(marks, at);
            hs[mark] = this.#height(hs, mark, sp, at);
            stack[mark] = stack.slice(mark, sp);
            sp = mark + 1;
          }
          break;
        // --- memo
        // The hot memo opcodes are written out here: a method call each costs more than the work.
        case 0x94: // MEMOIZE
          if (sp <= (marks.length ? marks[marks.length - 1] : 0)) bad('stack underflow', at);
          memo[memo.length] = stack[sp - 1];
          break;
        case 0x71: { // BINPUT
          if (pos >= end) bad('truncated pickle', at);
          // A one-byte index is always within #put's gap limit.
          const index = b[pos++];
          if (sp <= (marks.length ? marks[marks.length - 1] : 0)) bad('stack underflow', at);
          memo[index] = stack[sp - 1];
          break;
        }
        case 0x72: // LONG_BINPUT
          this.#pos = pos;
          this.#put(this.#u32(at), this.#top(stack, marks, at, sp), at);
          pos = this.#pos;
          break;
        case 0x70: // PUT
          this.#pos = pos;
          this.#put(this.#textIndex(at), this.#top(stack, marks, at, sp), at);
          pos = this.#pos;
          break;
        case 0x68: { // BINGET
          if (pos >= end) bad('truncated pickle', at);
          const index = b[pos++];
          const v = memo[index];
          if (v === undefined) bad(`memo key ${index} was never stored`, at);
          if (typeof v === 'string') {
            // the common alias (a repeated dict key): counted inline
            if ((this.#aliased += v.length) > this.#maxExpanded) this.#alias(v, at);
          } else if (v !== null && typeof v === 'object') {
            if (v instanceof Uint8Array) this.#alias(v, at);
            else this.#shared = true;
          }
          hs[sp] = 0;
          stack[sp++] = v;
          break;
        }
        case 0x6a: // LONG_BINGET
          this.#pos = pos;
          hs[sp] = 0;
          stack[sp++] = this.#get(this.#u32(at), at);
          pos = this.#pos;
          break;
        case 0x67: // GET
          this.#pos = pos;
          hs[sp] = 0;
          stack[sp++] = this.#get(this.#textIndex(at), at);
          pos = this.#pos;
          break;
        default: {
          const name = FORBIDDEN_OPCODES[op];
          if (name !== undefined) bad(`forbidden opcode ${name} (0x${op.toString(16)}): it imports or calls code, refused`, at);
          bad(`unknown opcode 0x${op.toString(16).padStart(2, '0')}`, at);
        }
      }
    }
  }

  // --- reading primitives

  #need(n: number, at: number): void {
    if (this.#pos + n > this.#b.length) bad('truncated pickle', at);
  }

  #u8(): number {
    if (this.#pos >= this.#b.length) bad('truncated pickle', this.#pos - 1);
    return this.#b[this.#pos++];
  }

  #i32(at: number): number {
    this.#need(4, at);
    const b = this.#b;
    const p = this.#pos;
    this.#pos = p + 4;
    return b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24);
  }

  #u32(at: number): number {
    return this.#i32(at) >>> 0;
  }

  #u64(): number {
    const at = this.#pos - 1;
    this.#need(8, at);
    const lo = this.#i32(at) >>> 0;
    const hi = this.#i32(at) >>> 0;
    // Anything at or above 2^53 cannot fit in this input anyway.
    if (hi >= 0x200000) bad('length out of range', at);
    return hi * 0x100000000 + lo;
  }

  #take(n: number, at: number): Uint8Array {
    if (n > this.#b.length - this.#pos) bad(`truncated pickle: ${n} bytes announced, ${this.#b.length - this.#pos} left`, at);
    const s = this.#b.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return s;
  }

  #lineBytes(at: number): Uint8Array {
    const nl = this.#b.indexOf(0x0a, this.#pos);
    if (nl < 0) bad('truncated pickle: missing end of line', at);
    const s = this.#b.subarray(this.#pos, nl);
    this.#pos = nl + 1;
    return s;
  }

  #line(at: number): string {
    const s = this.#lineBytes(at);
    if (s.length > MAX_INT_DIGITS + 2) bad(`text argument of ${s.length} bytes is too long`, at);
    return latin1(s);
  }

  /** `n` bytes at `start` (already bounds-checked) as text; short ASCII skips TextDecoder. */
  #utf8At(start: number, n: number, at: number): string {
    if (n < 48) {
      // Short ASCII is the common case (dict keys, names): skip TextDecoder's per-call cost.
      const b = this.#b;
      for (let i = start; i < start + n; i++) if (b[i] > 0x7f) return this.#utf8Slow(start, n, at);
      if (n <= 12) return shortAscii(b, start, n);
      let s = '';
      for (let i = start; i < start + n; i++) s += String.fromCharCode(b[i]);
      return s;
    }
    return this.#utf8Slow(start, n, at);
  }

  #utf8(n: number, at: number): string {
    if (n > this.#b.length - this.#pos) bad(`truncated pickle: ${n} bytes announced, ${this.#b.length - this.#pos} left`, at);
    const start = this.#pos;
    this.#pos += n;
    return this.#utf8At(start, n, at);
  }

  #utf8Slow(start: number, n: number, at: number): string {
    try {
      return utf8Fatal.decode(this.#b.subarray(start, start + n));
    } catch {
      return bad('string is not valid UTF-8', at);
    }
  }

  #long(n: number, at: number): number | bigint {
    const bytes = this.#take(n, at);
    if (n === 0) return 0;
    if (n <= 6) {
      // Fits a double exactly: two's complement, little-endian.
      let v = 0;
      for (let i = n - 1; i >= 0; i--) v = v * 256 + bytes[i];
      if (bytes[n - 1] & 0x80) v -= 2 ** (8 * n);
      return v;
    }
    let hex = '';
    for (let i = n - 1; i >= 0; i--) hex += HEX[bytes[i]];
    let v = BigInt('0x' + hex);
    if (bytes[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
    return normalizeInt(v);
  }

  #textInt(text: string, at: number): number | bigint {
    if (!/^[+-]?\d+$/.test(text)) bad(`malformed integer ${JSON.stringify(text.slice(0, 40))}`, at);
    const digits = text.length - (text[0] === '-' || text[0] === '+' ? 1 : 0);
    if (digits > MAX_INT_DIGITS) bad(`integer of ${digits} digits exceeds the ${MAX_INT_DIGITS}-digit limit`, at);
    if (digits <= 15) return Number(text);
    return normalizeInt(BigInt(text));
  }

  #textIndex(at: number): number {
    const line = this.#line(at);
    if (!/^\d{1,10}$/.test(line)) bad(`malformed memo index ${JSON.stringify(line.slice(0, 40))}`, at);
    return Number(line);
  }

  // --- stack helpers

  /** The top of the stack; `end` is where it ends when items above a popped mark are still there. */
  #top(stack: unknown[], marks: number[], at: number, end: number): unknown {
    if (end <= (marks.length ? marks[marks.length - 1] : 0)) bad('stack underflow', at);
    return stack[end - 1];
  }

  /** Height of a container holding slots [from, to): one more than its tallest item. */
  #height(hs: number[], from: number, to: number, at: number): number {
    // A container built, or a batch put into one: allocation work either way.
    if (++this.#containers > this.#maxNodes) bad(`pickle creates more than ${this.#maxNodes} values`, at);
    let h = 0;
    for (let i = from; i < to; i++) if (hs[i] > h) h = hs[i];
    if (h >= this.#maxDepth) bad(`nesting deeper than ${this.#maxDepth}`, at);
    return h + 1;
  }

  /** Raises the container in slot `i` to height `h` after an item went into it. */
  #grow(hs: number[], i: number, h: number, at: number): void {
    if (h <= hs[i]) return;
    if (h > this.#maxDepth) bad(`nesting deeper than ${this.#maxDepth}`, at);
    hs[i] = h;
  }

  /** Pops the innermost mark and returns it (a stack position). */
  #mark(marks: number[], at: number): number {
    if (!marks.length) bad('no MARK to pop to', at);
    return marks.pop()!;
  }


  #setItem(dict: unknown, key: unknown, value: unknown, at: number): void {
    this.#store(this.#dict(dict, at), key, value, at);
  }

  #dict(dict: unknown, at: number): Record<string, unknown> {
    if (typeof dict !== 'object' || dict === null || Array.isArray(dict) || ArrayBuffer.isView(dict)) {
      bad('SETITEM on something that is not a dict', at);
    }
    return dict as Record<string, unknown>;
  }

  /** One key/value into a checked dict: str keys, int keys as decimal strings, never __proto__. */
  #store(dict: Record<string, unknown>, key: unknown, value: unknown, at: number): void {
    let k: string;
    if (typeof key === 'string') k = key;
    else if (typeof key === 'number' || typeof key === 'bigint') k = String(key); // as Python's json module does
    else bad(`dict key of type ${describe(key)} is outside the value model (str or int keys only)`, at);
    if (k === '__proto__') bad('dict key "__proto__" is refused', at);
    dict[k] = value;
  }

  #put(index: number, value: unknown, at: number): void {
    const memo = this.#memo;
    // Indices are dense in practice; a far one would make a huge holey array, so cap the gap.
    if (index > memo.length + 65536) bad(`memo index ${index} is out of range`, at);
    memo[index] = value;
  }

  #get(index: number, at: number): unknown {
    const v = this.#memo[index];
    if (v === undefined) bad(`memo key ${index} was never stored`, at);
    if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) this.#shared = true;
    else this.#alias(v, at);
    return v;
  }

  /** Counts a string or byte string used once more (a memo fetch or DUP) against `maxExpandedBytes`. */
  #alias(v: unknown, at: number): void {
    if (typeof v === 'string') this.#aliased += v.length;
    else if (v instanceof Uint8Array) this.#aliased += v.length;
    else return;
    if (this.#aliased > this.#maxExpanded) bad(`decoded value expands to more than ${this.#maxExpanded} bytes of text and data (shared references count each time)`, at);
  }

  /** Bounds depth and expanded size; memo-built cycles show up as depth overflow. */
  #check(root: unknown, at: number): void {
    const maxDepth = this.#maxDepth;
    const maxNodes = this.#maxNodes;
    const maxExpanded = this.#maxExpanded;
    let nodes = 0;
    let bytes = 0;
    const walk = (v: unknown, depth: number): void => {
      if (++nodes > maxNodes) bad(`decoded value expands to more than ${maxNodes} values (shared references count each time)`, at);
      if (typeof v === 'string' || v instanceof Uint8Array) {
        if ((bytes += v.length) > maxExpanded) bad(`decoded value expands to more than ${maxExpanded} bytes of text and data (shared references count each time)`, at);
        return;
      }
      if (v === null || typeof v !== 'object') return;
      if (depth >= maxDepth) bad(`nesting deeper than ${maxDepth} (or a self-referencing container)`, at);
      if (Array.isArray(v)) for (let i = 0; i < v.length; i++) walk(v[i], depth + 1);
      else for (const k in v) walk((v as Record<string, unknown>)[k], depth + 1);
    };
    walk(root, 0);
  }
}

/** Scratch space for BINFLOAT: the eight big-endian bytes, reordered to this machine's order. */
const F64 = new Float64Array(1);
const F64_BYTES = new Uint8Array(F64.buffer);
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

function readFloat64BE(b: Uint8Array, p: number): number {
  const f = F64_BYTES;
  if (LITTLE_ENDIAN) {
    f[0] = b[p + 7], f[1] = b[p + 6], f[2] = b[p + 5], f[3] = b[p + 4];
    f[4] = b[p + 3], f[5] = b[p + 2], f[6] = b[p + 1], f[7] = b[p];
  } else {
    for (let k = 0; k < 8; k++) f[k] = b[p + k];
  }
  return F64[0];
}

/**
 * `n` (≤ 12) ASCII bytes at `p` as a string: one multi-argument fromCharCode builds it in a
 * single allocation, ~3× faster than appending char by char.
 */
function shortAscii(b: Uint8Array, p: number, n: number): string {
  const f = String.fromCharCode;
  switch (n) {
    case 0: return '';
    case 1: return f(b[p]);
    case 2: return f(b[p], b[p + 1]);
    case 3: return f(b[p], b[p + 1], b[p + 2]);
    case 4: return f(b[p], b[p + 1], b[p + 2], b[p + 3]);
    case 5: return f(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4]);
    case 6: return f(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5]);
    case 7: return f(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6]);
    case 8: return f(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6], b[p + 7]);
    case 9: return f(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6], b[p + 7], b[p + 8]);
    case 10: return f(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6], b[p + 7], b[p + 8], b[p + 9]);
    case 11: return f(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6], b[p + 7], b[p + 8], b[p + 9], b[p + 10]);
    default: return f(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6], b[p + 7], b[p + 8], b[p + 9], b[p + 10], b[p + 11]);
  }
}

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Integers within ±(2^53 − 1) are numbers; beyond, bigints (the value model's rule). */
function normalizeInt(v: bigint): number | bigint {
  return v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v;
}

function latin1(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192) as unknown as number[]);
  return s;
}

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return 'list/tuple';
  if (v instanceof Uint8Array) return 'bytes';
  return typeof v;
}

const FLOAT_TEXT = /^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|infinity|nan)$/i;

function textFloat(text: string, at: number): number {
  if (!FLOAT_TEXT.test(text)) bad(`malformed float ${JSON.stringify(text.slice(0, 40))}`, at);
  const t = text.toLowerCase();
  const sign = t.startsWith('-') ? -1 : 1;
  if (t.endsWith('nan')) return NaN;
  if (t.endsWith('inf') || t.endsWith('infinity')) return sign * Infinity;
  return Number(text);
}

/** Decodes Python's raw-unicode-escape (protocol 0 UNICODE): \uXXXX and \UXXXXXXXX, other bytes Latin-1. */
function rawUnicodeEscape(bytes: Uint8Array, at: number): string {
  if (bytes.indexOf(0x5c) < 0) return latin1(bytes);
  let s = '';
  let i = 0;
  while (i < bytes.length) {
    const c = bytes[i];
    if (c === 0x5c && i + 1 < bytes.length && (bytes[i + 1] === 0x75 || bytes[i + 1] === 0x55)) {
      const len = bytes[i + 1] === 0x75 ? 4 : 8;
      const hex = latin1(bytes.subarray(i + 2, i + 2 + len));
      if (hex.length !== len || !/^[0-9a-fA-F]+$/.test(hex)) bad('malformed \\u escape in UNICODE', at);
      const cp = parseInt(hex, 16);
      if (cp > 0x10ffff) bad('\\U escape beyond U+10FFFF in UNICODE', at);
      s += String.fromCodePoint(cp);
      i += 2 + len;
    } else {
      s += String.fromCharCode(c);
      i++;
    }
  }
  return s;
}

const SIMPLE_ESCAPES: Record<number, number> = {
  0x5c: 0x5c, 0x27: 0x27, 0x22: 0x22, 0x61: 7, 0x62: 8, 0x66: 12, 0x6e: 10, 0x72: 13, 0x74: 9, 0x76: 11,
};

/** Decodes protocol 0 STRING: a quoted Python 2 repr with backslash escapes. */
function stringEscape(line: Uint8Array, at: number): Uint8Array {
  const q = line[0];
  if (line.length < 2 || (q !== 0x27 && q !== 0x22) || line[line.length - 1] !== q) bad('STRING argument is not a quoted string', at);
  const body = line.subarray(1, line.length - 1);
  if (body.indexOf(0x5c) < 0) return body;
  const out: number[] = [];
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c !== 0x5c) {
      out.push(c);
      continue;
    }
    const e = body[++i];
    if (e === undefined) bad('STRING ends with a lone backslash', at);
    const simple = SIMPLE_ESCAPES[e];
    if (simple !== undefined) out.push(simple);
    else if (e === 0x0a) continue; // backslash-newline: a line continuation
    else if (e === 0x78) {
      const hex = latin1(body.subarray(i + 1, i + 3));
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) bad('malformed \\x escape in STRING', at);
      out.push(parseInt(hex, 16));
      i += 2;
    } else if (e >= 0x30 && e <= 0x37) {
      let v = e - 0x30;
      for (let k = 0; k < 2 && body[i + 1] >= 0x30 && body[i + 1] <= 0x37; k++) v = v * 8 + (body[++i] - 0x30);
      out.push(v & 0xff);
    } else out.push(0x5c, e); // unknown escapes stay as written, as in Python
  }
  return Uint8Array.from(out);
}

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * Encodes a value as a protocol 4 pickle (one FRAME). Arrays become lists (tuples when marked
 * with `tuple()`), objects dicts, Uint8Array bytes, bigint and safe integers Python ints, other
 * numbers floats. Throws for anything outside the value model.
 */
export function encode(value: Value, options: PickleOptions = {}): Uint8Array {
  const makeError = options.error ?? defaultError;
  const enc = new Encoder(options.maxDepth ?? DEFAULTS.maxDepth);
  try {
    return enc.run(value);
  } catch (err) {
    if (err instanceof Bad) throw makeError(err.message);
    const e = makeError(`internal encoder error: ${err instanceof Error ? err.message : String(err)}`);
    (e as { cause?: unknown }).cause = err;
    throw e;
  }
}

const TWO_32 = 0x100000000;

class Encoder {
  #buf = new Uint8Array(256);
  #view = new DataView(this.#buf.buffer);
  #pos = 0;
  readonly #maxDepth: number;

  constructor(maxDepth: number) {
    this.#maxDepth = maxDepth;
  }

  run(value: Value): Uint8Array {
    const buf = this.#buf;
    buf[0] = PROTO;
    buf[1] = ENCODE_PROTOCOL;
    buf[2] = FRAME;
    this.#pos = 11; // the 8-byte frame length is patched at the end
    this.#value(value, 0);
    this.#ensure(1);
    this.#buf[this.#pos++] = STOP;
    const frameLen = this.#pos - 11;
    this.#view.setUint32(3, frameLen % TWO_32, true);
    this.#view.setUint32(7, Math.floor(frameLen / TWO_32), true);
    return this.#buf.subarray(0, this.#pos);
  }

  #ensure(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#pos));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  #op(op: number): void {
    this.#ensure(1);
    this.#buf[this.#pos++] = op;
  }

  #value(v: unknown, depth: number): void {
    switch (typeof v) {
      case 'string':
        return this.#string(v);
      case 'number':
        return this.#number(v);
      case 'boolean':
        return this.#op(v ? NEWTRUE : NEWFALSE);
      case 'bigint':
        return this.#bigint(v);
      case 'object':
        if (v === null) return this.#op(NONE);
        if (depth >= this.#maxDepth) bad(`nesting deeper than ${this.#maxDepth} (or a cyclic value)`, 0);
        if (Array.isArray(v)) return this.#array(v, depth);
        if (v instanceof Uint8Array) return this.#bytes(v);
        {
          const proto = Object.getPrototypeOf(v);
          if (proto !== Object.prototype && proto !== null) bad(`cannot encode ${proto?.constructor?.name ?? 'object'}: outside the value model`, 0);
        }
        return this.#dict(v as Record<string, unknown>, depth);
      default:
        bad(`cannot encode a ${typeof v}: outside the value model`, 0);
    }
  }

  #number(v: number): void {
    if (Number.isSafeInteger(v) && !Object.is(v, -0)) {
      this.#ensure(9);
      const b = this.#buf;
      if (v >= 0 && v < 256) {
        b[this.#pos++] = BININT1;
        b[this.#pos++] = v;
      } else if (v >= 0 && v < 65536) {
        b[this.#pos++] = BININT2;
        b[this.#pos++] = v & 0xff;
        b[this.#pos++] = v >>> 8;
      } else if (v >= -0x80000000 && v <= 0x7fffffff) {
        b[this.#pos++] = BININT;
        this.#view.setInt32(this.#pos, v, true);
        this.#pos += 4;
      } else {
        this.#bigint(BigInt(v));
      }
      return;
    }
    // Non-integral, unsafe-integral, -0, NaN and ±Infinity stay Python floats.
    this.#ensure(9);
    this.#buf[this.#pos++] = BINFLOAT;
    this.#view.setFloat64(this.#pos, v, false);
    this.#pos += 8;
  }

  #bigint(v: bigint): void {
    if (v >= -0x80000000n && v <= 0x7fffffffn) return this.#number(Number(v));
    // Minimal two's complement, little-endian, as CPython's encode_long.
    const bytes: number[] = [];
    let x = v;
    for (;;) {
      const byte = Number(x & 0xffn);
      bytes.push(byte);
      x >>= 8n;
      if ((x === 0n && !(byte & 0x80)) || (x === -1n && byte & 0x80)) break;
    }
    const n = bytes.length;
    this.#ensure(5 + n);
    if (n < 256) {
      this.#buf[this.#pos++] = LONG1;
      this.#buf[this.#pos++] = n;
    } else {
      this.#buf[this.#pos++] = LONG4;
      this.#view.setInt32(this.#pos, n, true);
      this.#pos += 4;
    }
    for (let i = 0; i < n; i++) this.#buf[this.#pos++] = bytes[i];
  }

  #string(s: string): void {
    const len = s.length;
    if (len < 85) {
      // At most 3 UTF-8 bytes per UTF-16 unit, so the length fits SHORT_BINUNICODE's one byte.
      this.#ensure(2 + len * 3);
      const b = this.#buf;
      const start = this.#pos;
      b[start] = SHORT_BINUNICODE;
      let p = start + 2;
      for (let i = 0; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f) {
          p = start + 2 + utf8Encoder.encodeInto(s, b.subarray(start + 2)).written;
          break;
        }
        b[p++] = c;
      }
      b[start + 1] = p - start - 2;
      this.#pos = p;
      return;
    }
    const max = len * 3;
    this.#ensure(9 + max);
    const start = this.#pos;
    const header = max < TWO_32 ? 5 : 9;
    const written = utf8Encoder.encodeInto(s, this.#buf.subarray(start + header)).written;
    if (header === 5) {
      this.#buf[start] = BINUNICODE;
      this.#view.setUint32(start + 1, written, true);
    } else {
      this.#buf[start] = BINUNICODE8;
      this.#view.setUint32(start + 1, written % TWO_32, true);
      this.#view.setUint32(start + 5, Math.floor(written / TWO_32), true);
    }
    this.#pos = start + header + written;
  }

  #bytes(v: Uint8Array): void {
    const n = v.length;
    this.#ensure(9 + n);
    if (n < 256) {
      this.#buf[this.#pos++] = SHORT_BINBYTES;
      this.#buf[this.#pos++] = n;
    } else if (n < TWO_32) {
      this.#buf[this.#pos++] = BINBYTES;
      this.#view.setUint32(this.#pos, n, true);
      this.#pos += 4;
    } else {
      this.#buf[this.#pos++] = BINBYTES8;
      this.#view.setUint32(this.#pos, n % TWO_32, true);
      this.#view.setUint32(this.#pos + 4, Math.floor(n / TWO_32), true);
      this.#pos += 8;
    }
    this.#buf.set(v, this.#pos);
    this.#pos += n;
  }

  #array(v: readonly unknown[], depth: number): void {
    const n = v.length;
    if ((v as unknown as Record<symbol, unknown>)[TUPLE] === true) {
      if (n === 0) return this.#op(EMPTY_TUPLE);
      if (n > 3) this.#op(MARK);
      for (let i = 0; i < n; i++) this.#value(v[i], depth + 1);
      return this.#op(n <= 3 ? TUPLE1 + n - 1 : TUPLE_OP);
    }
    this.#op(EMPTY_LIST);
    if (n === 0) return;
    if (n === 1) {
      this.#value(v[0], depth + 1);
      return this.#op(APPEND);
    }
    this.#op(MARK);
    for (let i = 0; i < n; i++) this.#value(v[i], depth + 1);
    this.#op(APPENDS);
  }

  #dict(v: Record<string, unknown>, depth: number): void {
    this.#op(EMPTY_DICT);
    const mark = this.#pos;
    this.#op(MARK);
    let count = 0;
    for (const k in v) {
      if (!Object.prototype.hasOwnProperty.call(v, k)) continue;
      const item = v[k];
      if (item === undefined) bad(`cannot encode undefined (key ${JSON.stringify(k)})`, 0);
      this.#string(k);
      this.#value(item, depth + 1);
      count++;
    }
    if (count === 0) this.#pos = mark; // an empty dict needs no MARK/SETITEMS
    else this.#op(SETITEMS);
  }
}
