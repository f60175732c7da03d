import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ChunkedScanner } from '../src/balancer/raw/chunked-scanner.js';

const body = Buffer.from('5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT');

test('the chunked scanner finds the end of a message split at every byte', () => {
  for (let cut = 1; cut < body.length; cut++) {
    const s = new ChunkedScanner();
    const data: string[] = [];
    const onData = (b: Buffer, f: number, t: number) => void data.push(b.toString('latin1', f, t));
    const a = s.scan(body.subarray(0, cut), 0, onData);
    const end = a === -1 ? cut + s.scan(body.subarray(cut), 0, onData) : a;
    assert.is(end, body.length - 4, `cut at ${cut}`);
    assert.is(data.join(''), 'hello world', `cut at ${cut}`);
  }
});

test('the chunked scanner rejects malformed framing', () => {
  for (const bad of ['x\r\n', '5\r\nhelloXX', '5\nhello\r\n', '\r\n', 'fffffffffffffff\r\n']) {
    assert.is(new ChunkedScanner().scan(Buffer.from(bad)), -2, JSON.stringify(bad));
  }
});

test.run();
