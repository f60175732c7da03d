/** Test helpers: run the Python client, poll a condition, fast maintenance timers. */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const CLIENT = fileURLToPath(new URL('../python/dht_client.py', import.meta.url));

/** Timers that let a ring settle in well under a second on loopback. */
export const FAST = { stabilizeMs: 40, fixFingersMs: 80, checkPredecessorMs: 80, rpcTimeoutMs: 300, hopTimeoutMs: 300, lookupTimeoutMs: 2000 } as const;

/** Runs `dht_client.py HOST PORT ...args` and returns its stdout parsed as JSON. */
export function python(port: number, ...args: string[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    execFile('python3', [CLIENT, '127.0.0.1', String(port), ...args], { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`python client failed: ${stderr || err.message}`));
      else resolve(JSON.parse(stdout));
    });
  });
}

/** Polls `check` every 50 ms until it returns true or `ms` pass. */
export async function waitFor(check: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}
