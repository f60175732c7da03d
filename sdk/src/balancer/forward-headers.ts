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

/**
 * Request headers for the back-end: `raw` is Node's `req.rawHeaders`. Returns a flat
 * `[name, value, …]` array for undici.
 */
export function requestHeaders(raw: readonly string[], connection: string | undefined, clientIp: string, proto: string, via: string): string[] {
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
        xff = xff === undefined ? value : `${xff}, ${value}`;
        continue;
      case 'forwarded':
        forwarded = forwarded === undefined ? value : `${forwarded}, ${value}`;
        continue;
      case 'via':
        viaIn = viaIn === undefined ? value : `${viaIn}, ${value}`;
        continue;
      case 'x-forwarded-proto':
      case 'x-forwarded-host':
        continue;
      case 'host':
        host = value;
        break;
    }
    out.push(name, value);
  }
  out.push('x-forwarded-for', xff === undefined ? clientIp : `${xff}, ${clientIp}`);
  out.push('x-forwarded-proto', proto);
  if (host !== undefined) out.push('x-forwarded-host', host);
  const self = `for=${forwardedNode(clientIp)};proto=${proto}${host !== undefined ? `;host="${host.replace(/["\\]/g, '')}"` : ''}`;
  out.push('forwarded', forwarded === undefined ? self : `${forwarded}, ${self}`);
  out.push('via', viaIn === undefined ? via : `${viaIn}, ${via}`);
  return out;
}

/**
 * Response headers for the client: `raw` is undici's raw `[name, value, …]` buffers. Returns a
 * flat string array for `res.writeHead`, with `Via` appended.
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
    if (lower === 'via') {
      viaIn = viaIn === undefined ? value : `${viaIn}, ${value}`;
      continue;
    }
    out.push(name, value);
  }
  if (extra !== undefined) {
    for (let i = out.length - 2; i >= 0; i -= 2) if (extra.has(out[i]!.toLowerCase())) out.splice(i, 2);
  }
  out.push('via', viaIn === undefined ? via : `${viaIn}, ${via}`);
  return out;
}
