/**
 * `npm run bench:broker`: Trellis broker vs aedes (MQTT) with mqtt.js clients, side by side in
 * the same run. Each broker runs in its own process; the publisher and subscribers run here.
 * Same ~100-byte JSON object for both; both subscribers decode every payload. Scenarios: 1→1
 * and 1→N fan-out, without acks (QoS 0) and with publisher acks (Trellis ack / MQTT QoS 1
 * publish; MQTT subscriptions stay QoS 0 so both sides do the same work: the broker confirms
 * receipt to the producer). Rounds alternate the systems; we report medians and ratios.
 *
 * Env: BENCH_ROUNDS (5), BENCH_MS (1500 per run, after one 500 ms warm-up run of each), BENCH_FANOUT (100),
 * BENCH_WINDOW (1000 messages in flight); BENCH_SCENARIO / BENCH_SYSTEM narrow the run (profiling).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { createHost, type Value } from '@trellis/sdk';
import { connect, type BrokerClient } from '@trellis/sdk/broker';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const RUN_MS = Number(process.env.BENCH_MS ?? 1500);
const FANOUT = Number(process.env.BENCH_FANOUT ?? 100);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 1000);
const WARMUP_MS = 500;
/** Profiling aid: run only these scenarios (substring of the name) and systems. */
const ONLY_SCENARIO = process.env.BENCH_SCENARIO ?? '';
const ONLY_SYSTEM = process.env.BENCH_SYSTEM ?? '';

const PAYLOAD: Value = { sensor: 'greenhouse-07', kind: 'temperature', value: 21.375, unit: 'celsius', seq: 1234567, ok: true };
const PAYLOAD_TEXT = JSON.stringify(PAYLOAD);

interface Server {
  port: number;
  child: ChildProcess;
}

async function startServer(kind: 'trellis' | 'aedes'): Promise<Server> {
  const script = fileURLToPath(new URL('./server.ts', import.meta.url));
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', script, kind], { stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
  return { port: JSON.parse(line).port, child };
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

async function runTrellis(port: number, subs: number, acks: boolean, ms = RUN_MS): Promise<Result> {
  const plugins = createHost();
  const topic = `/bench/run${++runNo}/data`;
  const consumers: BrokerClient[] = [];
  let onDelivery = () => {};
  const loops: Promise<void>[] = [];
  for (let i = 0; i < subs; i++) {
    const c = await connect({ port, codec: 'json', plugins, role: 'consumer' });
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
      if (onAck) producer.publish(topic, PAYLOAD, { ack: true }).then(onAck);
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

/** CPU time (user + system, ms) a process has used so far, from /proc (Linux). */
function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // clock ticks at USER_HZ = 100
  } catch {
    return NaN;
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

async function main(): Promise<void> {
  console.log(`broker benchmark: ${ROUNDS} rounds x ${RUN_MS} ms per run, payload ${Buffer.byteLength(PAYLOAD_TEXT)} bytes of JSON, window ${WINDOW}, node ${process.version}`);
  const [trellis, aedes] = await Promise.all([startServer('trellis'), startServer('aedes')]);
  const all = [
    { name: '1→1 no ack (QoS 0)', subs: 1, acks: false },
    { name: '1→1 acked (QoS 1 publish)', subs: 1, acks: true },
    { name: `1→${FANOUT} no ack (QoS 0)`, subs: FANOUT, acks: false },
    { name: `1→${FANOUT} acked (QoS 1 publish)`, subs: FANOUT, acks: true },
  ];
  const scenarios = all.filter((s) => s.name.includes(ONLY_SCENARIO));
  const systems = (order: readonly ('trellis' | 'aedes')[]) => order.filter((s) => s.includes(ONLY_SYSTEM));
  const rates: Record<string, { trellis: number[]; aedes: number[] }> = {};
  const perCpu: Record<string, { trellis: number[]; aedes: number[] }> = {};
  for (const s of scenarios) {
    rates[s.name] = { trellis: [], aedes: [] };
    perCpu[s.name] = { trellis: [], aedes: [] };
  }
  try {
    // warm both brokers and both client stacks up (JIT, connection paths) before measuring
    for (const s of scenarios) {
      if ('trellis'.includes(ONLY_SYSTEM)) await runTrellis(trellis.port, s.subs, s.acks, WARMUP_MS);
      if ('aedes'.includes(ONLY_SYSTEM)) await runAedes(aedes.port, s.subs, s.acks, WARMUP_MS);
    }
    for (let round = 1; round <= ROUNDS; round++) {
      for (const s of scenarios) {
        const order = round % 2 ? (['trellis', 'aedes'] as const) : (['aedes', 'trellis'] as const);
        for (const system of systems(order)) {
          const pid = (system === 'trellis' ? trellis : aedes).child.pid!;
          const cpuBefore = cpuMs(pid);
          const r = system === 'trellis' ? await runTrellis(trellis.port, s.subs, s.acks) : await runAedes(aedes.port, s.subs, s.acks);
          const brokerCpu = cpuMs(pid) - cpuBefore;
          const perSec = (r.deliveries / r.ms) * 1000;
          const perCpuSec = (r.deliveries / brokerCpu) * 1000;
          rates[s.name]![system].push(perSec);
          perCpu[s.name]![system].push(perCpuSec);
          console.log(
            `  round ${round} ${s.name.padEnd(28)} ${system.padEnd(7)} ${fmt(perSec).padStart(10)} deliveries/s ${fmt(perCpuSec).padStart(10)} per broker CPU-s (${fmt(r.messages)} msgs, ${fmt(r.deliveries)} deliveries, ${r.ms.toFixed(0)} ms, broker CPU ${brokerCpu.toFixed(0)} ms)`,
          );
        }
      }
    }
  } finally {
    trellis.child.kill('SIGTERM');
    aedes.child.kill('SIGTERM');
  }
  console.log('\nmedians over the rounds (1→1: deliveries = messages; "per broker CPU-s" = deliveries per second of CPU the broker process used)');
  console.log(`| scenario | Trellis deliveries/s | aedes deliveries/s | ratio | Trellis per broker CPU-s | aedes per broker CPU-s | ratio |`);
  console.log(`|---|---:|---:|---:|---:|---:|---:|`);
  for (const s of scenarios) {
    const t = median(rates[s.name]!.trellis);
    const a = median(rates[s.name]!.aedes);
    const tc = median(perCpu[s.name]!.trellis);
    const ac = median(perCpu[s.name]!.aedes);
    console.log(`| ${s.name} | ${fmt(t)} | ${fmt(a)} | ${(t / a).toFixed(2)}x | ${fmt(tc)} | ${fmt(ac)} | ${(tc / ac).toFixed(2)}x |`);
  }
}

await main();
