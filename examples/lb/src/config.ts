/**
 * `trellis lb --config FILE`: the balancer described in YAML or JSON (both read by the `yaml`
 * package, which keeps every node's position), checked against a JSON Schema with ajv. An error
 * names the file, line, column and field (`lb.yaml:7:15: backends[1].weight: must be <= 256`).
 */
import { readFile } from 'node:fs/promises';
import { parseDocument, LineCounter, isNode, type Document } from 'yaml';
import { Ajv, type ErrorObject } from 'ajv';
import { InvalidArgumentError } from '@trellis/sdk';
import { parseBackend, type BackendAddress } from '@trellis/sdk/balancer';

const ms = { type: 'integer', minimum: 0, maximum: 3_600_000 } as const;
const port = { type: 'integer', minimum: 0, maximum: 65535 } as const;

/** The configuration file's JSON Schema (draft 2020-12 subset ajv checks by default). */
export const CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    listen: {
      type: 'object',
      additionalProperties: false,
      properties: { host: { type: 'string', minLength: 1 }, port },
    },
    mode: { enum: ['http', 'tcp'] },
    engine: { enum: ['raw', 'undici'] },
    strategy: {
      oneOf: [
        { type: 'string', minLength: 1 },
        {
          type: 'object',
          additionalProperties: false,
          required: ['id'],
          properties: { id: { type: 'string', minLength: 1 }, options: { type: 'object' } },
        },
      ],
    },
    backends: {
      type: 'array',
      minItems: 1,
      items: {
        oneOf: [
          { type: 'string', minLength: 3 },
          {
            type: 'object',
            additionalProperties: false,
            required: ['host', 'port'],
            properties: {
              host: { type: 'string', minLength: 1 },
              port: { type: 'integer', minimum: 1, maximum: 65535 },
              id: { type: 'string', minLength: 1 },
              weight: { type: 'integer', minimum: 0, maximum: 256 },
              tags: { type: 'array', items: { type: 'string', pattern: '^[\\w.:\\-/=]{1,64}$' } },
            },
          },
        ],
      },
    },
    healthCheck: {
      oneOf: [
        { const: false },
        {
          type: 'object',
          additionalProperties: false,
          properties: {
            intervalMs: ms,
            timeoutMs: ms,
            path: { type: 'string', pattern: '^/' },
            rise: { type: 'integer', minimum: 1, maximum: 100 },
            fall: { type: 'integer', minimum: 1, maximum: 100 },
          },
        },
      ],
    },
    timeouts: {
      type: 'object',
      additionalProperties: false,
      properties: { headersMs: ms, idleMs: ms, upstreamMs: ms, connectMs: ms, requestMs: ms, drainMs: ms },
    },
    retries: { type: 'integer', minimum: 0, maximum: 10 },
    admin: {
      type: 'object',
      additionalProperties: false,
      properties: { port, tokenFile: { type: 'string', minLength: 1 } },
    },
    pluginDirs: { type: 'array', items: { type: 'string', minLength: 1 } },
    forwardHeaders: { type: 'array', uniqueItems: true, items: { enum: ['x-forwarded', 'forwarded', 'via'] } },
  },
} as const;

export interface LbConfigFile {
  listen?: { host?: string; port?: number };
  mode?: 'http' | 'tcp';
  engine?: 'raw' | 'undici';
  strategy?: string | { id: string; options?: Record<string, unknown> };
  backends?: (string | BackendAddress)[];
  healthCheck?: false | { intervalMs?: number; timeoutMs?: number; path?: string; rise?: number; fall?: number };
  timeouts?: { headersMs?: number; idleMs?: number; upstreamMs?: number; connectMs?: number; requestMs?: number; drainMs?: number };
  retries?: number;
  admin?: { port?: number; tokenFile?: string };
  pluginDirs?: string[];
  /** Forwarding header families added to requests (default all three; [] for none). */
  forwardHeaders?: ('x-forwarded' | 'forwarded' | 'via')[];
}

