/** The guide shows the plugin's real files: every `<!-- file: … -->` block equals that file. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';

const dir = new URL('../', import.meta.url);
const guide = readFileSync(new URL('GUIDE.md', dir), 'utf8');

test('every file listing in GUIDE.md is the file in examples/custom-strategy', () => {
  const blocks = [...guide.matchAll(/<!-- file: (\S+) -->\n```\w*\n([\s\S]*?)\n```/g)];
  assert.equal(blocks.map((b) => b[1]).sort(), ['p2c-least-request/index.js', 'p2c-least-request/p2c.js', 'p2c-least-request/package.json']);
  for (const [, file, body] of blocks) {
    assert.fixture(body!, readFileSync(new URL(file!, dir), 'utf8').replace(/\n$/, ''), `${file} differs from its listing in GUIDE.md`);
  }
});

test.run();
