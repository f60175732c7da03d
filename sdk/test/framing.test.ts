import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FrameReader, FrameSizeError, frame, allocFrame } from '@trellis/sdk/framing';

function collect(max = 1024) {
  const frames: string[] = [];
  const reader = new FrameReader({ maxFrameBytes: max }, (body) => frames.push(body.toString()));
  return { reader, frames };
}

test('frame reader yields whole frames however the stream is chunked', () => {
  const bodies = ['a', 'hello', 'x'.repeat(300), 'end', 'z'.repeat(1000)];
  const stream = Buffer.concat(bodies.map((b) => frame(Buffer.from(b))));
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 23) + 1;
  for (let round = 0; round < 200; round++) {
    const { reader, frames } = collect();
    for (let off = 0; off < stream.length; ) {
      const n = round === 0 ? 1 : rand() * (round % 5 === 0 ? 40 : 1);
      reader.push(stream.subarray(off, off + n));
      off += n;
    }
    assert.equal(frames, bodies);
    assert.is(reader.bufferedBytes, 0);
  }
});

test('frame reader hands out bounds instead of views with onFrameAt, however the stream is chunked', () => {
  const bodies = ['a', 'hello', 'x'.repeat(300), 'end'];
  const stream = Buffer.concat(bodies.map((b) => frame(Buffer.from(b))));
  for (const size of [1, 2, 7, 64, stream.length]) {
    const frames: string[] = [];
    const reader = new FrameReader({ maxFrameBytes: 1024, onFrameAt: (buf, start, end) => frames.push(buf.toString('utf8', start, end)) });
    for (let off = 0; off < stream.length; off += size) reader.push(stream.subarray(off, off + size));
    assert.equal(frames, bodies, `chunks of ${size}`);
    assert.is(reader.bufferedBytes, 0);
  }
  assert.throws(() => new FrameReader({ maxFrameBytes: 10 }), /needs onFrame/);
});

test('frame reader refuses an oversized length from the header alone, before any body byte', () => {
  const { reader, frames } = collect(100);
  reader.push(frame(Buffer.from('ok')));
  const header = allocFrame(101).subarray(0, 4);
  assert.throws(() => reader.push(header), (err: unknown) => err instanceof FrameSizeError && err.size === 101 && err.limit === 100);
  assert.ok(reader.failed instanceof FrameSizeError);
  reader.push(frame(Buffer.from('ignored')));
  assert.equal(frames, ['ok']);
  assert.is(reader.bufferedBytes, 0);
});

test('frame reader refuses an empty frame', () => {
  const { reader } = collect();
  assert.throws(() => reader.push(Buffer.from([0, 0, 0, 0])), /below the minimum of 1/);
});

test('frame reader holds at most one partial frame', () => {
  const { reader, frames } = collect(1 << 20);
  const big = frame(Buffer.alloc(500_000, 1));
  for (let off = 0; off < big.length; off += 65536) reader.push(big.subarray(off, off + 65536));
  assert.is(frames.length, 1);
  assert.is(frames[0]!.length, 500_000);
  assert.is(reader.bufferedBytes, 0);
});

test.run();
