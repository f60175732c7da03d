/**
 * `trellis new strategy|codec|dht-routing <name>`: scaffolds a plugin package, as VS Code's
 * extension generator does — manifest, typed `src/`, a uvu test that loads the built plugin
 * through a real plugin host, a README and a build — ready to `npm install`, `npm test`,
 * `trellis lb --plugin-dir <folder>` and `npm pack`.
 */
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join, relative, resolve } from 'node:path';
import { defineCommand, intOption, UsageError } from '@trellis/sdk/cli';
import { SDK_VERSION } from '@trellis/sdk';

export type PluginKind = 'strategy' | 'codec' | 'dht-routing';
const KINDS: readonly PluginKind[] = ['strategy', 'codec', 'dht-routing'];

const PACKAGE_NAME = /^(@[a-z0-9][a-z0-9._-]*\/)?[a-z0-9][a-z0-9._-]*$/;
const ID = /^[a-z0-9][a-z0-9._-]*$/i;

export interface ScaffoldOptions {
  readonly kind: PluginKind;
  /** The package name (also the plugin id): `my-strategy` or `@acme/trellis-weighted`. */
  readonly name: string;
  /** Where to create the package folder (default: the current folder). */
  readonly parent?: string;
  /** The contribution id (default: the name without scope). */
  readonly id?: string;
  /** The codec's wire id (codecs only; default 128). */
  readonly wireId?: number;
}

