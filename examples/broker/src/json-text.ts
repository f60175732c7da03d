/**
 * Values as JSON text for the command line: the broker's value model is wider than JSON, so
 * integers beyond 2^53 print as bare integer literals and bytes as `{"$bytes":"<base64>"}`.
 * Parsing accepts the same forms back (and plain words as strings, for `trellis pub`).
 */
import type { Codec, Value } from '@trellis/sdk';

export function toJsonText(value: Value | undefined): string {
  if (value === undefined) return 'null';
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') return Number.isFinite(value) ? JSON.stringify(value) : JSON.stringify(String(value));
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Uint8Array) return JSON.stringify({ $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') });
  if (Array.isArray(value)) return `[${value.map(toJsonText).join(',')}]`;
  return `{${Object.entries(value as Record<string, Value>).map(([k, v]) => `${JSON.stringify(k)}:${toJsonText(v)}`).join(',')}}`;
}

const BIG_INTEGER = /^-?\d{16,}$/;

/** A command-line value that is JSON (or meant to be) but cannot be sent as such. */
export class ValueTextError extends Error {
  override readonly name = 'ValueTextError';
}

/** Text that can only have been meant as JSON: an object, array or quoted string. */
function looksLikeJson(text: string): boolean {
  const t = text.trimStart();
  return t.startsWith('{') || t.startsWith('[') || t.startsWith('"');
}

/**
 * Parses a command-line value: JSON when it is JSON (big integers kept exact, also inside
 * documents, when the json codec plugin is given), else the text itself. JSON the codec refuses
 * (a `__proto__` key, nesting too deep, a lone surrogate) and text that looks like JSON but does
 * not parse throw `ValueTextError` with the reason: they are never sent silently as a string.
 */
export function fromCommandLine(text: string, json?: Codec): Value {
  let syntaxOk = true;
  try {
    JSON.parse(text);
  } catch {
    syntaxOk = false;
  }
  if (json) {
    try {
      return json.decode(new TextEncoder().encode(text));
    } catch (err) {
      if (syntaxOk || looksLikeJson(text)) throw new ValueTextError(`${JSON.stringify(text.length > 60 ? text.slice(0, 60) + '…' : text)} is refused as JSON: ${(err as Error).message}${syntaxOk ? '' : ' (to send it as text, use --string)'}`);
      return text;
    }
  }
  if (BIG_INTEGER.test(text.trim())) {
    const n = BigInt(text.trim());
    return Number.isSafeInteger(Number(n)) ? Number(n) : n;
  }
  if (!syntaxOk) {
    if (looksLikeJson(text)) throw new ValueTextError(`${JSON.stringify(text.slice(0, 60))} looks like JSON but does not parse (to send it as text, use --string)`);
    return text;
  }
  return revive(JSON.parse(text));
}

function revive(v: unknown): Value {
  if (Array.isArray(v)) return v.map(revive);
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.includes('__proto__')) throw new ValueTextError('the key "__proto__" is refused in JSON values');
    if (keys.length === 1 && keys[0] === '$bytes' && typeof o.$bytes === 'string') return new Uint8Array(Buffer.from(o.$bytes, 'base64'));
    const out: Record<string, Value> = {};
    for (const k of keys) out[k] = revive(o[k]);
    return out;
  }
  return v as Value;
}
