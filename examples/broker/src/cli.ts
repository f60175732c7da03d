/**
 * The broker's commands: `trellis broker`, `pub`, `sub` and `topics` (DESIGN.md). Each is a
 * thin shell over the SDK's `createBroker` and `connect`.
 */
import { createInterface } from 'node:readline';
import { defineCommand, intOption, portOption, untilAborted, UsageError } from '@trellis/sdk/cli';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { createBroker, createHost, connect, openLmdbStore, memoryStore, checkTopic, checkFilter, isWildcard, type PluginHost, type BrokerClient, type Value } from '@trellis/sdk';
import { fromCommandLine, toJsonText, ValueTextError } from './json-text.js';

/** The port every broker command uses unless told otherwise. */
export const DEFAULT_BROKER_PORT = 7000;

const common = {
  port: { type: 'string', short: 'p', default: String(DEFAULT_BROKER_PORT), description: 'broker port', placeholder: 'port' },
  host: { type: 'string', default: '127.0.0.1', description: 'broker address', placeholder: 'host' },
  dir: { type: 'string', short: 'd', multiple: true, description: 'also load plugins from this directory', placeholder: 'dir' },
} as const;

const codecOption = { type: 'string', short: 'c', default: 'json', description: 'codec to speak: json, xml, pickle, any installed serializer, or a wire id', placeholder: 'codec' } as const;

function pluginHost(dirs: string[] | undefined): PluginHost {
  return createHost({ dirs: dirs ?? [] });
}

async function open(values: { port: string; host: string; dir?: string[] | undefined }, codec: string, role: 'producer' | 'consumer' | 'both', plugins: PluginHost): Promise<BrokerClient> {
  const port = portOption('port', values.port)!;
  await plugins.scan();
  const byId = /^\d+$/.test(codec) ? Number(codec) : codec;
  const installed = plugins.serialization.serializers();
  if (typeof byId === 'string' && !installed.includes(byId)) {
    throw new UsageError(`--codec "${codec}" is not installed; available: ${installed.join(', ') || 'none'}`);
  }
  return connect({ port, hostname: values.host, codec: byId, plugins, role });
}

function topicOption(value: string | undefined, { root = false } = {}): string {
  if (value === undefined) throw new UsageError('--topic is required');
  const problem = root && isWildcard(value) ? checkFilter(value) : checkTopic(value, { root });
  if (problem) throw new UsageError(`--topic "${value}": ${problem} (a topic is a name like qwerty or a path like /weather/temperature)`);
  return value;
}

export const broker = defineCommand({
  name: 'broker',
  summary: 'Run the pub/sub message broker',
  options: {
    ...common,
    host: { type: 'string', default: '127.0.0.1', description: 'address to listen on (0.0.0.0 for every interface)', placeholder: 'host' },
    'max-frame-bytes': { type: 'string', default: String(1024 * 1024), description: 'largest frame a client may send', placeholder: 'bytes' },
    'max-buffer-bytes': { type: 'string', default: String(8 * 1024 * 1024), description: 'output a slow consumer may have waiting before it is disconnected', placeholder: 'bytes' },
    stats: { type: 'boolean', description: 'print stats to stderr every second' },
    'data-dir': { type: 'string', description: 'where last values and persistent sessions are kept (LMDB; default ~/.local/state/trellis/broker-PORT)', placeholder: 'dir' },
    'in-memory': { type: 'boolean', description: 'keep everything in memory only: a restart loses last values and sessions' },
  },
  examples: ['trellis broker --port 7000', 'trellis broker --port 7000 --data-dir /var/lib/trellis-broker', 'trellis broker --port 7000 --in-memory --dir ./my-codecs --stats'],
  async run({ values }, io) {
    const port = portOption('port', values.port)!;
    const maxFrameBytes = intOption('max-frame-bytes', values['max-frame-bytes'], { min: 64, max: 0xffffffff })!;
    const maxBufferBytes = intOption('max-buffer-bytes', values['max-buffer-bytes'], { min: 1024 })!;
    const plugins = pluginHost(values.dir);
    await plugins.scan();
    if (values['in-memory'] && values['data-dir'] !== undefined) throw new UsageError('--in-memory and --data-dir exclude each other');
    const dataDir = values['in-memory'] ? undefined : resolve(values['data-dir'] ?? join(process.env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'trellis', `broker-${port}`));
    const store = dataDir ? await openLmdbStore(dataDir) : memoryStore();
    const engine = createBroker({ host: plugins, maxFrameBytes, maxBufferBytes, store });
    engine.on('slow-consumer', (c, pending) => io.stderr.write(`broker: disconnected slow consumer ${c.remote} (${pending} bytes waiting)\n`));
    engine.on('client-error', (c, err) => io.stderr.write(`broker: dropped ${c.remote}: ${err.message}\n`));
    if (values.stats) {
      engine.on('stats', (s) => io.stderr.write(`broker: ${s.connections} clients, ${s.topics} topics, ${s.subscriptions} subscriptions, ${s.rates.in} msg/s in, ${s.rates.out} msg/s out\n`));
    }
    const address = await engine.listen(port, values.host);
    const codecs = plugins.serialization
      .serializers()
      .map((n) => ({ n, id: wireIdOf(plugins, n) }))
      .sort((a, b) => Number(a.id) - Number(b.id))
      .map(({ n, id }) => `${n}(${id})`)
      .join(', ');
    io.stdout.write(`broker listening on ${address.host}:${address.port} (codecs: ${codecs || 'none installed'})\n`);
    io.stderr.write(`broker: state ${dataDir ? `kept in ${dataDir}` : 'in memory only (--in-memory)'}; ${engine.stats().topics} last values, ${engine.stats().delivery.sessions} persistent sessions\n`);
    await untilAborted(io.signal);
    await engine.close({ timeoutMs: 3000 });
    await plugins.dispose();
  },
});

