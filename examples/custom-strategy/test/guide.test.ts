/** The plugin guide in the root README shows the plugin's real files: every `<!-- file: … -->` block equals that file. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';

const root = new URL('../../../', import.meta.url);
const readme = readFileSync(new URL('README.md', root), 'utf8');

test("every file listing in the README's plugin guide is the file in examples/custom-strategy", () => {
  const blocks = [...readme.matchAll(/<!-- file: (\S+) -->\n```\w*\n([\s\S]*?)\n```/g)];
  assert.equal(blocks.map((b) => b[1]).sort(), [
    'examples/custom-strategy/host-groups/host-groups.js',
    'examples/custom-strategy/p2c-least-request/index.js',
    'examples/custom-strategy/p2c-least-request/p2c.js',
    'examples/custom-strategy/p2c-least-request/package.json',
  ]);
  for (const [, file, body] of blocks) {
    assert.fixture(body!, readFileSync(new URL(file!, root), 'utf8').replace(/\n$/, ''), `${file} differs from its listing in README.md`);
  }
});

test.run();
