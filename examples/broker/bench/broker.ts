/**
 * `npm run bench:broker`: Trellis broker (in memory, durable on LMDB, 3 nodes on Redis) vs aedes and
 * mosquitto (MQTT, mqtt.js clients) and nats-server (NATS core, @nats-io/transport-node), side by side in
 * the same run. Each broker runs in its own process; the publisher and subscribers run here.
 * Same ~100-byte JSON object for both; both subscribers decode every payload. Scenarios: 1→1
 * and 1→N fan-out, without acks (QoS 0) and with publisher acks (Trellis ack / MQTT QoS 1
 * publish; MQTT subscriptions stay QoS 0 so both sides do the same work: the broker confirms
 * receipt to the producer). Rounds alternate the systems; we report medians and ratios.
 *
 * Env: BENCH_ROUNDS (5), BENCH_MS (1500 per run, after one 500 ms warm-up run of each), BENCH_FANOUT (100),
 * BENCH_WINDOW (1000 messages in flight); BENCH_SCENARIO / BENCH_SYSTEM narrow the run (profiling), BENCH_PROF_DIR
 * has every broker process write a V8 CPU profile there.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer as createNetServer } from 'node:net';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { createHost, type Value } from '@trellis/sdk';
import { connect, type BrokerClient } from '@trellis/sdk/broker';
import { checkBuilt } from './built.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const RUN_MS = Number(process.env.BENCH_MS ?? 1500);
const FANOUT = Number(process.env.BENCH_FANOUT ?? 100);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 1000);
const WARMUP_MS = 500;
/** Profiling aid: run only these scenarios (substring of the name) and systems. */
const ONLY_SCENARIO = process.env.BENCH_SCENARIO ?? '';
/** Comma-separated system names (exact), e.g. `trellis,nats-server`; empty = all. */
const ONLY_SYSTEMS = (process.env.BENCH_SYSTEM ?? '').split(',').filter((s) => s.length > 0);

const PAYLOAD: Value = { sensor: 'greenhouse-07', kind: 'temperature', value: 21.375, unit: 'celsius', seq: 1234567, ok: true };
const PAYLOAD_TEXT = JSON.stringify(PAYLOAD);

interface Server {
  port: number;
  child: ChildProcess;
}

async function startServer(kind: 'trellis' | 'trellis-durable' | 'trellis-cluster' | 'aedes', extra: string[] = []): Promise<Server> {
  const script = fileURLToPath(new URL('./server.ts', import.meta.url));
  // BENCH_PROF_DIR: each broker process writes a V8 CPU profile there when it exits (profiling)
  const prof = process.env.BENCH_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF_DIR}`] : [];
  // no `--conditions=trellis-source`: @trellis/sdk and the plugins load from their built dist/ (as the
  // `trellis` command runs them); tsx only compiles this small server script
  const child = spawn(process.execPath, [...prof, '--import', 'tsx', script, kind, ...extra], { stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
  return { port: JSON.parse(line).port, child };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** A Debian daemon (mosquitto, nats-server, redis-server) on a free loopback port; undefined if absent. */
async function startDaemon(cmd: string, args: (port: number) => string[], ready: RegExp): Promise<Server | undefined> {
  if (spawnSync(cmd, ['--help']).error) return undefined;
  const port = await freePort();
  const child = spawn(cmd, args(port), { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${cmd} did not start: ${out}`)), 15_000);
    const seen = (c: Buffer) => {
      out += c;
      if (ready.test(out)) {
        clearTimeout(timer);
        // from here on its output is read and dropped
        child.stdout!.off('data', seen).on('data', () => undefined);
        child.stderr!.off('data', seen).on('data', () => undefined);
        resolve();
      }
    };
    child.stdout!.on('data', seen);
    child.stderr!.on('data', seen);
    child.once('exit', (code) => reject(new Error(`${cmd} exited with ${code}: ${out}`)));
  });
  return { port, child };
}

interface Result {
  deliveries: number;
  messages: number;
  ms: number;
}

