/**
 * The broker benchmarks measure the built dist/ of the SDK and the json plugin (the code the
 * `trellis` command runs); a missing or older-than-source build would measure something else.
 */
import { fileURLToPath } from 'node:url';
import { builtFresh } from '../../../sdk/bench/built.js';

/** Throws unless sdk/dist and plugins/json/dist exist and are newer than their src/. */
export function checkBuilt(): void {
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  for (const pkg of ['sdk', 'plugins/json']) {
    if (!builtFresh(root, [`${pkg}/dist/index.js`], [`${pkg}/src`])) {
      throw new Error(`${pkg}/dist is missing or older than ${pkg}/src: run \`npm run build\` first (the benchmark runs the build)`);
    }
  }
}
