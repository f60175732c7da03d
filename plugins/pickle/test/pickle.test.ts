import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createHost, CodecError, type Value } from '@trellis/sdk';
import { decode, encode, tuple, isTuple, FORBIDDEN_OPCODES, PickleError } from '../src/pickle.js';
import { createPickleCodec } from '../src/index.js';
import { errors } from '@trellis/sdk';
import { fromTagged } from './tagged.js';
import { prng, randomValue } from './fuzz-kit.js';

interface Vector {
  name: string;
  protocol: number;
  hex: string;
  value?: unknown;
  opcode?: string;
}
const vectors = JSON.parse(readFileSync(new URL('./vectors/vectors.json', import.meta.url), 'utf8')) as {
  python: string;
  accepted: Vector[];
  refused: Vector[];
};
const codec = createPickleCodec(errors);
const hex = (h: string) => Uint8Array.from(Buffer.from(h, 'hex'));

function python(script: string, input: string): string {
  const r = spawnSync('python3', ['-c', script], { input, encoding: 'utf8', timeout: 20_000 });
  if (r.status !== 0) throw new Error(`python3 failed: ${r.stderr}`);
  return r.stdout;
}

test('decodes every value CPython pickled with protocols 0 to 5', () => {
  const protocols = new Set<number>();
  for (const v of vectors.accepted) {
    const got = codec.decode(hex(v.hex));
    assert.equal(got, fromTagged(v.value), v.name);
    protocols.add(v.protocol);
  }
  assert.equal([...protocols].sort(), [0, 1, 2, 3, 4, 5]);
  assert.ok(vectors.accepted.length > 300);
});

test('NaN survives decoding (uvu equality treats NaN as equal, this checks it directly)', () => {
  const v = vectors.accepted.find((x) => x.name === 'nan/p4')!;
  assert.ok(Number.isNaN(codec.decode(hex(v.hex))));
});

test('integers beyond 2^53 decode as bigint, within it as number', () => {
  const get = (name: string) => codec.decode(hex(vectors.accepted.find((x) => x.name === name)!.hex));
  assert.is(get('safe-max/p4'), 9007199254740991);
  assert.is(get('two-53/p4'), 9007199254740992n);
  assert.is(get('minus-two-100/p2'), -(2n ** 100n));
  assert.is(get('two-2100/p0'), 2n ** 2100n);
  assert.is(get('LONG-py2'), 12345678901234567890n);
});

test('tuples decode to plain arrays, or to marked arrays that re-encode as tuples', () => {
  const v = vectors.accepted.find((x) => x.name === 'dht-join/p2')!;
  const plain = codec.decode(hex(v.hex)) as { args: { addr: Value } };
  assert.equal(plain.args.addr, ['localhost', 5000]);
  assert.not.ok(isTuple(plain.args.addr));
  const marked = decode(hex(v.hex), { tuples: true }) as { args: { addr: Value } };
  assert.ok(isTuple(marked.args.addr));
  assert.equal(Object.keys(marked.args.addr as Value[]), ['0', '1']); // the mark is not enumerable
  assert.equal(marked, plain);
  const again = python(`import pickle,sys; print(repr(pickle.loads(bytes.fromhex(sys.stdin.read()))))`, Buffer.from(encode(marked)).toString('hex'));
  assert.is(again.trim(), "{'method': 'JOIN_REQ', 'args': {'addr': ('localhost', 5000), 'id': 770}}");
});

test('every pickle that imports or calls is refused with a typed CodecError naming the opcode', () => {
  for (const v of vectors.refused) {
    try {
      codec.decode(hex(v.hex));
      assert.unreachable(`${v.name} was accepted`);
    } catch (err) {
      assert.instance(err, CodecError, v.name);
      const e = err as CodecError;
      assert.is(e.code, 'TRELLIS_ERR_CODEC');
      if (v.opcode === 'cyclic') assert.match(e.message, /self-referencing|deeper/, v.name);
      else assert.match(e.message, new RegExp(`forbidden opcode ${v.opcode}\\b`), v.name);
    }
  }
});

test('an os.system pickle runs nothing', () => {
  const marker = '/tmp/trellis-pickle-pwned';
  assert.not.ok(existsSync(marker), 'marker file exists before the test');
  for (const v of vectors.refused.filter((x) => x.name.startsWith('os.system'))) {
    assert.throws(() => codec.decode(hex(v.hex)), (e: unknown) => e instanceof CodecError);
  }
  assert.not.ok(existsSync(marker));
});

