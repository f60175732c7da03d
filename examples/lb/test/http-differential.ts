/**
 * Differential framing of HTTP/1.1 requests: Trellis's raw-engine framer against Node's llhttp
 * (strict mode, the parser node:http servers use without `insecureHTTPParser`). Shared by the
 * differential fuzz test and `bench/http-differential.ts`.
 */
import { createRequire } from 'node:module';
import { frameRequest } from '../../../sdk/src/balancer/raw/request-framer.js';

const require = createRequire(import.meta.url);
// node's binding to llhttp, as node:http uses it (an internal module, stable across Node 18-22)
const { HTTPParser, methods } = require('_http_common') as {
  HTTPParser: any;
  methods: string[];
};

export interface Message {
  method: string;
  url: string;
  minor: number;
  fields: number;
  keepAlive: boolean;
  body: string;
}

export interface Framing {
  messages: Message[];
  /** How the input ended: every byte framed, a partial message left, or refused. */
  state: 'idle' | 'incomplete' | 'error' | 'stopped';
  why?: string;
}

/** Frames `input` with llhttp; stops after a message that closes the connection or upgrades. */
export function llhttpFrame(input: Buffer): Framing {
  const p = new HTTPParser();
  p.initialize(HTTPParser.REQUEST, {}, 0, 0);
  const messages: Message[] = [];
  let cur: (Message & { done: boolean; upgrade: boolean; headers: number; chunks: Buffer[] }) | undefined;
  const all: NonNullable<typeof cur>[] = [];
  let extraHeaders = 0;
  let flushedUrl = '';
  // node flushes headers (and the URL) early when there are many, or across execute() calls
  // (after the head, the same callback carries trailer fields: not counted)
  let inHead = true;
  p[HTTPParser.kOnMessageBegin] = () => void (inHead = true);
  p[HTTPParser.kOnHeaders] = (headers: string[], url: string) => {
    if (!inHead) return;
    extraHeaders += headers.length / 2;
    flushedUrl += url ?? '';
  };
  p[HTTPParser.kOnHeadersComplete] = (_maj: number, minor: number, headers: string[] | undefined, method: number, url: string | undefined, _s: unknown, _m: unknown, upgrade: boolean, keepAlive: boolean) => {
    cur = { method: methods[method]!, url: url ?? flushedUrl, minor, fields: extraHeaders + (headers?.length ?? 0) / 2, keepAlive, body: '', done: false, upgrade, headers: 0, chunks: [] };
    extraHeaders = 0;
    flushedUrl = '';
    inHead = false;
    all.push(cur);
    return 0;
  };
  p[HTTPParser.kOnBody] = (b: Buffer) => void cur?.chunks.push(Buffer.from(b));
  p[HTTPParser.kOnMessageComplete] = () => {
    if (cur !== undefined) cur.done = true;
  };
  p[HTTPParser.kOnExecute] = () => {};
  const ret = p.execute(input);
  let state: Framing['state'] = 'idle';
  let why: string | undefined;
  if (ret instanceof Error) {
    state = 'error';
    why = (ret as Error & { code?: string }).code;
  }
  p.free?.();
  for (const m of all) {
    if (!m.done) {
      if (state !== 'error') state = 'incomplete';
      break;
    }
    messages.push({ method: m.method, url: m.url, minor: m.minor, fields: m.fields, keepAlive: m.keepAlive, body: Buffer.concat(m.chunks).toString('latin1') });
    if (m.upgrade || !m.keepAlive) {
      state = 'stopped';
      break;
    }
  }
  if (state === 'idle' && all.length > 0 && all[all.length - 1]!.done === false) state = 'incomplete';
  return { messages, state, why };
}

/** Frames `input` with Trellis's framer; stops after a message that closes the connection or upgrades. */
export function trellisFrame(input: Buffer, framer: typeof frameRequest = frameRequest): Framing {
  const messages: Message[] = [];
  let at = 0;
  for (;;) {
    const r = framer(input, at);
    if (r.kind === 'incomplete') return { messages, state: 'incomplete' };
    if (r.kind === 'rejected') return { messages, state: 'error', why: `${r.status} ${r.message}` };
    const h = r.head;
    messages.push({ method: h.method, url: r.rawTarget, minor: h.minor, fields: r.fields, keepAlive: h.keepAlive, body: r.body.toString('latin1') });
    // Trellis tunnels only HTTP/1.1 upgrades; llhttp stops at any Connection: upgrade + Upgrade
    if (h.upgrade !== undefined || !h.keepAlive || /\r\nupgrade:/i.test(input.toString('latin1', at, r.end))) return { messages, state: 'stopped' };
    at = r.end;
    if (at >= input.length) return { messages, state: 'idle' };
  }
}

