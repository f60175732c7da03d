/**
 * `trellis dht`: run Chord nodes (`node`, `ring`) and talk to them with the reference protocol
 * (`put`, `get`, `info`, and `lookup`, which traces the path hop by hop).
 */
import { readFileSync } from 'node:fs';
import { addressOption, defineCommand, defineGroup, intOption, portOption, untilAborted, UsageError, createCommandHost, pluginDirOption } from '@trellis/sdk/cli';
import { TrellisError, type Value } from '@trellis/sdk';
import { createUdpNode, DhtClient, type ChordNode, type HashName, type WireMode } from '@trellis/sdk/dht';
import { startRing } from './ring.js';
import { parseValue, toJson, toJsonLines } from './json-value.js';

const nodeOptions = {
  bits: { type: 'string', default: '10', description: 'identifier bits m (ring of 2^m ids)', placeholder: 'm' },
  hash: { type: 'string', default: 'fnv1a', description: 'id hash: fnv1a (the reference) or sha1 (truncated to m bits)', placeholder: 'name' },
  routing: { type: 'string', default: 'chord-fingers', description: 'DHT routing plugin, or "none" for successor-only routing', placeholder: 'id' },
  successors: { type: 'string', default: '4', description: 'successor list length r', placeholder: 'r' },
  replicas: { type: 'string', default: '2', description: 'successors holding a copy of each key (k)', placeholder: 'k' },
  'stabilize-ms': { type: 'string', default: '250', description: 'stabilize period', placeholder: 'ms' },
  'identity-host': { type: 'string', description: 'host in the node id and advertised address (default: localhost when --host is loopback, as the original; else --host)', placeholder: 'host' },
  host: { type: 'string', default: '127.0.0.1', description: 'address to bind', placeholder: 'host' },
  'plugin-dir': pluginDirOption,
  'data-dir': { type: 'string', description: 'keep keys in an LMDB store here (ring: one sub-folder per port) and reload them on restart', placeholder: 'DIR' },
  'ring-key': { type: 'string', description: 'file holding the shared ring key (≥ 16 bytes): node-to-node datagrams are HMAC-tagged', placeholder: 'FILE' },
  'rate-limit': { type: 'string', default: '5000', description: 'datagrams/s accepted from one unverified source (0 = no limit)', placeholder: 'n' },
  'reply-budget': { type: 'string', default: '2097152', description: 'reply bytes/s sent to one unverified address (0 = no limit)', placeholder: 'bytes' },
  wire: { type: 'string', default: 'trellis', description: 'node protocol: trellis (versioned, checked) or reference (the original\'s, to share a ring with original nodes on a trusted network)', placeholder: 'name' },
} as const;

/** One rule for `node` and `ring`: the original names nodes after 'localhost'; other binds name themselves. */
export function defaultIdentityHost(bindHost: string): string {
  return bindHost === '127.0.0.1' || bindHost === 'localhost' ? 'localhost' : bindHost;
}

function readRingKey(file: string | undefined): Uint8Array | undefined {
  if (file === undefined) return undefined;
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new UsageError(`--ring-key: cannot read ${file}: ${(err as Error).message}`);
  }
  // a key written by `openssl rand -hex 32 > FILE` ends with a newline that is not part of it
  let end = bytes.byteLength;
  while (end > 0 && (bytes[end - 1] === 0x0a || bytes[end - 1] === 0x0d)) end--;
  if (end < 16) throw new UsageError(`--ring-key: ${file} holds ${end} bytes; a ring key needs at least 16`);
  return bytes.subarray(0, end);
}

