/** Bench plumbing: child processes that print `ready`, free ports, external tools, wrk runs and medians. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { builtFresh } from '../../../sdk/bench/built.js';

export const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0 || spawnSync('sh', ['-c', `test -x /usr/sbin/${name}`]).status === 0;
}

export function toolPath(name: string): string {
  const r = spawnSync('sh', ['-c', `command -v ${name} || echo /usr/sbin/${name}`], { encoding: 'utf8' });
  return r.stdout.trim();
}

export interface Proc {
  name: string;
  port: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

function waitPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`port ${port} did not open within ${timeoutMs} ms`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

/** Starts `cmd args` and waits until `port` accepts connections. */
export async function start(name: string, port: number, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Proc> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  child.stderr!.on('data', (c) => (stderr = (stderr + c).slice(-2000)));
  child.stdout!.resume();
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`${name} exited early (${code}): ${stderr}`))));
  await Promise.race([waitPort(port, 15_000), exited]);
  exited.catch(() => undefined);
  return {
    name,
    port,
    child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.removeAllListeners('exit');
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 2000).unref();
      }),
  };
}

/**
 * A TypeScript file of this bench run as its own Node process. `built`: `@trellis/*` imports
 * resolve to the packages' `dist/` (what a user installs) instead of their TypeScript sources.
 */
export function startNode(name: string, port: number, file: string, args: (string | number)[], built = false): Promise<Proc> {
  return start(name, port, process.execPath, [...(built ? [] : ['--conditions=trellis-source']), '--import', 'tsx', file.startsWith('/') ? file : here(file), ...args.map(String)], { TRELLIS_LOG: 'error' });
}

/**
 * Builds the checkout at `root` (`npm run build`) unless its SDK and CLI builds are newer than
 * their sources: the balancer is measured as users run it, from `dist/`.
 */
export function ensureBuilt(root: string, log: (s: string) => void): void {
  if (builtFresh(root, ['sdk/dist/balancer/index.js', 'examples/cli/dist/main.js'], ['sdk/src', 'examples/lb/src', 'examples/cli/src', 'plugins'])) return;
  log(`building ${root} (npm run build): the balancer runs from dist/`);
  const r = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`npm run build failed in ${root}`);
}

export interface WrkResult {
  rps: number;
  p99Ms: number;
  errors: number;
  /** Requests completed in the run. */
  requests: number;
  /** CPU the measured process (and its children) used per request, in µs; NaN when not measured. */
  cpuUsPerReq: number;
}

/** Clock ticks per second of /proc/PID/stat's utime and stime. */
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** `[ppid, utime + stime]` of a process from /proc/PID/stat, or undefined when it is gone. */
function stat(pid: number): [number, number] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces and parentheses: fields count from its last ')'
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return [Number(f[1]), Number(f[11]) + Number(f[12])];
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds (user + system, all threads) used so far by `pid` and its descendants (nginx's
 * worker is the master's child), from /proc. Linux only; NaN elsewhere.
 */
export function cpuSeconds(pid: number): number {
  let pids: number[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number);
  } catch {
    return Number.NaN;
  }
  const children = new Map<number, number[]>();
  const ticks = new Map<number, number>();
  for (const p of pids) {
    const st = stat(p);
    if (st === undefined) continue;
    ticks.set(p, st[1]);
    const list = children.get(st[0]);
    if (list) list.push(p);
    else children.set(st[0], [p]);
  }
  if (!ticks.has(pid)) return Number.NaN;
  let total = 0;
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.pop()!;
    total += ticks.get(p) ?? 0;
    todo.push(...(children.get(p) ?? []));
  }
  return total / CLK_TCK;
}

function toMs(value: string, unit: string): number {
  const v = Number(value);
  return unit === 'us' ? v / 1000 : unit === 's' ? v * 1000 : v;
}

/**
 * One wrk run against `url`. With `pid`, also the CPU that process tree used during the run,
 * per request (a ratio that does not depend on how the 2 cores were shared with wrk and the
 * back-ends than requests/s, though contention still changes it).
 */
export function wrk(url: string, seconds: number, connections: number, pid?: number): Promise<WrkResult> {
  const cpu0 = pid === undefined ? Number.NaN : cpuSeconds(pid);
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    child.once('error', reject);
    child.once('exit', () => {
      const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
      const p99 = /99%\s+([\d.]+)(us|ms|s)\b/.exec(out);
      if (!rps || !p99) return reject(new Error(`could not parse wrk output:\n${out}`));
      const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
      const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      const errors = (non2xx ? Number(non2xx[1]) : 0) + (sock ? Number(sock[1]) + Number(sock[2]) + Number(sock[3]) + Number(sock[4]) : 0);
      const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? Number.NaN);
      const cpu = pid === undefined ? Number.NaN : cpuSeconds(pid) - cpu0;
      resolve({ rps: Number(rps[1]), p99Ms: toMs(p99[1]!, p99[2]!), errors, requests, cpuUsPerReq: (cpu * 1e6) / requests });
    });
  });
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
