/** Printing DHT values and INFO answers as JSON: big integers as numbers' text, bytes as hex. */
export function toJson(value: unknown, indent?: number): string {
  return JSON.stringify(
    value,
    (_k, v) => (typeof v === 'bigint' ? (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()) : v instanceof Uint8Array ? { hex: Buffer.from(v).toString('hex') } : v),
    indent,
  );
}

/** A command-line value: JSON when it parses (`[0,1,2]`, `42`, `"x"`), the plain text otherwise. */
export function parseValue(text: string): import('@trellis/sdk').Value {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** An object as JSON with one top-level field per line and each value on one line (INFO tables stay readable). */
export function toJsonLines(obj: Record<string, unknown>): string {
  const fields = Object.entries(obj).map(([k, v]) => `  ${JSON.stringify(k)}: ${toJson(v)}`);
  return `{\n${fields.join(',\n')}\n}`;
}
