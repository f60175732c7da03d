import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHost, type Codec, type Value } from '@trellis/sdk';
import { prng, randomValue } from '../../pickle/test/fuzz-kit.js';

const sample: Value = {
  method: 'PUT',
  args: { key: 'A', value: [0, 1, 2], from: ['localhost', 4000] },
  reading: { celsius: 21.5, negative: -3, zero: 0, big: 2n ** 64n, tiny: -(2n ** 70n), float: 1e300, ok: true, none: null },
  text: ['', 'héllo ✓ 😀', 'line\nbreak', '<xml & "json">', '\u0000ctl'],
  bytes: Uint8Array.of(0, 1, 127, 128, 255),
  nested: [[[{ deep: [] }]], {}],
};

async function codecs(): Promise<{ host: ReturnType<typeof createHost>; all: Codec[] }> {
  const host = createHost();
  const all = await Promise.all(['json', 'xml', 'pickle'].map((n) => host.serialization.codec(n)));
  return { host, all };
}

test('a value published in any format arrives equal in every other format', async () => {
  const { host, all } = await codecs();
  try {
    for (const from of all) {
      const received = from.decode(from.encode(sample));
      assert.equal(received, sample, `${from.name} round trip`);
      for (const to of all) assert.equal(to.decode(to.encode(received)), sample, `${from.name} -> ${to.name}`);
    }
  } finally {
    await host.dispose();
  }
});

test('2,000 random values survive json -> xml -> pickle -> json unchanged', async () => {
  const { host, all } = await codecs();
  const [json, xml, pickle] = all;
  try {
    const rand = prng(2024);
    for (let i = 0; i < 2000; i++) {
      const v = randomValue(rand);
      const out = json.decode(json.encode(pickle.decode(pickle.encode(xml.decode(xml.encode(json.decode(json.encode(v))))))));
      assert.equal(out, v);
    }
  } finally {
    await host.dispose();
  }
});

test('NaN and Infinity cross between xml and pickle, and JSON refuses them with a typed error', async () => {
  const { host, all } = await codecs();
  const [json, xml, pickle] = all;
  try {
    const v = [NaN, Infinity, -Infinity];
    const back = xml.decode(xml.encode(pickle.decode(pickle.encode(v)))) as number[];
    assert.ok(Number.isNaN(back[0]) && back[1] === Infinity && back[2] === -Infinity);
    assert.throws(() => json.encode(back), (e: unknown) => (e as { code?: string }).code === 'TRELLIS_ERR_CODEC');
  } finally {
    await host.dispose();
  }
});

test.run();
