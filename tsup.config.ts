/**
 * One build for every workspace. Each workspace's package.json `exports` map names its entry
 * points: the `trellis-source` condition (repository-only: named so that it cannot collide with an
 * app's own conditions, e.g. a monorepo's `source`) is the TypeScript file, `default` the file to
 * produce. Plugins
 * are found the same way through their manifest's `main` (built from `src/index.ts`).
 * Every workspace ships ESM + .d.ts (the `types` condition beside each `default`) and keeps
 * `@trellis/*` packages and npm dependencies external.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { defineConfig, type Options } from 'tsup';

type Exports = Record<string, string | { 'trellis-source'?: string; default?: string }>;

function workspaces(): string[] {
  const dirs = ['sdk'];
  for (const group of ['plugins', 'examples']) {
    if (!existsSync(group)) continue;
    for (const name of readdirSync(group)) {
      if (existsSync(join(group, name, 'package.json'))) dirs.push(join(group, name));
    }
  }
  return dirs;
}

function entries(dir: string): Record<string, string> {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const out: Record<string, string> = {};
  const add = (source: string, target: string) => {
    // tsup names outputs relative to outDir, without the extension
    const name = relative('dist', target.replace(/^\.\//, '')).replace(/\.js$/, '');
    out[name] = join(dir, source);
  };
  const exp = (pkg.exports ?? {}) as Exports;
  for (const value of Object.values(exp)) {
    if (typeof value === 'object' && value['trellis-source'] && value.default) add(value['trellis-source'], value.default);
  }
  if (pkg.main && dir.startsWith('plugins') && existsSync(join(dir, 'src/index.ts'))) add('./src/index.ts', pkg.main);
  for (const [, target] of Object.entries((pkg.bin ?? {}) as Record<string, string>)) {
    const source = target.replace(/^\.\/dist\//, './src/').replace(/\.js$/, '.ts');
    if (existsSync(join(dir, source))) add(source, target);
  }
  return out;
}

export default defineConfig(
  workspaces()
    .map((dir): Options | undefined => {
      const entry = entries(dir);
      if (Object.keys(entry).length === 0) return undefined;
      return {
        name: dir,
        entry,
        outDir: join(dir, 'dist'),
        format: ['esm'],
        target: 'node20',
        platform: 'node',
        dts: true,
        sourcemap: true,
        clean: true,
        splitting: true,
        // workspace packages and npm dependencies stay imports, never bundled copies
        external: [/^@trellis\//, /^[^./]/],
        silent: true,
        tsconfig: 'tsconfig.json',
      };
    })
    .filter((o): o is Options => o !== undefined),
);
