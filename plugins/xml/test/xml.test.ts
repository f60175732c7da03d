import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { createHost, errors, CodecError, type Value } from '@trellis/sdk';
import { createXmlCodec } from '../src/index.js';

const codec = createXmlCodec(errors);
const utf8 = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const rejects = (s: string, pattern: RegExp) =>
  assert.throws(() => codec.decode(utf8(s)), (e: unknown) => e instanceof CodecError && pattern.test((e as Error).message), s.slice(0, 60));

test('writes the documented typed form', () => {
  assert.is(
    text(codec.encode({ n: 1, f: 1.5, s: 'a<b', l: [null, true], b: Uint8Array.of(1), e: '' })),
    '<dict><item key="n"><int>1</int></item><item key="f"><float>1.5</float></item><item key="s"><str>a&lt;b</str></item>' +
      '<item key="l"><list><null/><bool>true</bool></list></item><item key="b"><bytes>AQ==</bytes></item><item key="e"><str/></item></dict>',
  );
});

test('numbers come back as numbers, with int and float kept apart', () => {
  const v = codec.decode(utf8('<list><int>42</int><int>-7</int><float>2.5</float><float>-0</float><float>NaN</float><float>-Infinity</float><int>123456789012345678901234</int></list>')) as Value[];
  assert.equal(v.slice(0, 4), [42, -7, 2.5, -0]);
  assert.ok(Object.is(v[3], -0));
  assert.ok(Number.isNaN(v[4]));
  assert.is(v[5], -Infinity);
  assert.is(v[6], 123456789012345678901234n);
});

test('reads pretty-printed documents with a declaration, comments, CDATA and character references', () => {
  const doc = `<?xml version="1.0" encoding="UTF-8"?>
<!-- a weather reading -->
<dict>
  <item key="station"> <str>Aveiro &amp; Porto</str> </item>
  <item key="note"><str><![CDATA[<raw> & text]]>&#x2713;&#233;</str></item>
  <item key='temps'>
    <list>
      <int> 21 </int>
      <float>21.5</float>
    </list>
  </item>
</dict>
`;
  assert.equal(codec.decode(utf8(doc)), { station: 'Aveiro & Porto', note: '<raw> & text✓é', temps: [21, 21.5] });
});

test('strings keep every character, including ones XML 1.0 cannot carry', () => {
  for (const s of ['  spaced  ', 'cr\r\nlf', 'tab\t', ']]>', '&amp;', 'nul\u0000', 'lone \ud800 surrogate', '\ufffe', '😀']) {
    assert.is(codec.decode(codec.encode(s)), s, JSON.stringify(s));
  }
  assert.equal(codec.decode(codec.encode({ 'key "with"\n<odd> chars\t': 1 })), { 'key "with"\n<odd> chars\t': 1 });
});

test('the billion-laughs document is rejected in milliseconds, before any entity is read', () => {
  const lol = `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
${Array.from({ length: 9 }, (_, i) => ` <!ENTITY lol${i + 1} "${`&lol${i || ''};`.repeat(10)}">`).join('\n')}
]>
<str>&lol9;</str>`;
  const t0 = performance.now();
  rejects(lol, /DOCTYPE/);
  assert.ok(performance.now() - t0 < 1000); // generous on a loaded machine; expansion would never finish
});

test('no entities beyond the five predefined ones; no external entities', () => {
  rejects('<str>&lol;</str>', /unknown entity/);
  rejects('<str>&nbsp;</str>', /unknown entity/);
  rejects('<!DOCTYPE x SYSTEM "file:///etc/passwd"><str>&x;</str>', /DOCTYPE/);
  rejects('<str>&#0;</str>', /does not allow/);
  rejects('<str>&#x110000;</str>', /./);
  assert.is(codec.decode(utf8('<str>&lt;&gt;&amp;&quot;&apos;</str>')), `<>&"'`);
});

test('depth and size are bounded', () => {
  rejects('<list>'.repeat(600) + '</list>'.repeat(600), /deeper than 512/);
  rejects('<list>'.repeat(100_000), /deeper than 512/);
  const small = createXmlCodec(errors, { maxBytes: 16 });
  assert.throws(() => small.decode(utf8('<str>0123456789</str>')), /16-byte limit/);
});

test('malformed documents give typed errors', () => {
  const bad = ['', '<', '<str>', '<str>a</st>', '<int>1.5</int>', '<int/>', '<float>1,5</float>', '<bool>yes</bool>', '<list>text</list>',
    '<dict><int>1</int></dict>', '<dict><item><int>1</int></item></dict>', '<dict><item key="a"/></dict>', '<str x="1">a</str>',
    '<str>a</str>trailing', '<a/>', '<bytes>!!</bytes>', '<dict><item key="__proto__"><null/></item></dict>', '<str>a<b/></str>',
    '<str enc="json">"a</str>', '<!-- open', '<![CDATA[x]]>', '<list><int>1</int>'];
  for (const s of bad) assert.throws(() => codec.decode(utf8(s)), (e: unknown) => e instanceof CodecError, JSON.stringify(s));
  assert.throws(() => codec.decode(Uint8Array.of(0x3c, 0xff)), /UTF-8/);
});

test("Python's xml.etree parses what Trellis writes", () => {
  const doc = codec.encode({ a: 'x<&>"', b: [1, 2.5] });
  const r = spawnSync('python3', ['-c', "import sys, xml.etree.ElementTree as ET; r=ET.fromstring(sys.stdin.buffer.read()); print(r.tag, [(i.get('key'), i[0].tag, i[0].text or [c.tag for c in i[0]]) for i in r])"], { input: doc, encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout.trim(), `dict [('a', 'str', 'x<&>"'), ('b', 'list', ['int', 'float'])]`);
});

test('the plugin loads through a real PluginHost by name and by wire id', async () => {
  const host = createHost();
  try {
    const c = await host.serialization.codec(1);
    assert.is(c, await host.serialization.codec('xml'));
    assert.equal(c.decode(c.encode({ t: [1, 'two', null] })), { t: [1, 'two', null] });
  } finally {
    await host.dispose();
  }
});

test.run();
