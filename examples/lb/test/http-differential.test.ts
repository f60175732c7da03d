import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { compare, generate, mutate, prng, show, type Verdict } from './http-differential.js';

// Differential fuzz of the raw engine's request framing against Node's llhttp in strict mode:
// for every input Trellis must frame the same messages (method, target, version, field count,
// keep-alive, body bytes, hence the same next-message offset) or refuse it. Bounded: a few
// thousand in-process inputs. Replay another run with TRELLIS_FUZZ_SEED=<seed>.

const ALLOWED: ReadonlySet<Verdict> = new Set(['agree', 'stricter', 'method']);

test('every disagreement ever found (the corpus) now frames like llhttp or is refused', () => {
  const corpus = JSON.parse(readFileSync(new URL('./fixtures/http-differential-corpus.json', import.meta.url), 'utf8')) as { cases: { input: string; found: string }[] };
  assert.ok(corpus.cases.length >= 20);
  for (const c of corpus.cases) {
    const input = Buffer.from(c.input, 'latin1');
    const r = compare(input);
    assert.ok(ALLOWED.has(r.verdict), `${r.verdict}: ${r.detail}\n  input ${show(input)}\n  (${c.found})`);
  }
});

test('generated and mutated requests: Trellis frames like llhttp or refuses', () => {
  const seed = Number(process.env.TRELLIS_FUZZ_SEED ?? 20261205);
  const count = Number(process.env.TRELLIS_FUZZ_COUNT ?? 4000);
  const r = prng(seed);
  const verdicts: Record<string, number> = {};
  const bad: string[] = [];
  for (let i = 0; i < count; i++) {
    const base = generate(r);
    const input = r() < 0.5 ? base : mutate(base, r);
    const c = compare(input);
    verdicts[c.verdict] = (verdicts[c.verdict] ?? 0) + 1;
    if (!ALLOWED.has(c.verdict) && bad.length < 5) bad.push(`${c.verdict}: ${c.detail}\n  input ${show(input)}`);
  }
  console.log(`  differential fuzz: seed ${seed}, ${count} inputs, ${JSON.stringify(verdicts)}`);
  assert.is(bad.length, 0, `seed ${seed}: add these to fixtures/http-differential-corpus.json once fixed\n${bad.join('\n')}`);
  // the generator must exercise both sides: most inputs framed, some refused
  assert.ok((verdicts.agree ?? 0) > count / 2);
  assert.ok((verdicts.stricter ?? 0) + (verdicts.agree ?? 0) > 0);
});

test('the comparison itself catches a framing difference (a framer that ignores Content-Length)', () => {
  const input = Buffer.from('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: x\r\n\r\n', 'latin1');
  assert.is(compare(input).verdict, 'agree');
  const wrong = compare(input, (buf, from = 0) => {
    const end = buf.indexOf('\r\n\r\n', from);
    if (end === -1) return { kind: 'incomplete' };
    const text = buf.toString('latin1', from, end);
    const [method, url] = text.split(' ');
    const head = { method: method!, target: url!, minor: 1, contentLength: -1, chunked: false, keepAlive: true, expectContinue: false, hasHost: true, upgrade: undefined, upstreamHead: '' };
    return { kind: 'message', head, rawTarget: url!, fields: 2, body: Buffer.alloc(0), end: end + 4 };
  });
  assert.is(wrong.verdict, 'framing');
});

test.run();