/** Drives one run: a windowed publisher, `subs` subscribers, RUN_MS of publishing, then drain. */
async function drive(
  subs: number,
  publish: (onAck: (() => void) | undefined) => void,
  acks: boolean,
  setOnDelivery: (fn: () => void) => void,
  runMs: number,
): Promise<Result> {
  let sent = 0;
  let acked = 0;
  let delivered = 0;
  let publishing = true;
  let lastDelivery = 0;
  let finish: () => void = () => {};
  const done = new Promise<void>((r) => (finish = r));
  const onAck = acks ? () => void acked++ : undefined;
  const pump = () => {
    while (publishing && sent * subs - delivered < WINDOW * subs && (!acks || sent - acked < WINDOW)) {
      publish(onAck);
      sent++;
    }
  };
  setOnDelivery(() => {
    delivered++;
    lastDelivery = performance.now();
    if (!publishing) {
      if (delivered === sent * subs) finish();
    } else if (delivered % subs === 0) pump();
  });
  const start = performance.now();
  const timer = setTimeout(() => {
    publishing = false;
    if (delivered === sent * subs) finish();
  }, runMs);
  // acks may lag deliveries; a stalled window resumes from the ack path
  const ackPump = setInterval(pump, 1);
  pump();
  await done;
  clearTimeout(timer);
  clearInterval(ackPump);
  return { deliveries: delivered, messages: sent, ms: lastDelivery - start };
}

let runNo = 0;

async function runTrellis(ports: readonly number[], subs: number, acks: boolean, ms = RUN_MS): Promise<Result> {
  const port = ports[0]!;
  const plugins = createHost();
  const topic = `/bench/run${++runNo}/data`;
  const consumers: BrokerClient[] = [];
  let onDelivery = () => {};
  const loops: Promise<void>[] = [];
  for (let i = 0; i < subs; i++) {
    // with several nodes (a cluster), subscribers are spread over them; the producer uses the first
    const c = await connect({ port: ports[i % ports.length]!, codec: 'json', plugins, role: 'consumer' });
    consumers.push(c);
    const sub = await c.subscribe('/bench/' + `run${runNo}`);
    loops.push(
      (async () => {
        for await (const m of sub) {
          if (m.value === null) throw new Error('bad payload');
          onDelivery();
        }
      })(),
    );
  }
  const producer = await connect({ port, codec: 'json', plugins, role: 'producer' });
  const result = await drive(
    subs,
    (onAck) => {
      if (onAck) producer.publish(topic, PAYLOAD, { ack: true }).then(onAck, () => undefined); // acks still in flight at close
      else producer.publish(topic, PAYLOAD);
    },
    acks,
    (fn) => (onDelivery = fn),
    ms,
  );
  await Promise.all([producer.close(), ...consumers.map((c) => c.close())]);
  await Promise.all(loops);
  await plugins.dispose();
  return result;
}

type MqttClient = {
  on(ev: 'message', fn: (topic: string, payload: Buffer) => void): void;
  subscribeAsync(topic: string, opts: { qos: 0 | 1 }): Promise<unknown>;
  publish(topic: string, payload: string, opts: { qos: 0 | 1 }, cb?: (err?: Error) => void): void;
  endAsync(force?: boolean): Promise<void>;
};
const mqtt = createRequire(import.meta.url)('mqtt') as { connectAsync(url: string, opts: object): Promise<MqttClient> };

async function runAedes(port: number, subs: number, acks: boolean, ms = RUN_MS): Promise<Result> {
  const topic = `bench/run${++runNo}/data`;
  const clients: MqttClient[] = [];
  let onDelivery = () => {};
  for (let i = 0; i < subs; i++) {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
    c.on('message', (_t, payload) => {
      if (JSON.parse(payload.toString('utf8')) === null) throw new Error('bad payload');
      onDelivery();
    });
    await c.subscribeAsync(`bench/run${runNo}/#`, { qos: 0 });
    clients.push(c);
  }
  const producer = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
  const result = await drive(
    subs,
    (onAck) => {
      if (onAck) producer.publish(topic, JSON.stringify(PAYLOAD), { qos: 1 }, () => onAck());
      else producer.publish(topic, JSON.stringify(PAYLOAD), { qos: 0 });
    },
    acks,
    (fn) => (onDelivery = fn),
    ms,
  );
  await Promise.all([producer.endAsync(), ...clients.map((c) => c.endAsync())]);
  return result;
}

type NatsConnection = {
  subscribe(subject: string, opts: { callback: (err: Error | null, msg: { data: Uint8Array }) => void }): unknown;
  publish(subject: string, data: string): void;
  flush(): Promise<void>;
  drain(): Promise<void>;
};

