/**
 * The broker's commands: `trellis broker`, `pub`, `sub` and `topics` (DESIGN.md). Each is a
 * thin shell over the SDK's `createBroker` and `connect`.
 */
import { createInterface } from 'node:readline';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { defineCommand, intOption, portOption, untilAborted, UsageError, createCommandHost, pluginDirOption } from '@trellis/sdk/cli';
import type { PluginHost, Value } from '@trellis/sdk';
import { createBroker, connect, openLmdbStore, memoryStore, attachWebSocket, joinRedisCluster, checkTopic, checkFilter, isWildcard, LineLimiter, type BrokerClient } from '@trellis/sdk/broker';
import { fromCommandLine, toJsonText, ValueTextError } from './json-text.js';

/** The port every broker command uses unless told otherwise. */
export const DEFAULT_BROKER_PORT = 7000;

const common = {
  port: { type: 'string', short: 'p', default: String(DEFAULT_BROKER_PORT), description: 'broker port', placeholder: 'port' },
  host: { type: 'string', default: '127.0.0.1', description: 'broker address', placeholder: 'host' },
  'plugin-dir': pluginDirOption,
} as const;

/** Credentials for a broker with access control (`trellis broker --password-file`), and TLS. */
const credentials = {
  tls: { type: 'boolean', description: 'connect with TLS (the broker runs with --tls-cert/--tls-key)' },
  ca: { type: 'string', description: 'with --tls: CA certificate (PEM) to verify the broker with, instead of the system CAs', placeholder: 'file' },
  user: { type: 'string', short: 'u', description: 'user name (also $TRELLIS_BROKER_USER)', placeholder: 'name' },
  password: { type: 'string', description: 'password (prefer $TRELLIS_BROKER_PASSWORD: arguments show in ps)', placeholder: 'password' },
} as const;

const codecOption = { type: 'string', short: 'c', default: 'json', description: 'codec to speak: json, xml, pickle, any installed serializer, or a wire id', placeholder: 'codec' } as const;

function pluginHost(dirs: string[] | undefined): PluginHost {
  return createCommandHost(import.meta.url, dirs);
}