export type Verdict =
  /** Same messages, same boundaries (or both refused the same first message). */
  | 'agree'
  /** Trellis refused a message llhttp accepted: stricter, allowed. */
  | 'stricter'
  /** A message both framed differently, or one framed a message where the other still waits for bytes. */
  | 'framing'
  /** Trellis framed a message llhttp refuses. */
  | 'lenient'
  /**
   * Trellis forwarded a method llhttp does not know (llhttp has a fixed list; RFC 9110 §9.1 says
   * any token): no framing question, the back-end answers it, nothing else shares that socket.
   */
  | 'method';

export function compare(input: Buffer, framer: typeof frameRequest = frameRequest): { verdict: Verdict; detail: string; trellis: Framing; llhttp: Framing } {
  const t = trellisFrame(input, framer);
  const l = llhttpFrame(input);
  const n = Math.max(t.messages.length, l.messages.length);
  for (let i = 0; i < n; i++) {
    const a = t.messages[i];
    const b = l.messages[i];
    if (a !== undefined && b !== undefined) {
      for (const k of ['method', 'url', 'minor', 'fields', 'keepAlive', 'body'] as const) {
        if (a[k] !== b[k]) return { verdict: 'framing', detail: `message ${i}: ${k} ${JSON.stringify(a[k])} (trellis) vs ${JSON.stringify(b[k])} (llhttp)`, trellis: t, llhttp: l };
      }
      continue;
    }
    if (a === undefined) {
      // llhttp framed a message Trellis did not: fine if Trellis refused it, not if it waits for more
      if (t.state === 'error') return { verdict: 'stricter', detail: `message ${i}: trellis ${t.why}`, trellis: t, llhttp: l };
      if (t.state === 'stopped') return { verdict: 'agree', detail: '', trellis: t, llhttp: l };
      return { verdict: 'framing', detail: `message ${i}: llhttp framed it, trellis waits for more bytes`, trellis: t, llhttp: l };
    }
    // Trellis framed a message llhttp did not
    if (l.state === 'error' && l.why === 'HPE_INVALID_METHOD') return { verdict: 'method', detail: `message ${i}: llhttp ${l.why}`, trellis: t, llhttp: l };
    if (l.state === 'error') return { verdict: 'lenient', detail: `message ${i}: llhttp ${l.why}`, trellis: t, llhttp: l };
    if (l.state === 'stopped') return { verdict: 'agree', detail: '', trellis: t, llhttp: l };
    return { verdict: 'framing', detail: `message ${i}: trellis framed it, llhttp waits for more bytes`, trellis: t, llhttp: l };
  }
  return { verdict: 'agree', detail: '', trellis: t, llhttp: l };
}