function readNodeOptions(values: Record<string, string | boolean | string[] | undefined>) {
  const hash = values.hash as string;
  if (hash !== 'fnv1a' && hash !== 'sha1') throw new UsageError(`--hash must be fnv1a or sha1, got "${hash}"`);
  const wire = values.wire as string;
  if (wire !== 'trellis' && wire !== 'reference') throw new UsageError(`--wire must be trellis or reference, got "${wire}"`);
  if (wire === 'reference' && values['ring-key'] !== undefined) throw new UsageError('--ring-key cannot be used with --wire reference: the original protocol has no tags');
  const stabilizeMs = intOption('stabilize-ms', values['stabilize-ms'] as string, { min: 10, max: 600_000 })!;
  return {
    bits: intOption('bits', values.bits as string, { min: 3, max: 160 })!,
    hash: hash as HashName,
    routing: values.routing === 'none' ? null : (values.routing as string),
    successors: intOption('successors', values.successors as string, { min: 1, max: 64 })!,
    replicas: intOption('replicas', values.replicas as string, { min: 0, max: 16 })!,
    stabilizeMs,
    fixFingersMs: stabilizeMs * 2,
    checkPredecessorMs: stabilizeMs * 2,
    identityHost: (values['identity-host'] as string | undefined) ?? defaultIdentityHost(values.host as string),
    ringKey: readRingKey(values['ring-key'] as string | undefined),
    rateLimit: intOption('rate-limit', values['rate-limit'] as string, { min: 0 })!,
    replyBudget: intOption('reply-budget', values['reply-budget'] as string, { min: 0 })!,
    wire: wire as WireMode,
  };
}

/** The first line of an error's message: a failed start is reported in one line. */
function oneLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const code = err instanceof TrellisError ? ` [${err.code}]` : '';
  return message.split('\n')[0]! + code;
}

/** Resolves with `p`, or rejects as soon as `signal` aborts. */
function unlessAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error('interrupted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error(`interrupted (${(signal.reason as Error)?.message ?? 'aborted'})`));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => (signal.removeEventListener('abort', onAbort), resolve(v)),
      (e) => (signal.removeEventListener('abort', onAbort), reject(e)),
    );
  });
}

const node = defineCommand({
  name: 'node',
  summary: 'Run one Chord node (UDP, pickled datagrams)',
  options: {
    port: { type: 'string', short: 'p', default: '5000', description: 'UDP port', placeholder: 'port' },
    join: { type: 'string', short: 'j', description: 'join the ring of this node', placeholder: 'HOST:PORT' },
    ...nodeOptions,
  },
  examples: ['trellis dht node --port 5000', 'trellis dht node --port 5001 --join 127.0.0.1:5000', 'trellis dht node --port 7000 --bits 32 --hash sha1'],
  async run({ values }, io) {
    const port = portOption('port', values.port)!;
    const join = values.join !== undefined ? addressOption('join', values.join) : undefined;
    const options = readNodeOptions(values);
    const host = createCommandHost(import.meta.url, values['plugin-dir']);
    let dht: ChordNode | undefined;
    try {
      const dataDir = values['data-dir'] as string | undefined;
      const persistence = dataDir === undefined ? undefined : (await import('./lmdb-store.js')).openLmdbPersistence(dataDir, await host.serialization.codec('pickle'));
      dht = await createUdpNode(host, { ...options, persistence });
      await unlessAborted(dht.listen(port, values.host), io.signal);
      if (join) await unlessAborted(dht.join(join), io.signal);
    } catch (err) {
      // a node that did not start or join must not linger: free the port, say why in one line
      await dht?.close({ graceful: false }).catch(() => undefined);
      await host.dispose();
      io.stderr.write(`trellis dht node: ${join && !io.signal.aborted ? `join through ${join.host}:${join.port} failed: ` : ''}${oneLine(err)}\n`);
      return io.signal.aborted ? 130 : 1;
    }
    io.stdout.write(toJson({ id: dht.self.id, address: [dht.self.host, dht.self.port], joined: join ? `${join.host}:${join.port}` : null }) + '\n');
    await untilAborted(io.signal);
    await dht.close(); // graceful: keys to the successor, neighbours told; 2 s at most
    await host.dispose();
    return 0;
  },
});