async function open(values: { port: string; host: string; user?: string | undefined; password?: string | undefined; tls?: boolean | undefined; ca?: string | undefined }, codec: string, role: 'producer' | 'consumer' | 'both', plugins: PluginHost): Promise<BrokerClient> {
  const port = portOption('port', values.port)!;
  await plugins.scan();
  const byId = /^\d+$/.test(codec) ? Number(codec) : codec;
  const installed = plugins.serialization.serializers();
  if (typeof byId === 'string' && !installed.includes(byId)) {
    throw new UsageError(`--codec "${codec}" is not installed; available: ${installed.join(', ') || 'none'}`);
  }
  const username = values.user ?? process.env.TRELLIS_BROKER_USER;
  const password = values.password ?? process.env.TRELLIS_BROKER_PASSWORD ?? '';
  if (values.ca !== undefined && !values.tls) throw new UsageError('--ca only means something with --tls');
  const tls = values.tls ? { tls: true, ...(values.ca !== undefined ? { ca: await readFile(values.ca, 'utf8').catch((err: Error) => { throw new UsageError(`--ca: ${err.message}`); }) } : {}) } : {};
  return connect({ port, hostname: values.host, codec: byId, plugins, role, ...tls, ...(username !== undefined ? { username, password } : {}) });
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
    'max-connections': { type: 'string', default: '10000', description: 'most connections at once', placeholder: 'n' },
    'max-connections-per-address': { type: 'string', default: '1000', description: 'most connections at once from one address', placeholder: 'n' },
    'max-topics-per-client': { type: 'string', default: '10000', description: 'most topics one client (address or user) may hold a last value on', placeholder: 'n' },
    'max-topic-nodes-per-client': { type: 'string', default: '25000', description: 'topic segments one client may hold through its subscriptions and last values together', placeholder: 'n' },
    'max-retained-bytes-per-client': { type: 'string', default: String(32 * 1024 * 1024), description: 'bytes of last values one client may have kept', placeholder: 'bytes' },
    'tls-cert': { type: 'string', description: 'serve TLS with this certificate (PEM, chain included); needs --tls-key; re-read on SIGHUP for new connections', placeholder: 'file' },
    'tls-key': { type: 'string', description: 'the private key (PEM) of --tls-cert', placeholder: 'file' },
    'password-file': { type: 'string', description: 'users and salted scrypt hashes (write it with "trellis passwd"); clients must log in; re-read on SIGHUP', placeholder: 'file' },
    'acl-file': { type: 'string', description: 'per-user topic patterns for publish (write) and subscribe (read), mosquitto format; re-read on SIGHUP', placeholder: 'file' },
    'allow-anonymous': { type: 'boolean', description: 'with --password-file/--acl-file: also admit clients without credentials (the ACL lines before any "user" line say what they may do)' },
    'idle-timeout': { type: 'string', default: '120', description: 'seconds of silence before a client is pinged (closed if it then stays silent 30 s more); 0 = off', placeholder: 'seconds' },
    stats: { type: 'boolean', description: 'print stats to stderr every second' },
    'data-dir': { type: 'string', description: 'where last values and persistent sessions are kept (LMDB; default ~/.local/state/trellis/broker-PORT; in memory for --port 0)', placeholder: 'dir' },
    'in-memory': { type: 'boolean', description: 'keep everything in memory only: a restart loses last values and sessions' },
    cluster: { type: 'string', description: 'serve one topic space with the other brokers on this Redis (redis://HOST:PORT): messages, last values and persistent sessions are shared', placeholder: 'url' },
    'ws-port': { type: 'string', description: 'also serve the protocol over WebSocket on this port (browsers)', placeholder: 'port' },
  },
  description:
    'SIGHUP re-reads --password-file and --acl-file without a restart (as mosquitto does): clients whose user was removed or whose password changed are disconnected (AUTH_FAILED), subscriptions the new ACL no longer grants are removed, and every later publish and subscription is checked against the new rules; a file that does not parse changes nothing. It also re-reads --tls-cert/--tls-key for new connections.',
  examples: ['trellis broker --port 7000', 'trellis broker --port 7000 --password-file broker.passwd --acl-file broker.acl   # then: kill -HUP PID after editing them', 'trellis broker --port 7000 --data-dir /var/lib/trellis-broker', 'trellis broker --port 7000 --in-memory --plugin-dir ./my-codecs --stats'],
  async run({ values }, io) {
    const port = portOption('port', values.port)!;
    const maxFrameBytes = intOption('max-frame-bytes', values['max-frame-bytes'], { min: 64, max: 0xffffffff })!;
    const maxBufferBytes = intOption('max-buffer-bytes', values['max-buffer-bytes'], { min: 1024 })!;
    const maxConnections = intOption('max-connections', values['max-connections'], { min: 1 })!;
    const maxConnectionsPerAddress = intOption('max-connections-per-address', values['max-connections-per-address'], { min: 1 })!;
    const maxTopicsPerClient = intOption('max-topics-per-client', values['max-topics-per-client'], { min: 1 })!;
    const maxTopicNodesPerClient = intOption('max-topic-nodes-per-client', values['max-topic-nodes-per-client'], { min: 1 })!;
    const maxRetainedBytesPerClient = intOption('max-retained-bytes-per-client', values['max-retained-bytes-per-client'], { min: 0 })!;
    const idleTimeoutMs = intOption('idle-timeout', values['idle-timeout'], { min: 0 })! * 1000;
    const plugins = pluginHost(values['plugin-dir']);
    await plugins.scan();
    if (values['in-memory'] && values['data-dir'] !== undefined) throw new UsageError('--in-memory and --data-dir exclude each other');
    // durable by default; a broker on an ephemeral port (0) has no stable name to keep state under
    const dataDir = values['in-memory'] ? undefined : values['data-dir'] !== undefined ? resolve(values['data-dir']) : port === 0 ? undefined : join(process.env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'trellis', `broker-${port}`);
    if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
    const readPem = (flag: string, file: string) => readFile(file, 'utf8').catch((err: Error) => { throw new UsageError(`--${flag}: ${err.message}`); });
    const tls = values['tls-cert'] !== undefined ? { cert: await readPem('tls-cert', values['tls-cert']), key: await readPem('tls-key', values['tls-key']!) } : undefined;
    const passwordFile = values['password-file'];
    const aclFile = values['acl-file'];
    if (aclFile !== undefined && passwordFile === undefined && !values['allow-anonymous']) throw new UsageError('--acl-file without --password-file admits only anonymous clients: add --allow-anonymous (or --password-file)');
    if (values['allow-anonymous'] && passwordFile === undefined && aclFile === undefined) throw new UsageError('--allow-anonymous only means something with --password-file or --acl-file (without them every client is admitted)');
    const access = passwordFile !== undefined || aclFile !== undefined
      ? { provider: 'file', options: { ...(passwordFile !== undefined ? { passwordFile } : {}), ...(aclFile !== undefined ? { aclFile } : {}), allowAnonymous: values['allow-anonymous'] === true } }
      : undefined;
    const store = dataDir ? await openLmdbStore(dataDir) : memoryStore();
    const engine = createBroker({ host: plugins, store, maxFrameBytes, maxBufferBytes, maxConnections, maxConnectionsPerAddress, maxTopicsPerClient, maxTopicNodesPerClient, maxRetainedBytesPerClient, idleTimeoutMs, ...(access ? { access } : {}), ...(tls ? { tls } : {}) });
    // a client provoking errors in a loop must not flood the terminal or the log file behind it
    const lines = new LineLimiter(10, (line) => io.stderr.write(`broker: ${line}\n`));
    engine.on('slow-consumer', (c, pending) => lines.line('slow consumers', `disconnected slow consumer ${c.remote} (${pending} bytes waiting)`));
    engine.on('client-error', (c, err) => lines.line('client errors', `dropped ${c.remote}: ${err.message}`));
    if (values.stats) {
      engine.on('stats', (s) => io.stderr.write(`broker: ${s.connections} clients, ${s.topics} topics, ${s.subscriptions} subscriptions, ${s.rates.in} msg/s in, ${s.rates.out} msg/s out\n`));
    }
    if (values.cluster !== undefined && !/^rediss?:\/\//.test(values.cluster)) throw new UsageError(`--cluster "${values.cluster}": expected redis://HOST:PORT`);
    const cluster = values.cluster !== undefined ? await joinRedisCluster(engine, { url: values.cluster }) : undefined;
    const address = await engine.listen(port, values.host);
    const codecs = plugins.serialization
      .serializers()
      .map((n) => ({ n, id: wireIdOf(plugins, n) }))
      .sort((a, b) => Number(a.id) - Number(b.id))
      .map(({ n, id }) => `${n}(${id})`)
      .join(', ');
    const wsPort = values['ws-port'] !== undefined ? portOption('ws-port', values['ws-port'])! : undefined;
    const ws = wsPort !== undefined ? await attachWebSocket(engine, { port: wsPort, host: values.host }) : undefined;
    io.stdout.write(`broker listening on ${address.host}:${address.port}${tls ? ' with TLS' : ''} (codecs: ${codecs || 'none installed'})\n`);
    if (!access) io.stderr.write('broker: no --password-file or --acl-file: every client may publish and subscribe to every topic\n');
    if (cluster) io.stderr.write(`broker: in the cluster on ${values.cluster} as node ${cluster.nodeId}\n`);
    if (ws) io.stderr.write(`broker: WebSocket on ws://${ws.address!.host}:${ws.address!.port}/\n`);
    io.stderr.write(`broker: state ${dataDir ? `kept in ${dataDir}` : `in memory only (${values['in-memory'] ? '--in-memory' : 'port 0 without --data-dir'})`}; ${engine.stats().topics} last values, ${engine.stats().delivery.sessions} persistent sessions\n`);
    // SIGHUP re-reads the access files and the certificate (mosquitto's convention); a bad file changes nothing
    const files = [passwordFile, aclFile].filter((f) => f !== undefined).join(' and ');
    const onHangup = () => {
      if (!access && !tls) {
        io.stderr.write('broker: SIGHUP ignored: no --password-file, --acl-file or --tls-cert to re-read\n');
        return;
      }
      if (access) {
        engine.reloadAccess().then(
          (r) => io.stdout.write(`broker: access reloaded from ${files}: ${r.users ?? '?'} users, ${r.rules === undefined ? 'no ACL' : `${r.rules} rules`}; ${r.disconnected} of ${r.clients} clients disconnected, ${r.subscriptionsDropped} subscriptions dropped\n`),
          (err: Error) => io.stderr.write(`broker: ${err.message}\n`),
        );
      }
      if (tls) {
        Promise.all([readFile(values['tls-cert']!, 'utf8'), readFile(values['tls-key']!, 'utf8')])
          .then(([cert, key]) => engine.reloadTls({ cert, key }))
          .then(
            () => io.stderr.write('broker: TLS certificate reloaded (for new connections)\n'),
            (err: Error) => io.stderr.write(`broker: TLS reload failed, keeping the current certificate: ${err.message}\n`),
          );
      }
    };
    process.on('SIGHUP', onHangup);
    try {
      await untilAborted(io.signal);
    } finally {
      process.off('SIGHUP', onHangup);
    }
    await ws?.close();
    await cluster?.close();
    await engine.close({ timeoutMs: 3000 });
    lines.flush();
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
  usage: '--topic T [--codec C] [--port P]',
  description: 'Each VALUE is parsed as JSON when it is JSON, else sent as a string (--string sends every VALUE as text). JSON the value model refuses (a __proto__ key, nesting deeper than 512, a lone surrogate) and text that looks like JSON but does not parse are errors (exit 2), never silently strings. Without VALUEs, one value per line is read from stdin.',
  positionals: '[VALUE...]',
  options: {
    ...common,
    topic: { type: 'string', short: 't', description: 'topic, e.g. /weather/temperature or qwerty (no + or #: those are subscription wildcards)', placeholder: 'topic' },
    codec: codecOption,
    ...credentials,
    string: { type: 'boolean', description: 'send every VALUE as a string, verbatim (no JSON parsing)' },
    expiry: { type: 'string', description: 'the last value expires after this many seconds', placeholder: 'seconds' },
    clear: { type: 'boolean', description: "clear the topic's last value (no VALUE)" },
  },
  examples: ['trellis pub --port 7000 --topic /weather/temperature --codec xml 21.5', 'trellis pub --topic /msg \'{"text":"hi"}\' second-message'],
  async run({ values, positionals }, io) {
    const topic = topicOption(values.topic);
    const expirySeconds = intOption('expiry', values.expiry, { min: 1, max: 0xffffffff });
    if (values.clear) {
      if (positionals.length > 0 || expirySeconds !== undefined) throw new UsageError('--clear takes no VALUE and no --expiry');
      const plugins = pluginHost(values['plugin-dir']);
      const client = await open(values, values.codec, 'producer', plugins);
      try {
        await client.clear(topic);
      } finally {
        await client.close();
        await plugins.dispose();
      }
      io.stderr.write(`cleared the last value of ${topic}\n`);
      return;
    }
    const options = { ack: true as const, ...(expirySeconds !== undefined ? { expirySeconds } : {}) };
    const plugins = pluginHost(values['plugin-dir']);
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
          await client.publish(topic, value, options);
          count++;
        }
      } else {
        const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
        for await (const line of lines) {
          if (line.trim() === '') continue;
          await client.publish(topic, parse(line), options);
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
    ...credentials,
    count: { type: 'string', short: 'n', description: 'exit after N messages (the last values sent on subscribing count)', placeholder: 'N' },
  },
  examples: ['trellis sub --port 7000 --topic /weather --codec pickle', 'trellis sub --topic /temp --count 1'],
  async run({ values }, io) {
    const topic = topicOption(values.topic, { root: true });
    const count = intOption('count', values.count, { min: 1 });
    const plugins = pluginHost(values['plugin-dir']);
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
  options: { ...common, codec: codecOption, ...credentials },
  examples: ['trellis topics --port 7000'],
  async run({ values }, io) {
    const plugins = pluginHost(values['plugin-dir']);
    const client = await open(values, values.codec, 'consumer', plugins);
    try {
      io.stdout.write(JSON.stringify(await client.listTopics()) + '\n');
    } finally {
      await client.close();
      await plugins.dispose();
    }
  },
});

export const passwd = defineCommand({
  name: 'passwd',
  summary: 'Add, change or delete a user in a broker password file (salted scrypt), like mosquitto_passwd',
  usage: '[--password P | -D]',
  description: 'Without --password, the password is read from the first line of stdin. The file is created if missing, rewritten atomically, and readable by its owner only.',
  positionals: 'FILE USER',
  options: {
    password: { type: 'string', description: 'the password (batch mode; it shows in ps, prefer stdin)', placeholder: 'password' },
    delete: { type: 'boolean', short: 'D', description: 'delete USER from FILE' },
  },
  examples: ['printf "s3cret\\n" | trellis passwd broker.passwd alice', 'trellis passwd broker.passwd bob --password hunter2', 'trellis passwd -D broker.passwd bob'],
  async run({ values, positionals }, io) {
    if (positionals.length !== 2) throw new UsageError('expected FILE USER');
    const [file, user] = positionals as [string, string];
    const { updatePasswordFile, checkUsername } = await import('@trellis/plugin-access-file/passwords');
    const bad = checkUsername(user);
    if (bad) throw new UsageError(bad);
    let password: string | undefined;
    if (values.delete) {
      if (values.password !== undefined) throw new UsageError('-D takes no --password');
    } else if (values.password !== undefined) {
      password = values.password;
    } else {
      if (process.stdin.isTTY) io.stderr.write(`password for ${user} (one line): `);
      const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
      for await (const line of lines) {
        password = line;
        break;
      }
      lines.close();
      if (password === undefined) throw new UsageError('no password on stdin');
    }
    if (password !== undefined && password.length === 0) throw new UsageError('the password may not be empty');
    const result = await updatePasswordFile(file, user, password);
    io.stderr.write(result === 'absent' ? `${user} is not in ${file}\n` : `${result} ${user} in ${file}\n`);
    return result === 'absent' ? 1 : 0;
  },
});
