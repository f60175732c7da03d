import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { createHost, errors, CodecError, type Value } from '@trellis/sdk';
import { createJsonCodec } from '../src/index.js';
import { decode as rawDecode, JsonCodecError } from '../src/json.js';
import { prng, randomValue } from '../../pickle/test/fuzz-kit.js';

const codec = createJsonCodec(errors);
const utf8 = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const rejects = (s: string, pattern: RegExp) =>
  assert.throws(() => codec.decode(utf8(s)), (e: unknown) => e instanceof CodecError && pattern.test((e as Error).message), s.slice(0, 60));

test('plain JSON decodes exactly as JSON.parse does', () => {
  const docs = ['null', 'true', '0', '-1.5e-7', '"x"', '[]', '{}', '{"a":[1,{"b":null}],"c":"é\\n"}', ' [ 1 , 2 ] ', '"\\u00e9\\ud83d\\ude00"'];
  for (const d of docs) assert.equal(codec.decode(utf8(d)), JSON.parse(d), d);
});

test('integers have at most 4,300 digits (as CPython reads them), refused before any slow conversion', () => {
  assert.is(codec.decode(utf8('9'.repeat(4300))), 10n ** 4300n - 1n);
  rejects('9'.repeat(4301), /integer of 4301 digits exceeds the 4300-digit limit/);
  rejects(`[1, -${'9'.repeat(4301)}]`, /4301 digits/);
  const t0 = performance.now();
  rejects('9'.repeat(1_000_000), /1000000 digits/);
  assert.ok(performance.now() - t0 < 3000, `${performance.now() - t0} ms`);
});

test('integers beyond 2^53 are exact bigints both ways; smaller ones are numbers', () => {
  assert.equal(codec.decode(utf8('[9007199254740991,9007199254740992,-12345678901234567890123]')), [9007199254740991, 9007199254740992n, -12345678901234567890123n]);
  assert.is(codec.decode(utf8('1234567890123456.5')), 1234567890123456.5); // 16 digits but a float
});

test('long documents keep big integers exact too (the walk spots them)', () => {
  const pad = ' '.repeat(2000);
  assert.equal(codec.decode(utf8(`${pad}[1.5,{"a":9007199254740993}]`)), [1.5, { a: 9007199254740993n }]);
  assert.is(codec.decode(utf8(`${pad}9007199254740992`)), 9007199254740992n);
  assert.equal(codec.decode(utf8(`${pad}[1e300,40.631000000000004]`)), [1e300, 40.631000000000004]);
  assert.throws(() => codec.decode(utf8(`${pad}[{"__proto__":1}]`)), /__proto__/);
});

test('a leading-zero number is refused even on the exact path', () => {
  rejects('[0000000000000000001]', /expected , or \]/);
  rejects('0000000000000000', /unexpected character/);
});

test('encodes bigint as a plain integer and large integral floats as floats', () => {
  assert.is(text(codec.encode({ a: 2n ** 70n })), '{"a":1180591620717411303424}');
  assert.is(text(codec.encode([2 ** 60])), '[1.152921504606847e+18]');
  assert.is(codec.decode(codec.encode(2 ** 60)), 2 ** 60);
});

test('bytes travel as {"$bytes": base64}', () => {
  assert.is(text(codec.encode({ b: Uint8Array.of(0, 1, 255) })), '{"b":{"$bytes":"AAH/"}}');
  assert.equal(codec.decode(utf8('{"b":{"$bytes":"AAH/"}}')), { b: Uint8Array.of(0, 1, 255) });
  assert.equal(codec.decode(utf8('{"$bytes":"AAH/","other":1}')), { $bytes: 'AAH/', other: 1 }); // two keys: a plain object
  rejects('{"$bytes":"not base64!"}', /invalid base64/);
  assert.throws(() => codec.encode({ $bytes: 'x' }), /reserved/);
});