test('each forbidden opcode is refused before its argument is read', () => {
  for (const [op, name] of Object.entries(FORBIDDEN_OPCODES)) {
    // Protocol 2 header, then the opcode with no argument at all: refusal must not wait for it.
    const bytes = Uint8Array.of(0x80, 2, Number(op));
    try {
      decode(bytes, { error: (m, offset) => new CodecError('pickle', m, { offset }) });
      assert.unreachable(name);
    } catch (err) {
      assert.instance(err, CodecError);
      assert.match((err as Error).message, `forbidden opcode ${name}`);
      assert.is((err as CodecError).offset, 2);
    }
  }
});

test('without an error factory, errors are PickleError with the codec error code', () => {
  try {
    decode(Uint8Array.of(0x80, 4, 0x95));
    assert.unreachable();
  } catch (err) {
    assert.instance(err, PickleError);
    assert.is((err as PickleError).code, 'TRELLIS_ERR_CODEC');
  }
});

test('truncated and malformed pickles give typed errors', () => {
  const bad = [
    '', '80', '8004', '800495', '80049500000000000000ff', '4b', '4a0100', '8c05616263', '58ffffffff', '5d28', '5d4b0161',
    '7d4b014b0273', '284b0174', '8a', '8b', '8bffffffff', '49310a', '4931', '46312e350a', '536162630a', '8006', '9700', '68002e',
    '2e', '4b014b022e', '28', '4e4e2e', 'ff', '6c2e', '7d8c085f5f70726f746f5f5f4b0173', '7d5d4b0173', '4b01612e',
  ];
  for (const h of bad) {
    assert.throws(() => codec.decode(hex(h)), (e: unknown) => e instanceof CodecError && (e as Error).cause === undefined, h);
  }
});

test('refuses the __proto__ key and keys outside the value model', () => {
  const proto = Python_dumps(`{'__proto__': {'polluted': 1}}`);
  assert.throws(() => codec.decode(proto), /__proto__/);
  assert.is(({} as Record<string, unknown>).polluted, undefined);
  assert.throws(() => codec.decode(Python_dumps(`{(1, 2): 'tuple key'}`)), /dict key/);
  assert.equal(codec.decode(Python_dumps(`{1: 'a', 'b': 2}`)), { 1: 'a', b: 2 });
});

function Python_dumps(expr: string, protocol = 4): Uint8Array {
  return hex(python(`import pickle,sys; sys.stdout.write(pickle.dumps(${expr}, protocol=${protocol}).hex())`, '').trim());
}

test('depth, size and memo expansion are bounded', () => {
  // 600 nested lists, well-formed
  const deep = new Uint8Array(2 + 600 * 2 + 600 + 1);
  let p = 0;
  deep[p++] = 0x80;
  deep[p++] = 4;
  for (let i = 0; i < 600; i++) deep[p++] = 0x5d, deep[p++] = 0x5d; // ]] pairs
  deep.fill(0x61, p, p + 600); // 600 APPENDs leave one list
  assert.throws(() => codec.decode(deep.subarray(0, p + 600 - 1).slice()), (e: unknown) => e instanceof CodecError);
  // Bottom-up nesting (TUPLE1 chains) and top-down nesting (EMPTY_LIST ... APPEND) are both bounded.
  const chain = (n: number) => Uint8Array.from([0x80, 4, 0x4e, ...new Array(n).fill(0x85), 0x2e]);
  assert.equal(codec.decode(chain(512)) !== null, true);
  assert.throws(() => codec.decode(chain(513)), /nesting deeper than 512/);
  const nested = (n: number) => Uint8Array.from([0x80, 4, ...new Array(n).fill(0x5d), ...new Array(n - 1).fill(0x61), 0x2e]);
  assert.equal(codec.decode(nested(512)) !== null, true);
  assert.throws(() => codec.decode(nested(513)), /nesting deeper than 512/);
  // A billion-laughs of memo references: 30 levels of (x, x) is 2^31 values from 190 bytes.
  const bytes = [0x80, 4, 0x4e, 0x94];
  for (let i = 0; i < 30; i++) bytes.push(0x30, 0x68, i, 0x68, i, 0x86, 0x94); // POP, GET i, GET i, TUPLE2, MEMOIZE
  bytes.push(0x2e);
  const t0 = Date.now();
  assert.throws(() => codec.decode(Uint8Array.from(bytes)), /expands to more than/);
  assert.ok(Date.now() - t0 < 5000);
  // Allocation is bounded, not just input size: 100,000 empty lists appended to one list.
  const many = Uint8Array.from([0x80, 4, 0x5d, ...Array.from({ length: 100_000 }, () => [0x5d, 0x61]).flat(), 0x2e]);
  assert.is((codec.decode(many) as Value[]).length, 100_000);
  assert.throws(() => createPickleCodec(errors, { maxNodes: 50_000 }).decode(many), /more than 50000 values/);
  const flat = Uint8Array.from([0x80, 4, ...new Array(60_000).fill(0x4e)]);
  assert.throws(() => createPickleCodec(errors, { maxNodes: 50_000 }).decode(flat), /more than 50000 values/);
  const small = createPickleCodec(errors, { maxBytes: 10 });
  assert.throws(() => small.decode(new Uint8Array(11)), /exceeds the 10-byte limit/);
});

