/**
 * Header rewriting for HTTP mode: hop-by-hop headers are dropped both ways (RFC 9110 §7.6.1),
 * and the request gains `X-Forwarded-For`/`-Proto`/`-Host`, `Forwarded` (RFC 7239) and `Via`.
 * Works on flat raw header arrays so names keep their case and repeated headers stay apart.
 */

/** Never forwarded: they describe one connection, not the message (plus `expect`, which the proxy answers itself). */
export const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization', 'expect']);

/** Extra names a `Connection` header lists as hop-by-hop, lower-cased (usually none). */
export function connectionTokens(value: string | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  // the usual single token names no extra header: skip the split
  const whole = value.trim().toLowerCase();
  if (whole === 'keep-alive' || whole === 'close' || whole === '') return undefined;
  let out: Set<string> | undefined;
  for (const token of value.split(',')) {
    const t = token.trim().toLowerCase();
    if (t !== '' && t !== 'close' && t !== 'keep-alive') (out ??= new Set()).add(t);
  }
  return out;
}

/** The client's address as it appears in forwarding headers (IPv4-mapped IPv6 unwrapped). */
export function clientAddress(remote: string | undefined): string {
  if (remote === undefined) return 'unknown';
  return remote.startsWith('::ffff:') ? remote.slice(7) : remote;
}

export function forwardedNode(ip: string): string {
  return ip.includes(':') ? `"[${ip}]"` : ip;
}

/** The forwarding header families HTTP mode can add to requests (`via` goes on responses too). */
export type ForwardHeader = 'x-forwarded' | 'forwarded' | 'via';
export const FORWARD_HEADERS: readonly ForwardHeader[] = ['x-forwarded', 'forwarded', 'via'];

/**
 * What the balancer adds on the way through. A family that is off is neither added nor touched:
 * the client's own headers of that family pass through as they came (as haproxy without
 * `option forwardfor` and nginx without `proxy_set_header` do).
 */
export interface Forwarding {
  /** `X-Forwarded-For` (appended to), `X-Forwarded-Proto` and `X-Forwarded-Host` (replaced). */
  readonly xForwarded: boolean;
  /** RFC 7239 `Forwarded` (appended to). */
  readonly forwarded: boolean;
  /** `1.1 NAME` appended to `Via` both ways, and sent on the balancer's own answers; '' when off. */
  readonly via: string;
}

/** Checks a `forwardHeaders` list; returns the settings or a message saying what is wrong. */
export function forwardingOf(list: readonly string[] | undefined, viaName: string): Forwarding | string {
  if (list === undefined) return { xForwarded: true, forwarded: true, via: `1.1 ${viaName}` };
  if (!Array.isArray(list)) return 'forwardHeaders must be an array of "x-forwarded", "forwarded", "via"';
  for (const h of list) if (!FORWARD_HEADERS.includes(h as ForwardHeader)) return `unknown forwarding header "${String(h)}" (known: ${FORWARD_HEADERS.join(', ')})`;
  return { xForwarded: list.includes('x-forwarded'), forwarded: list.includes('forwarded'), via: list.includes('via') ? `1.1 ${viaName}` : '' };
}

/**
 * Request headers for the back-end: `raw` is Node's `req.rawHeaders`. Returns a flat
 * `[name, value, …]` array for undici.
 */
export function requestHeaders(raw: readonly string[], connection: string | undefined, clientIp: string, proto: string, fwd: Forwarding): string[] {
  const extra = connectionTokens(connection);
  const out: string[] = [];
  let xff: string | undefined;
  let forwarded: string | undefined;
  let viaIn: string | undefined;
  let host: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || (extra !== undefined && extra.has(lower))) continue;
    const value = raw[i + 1]!;
    switch (lower) {
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
      case 'x-forwarded-proto':
      case 'x-forwarded-host':
        if (!fwd.xForwarded) break;
        continue;
      case 'host':
        host = value;
        break;
    }
    out.push(name, value);
  }
  if (fwd.xForwarded) {
    out.push('x-forwarded-for', xff === undefined ? clientIp : `${xff}, ${clientIp}`);
    out.push('x-forwarded-proto', proto);
    if (host !== undefined) out.push('x-forwarded-host', host);
  }
  if (fwd.forwarded) {
    const self = `for=${forwardedNode(clientIp)};proto=${proto}${host !== undefined ? `;host="${host.replace(/["\\]/g, '')}"` : ''}`;
    out.push('forwarded', forwarded === undefined ? self : `${forwarded}, ${self}`);
  }
  if (fwd.via !== '') out.push('via', viaIn === undefined ? fwd.via : `${viaIn}, ${fwd.via}`);
  return out;
}

/**
 * Response headers for the client: `raw` is undici's raw `[name, value, …]` buffers. Returns a
 * flat string array for `res.writeHead`, with `Via` appended (when `via` is not '').
 */
export function responseHeaders(raw: readonly (Buffer | string)[], via: string): string[] {
  const out: string[] = [];
  let extra: Set<string> | undefined;
  let viaIn: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    const lower = name.toLowerCase();
    const value = raw[i + 1]!.toString('latin1');
    if (lower === 'connection') {
      extra = connectionTokens(value);
      continue;
    }
    if (HOP_BY_HOP.has(lower)) continue;
    if (lower === 'via' && via !== '') {
      viaIn = viaIn === undefined ? value : `${viaIn}, ${value}`;
      continue;
    }
    out.push(name, value);
  }
  if (extra !== undefined) {
    for (let i = out.length - 2; i >= 0; i -= 2) if (extra.has(out[i]!.toLowerCase())) out.splice(i, 2);
  }
  if (via !== '') out.push('via', viaIn === undefined ? via : `${viaIn}, ${via}`);
  return out;
}
