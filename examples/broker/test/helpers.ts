/** Test helpers: a broker on port 0 with in-process codec plugins, raw sockets, and waiting. */
import { connect as netConnect, type Socket } from 'node:net';
import { spawn, spawnSync } from 'node:child_process';
import { createServer as createNetServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { serialize, deserialize } from 'node:v8';
import { FrameReader } from '@trellis/sdk/framing';
import { createHost, createLogger, type Codec, type PluginHost, type Value } from '@trellis/sdk';
import { createBroker, connect, type Broker, type BrokerClient, type BrokerOptions } from '@trellis/sdk/broker';

/** A codec plugin defined in the test (wire id 9): V8's structured clone, unlike any shipped codec. */
export const v8Plugin = {
  manifest: { name: 'v8-codec', version: '1.0.0', engines: { trellis: '*' }, contributes: { serializers: [{ id: 'v8', title: 'V8 structured clone', wireId: 9 }] } },
  activate(ctx: import('@trellis/sdk').PluginContext) {
    ctx.serialization.registerCodec({
      wireId: 9,
      name: 'v8',
      encode: (value: Value) => serialize(value),
      decode: (bytes: Uint8Array) => {
        try {
          return deserialize(bytes) as Value;
        } catch (err) {
          throw new ctx.errors.CodecError('v8', (err as Error).message);
        }
      },
    } satisfies Codec);
  },
};

/** A plugin host with the shipped codec plugins (built dist/) plus the test's v8 codec. */
export function testHost(): PluginHost {
  return createHost({ plugins: [v8Plugin], logger: createLogger('test', 'silent') });
}

export interface Running {
  host: PluginHost;
  broker: Broker;
  port: number;
  clients: BrokerClient[];
  client(codec: string | number, role?: 'producer' | 'consumer' | 'both'): Promise<BrokerClient>;
  stop(): Promise<void>;
}

export async function startBroker(options: Partial<BrokerOptions> = {}): Promise<Running> {
  const host = testHost();
  const broker = createBroker({ host, lingerMs: 500, ...options });
  const { port } = await broker.listen(0);
  const clients: BrokerClient[] = [];
  const sockets: Socket[] = [];
  return {
    host,
    broker,
    port,
    clients,
    async client(codec, role) {
      const c = await connect({ port, codec, plugins: host, ...(role ? { role } : {}) });
      clients.push(c);
      return c;
    },
    async stop() {
      await Promise.all(clients.map((c) => c.close()));
      for (const s of sockets) s.destroy();
      await broker.close({ timeoutMs: 1000 });
      await host.dispose();
    },
  };
}

/** A raw socket that collects whole frames from the broker. */
export async function rawSocket(port: number): Promise<{ socket: Socket; frames: Buffer[]; closed: Promise<void>; next(type?: number): Promise<Buffer> }> {
  const socket = netConnect({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const frames: Buffer[] = [];
  const waiters: (() => void)[] = [];
  const reader = new FrameReader({ maxFrameBytes: 1 << 26 }, (body) => {
    frames.push(Buffer.from(body));
    for (const w of waiters.splice(0)) w();
  });
  socket.on('data', (c: Buffer) => reader.push(c));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((r) => socket.once('close', () => {
    r();
    for (const w of waiters.splice(0)) w();
  }));
  let seen = 0;
  async function next(type?: number): Promise<Buffer> {
    for (;;) {
      while (seen < frames.length) {
        const f = frames[seen++]!;
        if (type === undefined || f[0] === type) return f;
      }
      if (socket.destroyed) throw new Error('socket closed before the expected frame');
      await Promise.race([new Promise<void>((r) => waiters.push(r)), timeout(3000, 'frame')]);
    }
  }
  return { socket, frames, closed, next };
}

export function timeout(ms: number, what: string): Promise<never> {
  return new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms).unref());
}

/** Takes `n` messages from an async iterator, failing after `ms`. */
export async function take<T>(it: AsyncIterator<T>, n: number, ms = 3000): Promise<T[]> {
  const out: T[] = [];
  const deadline = timeout(ms, `${n} messages (got ${out.length})`);
  while (out.length < n) {
    const r = await Promise.race([it.next(), deadline]);
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

/** Waits `ms`, then says how many messages arrived meanwhile (the "receives nothing" checks). */
export async function arrivedWithin(sub: { readonly buffered: number }, ms: number): Promise<number> {
  await new Promise((r) => setTimeout(r, ms));
  return sub.buffered;
}

export function until(check: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const tick = () => {
      if (check()) return resolve();
      if (Date.now() - start > ms) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

/** Compares values across codecs: every byte string becomes a plain Uint8Array (Buffer or not). */
export function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return new Uint8Array(value);
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  return value;
}

const PYTHON_DIR = fileURLToPath(new URL('../python', import.meta.url));

/**
 * Runs `python3 ARGS` with the Python client (examples/broker/python) importable and pointed at
 * the broker on `port`; resolves with its stdout, rejects on a non-zero exit or after
 * `timeoutMs` (killed: a hang).
 */
export function runPython(port: number, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', args, {
      env: { ...process.env, PYTHONPATH: PYTHON_DIR, TRELLIS_BROKER_PORT: String(port), TRELLIS_BROKER_HOST: '127.0.0.1', PYTHONDONTWRITEBYTECODE: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`python3 exited with ${code ?? signal}${signal === 'SIGKILL' ? ` (killed after ${timeoutMs} ms = a hang)` : ''}: ${err}${out}`));
    });
  });
}

/** `runPython` on a `-c` snippet, as its non-empty stdout lines. */
export const pythonLines = (port: number, code: string, timeoutMs: number): Promise<string[]> => runPython(port, ['-c', code], timeoutMs).then((out) => out.split('\n').filter(Boolean));

/** Whether a `redis-server` binary is installed (cluster tests are skipped with a note otherwise). */
export const HAVE_REDIS = spawnSync('redis-server', ['--version']).status === 0;

/** A throwaway redis-server on a free loopback port, without persistence. */
export async function startRedis(): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await new Promise<number>((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const stop = () => new Promise<void>((r) => (child.exitCode !== null ? r() : (child.once('exit', () => r()), child.kill('SIGKILL'))));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('redis-server did not start within 15 s')), 15_000);
    let out = '';
    child.stdout!.on('data', (c) => {
      out += c;
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited (${code})`)));
  }).catch(async (err) => {
    await stop();
    throw err;
  });
  return { url: `redis://127.0.0.1:${port}`, stop };
}
