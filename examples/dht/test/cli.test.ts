import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PassThrough } from 'node:stream';
import { runCommand } from '@trellis/sdk/cli';
import { dht } from '../src/cli.js';
import { startRing } from '../src/ring.js';
import { FAST, waitFor } from './helpers.js';

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => (out += d));
  stderr.on('data', (d) => (err += d));
  const code = await runCommand('trellis dht', dht, argv, { stdout, stderr, signal: new AbortController().signal });
  return { code, out, err };
}

test('trellis dht put, get, info and lookup talk to a running ring', async () => {
  const ring = await startRing({ ports: [0, 0, 0], ...FAST });
  try {
    assert.ok(await waitFor(() => ring.nodes.every((n) => n.predecessor !== undefined), 3000));
    const [a, b] = ring.nodes.map((n) => `127.0.0.1:${n.address.port}`) as [string, string];
    assert.equal(await run('put', '--node', a, 'A', '[0,1,2]'), { code: 0, out: 'ACK\n', err: '' });
    assert.equal(await run('get', '--node', b, 'A'), { code: 0, out: '[0,1,2]\n', err: '' });
    assert.equal(await run('get', '--node', b, 'absent'), { code: 1, out: 'NACK\n', err: '' });
    const info = JSON.parse((await run('info', '--node', a)).out);
    assert.is(info.id, Number(ring.nodes[0]!.self.id));
    assert.is(info.successors.length, 2);
    const traced = JSON.parse((await run('lookup', '--node', a, 'A')).out);
    const owner = ring.nodes.find((n) => n.owns(n.hashOf('A')))!;
    assert.equal(traced.node, [Number(owner.self.id), ['127.0.0.1', owner.address.port]]);
    assert.is(traced.path.length, traced.hops + 1);
    assert.equal(traced.path[0], [Number(ring.nodes[0]!.self.id), ['127.0.0.1', ring.nodes[0]!.address.port]]);
  } finally {
    await ring.close();
  }
});

test('bad flags and arguments exit 2 with one line', async () => {
  const bad = await run('node', '--bits', 'many');
  assert.is(bad.code, 2);
  assert.match(bad.err, /--bits must be a whole number/);
  assert.is(bad.err.trim().split('\n').length, 1);
  assert.is((await run('node', '--hash', 'md5', '--port', '0')).code, 2);
  assert.is((await run('put', '--node', 'nowhere', 'k', 'v')).code, 2);
  assert.is((await run('get', 'a', 'b')).code, 2);
  assert.is((await run('frobnicate')).code, 2);
  const help = await run('--help');
  assert.is(help.code, 0);
  assert.match(help.out, /lookup/);
});

test.run();