function wireIdOf(plugins: PluginHost, name: string): number | string {
  for (let id = 0; id < 256; id++) if (plugins.serialization.nameOf(id) === name) return id;
  return '?';
}

export const pub = defineCommand({
  name: 'pub',
  summary: 'Publish values to a topic (each acknowledged by the broker)',
  usage: '--topic T [--codec C] [--port P] [VALUE...]',
  description: 'Each VALUE is parsed as JSON when it is JSON, else sent as a string (--string sends every VALUE as text). JSON the value model refuses (a __proto__ key, nesting deeper than 512, a lone surrogate) and text that looks like JSON but does not parse are errors (exit 2), never silently strings. Without VALUEs, one value per line is read from stdin.',
  positionals: '[VALUE...]',
  options: {
    ...common,
    topic: { type: 'string', short: 't', description: 'topic, e.g. /weather/temperature or qwerty (no + or #: those are subscription wildcards)', placeholder: 'topic' },
    codec: codecOption,
    string: { type: 'boolean', description: 'send every VALUE as a string, verbatim (no JSON parsing)' },
  },
  examples: ['trellis pub --port 7000 --topic /weather/temperature --codec xml 21.5', 'trellis pub --topic /msg \'{"text":"hi"}\' second-message'],
  async run({ values, positionals }, io) {
    const topic = topicOption(values.topic);
    const plugins = pluginHost(values.dir);
    // the json plugin parses values exactly (integers beyond 2^53, {"$bytes": …}); without it, JSON.parse
    await plugins.scan();
    const json = await plugins.serialization.codec('json').catch(() => undefined);
    const parse = (text: string): Value => {
      if (values.string) return text;
      try {
        return fromCommandLine(text, json);
      } catch (err) {
        if (err instanceof ValueTextError) throw new UsageError(`VALUE ${err.message}`);
        throw err;
      }
    };
    // every VALUE given as an argument is checked before anything is sent
    const parsed = positionals.map(parse);
    const client = await open(values, values.codec, 'producer', plugins);
    let count = 0;
    try {
      if (positionals.length > 0) {
        for (const value of parsed) {
          await client.publish(topic, value, { ack: true });
          count++;
        }
      } else {
        const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
        for await (const line of lines) {
          if (line.trim() === '') continue;
          await client.publish(topic, parse(line), { ack: true });
          count++;
        }
      }
    } finally {
      await client.close();
      await plugins.dispose();
    }
    io.stderr.write(`published ${count} message${count === 1 ? '' : 's'} to ${topic}\n`);
  },
});

export const sub = defineCommand({
  name: 'sub',
  summary: 'Subscribe to a topic (and everything under it); one JSON line per message',
  usage: '--topic T [--codec C] [--port P] [--count N]',
  options: {
    ...common,
    topic: { type: 'string', short: 't', description: 'topic (with everything under it); "/" means every topic; + and # are MQTT wildcards (/a/+/c, /a/#)', placeholder: 'topic' },
    codec: codecOption,
    count: { type: 'string', short: 'n', description: 'exit after N messages (the last values sent on subscribing count)', placeholder: 'N' },
  },
  examples: ['trellis sub --port 7000 --topic /weather --codec pickle', 'trellis sub --topic /temp --count 1'],
  async run({ values }, io) {
    const topic = topicOption(values.topic, { root: true });
    const count = intOption('count', values.count, { min: 1 });
    const plugins = pluginHost(values.dir);
    const client = await open(values, values.codec, 'consumer', plugins);
    const subscription = await client.subscribe(topic);
    const stop = () => void client.close();
    io.signal.addEventListener('abort', stop, { once: true });
    let seen = 0;
    try {
      for await (const m of subscription) {
        io.stdout.write(`{"topic":${JSON.stringify(m.topic)},"value":${toJsonText(m.value)}}\n`);
        if (count !== undefined && ++seen >= count) break;
      }
    } finally {
      io.signal.removeEventListener('abort', stop);
      await client.close();
      await plugins.dispose();
    }
  },
});

export const topics = defineCommand({
  name: 'topics',
  summary: 'List the topics that hold a value (a JSON array)',
  options: { ...common, codec: codecOption },
  examples: ['trellis topics --port 7000'],
  async run({ values }, io) {
    const plugins = pluginHost(values.dir);
    const client = await open(values, values.codec, 'consumer', plugins);
    try {
      io.stdout.write(JSON.stringify(await client.listTopics()) + '\n');
    } finally {
      await client.close();
      await plugins.dispose();
    }
  },
});