const ring = defineCommand({
  name: 'ring',
  summary: 'Run N Chord nodes in this process on consecutive ports (like the original DHT.py)',
  options: {
    nodes: { type: 'string', short: 'n', default: '5', description: 'number of nodes', placeholder: 'N' },
    'base-port': { type: 'string', default: '5000', description: 'first port; nodes use base..base+N-1', placeholder: 'port' },
    ...nodeOptions,
  },
  examples: ['trellis dht ring --nodes 5 --base-port 5000'],
  async run({ values }, io) {
    const n = intOption('nodes', values.nodes, { min: 1, max: 1024 })!;
    const base = portOption('base-port', values['base-port'])!;
    if (base + n - 1 > 65535 || base < 1) throw new UsageError(`--base-port ${base} leaves no room for ${n} nodes`);
    const pluginHost = createCommandHost(import.meta.url, values['plugin-dir']);
    const r = await startRing({ ...readNodeOptions(values), pluginHost, ports: Array.from({ length: n }, (_, i) => base + i), host: values.host, dataDir: values['data-dir'] as string | undefined });
    for (const dht of r.nodes) io.stdout.write(toJson({ id: dht.self.id, address: [dht.self.host, dht.self.port] }) + '\n');
    await untilAborted(io.signal);
    for (const dht of r.nodes) await dht.close();
    await r.close();
    await pluginHost.dispose();
  },
});

function clientCommand<const N extends string>(name: N, summary: string, positionals: string, run: (client: DhtClient, node: { host: string; port: number }, args: string[], out: NodeJS.WritableStream) => Promise<number>) {
  return defineCommand({
    name,
    summary,
    positionals,
    options: {
      node: { type: 'string', default: '127.0.0.1:5000', description: 'any node of the ring', placeholder: 'HOST:PORT' },
      timeout: { type: 'string', default: '2000', description: 'reply deadline', placeholder: 'ms' },
      'plugin-dir': pluginDirOption,
    },
    async run({ values, positionals }, io) {
      const target = addressOption('node', values.node);
      const host = createCommandHost(import.meta.url, values['plugin-dir']);
      const codec = await host.serialization.codec('pickle');
      const client = new DhtClient({ codec, timeoutMs: intOption('timeout', values.timeout, { min: 1 }) });
      try {
        return await run(client, target, positionals, io.stdout);
      } finally {
        await client.close();
        await host.dispose();
      }
    },
  });
}

const put = clientCommand('put', 'Store a value (JSON or text) under a key', 'KEY VALUE', async (client, target, args, out) => {
  if (args.length !== 2) throw new UsageError('put needs KEY and VALUE');
  const rep = await client.request(target, { method: 'PUT', args: { key: args[0]!, value: parseValue(args[1]!) } });
  const ok = rep.method === 'ACK';
  const reason = !ok && rep.args !== null && typeof rep.args === 'object' && typeof (rep.args as Record<string, Value>).error === 'string' ? (rep.args as Record<string, Value>).error : undefined;
  out.write(ok ? 'ACK\n' : reason ? `NACK: ${reason}\n` : 'NACK\n');
  return ok ? 0 : 1;
});

const get = clientCommand('get', 'Read the value stored under a key (exit 1 when absent)', 'KEY', async (client, target, args, out) => {
  if (args.length !== 1) throw new UsageError('get needs KEY');
  const value = await client.get(target, args[0]!);
  if (value === undefined) {
    out.write('NACK\n');
    return 1;
  }
  out.write(toJson(value) + '\n');
  return 0;
});

const info = clientCommand('info', "Show a node's id, predecessor, successor list, finger table and key count", '', async (client, target, args, out) => {
  if (args.length !== 0) throw new UsageError('info takes no arguments');
  out.write(toJsonLines(await client.info(target)) + '\n');
  return 0;
});

const lookup = clientCommand('lookup', 'Find the node that owns a key and print the path the lookup took', 'KEY', async (client, target, args, out) => {
  if (args.length !== 1) throw new UsageError('lookup needs KEY');
  out.write(toJson({ key: args[0], ...(await client.lookup(target, args[0]!)) }) + '\n');
  return 0;
});

export const dht = defineGroup({
  name: 'dht',
  summary: 'Chord DHT: run nodes and rings, put/get keys, inspect nodes',
  subcommands: {
    node: async () => node,
    ring: async () => ring,
    put: async () => put,
    get: async () => get,
    info: async () => info,
    lookup: async () => lookup,
  },
});

export default dht;