/** mulberry32: small, seeded, good enough to generate inputs reproducibly. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

const METHODS = ['GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'OPTIONS', 'PATCH', 'get', 'G\x00T', 'FOO', 'GET '];
const TARGETS = ['/', '/a?b=1', '/x/y%20z', '*', 'http://h.test/p', 'http://h.test', 'https://h.test:8443/q?x', 'h.test:80', '/a b', '/\x01', '/\x7f', '/\xe9', '//', '/?#frag', ''];
const VERSIONS = ['HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/1.2', 'HTTP/2.0', 'HTTP/1.1 ', 'http/1.1', 'HTTP/1.01'];
const EOLS = ['\r\n', '\r\n', '\r\n', '\r\n', '\r\n', '\r\n', '\n', '\r', '\r\r\n'];
const CL_VALUES = ['5', '0', ' 5 ', '05', '+5', '5, 5', '5,5', '5 5', '-5', '0x5', '\xa05', '5\x0b', '99999999999999999999', '', '4', '6'];
const TE_VALUES = ['chunked', 'Chunked', 'CHUNKED', 'gzip, chunked', 'chunked, gzip', 'chunked,', ',chunked', 'identity', 'chunked\t', '\tchunked', 'chunked\xa0', 'x chunked', 'chunked;a=1', 'chunked, chunked', 'gzip', ''];
const NAMES = ['Host', 'host', 'X-A', 'Content-Length', 'Transfer-Encoding', 'Connection', 'Upgrade', 'Expect', 'X A', ' X-A', 'X-A ', 'X\x00A', '', 'X:A', 'Via', 'Te'];
const VALUES = ['x', 'h.test', 'close', 'keep-alive', 'upgrade', 'websocket', '100-continue', 'a\x00b', 'a\x7fb', '\xff', ' spaced ', 'a\tb', ''];

/** One generated request (sometimes two, pipelined), with a body framed by CL or chunked. */
export function generate(r: () => number): Buffer {
  const parts: string[] = [];
  const messages = r() < 0.3 ? 2 : 1;
  for (let m = 0; m < messages; m++) {
    const eol = () => (r() < 0.9 ? '\r\n' : pick(r, EOLS));
    if (r() < 0.1) parts.push(pick(r, ['\r\n', '\n', '\r\n\r\n']));
    const method = r() < 0.85 ? pick(r, METHODS.slice(0, 6)) : pick(r, METHODS);
    const target = r() < 0.7 ? pick(r, TARGETS.slice(0, 3)) : pick(r, TARGETS);
    const version = r() < 0.9 ? pick(r, VERSIONS.slice(0, 4)) : pick(r, VERSIONS);
    parts.push(`${method}${r() < 0.97 ? ' ' : pick(r, ['  ', '\t'])}${target} ${version}${eol()}`);
    if (r() < 0.9) parts.push(`Host: ${r() < 0.9 ? 'h.test' : pick(r, ['a b', 'h.test:80', '[::1]:8', 'h\x00', ''])}${eol()}`);
    const body = pick(r, ['none', 'none', 'cl', 'cl', 'chunked', 'chunked', 'chunked', 'both']);
    const payload = pick(r, ['hello', '', 'x'.repeat(17), 'ab\r\ncd']);
    if (body === 'cl' || body === 'both') {
      const v = r() < 0.7 ? String(Buffer.byteLength(payload, 'latin1')) : pick(r, CL_VALUES);
      parts.push(`${r() < 0.9 ? 'Content-Length' : pick(r, ['content-length', 'Content-Length ', 'Content_Length'])}:${r() < 0.9 ? ' ' : pick(r, ['', '\t', '  '])}${v}${eol()}`);
      if (r() < 0.1) parts.push(`Content-Length: ${pick(r, CL_VALUES)}${eol()}`);
    }
    if (body === 'chunked' || body === 'both') {
      const v = r() < 0.6 ? 'chunked' : pick(r, TE_VALUES);
      parts.push(`${r() < 0.9 ? 'Transfer-Encoding' : pick(r, ['transfer-encoding', 'Transfer-Encoding ', 'Transfer-Encodings'])}: ${v}${eol()}`);
      if (r() < 0.1) parts.push(`Transfer-Encoding: ${pick(r, TE_VALUES)}${eol()}`);
    }
    const extra = Math.floor(r() * 4);
    for (let i = 0; i < extra; i++) {
      const name = r() < 0.8 ? pick(r, NAMES.slice(2, 4)) : pick(r, NAMES);
      const value = r() < 0.7 ? pick(r, VALUES.slice(0, 3)) : pick(r, VALUES);
      parts.push(`${name}:${r() < 0.9 ? ' ' : ''}${value}${eol()}`);
      if (r() < 0.05) parts.push(` folded${eol()}`);
    }
    parts.push(eol());
    if (body === 'cl' || body === 'both') parts.push(payload);
    if (body === 'chunked' || body === 'both') {
      const chunks = payload === '' ? [] : r() < 0.5 ? [payload] : [payload.slice(0, 2), payload.slice(2)].filter((c) => c !== '');
      for (const c of chunks) {
        const size = c.length.toString(16);
        const sizeText = r() < 0.85 ? size : pick(r, [size.toUpperCase(), `0${size}`, ` ${size}`, `${size} `, `${size};ext`, `${size};e=v`, `${size} ;e`, `0x${size}`, `${size}\t`, `-${size}`, `${size};e="q"`, `${size};a="b c"`, `${size};a=b;c`, `${size};=b`, `${size}; a`, `${size};a="x\\"y"`]);
        parts.push(`${sizeText}${eol()}${c}${r() < 0.92 ? '\r\n' : pick(r, ['\n', '', '\r', 'XX'])}`);
      }
      parts.push(`${r() < 0.9 ? '0' : pick(r, ['00', '0;ext', '0 ', '000000'])}${eol()}`);
      if (r() < 0.2) parts.push(`${pick(r, ['X-T: 1', 'X-T:1', 'X T: 1', 'GET / HTTP/1.1', 'X-T: a\x00'])}${eol()}`);
      parts.push(r() < 0.85 ? '\r\n' : pick(r, ['\n', '', '\r', '\r\r\n']));
    }
  }
  return Buffer.from(parts.join(''), 'latin1');
}

const TOKENS = ['\r\n', '\n', '\r', ' ', '\t', ':', ',', ';', '0', 'chunked', '\r\n\r\n', '\x00', '\xa0', 'Content-Length: 1\r\n', 'Transfer-Encoding: chunked\r\n', 'HTTP/1.1'];

/** A few random byte edits: overwrite, delete, insert a token, duplicate a slice. */
export function mutate(input: Buffer, r: () => number): Buffer {
  const out = [...input];
  const edits = 1 + Math.floor(r() * 4);
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(r() * (out.length + 1));
    const op = r();
    if (op < 0.3 && out.length > 0) out[Math.min(at, out.length - 1)] = Math.floor(r() * 256);
    else if (op < 0.5) out.splice(at, 1 + Math.floor(r() * 3));
    else if (op < 0.85) out.splice(at, 0, ...Buffer.from(pick(r, TOKENS), 'latin1'));
    else {
      const len = Math.floor(r() * 16);
      out.splice(at, 0, ...out.slice(Math.max(0, at - len), at));
    }
  }
  return Buffer.from(out);
}

/** An escaped, readable form of an input for corpus files and messages. */
export const show = (b: Buffer): string => JSON.stringify(b.toString('latin1'));
