/**
 * For the benchmarks that measure Trellis as users run it, from the packages' built `dist/`:
 * whether those builds are at least as new as their sources (a stale build measures other code).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Newest modification time (ms) of the files under `dir`, skipping node_modules and dist. */
function newest(dir: string): number {
  if (!existsSync(dir)) return 0;
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name === 'dist') continue;
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** True when every file of `outputs` exists and is newer than every file under `sources` (paths relative to `root`). */
export function builtFresh(root: string, outputs: readonly string[], sources: readonly string[]): boolean {
  const built = Math.min(...outputs.map((f) => (existsSync(join(root, f)) ? statSync(join(root, f)).mtimeMs : 0)));
  return built > Math.max(...sources.map((d) => newest(join(root, d))));
}
