/**
 * The XML codec, usable on its own. A typed XML form, so values come back with their types
 * (the original delivered everything as strings):
 *
 *   <null/>  <bool>true</bool>  <int>-12</int>  <float>1.5</float>  <str>text</str>
 *   <bytes>base64</bytes>  <list>…values…</list>  <dict><item key="k">value</item>…</dict>
 *
 * The parser reads a small, safe XML subset: an optional XML declaration, comments and
 * processing instructions are skipped; a DOCTYPE (so any DTD, and with it every billion-laughs
 * variant) is refused as soon as it is seen; the only entities are the five predefined ones and
 * numeric character references; depth and size are bounded.
 */
import type { Value } from '@trellis/sdk';

/** Builds the error thrown for bad input; `offset` is a character position when known. */
export type ErrorFactory = (message: string, offset?: number) => Error;

export interface XmlOptions {
  /** Deepest container nesting accepted (decode and encode). Default 512. */
  readonly maxDepth?: number;
  /** Largest document accepted by decode, in bytes. Default 16 MiB. */
  readonly maxBytes?: number;
  /** Error factory; defaults to a plain `XmlCodecError` with code TRELLIS_ERR_CODEC. */
  readonly error?: ErrorFactory;
}

/** The fallback error when no factory is passed; same code as the SDK's CodecError. */
export class XmlCodecError extends Error {
  readonly code = 'TRELLIS_ERR_CODEC';
  override readonly name = 'XmlCodecError';
  constructor(
    message: string,
    readonly offset?: number,
  ) {
    super(`xml: ${message}`);
  }
}

const defaultError: ErrorFactory = (message, offset) => new XmlCodecError(message, offset);
const DEFAULT_MAX_DEPTH = 512;
const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;
/** CPython's limit on decimal digits of an int read from text; the same bound here. */
const MAX_INT_DIGITS = 4300;

const utf8 = new TextDecoder('utf-8', { fatal: true });

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
  const e = makeError(`internal ${what} error: ${err instanceof Error ? err.message : String(err)}`);
  (e as { cause?: unknown }).cause = err;
  throw e;
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** Decodes a typed XML document into a value. */
export function decode(bytes: Uint8Array, options: XmlOptions = {}): Value {
  const makeError = options.error ?? defaultError;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  if (!(bytes instanceof Uint8Array)) throw makeError('decode expects a Uint8Array');
  if (bytes.length > maxBytes) throw makeError(`document of ${bytes.length} bytes exceeds the ${maxBytes}-byte limit`, 0);
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw makeError('document is not valid UTF-8');
  }
  try {
    return new Parser(text, options.maxDepth ?? DEFAULT_MAX_DEPTH).document();
  } catch (err) {
    rethrow(err, makeError, 'decoder');
  }
}

const INT_TEXT = /^[+-]?\d+$/;
const FLOAT_TEXT = /^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Infinity)$|^NaN$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

class Parser {
  #i = 0;
  constructor(
    readonly s: string,
    readonly maxDepth: number,
  ) {}