test('refuses __proto__ and constructor.prototype keys, however they are spelled', () => {
  rejects('{"__proto__":{"polluted":1}}', /__proto__/);
  rejects('{"a":[{"\\u005f_proto__":1}]}', /__proto__/);
  rejects('{"constructor":{"prototype":{"polluted":1}}}', /constructor/);
  rejects('{"constructor":{"\\u0070rototype":1}}', /constructor/);
  rejects('[12345678901234567890,{"__proto__":1}]', /__proto__/); // the exact parser checks too
  assert.is(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(codec.decode(utf8('{"constructor":1,"prototype":2}')), { constructor: 1, prototype: 2 });
});

test('depth and size are bounded', () => {
  rejects('['.repeat(600) + ']'.repeat(600), /deeper than 512/);
  rejects('['.repeat(200_000) + ']'.repeat(200_000), /deeper than 512/);
  rejects('['.repeat(600) + '12345678901234567890' + ']'.repeat(600), /deeper than 512/);
  assert.equal(codec.decode(utf8('['.repeat(500) + ']'.repeat(500))) !== undefined, true);
  const small = createJsonCodec(errors, { maxBytes: 8 });
  assert.throws(() => small.decode(utf8('"123456789"')), /8-byte limit/);
  const deep: unknown[] = [];
  let cur = deep;
  for (let i = 0; i < 600; i++) cur.push((cur = []));
  assert.throws(() => codec.encode(deep as Value), (e: unknown) => e instanceof CodecError && /deeper/.test((e as Error).message));
});

test('malformed, truncated and non-UTF-8 input give typed errors', () => {
  for (const s of ['', '{', '[1,]', '{"a":1,}', "{'a':1}", 'NaN', 'undefined', '"\u0001"', '[1 2]', '01', '1.', '.5', 'tru', '"abc', '{"a" 1}']) {
    assert.throws(() => codec.decode(utf8(s)), (e: unknown) => e instanceof CodecError, JSON.stringify(s));
  }
  assert.throws(() => codec.decode(Uint8Array.of(0x22, 0xff, 0x22)), /UTF-8/);
  assert.throws(() => rawDecode(utf8('[')), (e: unknown) => e instanceof JsonCodecError);
});

test('encode refuses NaN, Infinity and values outside the model', () => {
  for (const v of [NaN, Infinity, [undefined], { a: () => 1 }, new Date(), new Map(), Symbol('s')]) {
    assert.throws(() => codec.encode(v as Value), (e: unknown) => e instanceof CodecError);
  }
});

test("Python's json module reads what Trellis writes, and Trellis reads what Python writes", () => {
  const value = { a: 2n ** 64n, b: [1, 1.5, 'é ✓', null, true], c: { d: -3 } };
  const r = spawnSync('python3', ['-c', 'import json,sys; v=json.loads(sys.stdin.read()); print(repr(v)); print(json.dumps(v))'], {
    input: codec.encode(value),
    encoding: 'utf8',
  });
  assert.is(r.status, 0, r.stderr);
  const [repr, dumped] = r.stdout.trim().split('\n');
  assert.is(repr, "{'a': 18446744073709551616, 'b': [1, 1.5, 'é ✓', None, True], 'c': {'d': -3}}");
  assert.equal(codec.decode(utf8(dumped)), value); // Python escapes non-ASCII as \u00e9
});

test("300 random values survive Trellis -> Python json.loads/dumps -> Trellis", () => {
  const rand = prng(271);
  const values = Array.from({ length: 300 }, () => randomValue(rand));
  const r = spawnSync('python3', ['-c', 'import json,sys\nfor line in sys.stdin.read().split("\\n"):  # not splitlines(): U+2028 is not a line end here\n    print(json.dumps(json.loads(line)))'], {
    input: values.map((v) => text(codec.encode(v))).join('\n'),
    encoding: 'utf8',
  });
  assert.is(r.status, 0, r.stderr);
  const out = r.stdout.trim().split('\n');
  assert.is(out.length, values.length);
  for (let i = 0; i < values.length; i++) assert.equal(codec.decode(utf8(out[i])), values[i], `value #${i}`);
});

test('the plugin loads through a real PluginHost by name and by wire id', async () => {
  const host = createHost();
  try {
    const c = await host.serialization.codec(0);
    assert.is(c, await host.serialization.codec('json'));
    assert.equal(c.decode(c.encode({ x: [1, 2n ** 60n] })), { x: [1, 2n ** 60n] });
  } finally {
    await host.dispose();
  }
});

test.run();
