/** Translation between the shipped json, xml and pickle plugins through the broker. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Value } from '@trellis/sdk';
import { startBroker, take, plain, type Running } from './helpers.js';

const test = suite<{ r: Running }>('broker codec translation');
test.before.each(async (ctx) => {
  ctx.r = await startBroker();
});
test.after.each(async (ctx) => {
  await ctx.r.stop();
});

const SAMPLE: Value = {
  station: 'Aveiro <coast> & "harbour"',
  celsius: 21.5,
  readings: [1, -2, 3.25, 0],
  big: 2n ** 70n,
  raw: new Uint8Array([0, 1, 254, 255]),
  flags: { ok: true, failed: false, none: null },
  empty: { list: [], dict: {}, text: '' },
  unicode: 'çã ☀ 𝄞',
};

test('JSON, XML and Pickle consumers of one Pickle producer receive equal values', async ({ r }) => {
  const producer = await r.client('pickle', 'producer');
  const consumers = await Promise.all(['json', 'xml', 'pickle'].map((c) => r.client(c, 'consumer')));
  const subs = await Promise.all(consumers.map((c) => c.subscribe('/weather')));
  await producer.publish('/weather/aveiro', SAMPLE, { ack: true });
  await producer.publish('/weather/aveiro/count', 42, { ack: true });
  for (const sub of subs) {
    const got = await take(sub, 2);
    assert.equal(got.map((m) => m.topic), ['/weather/aveiro', '/weather/aveiro/count']);
    assert.equal(plain(got[0]!.value), plain(SAMPLE));
    assert.is(got[1]!.value, 42);
  }
  assert.equal(r.broker.stats().encodes, { json: 2, xml: 2 }, 'pickle consumers reuse the producer bytes');
});

test('every codec pair translates both ways, last values included', async ({ r }) => {
  const codecs = ['json', 'xml', 'pickle'] as const;
  for (const from of codecs) {
    const producer = await r.client(from, 'producer');
    await producer.publish(`/pair/${from}`, SAMPLE, { ack: true });
    for (const to of codecs) {
      const consumer = await r.client(to, 'consumer');
      const sub = await consumer.subscribe(`/pair/${from}`);
      const [retained] = await take(sub, 1);
      assert.ok(retained!.retained, `${from} → ${to} retained`);
      assert.equal(plain(retained!.value), plain(SAMPLE), `${from} → ${to}`);
    }
  }
});

test('XML keeps types: numbers come back as numbers, not strings', async ({ r }) => {
  const producer = await r.client('json', 'producer');
  const consumer = await r.client('xml', 'consumer');
  const sub = await consumer.subscribe('/typed');
  await producer.publish('/typed', { n: 1, f: 2.5, b: true, s: '3' }, { ack: true });
  assert.equal((await take(sub, 1))[0]!.value, { n: 1, f: 2.5, b: true, s: '3' });
});

test('a Pickle payload that tries to import or call is refused before anything is stored', async ({ r }) => {
  const { rawSocket } = await import('./helpers.js');
  const { helloFrame, publishFrame, Role, FrameType, readError, BrokerErrorCode } = await import('@trellis/sdk/broker');
  const raw = await rawSocket(r.port);
  // pickle.dumps(os.system) style: GLOBAL 'os system' then STOP
  const evil = Buffer.from('cos\nsystem\n(S\'echo pwned\'\ntR.', 'latin1');
  raw.socket.write(Buffer.concat([helloFrame(2, Role.PRODUCER), publishFrame('/evil', evil)]));
  const err = readError(await raw.next(FrameType.ERROR));
  assert.is(err.code, BrokerErrorCode.BAD_PAYLOAD);
  assert.match(err.message, /pickle/);
  await raw.closed;
  assert.equal(r.broker.topics(), []);
});

test('a value a subscriber codec cannot carry (NaN for JSON) is refused before anyone receives it', async ({ r }) => {
  const producer = await r.client('pickle', 'producer');
  const jsonConsumer = await r.client('json', 'consumer');
  const xmlConsumer = await r.client('xml', 'consumer');
  const jsonSub = await jsonConsumer.subscribe('/nan');
  const xmlSub = await xmlConsumer.subscribe('/nan');
  const refused = new Promise<Error>((resolve) => producer.once('error', resolve));
  producer.publish('/nan', { reading: NaN });
  assert.match((await refused).message, /BAD_PAYLOAD: the value cannot be sent to subscribers using json: json: cannot encode NaN/);
  assert.equal(r.broker.topics(), []);
  const other = await r.client('pickle', 'producer');
  await other.publish('/nan', { reading: 1 }, { ack: true });
  assert.equal((await take(jsonSub, 1))[0]!.value, { reading: 1 }, 'the JSON consumer stayed connected and never saw the NaN');
  assert.equal((await take(xmlSub, 1))[0]!.value, { reading: 1 });
});

test('a last value a new subscriber codec cannot carry is skipped; the subscriber keeps its subscription', async ({ r }) => {
  const producer = await r.client('pickle', 'producer');
  await producer.publish('/inf/a', Infinity, { ack: true });
  await producer.publish('/inf/b', 2, { ack: true });
  const xml = await (await r.client('xml', 'consumer')).subscribe('/inf');
  assert.is(xml.retained, 2);
  assert.equal((await take(xml, 2)).map((m) => m.value), [Infinity, 2]);
  const json = await (await r.client('json', 'consumer')).subscribe('/inf');
  assert.is(json.retained, 1);
  assert.equal((await take(json, 1)).map((m) => [m.topic, m.value]), [['/inf/b', 2]]);
  await producer.publish('/inf/a', 3, { ack: true });
  await producer.publish('/inf/a', 4, { ack: true });
  const last = (await take(json, 2)).map((m) => m.value);
  assert.equal(last, [3, 4]);
});

test.run();
