/**
 * Codec benchmark: Trellis' json, xml and pickle codecs side by side with their peers on the
 * same documents — `JSON.parse`/`JSON.stringify` (with the same UTF-8 conversion the codec
 * does), `fast-xml-parser` (XMLParser/XMLBuilder) and `pickleparser` (decode only; it has no
 * encoder). Each round measures Trellis and the peer back to back (alternating who goes first)
 * and keeps that pair's ratio, so load drift on a shared machine cancels out; the report gives
 * median ops/s, median bytes/s and the median of the per-round ratios.
 *
 *   npm run bench:codecs                      # default: 15 rounds of 100 ms per contender
 *   npm run bench:codecs -w @trellis/example-broker -- --rounds 21 --ms 150 --out /tmp/codecs.md
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { XMLParser, XMLBuilder } from 'fast-xml-parser';
import { Parser as PickleParser } from 'pickleparser';
import { createHost, type Codec, type Value } from '@trellis/sdk';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '15' },
    ms: { type: 'string', default: '100' },
    out: { type: 'string' },
  },
});
const ROUNDS = Number(args.rounds);
const MS = Number(args.ms);

// ------------------------------------------------------------------------------ documents

function record(i: number): Value {
  return {
    id: i,
    name: `sensor-${i}`,
    location: { lat: 40.63 + i / 1000, lon: -8.65 - i / 1000 },
    tags: ['temperature', i % 2 ? 'indoor' : 'outdoor'],
    score: i * 1.25,
    active: i % 3 !== 0,
    note: null,
  };
}

const documents: { name: string; value: Value }[] = [
  {
    name: 'message (~100 B)',
    value: { topic: '/weather/temperature', value: { celsius: 21.5, station: 'Aveiro', ts: 1700000000123, ok: true } },
  },
  { name: 'dht datagram', value: { method: 'PUT', args: { key: 'A', value: [0, 1, 2], from: ['localhost', 4000] } } },
  { name: 'records (~12 KB)', value: Array.from({ length: 80 }, (_, i) => record(i)) },
  { name: 'records (~300 KB)', value: Array.from({ length: 2000 }, (_, i) => record(i)) },
];

/** Pickles of the documents as CPython writes them (protocol 4: frames, memo), so peers read real input. */
function pythonPickles(json: string[]): Uint8Array[] | undefined {
  const r = spawnSync(
    'python3',
    ['-c', 'import json,pickle,sys\nfor line in sys.stdin.read().splitlines():\n    print(pickle.dumps(json.loads(line), protocol=4).hex())'],
    { input: json.join('\n'), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  if (r.status !== 0) return undefined;
  return r.stdout.trim().split('\n').map((h) => Uint8Array.from(Buffer.from(h, 'hex')));
}

// ------------------------------------------------------------------------------ harness

/** Runs `fn` for about MS milliseconds; returns operations per second. */
function measure(fn: () => unknown): number {
  let ops = 0;
  let batch = 1;
  const start = performance.now();
  let now = start;
  while (now - start < MS) {
    for (let i = 0; i < batch; i++) fn();
    ops += batch;
    now = performance.now();
    if (now - start < MS / 20) batch *= 2;
  }
  return (ops * 1000) / (now - start);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

interface Contest {
  doc: string;
  op: string;
  bytes: number;
  ours: { name: string; fn: () => unknown };
  peer?: { name: string; fn: () => unknown };
}

function fmt(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(0);
}

function fmtBytes(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB/s` : `${(n / 1e6).toFixed(1)} MB/s`;
}

// ------------------------------------------------------------------------------ main

const host = createHost();
const [json, xml, pickle] = (await Promise.all(['json', 'xml', 'pickle'].map((n) => host.serialization.codec(n)))) as Codec[];
const td = new TextDecoder('utf-8', { fatal: true });
const fxpParser = new XMLParser({ ignoreAttributes: false });
const fxpBuilder = new XMLBuilder({ ignoreAttributes: false });
const pickleParser = new PickleParser();

const pyPickles = pythonPickles(documents.map((d) => new TextDecoder().decode(json.encode(d.value))));
const contests: Contest[] = [];
let sink: unknown;

for (const [i, { name, value }] of documents.entries()) {
  const jsonBytes = json.encode(value);
  const xmlBytes = xml.encode(value);
  const pickleBytes = pyPickles?.[i] ?? pickle.encode(value);
  // Sanity: every contender decodes its input before it is timed.
  for (const [c, b] of [[json, jsonBytes], [xml, xmlBytes], [pickle, pickleBytes]] as const) {
    if (JSON.stringify(c.decode(b)) !== JSON.stringify(value)) throw new Error(`${c.name} does not round-trip ${name}`);
  }
  const fxpTree = fxpParser.parse(Buffer.from(xmlBytes));
  if (!fxpTree?.dict && !fxpTree?.list) throw new Error('fast-xml-parser did not parse the document');
  const pp = pickleParser.parse<unknown>(pickleBytes);
  if (JSON.stringify(pp) !== JSON.stringify(value)) throw new Error(`pickleparser reads ${name} differently`);

  contests.push(
    {
      doc: name, op: 'json decode', bytes: jsonBytes.length,
      ours: { name: 'trellis json', fn: () => (sink = json.decode(jsonBytes)) },
      peer: { name: 'JSON.parse', fn: () => (sink = JSON.parse(td.decode(jsonBytes))) },
    },
    {
      doc: name, op: 'json encode', bytes: jsonBytes.length,
      ours: { name: 'trellis json', fn: () => (sink = json.encode(value)) },
      peer: { name: 'JSON.stringify', fn: () => (sink = Buffer.from(JSON.stringify(value), 'utf8')) },
    },
    {
      doc: name, op: 'xml decode', bytes: xmlBytes.length,
      ours: { name: 'trellis xml', fn: () => (sink = xml.decode(xmlBytes)) },
      peer: { name: 'fast-xml-parser', fn: () => (sink = fxpParser.parse(Buffer.from(xmlBytes.buffer, xmlBytes.byteOffset, xmlBytes.length))) },
    },
    {
      doc: name, op: 'xml encode', bytes: xmlBytes.length,
      ours: { name: 'trellis xml', fn: () => (sink = xml.encode(value)) },
      peer: { name: 'fast-xml-parser', fn: () => (sink = Buffer.from(fxpBuilder.build(fxpTree), 'utf8')) },
    },
    {
      doc: name, op: 'pickle decode', bytes: pickleBytes.length,
      ours: { name: 'trellis pickle', fn: () => (sink = pickle.decode(pickleBytes)) },
      peer: { name: 'pickleparser', fn: () => (sink = pickleParser.parse(pickleBytes)) },
    },
    {
      doc: name, op: 'pickle encode', bytes: pickle.encode(value).length,
      ours: { name: 'trellis pickle', fn: () => (sink = pickle.encode(value)) },
    },
  );
}

// Warm up every contender once so the first round is not a JIT round.
for (const c of contests) {
  for (let i = 0; i < 200; i++) c.ours.fn(), c.peer?.fn();
}

const samples = new Map<Contest, { ours: number[]; peer: number[]; ratio: number[] }>(contests.map((c) => [c, { ours: [], peer: [], ratio: [] }]));
for (let round = 0; round < ROUNDS; round++) {
  for (const c of contests) {
    const s = samples.get(c)!;
    // Alternate who goes first, so drift on a shared machine hits both sides.
    if (round % 2 === 0 || !c.peer) {
      s.ours.push(measure(c.ours.fn));
      if (c.peer) s.peer.push(measure(c.peer.fn));
    } else {
      s.peer.push(measure(c.peer.fn));
      s.ours.push(measure(c.ours.fn));
    }
    if (c.peer) s.ratio.push(s.ours[s.ours.length - 1] / s.peer[s.peer.length - 1]);
  }
  process.stderr.write(`round ${round + 1}/${ROUNDS} done\n`);
}
void sink;

const lines = [
  `| document | operation | Trellis ops/s | Trellis bytes/s | peer | peer ops/s | peer bytes/s | Trellis ÷ peer (median of rounds) |`,
  `|---|---|--:|--:|---|--:|--:|--:|`,
];
for (const c of contests) {
  const s = samples.get(c)!;
  const ours = median(s.ours);
  const peer = c.peer ? median(s.peer) : undefined;
  lines.push(
    `| ${c.doc} (${c.bytes} B) | ${c.op} | ${fmt(ours)} | ${fmtBytes(ours * c.bytes)} | ${c.peer?.name ?? '—'} | ${peer ? fmt(peer) : '—'} | ${
      peer ? fmtBytes(peer * c.bytes) : '—'
    } | ${peer ? `${median(s.ratio).toFixed(2)}×` : '—'} |`,
  );
}
const header = [
  `Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, load average ${loadavg()[0].toFixed(1)} at the end; ${ROUNDS} rounds of ${MS} ms per contender, back to back, alternating order; medians.`,
  `Pickle inputs: ${pyPickles ? 'written by CPython (pickle.dumps, protocol 4)' : 'written by Trellis (python3 not found)'}.`,
  `JSON peers include the same UTF-8 conversion the codec does (TextDecoder / Buffer.from).`,
  '',
];
const report = [...header, ...lines].join('\n');
process.stdout.write(report + '\n');
if (args.out) writeFileSync(args.out, report + '\n');
await host.dispose();