/** The files of a new plugin package, by path relative to its folder. */
export function scaffoldFiles(options: ScaffoldOptions): Record<string, string> {
  const { kind, name } = options;
  const id = options.id ?? name.replace(/^@[^/]+\//, '');
  const wireId = options.wireId ?? 128;
  const sdkRange = `^${SDK_VERSION}`;
  const area = kind === 'strategy' ? 'strategies' : kind === 'codec' ? 'serializers' : 'dhtRouting';
  const contribution: Record<string, unknown> = { id, title: id, description: `TODO: what ${id} does` };
  if (kind === 'codec') contribution.wireId = wireId;
  const pkg = {
    name,
    version: '0.1.0',
    description: `A Trellis ${kind === 'dht-routing' ? 'DHT routing' : kind} plugin: ${id}`,
    keywords: ['trellis', 'trellis-plugin', `trellis-${kind}`],
    type: 'module',
    license: 'MIT',
    engines: { node: '>=20.18.1', trellis: sdkRange },
    main: './dist/index.js',
    types: './dist/index.d.ts',
    exports: { '.': { types: './dist/index.d.ts', default: './dist/index.js' }, './package.json': './package.json' },
    files: ['dist'],
    scripts: { build: 'tsc -p tsconfig.json', pretest: 'npm run build', test: 'tsx test/plugin.test.ts', prepack: 'npm run build' },
    contributes: { [area]: [contribution] },
    peerDependencies: { '@trellis/sdk': sdkRange },
    devDependencies: { '@trellis/sdk': sdkRange, '@types/node': '^20.19.0', tsx: '^4.20.0', typescript: '^5.9.0', uvu: '^0.5.6' },
  };
  const tsconfig = {
    compilerOptions: {
      target: 'ES2022',
      lib: ['ES2023'],
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      strict: true,
      declaration: true,
      outDir: 'dist',
      rootDir: 'src',
      types: ['node'],
      skipLibCheck: true,
    },
    include: ['src'],
  };
  const files: Record<string, string> = {
    'package.json': JSON.stringify(pkg, null, 2) + '\n',
    'tsconfig.json': JSON.stringify(tsconfig, null, 2) + '\n',
    '.gitignore': 'node_modules\ndist\n*.tgz\n',
    'README.md': readme(kind, name, id, wireId),
  };
  if (kind === 'strategy') Object.assign(files, strategyFiles(id));
  else if (kind === 'codec') Object.assign(files, codecFiles(id, wireId));
  else Object.assign(files, dhtFiles(id));
  return files;
}

function strategyFiles(id: string): Record<string, string> {
  return {
    'src/index.ts': `/** The ${id} plugin: registers its strategy with the routing area when a balancer asks for it. */
import type { PluginContext } from '@trellis/sdk';
import { createStrategy } from './strategy.js';

export { createStrategy };

export function activate(ctx: PluginContext): void {
  ctx.subscriptions.push(ctx.routing.registerStrategy(${JSON.stringify(id)}, createStrategy));
}
`,
    'src/strategy.ts': `/**
 * The ${id} strategy: the back-end with the fewest requests in flight; ties rotate, so an idle
 * pool is served round robin. Replace the body of select() with your policy.
 */
import type { Backend, Outcome, Strategy, StrategyInit } from '@trellis/sdk';

export function createStrategy(init: StrategyInit): Strategy {
  let backends: readonly Backend[] = init.backends;
  const active = new Map<string, number>();
  let turn = 0;
  return {
    select(): Backend | undefined {
      if (backends.length === 0) return undefined;
      let best: Backend | undefined;
      let bestActive = Infinity;
      for (let k = 0; k < backends.length; k++) {
        const b = backends[(turn + k) % backends.length]!;
        const n = active.get(b.id) ?? 0;
        if (n < bestActive) {
          best = b;
          bestActive = n;
        }
      }
      turn = (turn + 1) % backends.length;
      active.set(best!.id, bestActive + 1);
      return best;
    },
    update(backend: Backend, _outcome: Outcome): void {
      const n = active.get(backend.id) ?? 0;
      if (n > 0) active.set(backend.id, n - 1);
    },
    setBackends(next: readonly Backend[]): void {
      backends = next;
    },
  };
}
`,
    'test/plugin.test.ts': `/** Loads the built plugin through a real Trellis plugin host and checks its strategy. */
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHost } from '@trellis/sdk';

const pluginDir = fileURLToPath(new URL('..', import.meta.url));
const backends = ['a', 'b', 'c'].map((id, i) => ({ id, host: '127.0.0.1', port: 9000 + i }));

test('the host activates the plugin for ${id} and an idle pool is served in turn', async () => {
  const host = createHost({ discover: false, plugins: [pluginDir] });
  try {
    const strategy = await host.routing.createStrategy(${JSON.stringify(id)}, { backends, options: {} });
    const picks = [0, 1, 2, 3, 4, 5].map(() => {
      const b = strategy.select()!;
      strategy.update(b, { durationMs: 1, ok: true });
      return b.id;
    });
    assert.equal(picks, ['a', 'b', 'c', 'a', 'b', 'c']);
  } finally {
    await host.dispose();
  }
});

test('a busy back-end is avoided until its requests end', async () => {
  const host = createHost({ discover: false, plugins: [pluginDir] });
  try {
    const strategy = await host.routing.createStrategy(${JSON.stringify(id)}, { backends: backends.slice(0, 2), options: {} });
    const first = strategy.select()!;
    const second = strategy.select()!;
    assert.is.not(first.id, second.id);
    strategy.update(second, { durationMs: 1, ok: true });
    assert.is(strategy.select()!.id, second.id);
  } finally {
    await host.dispose();
  }
});

test.run();
`,
  };
}

function codecFiles(id: string, wireId: number): Record<string, string> {
  return {
    'src/index.ts': `/** The ${id} plugin: registers its codec (wire id ${wireId}) with the serialization area. */
import type { PluginContext } from '@trellis/sdk';
import { createCodec } from './codec.js';

export { createCodec };

export function activate(ctx: PluginContext): void {
  ctx.subscriptions.push(ctx.serialization.registerCodec(createCodec(ctx.errors)));
}
`,
    'src/codec.ts': `/**
 * The ${id} codec: UTF-8 JSON text for null, booleans, finite numbers, strings, arrays and plain
 * objects. Anything else, and any malformed input, is a CodecError (never another error).
 * Replace encode() and decode() with your format.
 */
import type { Codec, PluginContext, Value } from '@trellis/sdk';

const MAX_BYTES = 1024 * 1024;

export function createCodec(errors: PluginContext['errors']): Codec {
  const fail = (message: string, cause?: unknown) => new errors.CodecError(${JSON.stringify(id)}, message, { cause });
  const check = (value: unknown, depth: number): void => {
    if (depth > 64) throw fail('nested deeper than 64');
    if (value === null || typeof value === 'boolean' || typeof value === 'string') return;
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw fail('numbers must be finite');
      return;
    }
    if (Array.isArray(value)) return value.forEach((v) => check(v, depth + 1));
    if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
      for (const v of Object.values(value)) check(v, depth + 1);
      return;
    }
    throw fail(\`cannot encode a \${typeof value === 'object' ? (value as object).constructor?.name ?? 'object' : typeof value}\`);
  };
  return Object.freeze({
    wireId: ${wireId},
    name: ${JSON.stringify(id)},
    encode(value: Value): Uint8Array {
      check(value, 0);
      return new TextEncoder().encode(JSON.stringify(value));
    },
    decode(bytes: Uint8Array): Value {
      if (bytes.byteLength > MAX_BYTES) throw fail(\`document over \${MAX_BYTES} bytes\`);
      let text: string;
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
      } catch (err) {
        throw fail('invalid UTF-8', err);
      }
      let value: unknown;
      try {
        value = JSON.parse(text, (key, v) => {
          if (key === '__proto__') throw fail('the key __proto__ is refused');
          return v;
        });
      } catch (err) {
        if (err instanceof errors.CodecError) throw err;
        throw fail(\`malformed JSON: \${(err as Error).message}\`, err);
      }
      check(value, 0);
      return value as Value;
    },
  });
}
`,
    'test/plugin.test.ts': `/** Loads the built plugin through a real Trellis plugin host and checks its codec. */
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHost, ErrorCodes } from '@trellis/sdk';

const pluginDir = fileURLToPath(new URL('..', import.meta.url));

test('values round-trip through the ${id} codec the host provides', async () => {
  const host = createHost({ discover: false, plugins: [pluginDir] });
  try {
    const codec = await host.serialization.codec(${JSON.stringify(id)});
    assert.is(codec.wireId, ${wireId});
    const value = { name: 'trellis', list: [1, 2.5, true, null, 'x'], nested: { ok: false } };
    assert.equal(codec.decode(codec.encode(value)), value);
  } finally {
    await host.dispose();
  }
});

test('bad input is a CodecError, never another error', async () => {
  const host = createHost({ discover: false, plugins: [pluginDir] });
  try {
    const codec = await host.serialization.codec(${JSON.stringify(id)});
    for (const bytes of [new Uint8Array([0xff, 0xfe]), new TextEncoder().encode('{"a":'), new TextEncoder().encode('{"__proto__":{}}')]) {
      try {
        codec.decode(bytes);
        assert.unreachable('decode should throw');
      } catch (err) {
        assert.is((err as { code?: string }).code, ErrorCodes.CODEC);
      }
    }
    assert.throws(() => codec.encode(10n), (err: { code?: string }) => err.code === ErrorCodes.CODEC);
  } finally {
    await host.dispose();
  }
});

test.run();
`,
  };
}

function dhtFiles(id: string): Record<string, string> {
  return {
    'src/index.ts': `/** The ${id} plugin: registers its routing table with the DHT routing area. */
import type { PluginContext } from '@trellis/sdk';
import { createRoutingTable } from './routing-table.js';

export { createRoutingTable };

export function activate(ctx: PluginContext): void {
  ctx.subscriptions.push(ctx.dhtRouting.registerRouting(${JSON.stringify(id)}, createRoutingTable));
}
`,
    'src/routing-table.ts': `/**
 * The ${id} routing table: a sparse finger table with three fingers (entries 1, m/2 and m of
 * Chord's m), so lookups skip ahead without keeping all m entries. Entry i starts at
 * (n + 2^(i-1)) mod 2^m. Replace it with your policy.
 */
import type { DhtNode, DhtRoutingInit, DhtRoutingTable, RefreshEntry } from '@trellis/sdk';

/** Is x in the open ring interval (a, b)? */
function between(x: bigint, a: bigint, b: bigint): boolean {
  return a < b ? x > a && x < b : x > a || x < b;
}

export function createRoutingTable({ self, bits }: DhtRoutingInit): DhtRoutingTable {
  const size = 1n << BigInt(bits);
  const indexes = [...new Set([1, Math.max(1, Math.floor(bits / 2)), bits])];
  const start = (i: number) => (self.id + (1n << BigInt(i - 1))) % size;
  const fingers = new Map<number, DhtNode | undefined>(indexes.map((i) => [i, undefined]));
  return {
    closestPrecedingNode(id: bigint): DhtNode | undefined {
      for (const i of [...indexes].reverse()) {
        const node = fingers.get(i);
        if (node && between(node.id, self.id, id)) return node;
      }
      return undefined;
    },
    successorChanged(successor: DhtNode): void {
      fingers.set(1, successor);
    },
    nodeFailed(node: DhtNode): void {
      for (const [i, f] of fingers) if (f && f.id === node.id) fingers.set(i, undefined);
    },
    refresh(): readonly RefreshEntry[] {
      return indexes.map((index) => ({ index, start: start(index), node: fingers.get(index) }));
    },
    update(index: number, node: DhtNode): void {
      if (fingers.has(index)) fingers.set(index, node);
    },
    entries(): readonly (DhtNode | undefined)[] {
      return indexes.map((i) => fingers.get(i));
    },
  };
}
`,
    'test/plugin.test.ts': `/** Loads the built plugin through a real Trellis plugin host and checks its routing table. */
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHost } from '@trellis/sdk';

const pluginDir = fileURLToPath(new URL('..', import.meta.url));
const node = (id: number) => ({ id: BigInt(id), host: '127.0.0.1', port: 5000 + id });

test('the table routes to the closest preceding finger it knows', async () => {
  const host = createHost({ discover: false, plugins: [pluginDir] });
  try {
    const table = await host.dhtRouting.createRouting(${JSON.stringify(id)}, { self: node(0), bits: 8, options: {} });
    const wanted = table.refresh().map((e) => [e.index, e.start]);
    assert.equal(wanted, [[1, 1n], [4, 8n], [8, 128n]]);
    table.successorChanged(node(2));
    table.update(4, node(10));
    table.update(8, node(130));
    assert.is(table.closestPrecedingNode(200n)?.id, 130n);
    assert.is(table.closestPrecedingNode(50n)?.id, 10n);
    assert.is(table.closestPrecedingNode(1n), undefined);
    table.nodeFailed(node(130));
    assert.is(table.closestPrecedingNode(200n)?.id, 10n);
  } finally {
    await host.dispose();
  }
});

test.run();
`,
  };
}

function readme(kind: PluginKind, name: string, id: string, wireId: number): string {
  const flag = kind === 'strategy' ? `trellis lb --plugin-dir . --strategy ${id} --backend 127.0.0.1:8081`
    : kind === 'codec' ? `trellis broker --plugin-dir . --port 7000   # then: trellis pub --plugin-dir . --codec ${id} ...`
    : `trellis dht node --plugin-dir . --routing ${id} --port 5000`;
  return `# ${name}

A Trellis ${kind === 'dht-routing' ? 'DHT routing' : kind} plugin, contributing \`${id}\`${kind === 'codec' ? ` (wire id ${wireId})` : ''}.
Scaffolded by \`trellis new ${kind} ${name}\`.

## Develop

\`\`\`sh
npm install        # the SDK, TypeScript, Node's types, tsx and uvu
npm test           # builds dist/ with tsc, then runs test/plugin.test.ts through a real plugin host
${flag}
\`\`\`

\`package.json\` is the plugin manifest: \`engines.trellis\` (the SDK range, and the marker that
lets \`createHost()\` discover the package), \`contributes\` (what it provides, read without
running any code), \`main\` (the module whose \`activate(ctx)\` registers the implementation).

## Ship

\`\`\`sh
npm pack           # ${name.replace(/^@/, '').replace('/', '-')}-0.1.0.tgz: dist/, README.md, package.json
\`\`\`

An app that runs \`npm install ${name}\` gets \`${id}\` from \`createHost()\`, with no path.
`;
}

/** Writes the package; refuses a folder that exists and is not empty. Returns the folder. */
export async function scaffold(options: ScaffoldOptions): Promise<string> {
  if (!KINDS.includes(options.kind)) throw new UsageError(`kind must be one of ${KINDS.join(', ')}, got "${options.kind}"`);
  if (!PACKAGE_NAME.test(options.name)) throw new UsageError(`"${options.name}" is not a valid npm package name (lower case, e.g. my-strategy or @acme/trellis-weighted)`);
  const id = options.id ?? options.name.replace(/^@[^/]+\//, '');
  if (!ID.test(id)) throw new UsageError(`contribution id "${id}" may only hold letters, digits, ".", "_" and "-"`);
  const dir = resolve(options.parent ?? process.cwd(), basename(options.name));
  if (existsSync(dir) && readdirSync(dir).length > 0) throw new UsageError(`${dir} exists and is not empty`);
  for (const [file, text] of Object.entries(scaffoldFiles({ ...options, id }))) {
    await mkdir(join(dir, file, '..'), { recursive: true });
    await writeFile(join(dir, file), text);
  }
  return dir;
}

export default defineCommand({
  name: 'new',
  summary: 'Scaffold a plugin package: trellis new strategy|codec|dht-routing <name>',
  positionals: 'KIND NAME',
  options: {
    dir: { type: 'string', description: 'create the package folder in this folder (default: here)', placeholder: 'dir' },
    id: { type: 'string', description: 'contribution id (default: the name without its scope)', placeholder: 'id' },
    'wire-id': { type: 'string', description: 'wire id of a new codec, 0..255 (default 128; 0-2 are JSON, XML, Pickle)', placeholder: 'n' },
  },
  examples: ['trellis new strategy my-strategy', 'trellis new codec @acme/trellis-msgpack --wire-id 7', 'trellis new dht-routing sparse-fingers'],
  async run({ values, positionals }, io) {
    if (positionals.length !== 2) throw new UsageError('give the kind (strategy, codec or dht-routing) and the package name');
    const [kind, name] = positionals as [PluginKind, string];
    const wireId = intOption('wire-id', values['wire-id'], { min: 0, max: 255 });
    const dir = await scaffold({ kind, name, ...(values.dir ? { parent: values.dir } : {}), ...(values.id ? { id: values.id } : {}), ...(wireId !== undefined ? { wireId } : {}) });
    const rel = relative(process.cwd(), dir) || '.';
    io.stdout.write(`created ${kind} plugin ${name} in ${rel}\n\n  cd ${rel}\n  npm install\n  npm test\n\nthen load it with --plugin-dir ${rel}, or npm pack it.\n`);
    return 0;
  },
});