  document(): Value {
    const s = this.s;
    if (s.charCodeAt(0) === 0xfeff) this.#i = 1; // a BOM that TextDecoder kept
    this.#misc();
    if (this.#i >= s.length) bad('empty document: expected a value element', this.#i);
    const v = this.#value(0);
    this.#misc();
    if (this.#i < s.length) bad(`unexpected content after the root element at ${this.#i}`, this.#i);
    return v as Value;
  }

  /** Skips whitespace, comments, the XML declaration and processing instructions; refuses DTDs. */
  #misc(): void {
    const s = this.s;
    for (;;) {
      let i = this.#i;
      let c = s.charCodeAt(i);
      while (c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d) c = s.charCodeAt(++i);
      this.#i = i;
      if (c !== 0x3c) return; // <
      const next = s.charCodeAt(i + 1);
      if (next === 0x3f) {
        // <? ... ?>
        const end = s.indexOf('?>', i + 2);
        if (end < 0) bad(`unterminated processing instruction at ${i}`, i);
        this.#i = end + 2;
      } else if (next === 0x21) {
        if (s.startsWith('<!--', i)) {
          const end = s.indexOf('-->', i + 4);
          if (end < 0) bad(`unterminated comment at ${i}`, i);
          this.#i = end + 3;
        } else if (s.startsWith('<!DOCTYPE', i) || s.startsWith('<!doctype', i)) {
          bad('DOCTYPE declarations (DTDs, custom entities) are not allowed', i);
        } else return;
      } else return;
    }
  }

  /** Reads `<name`, its attributes, and whether it closed itself with `/>`. */
  #open(): { name: string; attrs: Record<string, string> | undefined; empty: boolean } {
    const s = this.s;
    const start = this.#i;
    if (s.charCodeAt(start) !== 0x3c) bad(start >= s.length ? 'unexpected end of document' : `expected an element at ${start}`, start);
    if (s.startsWith('<![CDATA[', start)) bad(`CDATA outside a <str> at ${start}`, start);
    let i = start + 1;
    for (;;) {
      const c = s.charCodeAt(i);
      if ((c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39 && i > start + 1) || c === 0x5f || c === 0x2d || c === 0x3a) i++;
      else break;
    }
    if (i === start + 1) bad(`malformed tag at ${start}`, start);
    const name = s.slice(start + 1, i);
    let attrs: Record<string, string> | undefined;
    for (;;) {
      let c = s.charCodeAt(i);
      let ws = false;
      while (c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d) {
        c = s.charCodeAt(++i);
        ws = true;
      }
      if (c === 0x3e) {
        this.#i = i + 1;
        return { name, attrs, empty: false };
      }
      if (c === 0x2f) {
        if (s.charCodeAt(i + 1) !== 0x3e) bad(`malformed tag <${name}> at ${start}`, start);
        this.#i = i + 2;
        return { name, attrs, empty: true };
      }
      if (!ws) bad(`malformed tag <${name}> at ${start}`, start);
      // attribute: name = "value"
      const an = i;
      while (i < s.length) {
        const d = s.charCodeAt(i);
        if (d === 0x3d || d === 0x20 || d === 0x0a || d === 0x09 || d === 0x0d || d === 0x3e || d === 0x2f) break;
        i++;
      }
      const attr = s.slice(an, i);
      if (!attr) bad(`malformed attribute in <${name}> at ${an}`, an);
      while (s.charCodeAt(i) === 0x20 || s.charCodeAt(i) === 0x0a || s.charCodeAt(i) === 0x09 || s.charCodeAt(i) === 0x0d) i++;
      if (s.charCodeAt(i) !== 0x3d) bad(`attribute ${attr} without a value at ${an}`, an);
      i++;
      while (s.charCodeAt(i) === 0x20 || s.charCodeAt(i) === 0x0a || s.charCodeAt(i) === 0x09 || s.charCodeAt(i) === 0x0d) i++;
      const q = s.charCodeAt(i);
      if (q !== 0x22 && q !== 0x27) bad(`attribute ${attr} value must be quoted at ${i}`, i);
      const end = s.indexOf(q === 0x22 ? '"' : "'", i + 1);
      if (end < 0) bad(`unterminated attribute ${attr} at ${i}`, i);
      const raw = s.slice(i + 1, end);
      if (raw.indexOf('<') >= 0) bad(`"<" in attribute ${attr} at ${i}`, i);
      attrs ??= {};
      if (Object.prototype.hasOwnProperty.call(attrs, attr)) bad(`duplicate attribute ${attr} at ${an}`, an);
      // Attribute-value normalization: literal tabs and newlines read as spaces.
      attrs[attr] = unescape(raw.replace(/[\t\n\r]/g, ' '), i);
      i = end + 1;
    }
  }

