/** Turns an engine value (bigint, bytes, nested) into plain JSON for the page. */
export function jsonSafe(value: unknown, depth = 0): unknown {
  if (depth > 8) return '…';
  if (typeof value === 'bigint') return `${value}n`;
  if (value instanceof Uint8Array) return { bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  if (Array.isArray(value)) return value.slice(0, 50).map((v) => jsonSafe(v, depth + 1));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).slice(0, 50).map(([k, v]) => [k, jsonSafe(v, depth + 1)]));
  }
  return value;
}
