/**
 * `trellis dht`: run Chord nodes (`node`, `ring`) and talk to them with the reference protocol
 * (`put`, `get`, `info`, and `lookup`, which traces the path hop by hop).
 */
import { addressOption, defineCommand, defineGroup, intOption, portOption, untilAborted, UsageError, createCommandHost, pluginDirOption } from '@trellis/sdk/cli';
import { createUdpNode, DhtClient, type HashName } from '@trellis/sdk/dht';
import { startRing } from './ring.js';
import { parseValue, toJson, toJsonLines } from './json-value.js';

const nodeOptions = {
  bits: { type: 'string', default: '10', description: 'identifier bits m (ring of 2^m ids)', placeholder: 'm' },
  hash: { type: 'string', default: 'fnv1a', description: 'id hash: fnv1a (the reference) or sha1 (truncated to m bits)', placeholder: 'name' },
  routing: { type: 'string', default: 'chord-fingers', description: 'DHT routing plugin, or "none" for successor-only routing', placeholder: 'id' },
  successors: { type: 'string', default: '4', description: 'successor list length r', placeholder: 'r' },
  replicas: { type: 'string', default: '2', description: 'successors holding a copy of each key (k)', placeholder: 'k' },
  'stabilize-ms': { type: 'string', default: '250', description: 'stabilize period', placeholder: 'ms' },
  'identity-host': { type: 'string', description: 'host in the node id and advertised address (default: --host)', placeholder: 'host' },
  host: { type: 'string', default: '127.0.0.1', description: 'address to bind', placeholder: 'host' },
  'plugin-dir': pluginDirOption,
} as const;

function readNodeOptions(values: Record<string, string | boolean | string[] | undefined>) {
  const hash = values.hash as string;
  if (hash !== 'fnv1a' && hash !== 'sha1') throw new UsageError(`--hash must be fnv1a or sha1, got "${hash}"`);
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
    identityHost: values['identity-host'] as string | undefined,
  };
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
    const host = createCommandHost(import.meta.url, values['plugin-dir']);
    const dht = await createUdpNode(host, readNodeOptions(values));
    await dht.listen(port, values.host);
    if (join) await dht.join(join);
    io.stdout.write(toJson({ id: dht.self.id, address: [dht.self.host, dht.self.port], joined: join ? `${join.host}:${join.port}` : null }) + '\n');
    await untilAborted(io.signal);
    await dht.close();
    await host.dispose();
  },
});

const ring = defineCommand({
  name: 'ring',
  summary: 'Run N Chord nodes in this process on consecutive ports (like the original DHT.py)',
  options: {
    nodes: { type: 'string', short: 'n', default: '5', description: 'number of nodes', placeholder: 'N' },
    'base-port': { type: 'string', default: '5000', description: 'first port; nodes use base..base+N-1', placeholder: 'port' },
    ...nodeOptions,
    'identity-host': { type: 'string', default: 'localhost', description: 'host in node ids (the original uses localhost)', placeholder: 'host' },
  },
  examples: ['trellis dht ring --nodes 5 --base-port 5000'],
  async run({ values }, io) {
    const n = intOption('nodes', values.nodes, { min: 1, max: 1024 })!;
    const base = portOption('base-port', values['base-port'])!;
    if (base + n - 1 > 65535 || base < 1) throw new UsageError(`--base-port ${base} leaves no room for ${n} nodes`);
    const pluginHost = createCommandHost(import.meta.url, values['plugin-dir']);
    const r = await startRing({ ...readNodeOptions(values), pluginHost, ports: Array.from({ length: n }, (_, i) => base + i), host: values.host });
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
  const ok = await client.put(target, args[0]!, parseValue(args[1]!));
  out.write(ok ? 'ACK\n' : 'NACK\n');
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