/** NATS core (no publisher acks: core NATS has none; JetStream would be another product). */
async function runNats(port: number, subs: number, _acks: boolean, ms = RUN_MS): Promise<Result> {
  const { connect: natsConnect } = (await import('@nats-io/transport-node')) as unknown as { connect(o: object): Promise<NatsConnection> };
  const subject = `bench.run${++runNo}.data`;
  const conns: NatsConnection[] = [];
  let onDelivery = () => {};
  const text = new TextDecoder();
  for (let i = 0; i < subs; i++) {
    const c = await natsConnect({ servers: `127.0.0.1:${port}` });
    c.subscribe(`bench.run${runNo}.>`, {
      callback: (_err, msg) => {
        if (JSON.parse(text.decode(msg.data)) === null) throw new Error('bad payload');
        onDelivery();
      },
    });
    await c.flush();
    conns.push(c);
  }
  const producer = await natsConnect({ servers: `127.0.0.1:${port}` });
  const result = await drive(subs, () => producer.publish(subject, JSON.stringify(PAYLOAD)), false, (fn) => (onDelivery = fn), ms);
  await Promise.all([producer.drain(), ...conns.map((c) => c.drain())]);
  return result;
}

/**
 * CPU time (ms) a process has used so far, user and system (kernel: socket reads and writes)
 * apart, from /proc (Linux). The same count for every system: the broker process(es) only.
 */
