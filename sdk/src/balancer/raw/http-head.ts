/**
 * HTTP/1.x message heads for the raw engine: parse a client's request head (strictly: anything
 * ambiguous is a 400, so no request smuggling) and write the head sent upstream; parse a
 * back-end's response head and write the head sent to the client. Bodies never pass through here.
 */
import { connectionTokens, forwardedNode } from '../forward-headers.js';

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP\/(\d)\.(\d)$/;
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/;
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;

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

/**
 * Parses `head` (request line and header lines, without the final blank line) and writes the
 * upstream head with forwarding headers. Throws `HeadError` with the status to answer.
 */
export function parseRequest(head: string, clientIp: string, via: string): RequestHead {
  let eol = head.indexOf('\r\n');
  const line = eol === -1 ? head : head.slice(0, eol);
  const m = REQUEST_LINE.exec(line);
  if (m === null) throw new HeadError(400, 'malformed request line');
  if (m[3] !== '1') throw new HeadError(505, `HTTP/${m[3]}.${m[4]} is not supported`);
  const minor = m[4] === '0' ? 0 : m[4] === '1' ? 1 : -1;
  if (minor < 0) throw new HeadError(505, `HTTP/1.${m[4]} is not supported`);
  const method = m[1]!;
  const target = m[2]!;
  if (target.charCodeAt(0) !== 47 /* / */) {
    throw new HeadError(400, method === 'CONNECT' ? 'CONNECT is not supported' : 'the request target must be a path (origin-form)');
  }
  let out = `${method} ${target} HTTP/1.1\r\n`;
  let contentLength = -1;
  let chunked = false;
  let te = false;
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
    const value = head.slice(colon + 1, eol).trim();
    if (BAD_VALUE.test(value)) throw new HeadError(400, `invalid character in header "${name}"`);
    start = eol + 2;
    const lower = name.toLowerCase();
    switch (lower) {
      case 'host':
        host = value;
        hosts++;
        break;
      case 'content-length': {
        if (!/^\d{1,15}$/.test(value)) throw new HeadError(400, 'invalid Content-Length');
        const n = Number(value);
        if (contentLength !== -1 && contentLength !== n) throw new HeadError(400, 'conflicting Content-Length headers');
        contentLength = n;
        continue;
      }
      case 'transfer-encoding':
        te = true;
        chunked = /(?:^|,)\s*chunked\s*$/i.test(value);
        if (!chunked) throw new HeadError(501, `Transfer-Encoding "${value}" is not supported`);
        continue;
      case 'connection':
        connection = connection === undefined ? value : `${connection}, ${value}`;
        continue;
      case 'expect':
        if (value.toLowerCase() === '100-continue') expectContinue = true;
        else throw new HeadError(417, `Expect "${value}" is not supported`);
        continue;
      case 'x-forwarded-for':
        xff = xff === undefined ? value : `${xff}, ${value}`;
        continue;
      case 'forwarded':
        forwarded = forwarded === undefined ? value : `${forwarded}, ${value}`;
        continue;
      case 'via':
        viaIn = viaIn === undefined ? value : `${viaIn}, ${value}`;
        continue;
      case 'upgrade':
        upgradeValue = value;
        continue;
      case 'x-forwarded-proto':
      case 'x-forwarded-host':
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
  if (te && contentLength !== -1) throw new HeadError(400, 'both Content-Length and Transfer-Encoding');
  if (minor === 1 && hosts !== 1) throw new HeadError(400, hosts === 0 ? 'missing Host header' : 'more than one Host header');
  const extra = connectionTokens(connection);
  if (extra !== undefined) kept = dropListed(kept, extra);
  const conn = connection?.toLowerCase() ?? '';
  const keepAlive = minor === 1 ? !/(?:^|,)\s*close\s*(?:,|$)/.test(conn) : /(?:^|,)\s*keep-alive\s*(?:,|$)/.test(conn);
  out += kept;
  out += `x-forwarded-for: ${xff === undefined ? clientIp : `${xff}, ${clientIp}`}\r\nx-forwarded-proto: http\r\n`;
  if (host !== undefined) out += `x-forwarded-host: ${host}\r\n`;
  const self = `for=${forwardedNode(clientIp)};proto=http${host !== undefined ? `;host="${unquoted(host)}"` : ''}`;
  out += `forwarded: ${forwarded === undefined ? self : `${forwarded}, ${self}`}\r\nvia: ${viaIn === undefined ? via : `${viaIn}, ${via}`}\r\n`;
  if (chunked) out += 'transfer-encoding: chunked\r\n';
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
  /** -1 when there is no Content-Length. */
  readonly contentLength: number;
  readonly chunked: boolean;
  /** The back-end will keep the connection open after this response. */
  readonly upstreamKeepAlive: boolean;
  /** Header lines for the client (`name: value\r\n`…), hop-by-hop removed, Via added. */
  readonly headers: string;
  readonly reason: string;
  /** The `Upgrade` header of a 101 answer. */
  readonly upgrade: string | undefined;
}

export function parseResponse(head: string, via: string): ResponseHead {
  let eol = head.indexOf('\r\n');
  const m = STATUS_LINE.exec(eol === -1 ? head : head.slice(0, eol));
  if (m === null) throw new HeadError(502, 'the back-end sent a malformed status line');
  const minor = m[1] === '0' ? 0 : 1;
  const status = Number(m[2]);
  let contentLength = -1;
  let chunked = false;
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
    const value = head.slice(colon + 1, eol).trim();
    start = eol + 2;
    const lower = name.toLowerCase();
    switch (lower) {
      case 'content-length': {
        const n = Number(value);
        if (!/^\d{1,15}$/.test(value) || (contentLength !== -1 && contentLength !== n)) throw new HeadError(502, 'the back-end sent an invalid Content-Length');
        contentLength = n;
        break;
      }
      case 'transfer-encoding':
        chunked = /(?:^|,)\s*chunked\s*$/i.test(value);
        if (!chunked) throw new HeadError(502, `the back-end sent Transfer-Encoding "${value}"`);
        continue;
      case 'connection':
        connection = connection === undefined ? value : `${connection}, ${value}`;
        continue;
      case 'via':
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
  if (chunked) contentLength = -1; // RFC 9112 §6.3: Transfer-Encoding wins
  const extra = connectionTokens(connection);
  if (extra !== undefined) headers = dropListed(headers, extra);
  const conn = connection?.toLowerCase() ?? '';
  const upstreamKeepAlive = minor === 1 ? !/(?:^|,)\s*close\s*(?:,|$)/.test(conn) : /(?:^|,)\s*keep-alive\s*(?:,|$)/.test(conn);
  headers += `via: ${viaIn === undefined ? via : `${viaIn}, ${via}`}\r\n`;
  return { status, contentLength, chunked, upstreamKeepAlive, headers, reason: m[3] ?? '', upgrade };
}
