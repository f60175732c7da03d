/**
 * The broker benchmarks measure the built dist/ of the SDK and the json plugin (the code the
 * `trellis` command runs); a missing or older-than-source build would measure something else.
 */
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Throws unless sdk/dist and plugins/json/dist exist and are newer than their src/. */
export function checkBuilt(): void {
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const newest = (dir: string): number => {
    let t = 0;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
    }
    return t;
  };
  for (const pkg of ['sdk', 'plugins/json']) {
    const built = join(root, pkg, 'dist', 'index.js');
    if (!existsSync(built) || statSync(built).mtimeMs < newest(join(root, pkg, 'src'))) {
      throw new Error(`${pkg}/dist is missing or older than ${pkg}/src: run \`npm run build\` first (the benchmark runs the build)`);
    }
  }
}
