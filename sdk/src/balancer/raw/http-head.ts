/**
 * HTTP/1.x message heads for the raw engine: parse a client's request head (strictly: anything
 * ambiguous is a 400, so no request smuggling) and write the head sent upstream; parse a
 * back-end's response head (as strictly: anything ambiguous is a 502) and write the head sent to
 * the client. Bodies never pass through here. Grammar: RFC 9112 §2-§7 and RFC 9110 §5.
 */
import { connectionTokens, forwardedNode, type Forwarding } from '../forward-headers.js';

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** request-line = method SP request-target SP HTTP-version; the target is visible ASCII only. */
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP\/(\d)\.(\d)$/;
/** status-line = HTTP-version SP status-code SP [ reason-phrase ]; reason: HTAB / SP / VCHAR / obs-text. */
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: ([\t\x20-\x7e\x80-\xff]*))?$/;
/** Control characters (all but HTAB): never valid in a field value, nor are bare CR/LF. */
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
/** absolute-form (RFC 9112 §3.2.2): scheme "://" authority, then an optional path and query. */
const ABSOLUTE_FORM = /^[hH][tT][tT][pP][sS]?:\/\/([^/?#@]+)([/?][^#]*)?$/;
/** A Host value: uri-host [ ":" port ] with reg-name / IPv4 / IP-literal characters only. */
const HOST_VALUE = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=%]*|\[[0-9A-Fa-f:.vV\-._~!$&'()*+,;=]+\])(?::\d*)?$/;
/** One transfer coding list element (no parameters accepted). */
const CODING = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** `value` without leading and trailing SP / HTAB (RFC 9110 §5.5 OWS) — and nothing else. */
function ows(value: string): string {
  let a = 0;
  let b = value.length;
  while (a < b && (value.charCodeAt(a) === 32 || value.charCodeAt(a) === 9)) a++;
  while (b > a && (value.charCodeAt(b - 1) === 32 || value.charCodeAt(b - 1) === 9)) b--;
  return a === 0 && b === value.length ? value : value.slice(a, b);
}

/**
 * A Transfer-Encoding list (all field lines joined): the codings, lower-cased, with `chunked`
 * exactly once and last; or a string saying what is wrong with it.
 */
export function transferCodings(value: string): string[] | string {
  const out: string[] = [];
  for (const part of value.split(',')) {
    const t = ows(part).toLowerCase();
    // empty list elements are allowed by RFC 9110 §5.6.1 but refused by common parsers: refuse them
    if (!CODING.test(t)) return `invalid transfer coding "${part.slice(0, 40)}"`;
    out.push(t);
  }
  const first = out.indexOf('chunked');
  if (first === -1) return `Transfer-Encoding "${value.slice(0, 60)}" does not end with chunked`;
  if (first !== out.length - 1) return 'chunked must be the last transfer coding, and only once';
  return out;
}

/**
 * Where a message head ends in `buf` (scanning from `from`, which must be the first byte of the
 * start line): the index of its CRLFCRLF, -1 when more bytes are needed, -2 when the head holds a
 * bare LF or a CR not followed by LF (RFC 9112 §2.2: such a head is refused, never guessed at,
 * and at once rather than at the headers deadline).
 * `checked` is how far a previous call already looked for bare line ends.
 */
export function headEnd(buf: Buffer, from: number, checked = from): number {
  const end = buf.indexOf(CRLFCRLF, from);
  // a complete head is checked line by line by the parsers (a bare CR/LF is a control character)
  if (end !== -1) return end;
  const limit = buf.length;
  // bare LF: an LF whose previous byte is not CR
  for (let i = buf.indexOf(10, Math.max(from, checked)); i !== -1 && i < limit; i = buf.indexOf(10, i + 1)) {
    if (i === from || buf[i - 1] !== 13) return -2;
  }
  // bare CR: a CR followed by anything but LF
  for (let i = buf.indexOf(13, Math.max(from, checked - 1)); i !== -1 && i < limit; i = buf.indexOf(13, i + 1)) {
    if (i + 1 < buf.length && buf[i + 1] !== 10) return -2;
  }
  return end;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

export class HeadError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface RequestHead {
  readonly method: string;
  readonly target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  readonly minor: number;
  /** -1 when there is no Content-Length. */
  readonly contentLength: number;
  readonly chunked: boolean;
  readonly keepAlive: boolean;
  readonly expectContinue: boolean;
  /** False for an HTTP/1.0 request without Host: the engine adds the back-end's. */
  readonly hasHost: boolean;
  /** The protocol asked for with `Connection: upgrade` + `Upgrade` (e.g. websocket). */
  readonly upgrade: string | undefined;
  /** The head to send upstream, ending with the blank line. */
  readonly upstreamHead: string;
}

/** What one client connection's requests gain on the way upstream, its strings made once. */
export interface RequestForwarding extends Forwarding {
  readonly clientIp: string;
  readonly proto: 'http' | 'https';
  /** This hop's `Forwarded` element without its host: `for=NODE;proto=PROTO`. */
  readonly forwardedSelf: string;
}

export function requestForwarding(fwd: Forwarding, clientIp: string, proto: 'http' | 'https'): RequestForwarding {
  return { xForwarded: fwd.xForwarded, forwarded: fwd.forwarded, via: fwd.via, clientIp, proto, forwardedSelf: `for=${forwardedNode(clientIp)};proto=${proto}` };
}

/**
 * Parses `head` (request line and header lines, without the final blank line) and writes the
 * upstream head with the forwarding headers `fwd` asks for. Throws `HeadError` with the status
 * to answer.
 */
export function parseRequest(head: string, fwd: RequestForwarding): RequestHead {
  let eol = head.indexOf('\r\n');
  const line = eol === -1 ? head : head.slice(0, eol);
  const m = REQUEST_LINE.exec(line);
  if (m === null) throw new HeadError(400, 'malformed request line');
  if (m[3] !== '1') throw new HeadError(505, `HTTP/${m[3]}.${m[4]} is not supported`);
  const minor = m[4] === '0' ? 0 : m[4] === '1' ? 1 : -1;
  if (minor < 0) throw new HeadError(505, `HTTP/1.${m[4]} is not supported`);
  const method = m[1]!;
  let target = m[2]!;
  /** The authority of an absolute-form target, which replaces Host (RFC 9112 §3.2.2). */
  let authority: string | undefined;
  if (target.charCodeAt(0) !== 47 /* / */) {
    if (method === 'CONNECT') throw new HeadError(400, 'CONNECT is not supported');
    if (target === '*') {
      if (method !== 'OPTIONS') throw new HeadError(400, 'the asterisk-form target is only for OPTIONS');
    } else {
      const abs = ABSOLUTE_FORM.exec(target);
      if (abs === null || !HOST_VALUE.test(abs[1]!)) throw new HeadError(400, 'the request target must be a path (origin-form) or an absolute http(s) URI');
      authority = abs[1]!;
      const rest = abs[2] ?? '';
      target = rest === '' ? '/' : rest.charCodeAt(0) === 63 /* ? */ ? `/${rest}` : rest;
    }
  }
  let out = `${method} ${target} HTTP/1.1\r\n`;
  let contentLength = -1;
  let te: string | undefined;
  let connection: string | undefined;
  let host: string | undefined;
  let hosts = 0;
  let expectContinue = false;
  let xff: string | undefined;
  let forwarded: string | undefined;
  let viaIn: string | undefined;
  let upgradeValue: string | undefined;
  let kept = '';
  let start = eol === -1 ? head.length : eol + 2;
  while (start < head.length) {
    eol = head.indexOf('\r\n', start);
    if (eol === -1) eol = head.length;
    const colon = head.indexOf(':', start);
    if (colon <= start || colon > eol) throw new HeadError(400, 'malformed header line');
    const name = head.slice(start, colon);
    if (!TOKEN.test(name)) throw new HeadError(400, `invalid header name "${name.slice(0, 40)}"`);
    const value = ows(head.slice(colon + 1, eol));
    if (BAD_VALUE.test(value)) throw new HeadError(400, `invalid character in header "${name}"`);
    start = eol + 2;
    const lower = name.toLowerCase();
    switch (lower) {
      case 'host':
        // an http URI with an empty host is invalid (RFC 9110 §4.2.1): so is an empty Host
        if (value === '' || !HOST_VALUE.test(value)) throw new HeadError(400, 'invalid Host header');
        host = value;
        hosts++;
        continue;
      case 'content-length': {
        if (!/^\d{1,15}$/.test(value) || head.slice(colon + 1, eol).includes('\t')) throw new HeadError(400, 'invalid Content-Length');
        // even an identical repeat is refused, as llhttp does (RFC 9112 §6.3 allows either)
        if (contentLength !== -1) throw new HeadError(400, 'more than one Content-Length header');
        contentLength = Number(value);
        continue;
      }
      case 'transfer-encoding':
        // HTAB is valid OWS, but llhttp and others refuse it here: refuse it too
        if (head.slice(colon + 1, eol).includes('\t')) throw new HeadError(400, 'HTAB in Transfer-Encoding');
        te = te === undefined ? value : `${te}, ${value}`;
        continue;
      case 'connection':
        connection = connection === undefined ? value : `${connection}, ${value}`;
        continue;
      case 'expect':
        if (value.toLowerCase() === '100-continue') expectContinue = true;
        else throw new HeadError(417, `Expect "${value}" is not supported`);
        continue;
      case 'x-forwarded-for':
        if (!fwd.xForwarded) break;
        xff = xff === undefined ? value : `${xff}, ${value}`;
        continue;
      case 'forwarded':
        if (!fwd.forwarded) break;
        forwarded = forwarded === undefined ? value : `${forwarded}, ${value}`;
        continue;
      case 'via':
        if (fwd.via === '') break;
        viaIn = viaIn === undefined ? value : `${viaIn}, ${value}`;
        continue;
      case 'upgrade':
        upgradeValue = value;
        continue;
      case 'x-forwarded-proto':
      case 'x-forwarded-host':
        if (!fwd.xForwarded) break;
        continue;
      // the rest of HOP_BY_HOP, spelled out: cheaper than hashing every name for a set lookup
      case 'keep-alive':
      case 'proxy-connection':
      case 'te':
      case 'trailer':
      case 'proxy-authenticate':
      case 'proxy-authorization':
        continue;
    }
    kept += `${name}: ${value}\r\n`;
  }
  let codings: string[] | undefined;
  if (te !== undefined) {
    // RFC 9112 §6.1: HTTP/1.0 has no transfer codings; such framing is faulty, so refuse it
    if (minor === 0) throw new HeadError(400, 'Transfer-Encoding in an HTTP/1.0 request');
    if (contentLength !== -1) throw new HeadError(400, 'both Content-Length and Transfer-Encoding');
    const list = transferCodings(te);
    if (typeof list === 'string') throw new HeadError(400, list);
    codings = list;
  }
  const chunked = codings !== undefined;
  if (minor === 1 && hosts !== 1) throw new HeadError(400, hosts === 0 ? 'missing Host header' : 'more than one Host header');
  if (hosts > 1) throw new HeadError(400, 'more than one Host header');
  if (authority !== undefined) host = authority;
  const extra = connectionTokens(connection);
  if (extra !== undefined) kept = dropListed(kept, extra);
  if (host !== undefined) out += `host: ${host}\r\n`;
  const conn = connection?.toLowerCase() ?? '';
  const keepAlive = minor === 1 ? !/(?:^|,)\s*close\s*(?:,|$)/.test(conn) : /(?:^|,)\s*keep-alive\s*(?:,|$)/.test(conn);
  out += kept;
  if (fwd.xForwarded) {
    out += `x-forwarded-for: ${xff === undefined ? fwd.clientIp : `${xff}, ${fwd.clientIp}`}\r\nx-forwarded-proto: ${fwd.proto}\r\n`;
    if (host !== undefined) out += `x-forwarded-host: ${host}\r\n`;
  }
  if (fwd.forwarded) {
    const self = host !== undefined ? `${fwd.forwardedSelf};host="${unquoted(host)}"` : fwd.forwardedSelf;
    out += `forwarded: ${forwarded === undefined ? self : `${forwarded}, ${self}`}\r\n`;
  }
  if (fwd.via !== '') out += `via: ${viaIn === undefined ? fwd.via : `${viaIn}, ${fwd.via}`}\r\n`;
  // the whole coding list goes on: a proxy must not drop codings it does not decode
  if (codings !== undefined) out += `transfer-encoding: ${codings.length === 1 ? 'chunked' : codings.join(', ')}\r\n`;
  else if (contentLength !== -1) out += `content-length: ${contentLength}\r\n`;
  // an upgrade is end to end only when the client names it in Connection (RFC 9110 §7.8)
  const upgrade = upgradeValue !== undefined && minor === 1 && /(?:^|,)\s*upgrade\s*(?:,|$)/.test(conn) ? upgradeValue : undefined;
  if (upgrade !== undefined) out += `connection: upgrade\r\nupgrade: ${upgrade}\r\n`;
  out += '\r\n';
  return { method, target, minor, contentLength, chunked, keepAlive, expectContinue, hasHost: host !== undefined, upgrade, upstreamHead: out };
}

/** `host` without the quotes and backslashes a quoted-string cannot carry bare. */
function unquoted(host: string): string {
  return host.includes('"') || host.includes('\\') ? host.replace(/["\\]/g, '') : host;
}

/** Removes header lines whose lower-cased names are in `names` from a `name: value\r\n` block. */
function dropListed(block: string, names: Set<string>): string {
  return block
    .split('\r\n')
    .filter((l) => l === '' || !names.has(l.slice(0, l.indexOf(':')).toLowerCase()))
    .join('\r\n');
}

export interface ResponseHead {
  readonly status: number;
  /** -1 when there is no Content-Length (or when Transfer-Encoding overrides it). */
  readonly contentLength: number;
  readonly chunked: boolean;
  /** The transfer codings when there is more than `chunked` (e.g. `gzip, chunked`), else undefined. */
  readonly codings: string | undefined;
  /** The back-end will keep the connection open after this response. */
  readonly upstreamKeepAlive: boolean;
  /** Header lines for the client (`name: value\r\n`…), hop-by-hop and framing removed, Via added. */
  readonly headers: string;
  readonly reason: string;
  /** The `Upgrade` header of a 101 answer. */
  readonly upgrade: string | undefined;
}

/**
 * Parses a back-end's response head as strictly as a request head: a malformed start line,
 * invalid names, control characters (NUL, bare CR/LF) in values, an invalid Content-Length or
 * transfer coding list are a `HeadError(502)`; Content-Length with Transfer-Encoding is framed by
 * Transfer-Encoding and the Content-Length dropped (RFC 9112 §6.3). Framing headers are not in
 * `headers`: the client side writes its own from `contentLength`/`chunked`.
 */
export function parseResponse(head: string, via: string): ResponseHead {
  let eol = head.indexOf('\r\n');
  const m = STATUS_LINE.exec(eol === -1 ? head : head.slice(0, eol));
  if (m === null) throw new HeadError(502, 'the back-end sent a malformed status line');
  const minor = m[1] === '0' ? 0 : 1;
  const status = Number(m[2]);
  if (status < 100) throw new HeadError(502, 'the back-end sent a malformed status line');
  let contentLength = -1;
  let te: string | undefined;
  let connection: string | undefined;
  let viaIn: string | undefined;
  let upgrade: string | undefined;
  let headers = '';
  let start = eol === -1 ? head.length : eol + 2;
  while (start < head.length) {
    eol = head.indexOf('\r\n', start);
    if (eol === -1) eol = head.length;
    const colon = head.indexOf(':', start);
    if (colon <= start || colon > eol) throw new HeadError(502, 'the back-end sent a malformed header line');
    const name = head.slice(start, colon);
    if (!TOKEN.test(name)) throw new HeadError(502, 'the back-end sent an invalid header name');
    const value = ows(head.slice(colon + 1, eol));
    if (BAD_VALUE.test(value)) throw new HeadError(502, `the back-end sent an invalid character in header "${name}"`);
    start = eol + 2;
    const lower = name.toLowerCase();
    switch (lower) {
      case 'content-length': {
        const n = Number(value);
        if (!/^\d{1,15}$/.test(value) || (contentLength !== -1 && contentLength !== n)) throw new HeadError(502, 'the back-end sent an invalid Content-Length');
        contentLength = n;
        continue;
      }
      case 'transfer-encoding':
        te = te === undefined ? value : `${te}, ${value}`;
        continue;
      case 'connection':
        connection = connection === undefined ? value : `${connection}, ${value}`;
        continue;
      case 'via':
        if (via === '') break;
        viaIn = viaIn === undefined ? value : `${viaIn}, ${value}`;
        continue;
      case 'upgrade':
        upgrade = value;
        continue;
      // the rest of HOP_BY_HOP, spelled out: cheaper than hashing every name for a set lookup
      case 'keep-alive':
      case 'proxy-connection':
      case 'te':
      case 'trailer':
      case 'proxy-authenticate':
      case 'proxy-authorization':
      case 'expect':
        continue;
    }
    headers += `${name}: ${value}\r\n`;
  }
  let chunked = false;
  let codings: string | undefined;
  let bothFramings = false;
  if (te !== undefined) {
    if (minor === 0) throw new HeadError(502, 'the back-end sent Transfer-Encoding in an HTTP/1.0 response');
    const list = transferCodings(te);
    if (typeof list === 'string') throw new HeadError(502, `the back-end sent an invalid Transfer-Encoding: ${list}`);
    chunked = true;
    if (list.length > 1) codings = list.join(', ');
    if (contentLength !== -1) {
      contentLength = -1; // RFC 9112 §6.3: Transfer-Encoding wins, Content-Length is dropped
      bothFramings = true;
    }
  }
  const extra = connectionTokens(connection);
  if (extra !== undefined) headers = dropListed(headers, extra);
  const conn = connection?.toLowerCase() ?? '';
  // a back-end that sent both framings is not trusted with the next request on that socket
  const upstreamKeepAlive = bothFramings ? false : minor === 1 ? !/(?:^|,)\s*close\s*(?:,|$)/.test(conn) : /(?:^|,)\s*keep-alive\s*(?:,|$)/.test(conn);
  if (via !== '') headers += `via: ${viaIn === undefined ? via : `${viaIn}, ${via}`}\r\n`;
  return { status, contentLength, chunked, codings, upstreamKeepAlive, headers, reason: m[3] ?? '', upgrade };
}