test('encodes values that CPython reads back with the right types', () => {
  const values: Value[] = [
    null, true, false, 0, 255, 256, 65536, -1, -(2 ** 31), 2 ** 31, 2 ** 53 - 1, -(2 ** 53 - 1), 2n ** 64n, -(2n ** 100n), 5n,
    1.5, -0, 1e300, 2 ** 60, NaN, Infinity, '', 'héllo ✓ 𝄞', 'x'.repeat(300), 'é'.repeat(100), Uint8Array.of(0, 255), new Uint8Array(300),
    [], [1, [2, 'three']], tuple(), tuple('localhost', 5000), tuple(1, 2, 3, 4), {}, { a: 1, b: { c: [null] } },
    { method: 'PUT', args: { key: 'A', value: [0, 1, 2], from: tuple('localhost', 4000) } },
  ];
  const expected = [
    'None', 'True', 'False', '0', '255', '256', '65536', '-1', '-2147483648', '2147483648', '9007199254740991', '-9007199254740991',
    '18446744073709551616', '-1267650600228229401496703205376', '5', '1.5', '-0.0', '1e+300', '1.152921504606847e+18', 'nan', 'inf', "''",
    "'héllo ✓ 𝄞'", repr('x'.repeat(300)), repr('é'.repeat(100)), "b'\\x00\\xff'", `b'${'\\x00'.repeat(300)}'`, '[]', "[1, [2, 'three']]", '()',
    "('localhost', 5000)", '(1, 2, 3, 4)', '{}', "{'a': 1, 'b': {'c': [None]}}",
    "{'method': 'PUT', 'args': {'key': 'A', 'value': [0, 1, 2], 'from': ('localhost', 4000)}}",
  ];
  const input = values.map((v) => Buffer.from(encode(v)).toString('hex')).join('\n');
  const out = python(
    'import pickle,sys\nfor line in sys.stdin.read().split():\n    print(repr(pickle.loads(bytes.fromhex(line))))',
    input,
  ).split('\n');
  for (let i = 0; i < values.length; i++) assert.is(out[i], expected[i], `value #${i}`);
});

function repr(s: string): string {
  return `'${s}'`;
}

test('300 random values survive Trellis -> CPython pickle.loads/dumps -> Trellis', () => {
  const rand = prng(314);
  const values = Array.from({ length: 300 }, () => randomValue(rand, { nonFinite: true }));
  const out = python(
    'import pickle,sys\nfor line in sys.stdin.read().split():\n    print(pickle.dumps(pickle.loads(bytes.fromhex(line)), protocol=5).hex())',
    values.map((v) => Buffer.from(encode(v)).toString('hex')).join('\n'),
  ).trim().split('\n');
  assert.is(out.length, values.length);
  for (let i = 0; i < values.length; i++) assert.equal(codec.decode(hex(out[i])), values[i], `value #${i}`);
});

test('encode output round-trips through decode', () => {
  const value: Value = { s: 'ü', n: [1, -2, 3.25, 2n ** 80n], b: Uint8Array.of(1, 2), o: { deep: [[[]]] }, t: true, z: null };
  assert.equal(decode(encode(value)), value);
});

test('encode refuses values outside the model with a typed error', () => {
  const bad: unknown[] = [undefined, () => 1, Symbol('x'), new Date(), new Map(), { a: undefined }, [new Set()]];
  for (const v of bad) assert.throws(() => codec.encode(v as Value), (e: unknown) => e instanceof CodecError);
  const cyclic: unknown[] = [];
  cyclic.push(cyclic);
  assert.throws(() => codec.encode(cyclic as Value), /deeper than/);
});

test('the plugin loads through a real PluginHost by name and by wire id', async () => {
  const host = createHost();
  try {
    const byName = await host.serialization.codec('pickle');
    const byId = await host.serialization.codec(2);
    assert.is(byName, byId);
    assert.is(byName.wireId, 2);
    assert.equal(byName.decode(byName.encode({ hello: ['world', 1] })), { hello: ['world', 1] });
    assert.throws(() => byName.decode(Uint8Array.of(0x80, 2, 0x63)), (e: unknown) => e instanceof CodecError);
  } finally {
    await host.dispose();
  }
});

test.run();