function cpuOf(pid: number): { user: number; sys: number } {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return { user: (Number(fields[11]) * 1000) / 100, sys: (Number(fields[12]) * 1000) / 100 }; // clock ticks at USER_HZ = 100
  } catch {
    return { user: NaN, sys: NaN };
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

type SystemName = 'trellis' | 'trellis durable' | 'trellis 3 nodes' | 'aedes' | 'mosquitto' | 'nats-server';

interface System {
  readonly name: SystemName;
  /** Processes whose CPU counts as "the broker" (a cluster: every node and Redis). */
  readonly pids: number[];
  run(subs: number, acks: boolean, ms?: number): Promise<Result>;
  readonly acks: boolean;
}

async function main(): Promise<void> {
  checkBuilt();
  console.log(`broker benchmark: ${ROUNDS} rounds x ${RUN_MS} ms per run, payload ${Buffer.byteLength(PAYLOAD_TEXT)} bytes of JSON, window ${WINDOW}, node ${process.version}; Trellis brokers run from the built dist/`);
  const children: ChildProcess[] = [];
  const systems: System[] = [];
  try {
    const [trellis, durable, aedes] = await Promise.all([startServer('trellis'), startServer('trellis-durable'), startServer('aedes')]);
    children.push(trellis.child, durable.child, aedes.child);
    systems.push({ name: 'trellis', pids: [trellis.child.pid!], acks: true, run: (n, a, ms) => runTrellis([trellis.port], n, a, ms) });
    systems.push({ name: 'trellis durable', pids: [durable.child.pid!], acks: true, run: (n, a, ms) => runTrellis([durable.port], n, a, ms) });
    systems.push({ name: 'aedes', pids: [aedes.child.pid!], acks: true, run: (n, a, ms) => runAedes(aedes.port, n, a, ms) });
    const redis = await startDaemon('redis-server', (p) => ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], /Ready to accept/);
    if (redis) {
      children.push(redis.child);
      const nodes = await Promise.all([0, 1, 2].map(() => startServer('trellis-cluster', [`redis://127.0.0.1:${redis.port}`])));
      children.push(...nodes.map((n) => n.child));
      systems.push({ name: 'trellis 3 nodes', pids: [...nodes.map((n) => n.child.pid!), redis.child.pid!], acks: true, run: (n, a, ms) => runTrellis(nodes.map((x) => x.port), n, a, ms) });
    } else console.log('  (redis-server absent: no cluster scenario)');
    // mosquitto leaves Nagle on unless told (set_tcp_nodelay); every other system here sets TCP_NODELAY
    // its log stays at connection level: -v would log every message, which is not the broker's work
    const mosquittoConf = join(mkdtempSync(join(tmpdir(), 'bench-mosquitto-')), 'mosquitto.conf');
    const conf = (p: number) => `listener ${p} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type information\n`;
    const mosquitto = await startDaemon('mosquitto', (p) => (writeFileSync(mosquittoConf, conf(p)), ['-c', mosquittoConf]), /running|Opening ipv4 listen socket/);
    if (mosquitto) {
      children.push(mosquitto.child);
      systems.push({ name: 'mosquitto', pids: [mosquitto.child.pid!], acks: true, run: (n, a, ms) => runAedes(mosquitto.port, n, a, ms) });
    } else console.log('  (mosquitto absent)');
    const nats = await startDaemon('nats-server', (p) => ['-a', '127.0.0.1', '-p', String(p)], /Server is ready/);
    if (nats) {
      children.push(nats.child);
      systems.push({ name: 'nats-server', pids: [nats.child.pid!], acks: false, run: (n, a, ms) => runNats(nats.port, n, a, ms) });
    } else console.log('  (nats-server absent)');

    const all = [
      { name: '1→1 no ack (QoS 0)', subs: 1, acks: false },
      { name: '1→1 acked (QoS 1 publish)', subs: 1, acks: true },
      { name: `1→${FANOUT} no ack (QoS 0)`, subs: FANOUT, acks: false },
      { name: `1→${FANOUT} acked (QoS 1 publish)`, subs: FANOUT, acks: true },
    ];
    const scenarios = all.filter((s) => s.name.includes(ONLY_SCENARIO));
    const active = systems.filter((s) => ONLY_SYSTEMS.length === 0 || ONLY_SYSTEMS.includes(s.name));
    const rates = new Map<string, number[]>();
    const perCpu = new Map<string, number[]>();
    const key = (s: string, sys: string) => `${s}|${sys}`;
    for (const s of scenarios) for (const sys of active) if (sys.acks || !s.acks) await sys.run(s.subs, s.acks, WARMUP_MS);
    for (let round = 1; round <= ROUNDS; round++) {
      for (const s of scenarios) {
        // the order rotates each round so no system always runs first (or right after a heavy one)
        const order = active.map((_, i) => active[(i + round) % active.length]!);
        for (const sys of order) {
          if (s.acks && !sys.acks) continue;
          const cpu = () => sys.pids.map(cpuOf).reduce((a, b) => ({ user: a.user + b.user, sys: a.sys + b.sys }), { user: 0, sys: 0 });
          const cpuBefore = cpu();
          const r = await sys.run(s.subs, s.acks);
          const cpuAfter = cpu();
          const kernelCpu = cpuAfter.sys - cpuBefore.sys;
          const brokerCpu = cpuAfter.user - cpuBefore.user + kernelCpu;
          const perSec = (r.deliveries / r.ms) * 1000;
          const perCpuSec = (r.deliveries / brokerCpu) * 1000;
          rates.set(key(s.name, sys.name), [...(rates.get(key(s.name, sys.name)) ?? []), perSec]);
          perCpu.set(key(s.name, sys.name), [...(perCpu.get(key(s.name, sys.name)) ?? []), perCpuSec]);
          console.log(
            `  round ${round} ${s.name.padEnd(28)} ${sys.name.padEnd(15)} ${fmt(perSec).padStart(10)} deliveries/s ${fmt(perCpuSec).padStart(10)} per broker CPU-s (${fmt(r.messages)} msgs, ${fmt(r.deliveries)} deliveries, ${r.ms.toFixed(0)} ms, broker CPU ${brokerCpu.toFixed(0)} ms, ${kernelCpu.toFixed(0)} of it in the kernel)`,
          );
        }
      }
    }
    console.log('\nmedians over the rounds ("per broker CPU-s" = deliveries per second of CPU the broker processes used; 3 nodes = the three brokers and Redis); ratios are Trellis (1 node, in memory) over the peer');
    console.log(`| scenario | system | deliveries/s | per broker CPU-s | Trellis ÷ it (rate) | Trellis ÷ it (per CPU-s) |`);
    console.log(`|---|---|---:|---:|---:|---:|`);
    for (const s of scenarios) {
      const t = median(rates.get(key(s.name, 'trellis')) ?? [NaN]);
      const tc = median(perCpu.get(key(s.name, 'trellis')) ?? [NaN]);
      for (const sys of active) {
        const r = rates.get(key(s.name, sys.name));
        if (!r) continue;
        const rate = median(r);
        const c = median(perCpu.get(key(s.name, sys.name))!);
        console.log(`| ${s.name} | ${sys.name} | ${fmt(rate)} | ${fmt(c)} | ${(t / rate).toFixed(2)}x | ${(tc / c).toFixed(2)}x |`);
      }
    }
  } finally {
    for (const c of children) c.kill('SIGTERM');
  }
}

await main();