  #close(name: string): void {
    const s = this.s;
    const i = this.#i;
    if (s.charCodeAt(i) !== 0x3c || s.charCodeAt(i + 1) !== 0x2f || !s.startsWith(name, i + 2)) {
      bad(i >= s.length ? `unexpected end of document: <${name}> is not closed` : `expected </${name}> at ${i}`, i);
    }
    let j = i + 2 + name.length;
    while (s.charCodeAt(j) === 0x20 || s.charCodeAt(j) === 0x0a || s.charCodeAt(j) === 0x09 || s.charCodeAt(j) === 0x0d) j++;
    if (s.charCodeAt(j) !== 0x3e) bad(`expected </${name}> at ${i}`, i);
    this.#i = j + 1;
  }

  /** Character data up to the next tag: entities resolved, CDATA sections included. */
  #text(): string {
    const s = this.s;
    let out = '';
    for (;;) {
      const lt = s.indexOf('<', this.#i);
      if (lt < 0) bad('unexpected end of document inside text', this.#i);
      if (lt > this.#i) {
        const raw = s.slice(this.#i, lt);
        out += raw.indexOf('&') >= 0 || raw.indexOf('\r') >= 0 ? unescape(normalizeNewlines(raw), this.#i) : raw;
      }
      this.#i = lt;
      if (s.startsWith('<![CDATA[', lt)) {
        const end = s.indexOf(']]>', lt + 9);
        if (end < 0) bad(`unterminated CDATA at ${lt}`, lt);
        out += normalizeNewlines(s.slice(lt + 9, end));
        this.#i = end + 3;
      } else if (s.startsWith('<!--', lt)) {
        const end = s.indexOf('-->', lt + 4);
        if (end < 0) bad(`unterminated comment at ${lt}`, lt);
        this.#i = end + 3;
      } else return out;
    }
  }

  /** Text of a scalar element, which must not contain child elements. */
  #scalar(name: string, empty: boolean): string {
    if (empty) return '';
    const t = this.#text();
    this.#close(name);
    return t;
  }

  #value(depth: number): unknown {
    const at = this.#i;
    const { name, attrs, empty } = this.#open();
    if (attrs !== undefined && !(name === 'str' && Object.keys(attrs).length === 1 && attrs.enc === 'json')) {
      bad(`unexpected attribute on <${name}> at ${at}`, at);
    }
    switch (name) {
      case 'null':
        if (!empty) this.#close('null');
        return null;
      case 'bool': {
        const t = this.#scalar('bool', empty).trim();
        if (t === 'true' || t === '1') return true;
        if (t === 'false' || t === '0') return false;
        return bad(`<bool> must hold true or false at ${at}`, at);
      }
      case 'int': {
        const t = this.#scalar('int', empty).trim();
        if (!INT_TEXT.test(t)) bad(`malformed <int> at ${at}`, at);
        if (t.length <= 16) {
          const n = Number(t);
          if (Number.isSafeInteger(n)) return n;
        }
        if (t.length > MAX_INT_DIGITS + 1) bad(`<int> of more than ${MAX_INT_DIGITS} digits at ${at}`, at);
        const big = BigInt(t);
        return big >= -9007199254740991n && big <= 9007199254740991n ? Number(big) : big;
      }
      case 'float': {
        const t = this.#scalar('float', empty).trim();
        if (!FLOAT_TEXT.test(t)) bad(`malformed <float> at ${at}`, at);
        return Number(t);
      }
      case 'str': {
        const t = this.#scalar('str', empty);
        if (attrs === undefined) return t;
        // enc="json": a JSON string literal, for text XML 1.0 cannot carry (control chars, lone surrogates).
        let v: unknown;
        try {
          v = JSON.parse(t);
        } catch {
          return bad(`<str enc="json"> does not hold a JSON string at ${at}`, at);
        }
        if (typeof v !== 'string') bad(`<str enc="json"> does not hold a JSON string at ${at}`, at);
        return v;
      }
      case 'bytes': {
        const t = this.#scalar('bytes', empty).replace(/[ \t\r\n]+/g, '');
        if (!BASE64.test(t)) bad(`<bytes> holds invalid base64 at ${at}`, at);
        return new Uint8Array(Buffer.from(t, 'base64'));
      }
      case 'list': {
        if (depth >= this.maxDepth) bad(`nesting deeper than ${this.maxDepth}`, at);
        const out: unknown[] = [];
        if (empty) return out;
        for (;;) {
          this.#between('list');
          if (this.s.charCodeAt(this.#i + 1) === 0x2f) {
            this.#close('list');
            return out;
          }
          out.push(this.#value(depth + 1));
        }
      }
      case 'dict': {
        if (depth >= this.maxDepth) bad(`nesting deeper than ${this.maxDepth}`, at);
        const out: Record<string, unknown> = {};
        if (empty) return out;
        for (;;) {
          this.#between('dict');
          if (this.s.charCodeAt(this.#i + 1) === 0x2f) {
            this.#close('dict');
            return out;
          }
          const itemAt = this.#i;
          const item = this.#open();
          if (item.name !== 'item') bad(`<dict> may only contain <item>, found <${item.name}> at ${itemAt}`, itemAt);
          const key = item.attrs?.key;
          if (key === undefined || Object.keys(item.attrs!).length !== 1) bad(`<item> needs exactly one attribute, key, at ${itemAt}`, itemAt);
          if (key === '__proto__') bad('key "__proto__" is refused (prototype pollution)', itemAt);
          if (item.empty) bad(`<item key="${key}"> has no value at ${itemAt}`, itemAt);
          this.#between('item');
          out[key] = this.#value(depth + 1);
          this.#between('item');
          this.#close('item');
        }
      }
      default:
        return bad(`unknown element <${name}> at ${at} (expected null, bool, int, float, str, bytes, list or dict)`, at);
    }
  }

  /** Between child elements only whitespace and comments may appear. */
  #between(parent: string): void {
    const s = this.s;
    for (;;) {
      let i = this.#i;
      let c = s.charCodeAt(i);
      while (c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d) c = s.charCodeAt(++i);
      this.#i = i;
      if (c === 0x3c) {
        if (s.startsWith('<!--', i)) {
          const end = s.indexOf('-->', i + 4);
          if (end < 0) bad(`unterminated comment at ${i}`, i);
          this.#i = end + 3;
          continue;
        }
        return;
      }
      bad(i >= s.length ? `unexpected end of document: <${parent}> is not closed` : `text is not allowed directly inside <${parent}> at ${i}`, i);
    }
  }
}

function normalizeNewlines(s: string): string {
  return s.indexOf('\r') >= 0 ? s.replace(/\r\n?/g, '\n') : s;
}

/** Resolves the five predefined entities and numeric character references; nothing else exists. */
function unescape(raw: string, at: number): string {
  if (raw.indexOf('&') < 0) return raw;
  let out = '';
  let i = 0;
  for (;;) {
    const amp = raw.indexOf('&', i);
    if (amp < 0) return out + raw.slice(i);
    out += raw.slice(i, amp);
    const semi = raw.indexOf(';', amp + 1);
    if (semi < 0 || semi - amp > 12) bad(`unterminated entity reference at ${at + amp}`, at + amp);
    const ref = raw.slice(amp + 1, semi);
    if (ref.charCodeAt(0) === 0x23) {
      const hex = ref.charCodeAt(1) === 0x78;
      const digits = ref.slice(hex ? 2 : 1);
      if (!(hex ? /^[0-9a-fA-F]{1,6}$/ : /^\d{1,7}$/).test(digits)) bad(`malformed character reference &${ref}; at ${at + amp}`, at + amp);
      const cp = parseInt(digits, hex ? 16 : 10);
      if (!isXmlChar(cp)) bad(`character reference &${ref}; names a character XML does not allow`, at + amp);
      out += String.fromCodePoint(cp);
    } else {
      const e = ENTITIES[ref];
      if (e === undefined || !Object.prototype.hasOwnProperty.call(ENTITIES, ref)) bad(`unknown entity &${ref}; (only lt, gt, amp, quot, apos)`, at + amp);
      out += e;
    }
    i = semi + 1;
  }
}

function isXmlChar(cp: number): boolean {
  return cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
}

// ---------------------------------------------------------------------------------------------
// Encoding

/** Encodes a value as a typed XML document (UTF-8, no declaration). */
export function encode(value: Value, options: XmlOptions = {}): Uint8Array {
  try {
    return Buffer.from(write(value, 0, options.maxDepth ?? DEFAULT_MAX_DEPTH), 'utf8');
  } catch (err) {
    rethrow(err, options.error ?? defaultError, 'encoder');
  }
}

/** Characters that need escaping in text, or cannot appear in XML 1.0 at all. */
const TEXT_SPECIAL = /[&<>\u0000-\u0008\u000b\u000c\u000d\u000e-\u001f\ud800-\udfff\ufffe\uffff]/;
const ILLEGAL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function escapeText(s: string): string {
  return s.replace(/[&<>\r]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&#13;'));
}

function escapeAttr(s: string): string {
  return s.replace(/[&<>"\t\n\r]/g, (c) =>
    c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : c === '\t' ? '&#9;' : c === '\n' ? '&#10;' : '&#13;',
  );
}

function str(s: string): string {
  if (!TEXT_SPECIAL.test(s)) return s === '' ? '<str/>' : `<str>${s}</str>`;
  if (ILLEGAL.test(s)) return `<str enc="json">${escapeText(JSON.stringify(s))}</str>`;
  return `<str>${escapeText(s)}</str>`;
}

function write(v: unknown, depth: number, maxDepth: number): string {
  switch (typeof v) {
    case 'string':
      return str(v);
    case 'number':
      return Number.isSafeInteger(v) && !Object.is(v, -0) ? `<int>${v}</int>` : `<float>${Object.is(v, -0) ? '-0' : v}</float>`;
    case 'bigint':
      return `<int>${v}</int>`;
    case 'boolean':
      return v ? '<bool>true</bool>' : '<bool>false</bool>';
    case 'object': {
      if (v === null) return '<null/>';
      if (depth >= maxDepth) bad(`nesting deeper than ${maxDepth} (or a cyclic value)`);
      if (Array.isArray(v)) {
        if (v.length === 0) return '<list/>';
        let s = '<list>';
        for (let i = 0; i < v.length; i++) {
          if (v[i] === undefined) bad(`cannot encode undefined (array index ${i})`);
          s += write(v[i], depth + 1, maxDepth);
        }
        return s + '</list>';
      }
      if (v instanceof Uint8Array) {
        return v.length === 0 ? '<bytes/>' : `<bytes>${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')}</bytes>`;
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) bad(`cannot encode ${proto?.constructor?.name ?? 'object'}: outside the value model`);
      let s = '<dict>';
      let n = 0;
      for (const k in v as Record<string, unknown>) {
        const item = (v as Record<string, unknown>)[k];
        if (item === undefined) bad(`cannot encode undefined (key ${JSON.stringify(k)})`);
        if (ILLEGAL.test(k)) bad(`key ${JSON.stringify(k)} holds a character XML 1.0 cannot carry`);
        s += `<item key="${escapeAttr(k)}">${write(item, depth + 1, maxDepth)}</item>`;
        n++;
      }
      return n === 0 ? '<dict/>' : s + '</dict>';
    }
    default:
      return bad(`cannot encode a ${typeof v}: outside the value model`);
  }
}
