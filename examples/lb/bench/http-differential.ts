/**
 * Differential run against reference proxies: the same generated and mutated requests go
 * through Trellis, haproxy and nginx (whichever are installed), each in front of its own
 * recording back-end (llhttp, strict). For every input we compare what reached the back-end
 * (method, target, body of each message, in order): Trellis must forward the same messages as a
 * reference, or fewer because it refused (a 4xx to the client), never different or extra ones.
 *
 *   node --conditions=trellis-source --import tsx examples/lb/bench/http-differential.ts [COUNT] [SEED]
 *
 * Loopback only, bounded: COUNT inputs (default 200), one connection at a time per proxy.
 */
import { createServer, connect, type Server } from 'node:net';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, hasTool, toolPath, start, startNode, type Proc } from './tools.js';
import { haproxyConfig, nginxConfig } from './configs.js';
import { generate, mutate, prng, show } from '../test/http-differential.js';

const require = createRequire(import.meta.url);
const { HTTPParser, methods } = require('_http_common') as { HTTPParser: any; methods: string[] };

const COUNT = Number(process.argv[2] ?? 200);
const SEED = Number(process.argv[3] ?? 12);

interface Recorder {
  port: number;
  server: Server;
  messages: string[];
}

/** A back-end that parses what it receives with llhttp, records each message, answers 200. */
async function recorder(): Promise<Recorder> {
  const messages: string[] = [];
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    const p = new HTTPParser();
    p.initialize(HTTPParser.REQUEST, {}, 0, 0);
    let cur: { head: string; body: Buffer[] } | undefined;
    // node hands the URL over early (kOnHeaders) when a head spans several reads
    let flushedUrl = '';
    let inHead = true;
    p[HTTPParser.kOnMessageBegin] = () => {
      inHead = true;
      flushedUrl = '';
    };
    p[HTTPParser.kOnHeaders] = (_h: unknown, url: string) => {
      if (inHead) flushedUrl += url ?? '';
    };
    p[HTTPParser.kOnHeadersComplete] = (_a: number, _b: number, _h: unknown, method: number, url: string | undefined) => {
      cur = { head: `${methods[method]} ${url ?? flushedUrl}`, body: [] };
      inHead = false;
      return 0;
    };
    p[HTTPParser.kOnBody] = (b: Buffer) => void cur?.body.push(Buffer.from(b));
    p[HTTPParser.kOnMessageComplete] = () => {
      if (cur) messages.push(`${cur.head} ${JSON.stringify(Buffer.concat(cur.body).toString('latin1'))}`);
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    };
    p[HTTPParser.kOnExecute] = () => undefined;
    socket.on('data', (c) => {
      const r = p.execute(c);
      if (r instanceof Error) socket.destroy();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as { port: number }).port, server, messages };
}

/**
 * Sends `input` (no FIN: nginx drops requests whose client half-closed) and waits for the close,
 * 300 ms of quiet after an answer, or 1.5 s: returns the first status seen.
 */
function send(port: number, input: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    let text = '';
    let quiet: NodeJS.Timeout | undefined;
    let settled = false;
    const done = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(quiet);
      s.destroy();
      resolve(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? (text === '' ? 'none' : 'garbage'));
    };
    const timer = setTimeout(done, 1500);
    s.on('data', (c) => {
      text += c.toString('latin1');
      clearTimeout(quiet);
      quiet = setTimeout(done, 300);
    });
    s.on('error', done);
    s.on('close', done);
    s.on('connect', () => s.write(input));
  });
}

/** Absolute-form targets as origin-form: proxies may forward either (RFC 9112 §3.2.2). */
const origin = (m: string) => m.replace(/^(\S+) [hH][tT][tT][pP][sS]?:\/\/[^/?\s]*(\S*)/, (_x, method: string, rest: string) => `${method} ${rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest}`);

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'trellis-diff-'));
  const procs: Proc[] = [];
  const proxies: { name: string; port: number; rec: Recorder }[] = [];
  try {
    const add = async (name: string, launch: (backend: number) => Promise<Proc>) => {
      const rec = await recorder();
      const proc = await launch(rec.port);
      procs.push(proc);
      proxies.push({ name, port: proc.port, rec });
    };
    await add('trellis', async (b) => {
      const port = await freePort();
      return startNode('trellis', port, './peers/trellis.ts', ['http', port, 'round-robin', b]);
    });
    if (hasTool('haproxy')) await add('haproxy', async (b) => {
      const port = await freePort();
      return start('haproxy', port, toolPath('haproxy'), ['-db', '-f', haproxyConfig(tmp, 'http', port, [b])]);
    });
    if (hasTool('nginx')) await add('nginx', async (b) => {
      const port = await freePort();
      const root = nginxConfig(join(tmp, `n${b}`), port, [b]);
      return start('nginx', port, toolPath('nginx'), ['-p', root, '-c', join(root, 'nginx.conf')]);
    });
    if (proxies.length < 2) throw new Error('needs haproxy or nginx as a reference: apt-get install -y haproxy nginx');
    const r = prng(SEED);
    const tally = new Map<string, Record<string, number>>();
    const examples: string[] = [];
    for (let i = 0; i < COUNT; i++) {
      const base = generate(r);
      const input = r() < 0.5 ? base : mutate(base, r);
      const seen = await Promise.all(
        proxies.map(async (p) => {
          const before = p.rec.messages.length;
          const status = await send(p.port, input);
          return { status, messages: p.rec.messages.slice(before).map(origin) };
        }),
      );
      const t = seen[0]!;
      for (let k = 1; k < proxies.length; k++) {
        const ref = seen[k]!;
        const row = tally.get(proxies[k]!.name) ?? {};
        let verdict: string;
        const prefix = t.messages.every((m, j) => ref.messages[j] === m);
        if (t.messages.length === ref.messages.length && prefix) verdict = 'same';
        else if (t.messages.length < ref.messages.length && prefix) verdict = 'trellis refused more';
        else if (t.messages.length > ref.messages.length && ref.messages.every((m, j) => t.messages[j] === m)) verdict = 'reference refused more';
        else verdict = 'DIFFERENT';
        row[verdict] = (row[verdict] ?? 0) + 1;
        tally.set(proxies[k]!.name, row);
        if ((verdict === 'DIFFERENT' || verdict === 'reference refused more') && examples.length < 10) {
          examples.push(`${verdict} vs ${proxies[k]!.name}: ${show(input)}\n    trellis ${t.status} ${JSON.stringify(t.messages)}\n    ${proxies[k]!.name} ${ref.status} ${JSON.stringify(ref.messages)}`);
        }
      }
    }
    process.stdout.write(`differential vs reference proxies: seed ${SEED}, ${COUNT} inputs\n`);
    for (const [name, row] of tally) process.stdout.write(`  vs ${name}: ${JSON.stringify(row)}\n`);
    for (const e of examples) process.stdout.write(`  ${e}\n`);
  } finally {
    for (const p of procs) await p.stop();
    for (const p of proxies) p.rec.server.close();
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
