#!/usr/bin/env node
// The installed `trellis` command: runs the built CLI (dist/, built by `npm run build` in a checkout).
import { existsSync } from 'node:fs';

const main = new URL('../dist/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('trellis: the CLI is not built yet; run "npm run build" in the Trellis checkout\n');
  process.exit(1);
}
await import(main.href);