/** A configuration file that cannot be used: the message names file, line, column and field. */
export class ConfigError extends InvalidArgumentError {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly column: number,
    readonly field: string,
    problem: string,
  ) {
    super(`${file}:${line}:${column}: ${field === '' ? '' : `${field}: `}${problem}`);
  }
}

const ajv = new Ajv({ allErrors: false, strict: true });
const validate = ajv.compile(CONFIG_SCHEMA);

/** `/backends/1/weight` → `backends[1].weight`. */
function fieldName(path: (string | number)[]): string {
  return path.reduce<string>((out, p) => (typeof p === 'number' ? `${out}[${p}]` : out === '' ? String(p) : `${out}.${p}`), '');
}

/** The most useful of ajv's errors: for `oneOf`, the branch that got furthest. */
function bestError(errors: ErrorObject[]): ErrorObject {
  return [...errors].sort((a, b) => b.instancePath.length - a.instancePath.length)[0]!;
}

/** Parses and validates configuration text; `file` is used in error messages. */
export function parseConfig(text: string, file: string): LbConfigFile {
  const lines = new LineCounter();
  const doc: Document = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const pos = lines.linePos(e.pos[0]);
    throw new ConfigError(file, pos.line, pos.col, '', e.message.split('\n')[0]!);
  }
  const value: unknown = doc.toJS({ maxAliasCount: 50 });
  if (value === null || value === undefined) throw new ConfigError(file, 1, 1, '', 'the file is empty');
  if (validate(value)) {
    const cfg = value as LbConfigFile;
    // back-end strings (`host:port,weight=W`) and duplicate ids are checked here, with their line
    const ids = new Set<string>();
    cfg.backends = cfg.backends?.map((b, i) => {
      const where = () => lines.linePos((doc.getIn(['backends', i], true) as { range?: [number] } | undefined)?.range?.[0] ?? 0);
      let a: BackendAddress;
      try {
        a = parseBackend(b);
      } catch (err) {
        const pos = where();
        throw new ConfigError(file, pos.line, pos.col, `backends[${i}]`, (err as Error).message);
      }
      const id = a.id ?? `${a.host}:${a.port}`;
      if (ids.has(id)) {
        const pos = where();
        throw new ConfigError(file, pos.line, pos.col, `backends[${i}]`, `back-end ${id} is listed twice`);
      }
      ids.add(id);
      return a;
    });
    return cfg;
  }
  const err = bestError(validate.errors ?? []);
  const path = err.instancePath === '' ? [] : err.instancePath.slice(1).split('/').map((p) => (/^\d+$/.test(p) ? Number(p) : p.replace(/~1/g, '/').replace(/~0/g, '~')));
  let field = fieldName(path);
  let problem = err.message ?? 'is invalid';
  if (err.keyword === 'additionalProperties') {
    const extra = (err.params as { additionalProperty: string }).additionalProperty;
    path.push(extra);
    field = fieldName(path);
    problem = 'unknown field';
  } else if (err.keyword === 'enum') {
    problem = `must be one of ${(err.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
  }
  // the position of the offending node (or its key), else of the closest ancestor that exists
  let node: unknown;
  for (let n = path.length; n >= 0 && !isNode(node); n--) {
    node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    if (err.keyword === 'additionalProperties' && n === path.length) {
      const parent = doc.getIn(path.slice(0, -1), true) as { items?: { key: unknown }[] } | undefined;
      const pair = parent?.items?.find((i) => (isNode(i.key) ? (i.key as { value?: unknown }).value : i.key) === path[path.length - 1]);
      if (pair !== undefined && isNode(pair.key)) node = pair.key;
    }
  }
  const range = isNode(node) ? (node as { range?: [number, number, number] }).range : undefined;
  const pos = lines.linePos(range?.[0] ?? 0);
  throw new ConfigError(file, pos.line, pos.col, field, problem);
}

/** Reads and validates a configuration file. */
export async function loadConfig(file: string): Promise<LbConfigFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, 0, 0, '', `cannot read the file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseConfig(text, file);
}
