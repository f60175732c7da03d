/** Test helper: turns the tagged JSON of the Python vector files into Trellis values. */
import type { Value } from '@trellis/sdk';

export function fromTagged(v: unknown): Value {
  if (v === null || typeof v !== 'object') return v as Value;
  if (Array.isArray(v)) return v.map(fromTagged);
  const o = v as Record<string, unknown>;
  if (typeof o.$bytes === 'string') return Uint8Array.from(Buffer.from(o.$bytes, 'hex'));
  if (typeof o.$int === 'string') return BigInt(o.$int);
  if (typeof o.$float === 'string') return o.$float === 'nan' ? NaN : o.$float === 'inf' ? Infinity : -Infinity;
  const out: Record<string, Value> = {};
  for (const [k, x] of Object.entries(o)) out[k] = fromTagged(x);
  return out;
}
