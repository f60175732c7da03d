/** The Python client (examples/broker/python) against the real broker, driven by `python3`. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { startBroker, take, plain, runPython } from './helpers.js';

const PYTHON_DIR = fileURLToPath(new URL('../python', import.meta.url));

/** Runs a Python snippet with the client module importable; resolves with its stdout lines. */
function python(port: number, code: string, timeoutMs = 10_000): Promise<string[]> {
  return run(port, ['-c', code], timeoutMs);
}

function run(port: number, args: string[], timeoutMs = 10_000): Promise<string[]> {
  return runPython(port, args, timeoutMs).then((out) => out.split('\n').filter(Boolean));
}

test('a Python pickle producer reaches a TypeScript consumer in another codec', async () => {
  const r = await startBroker();
  try {
    const consumer = await r.client('v8', 'consumer');
    const sub = await consumer.subscribe('/weather');
    await python(
      r.port,
      `
from trellis_broker import PickleQueue, MiddlewareType
q = PickleQueue("/weather/temperature", _type=MiddlewareType.PRODUCER)
q.push({"celsius": 21.5, "readings": [1, 2, 3], "station": "Aveiro", "big": 2**70, "raw": b"\\x00\\xff", "ok": True, "none": None}, ack=True)
q.push(("tuple", "as", "list"), ack=True)
q.close()
`,
    );
    const [a, b] = await take(sub, 2);
    assert.equal(plain(a), {
      topic: '/weather/temperature',
      value: { celsius: 21.5, readings: [1, 2, 3], station: 'Aveiro', big: 2n ** 70n, raw: new Uint8Array([0, 255]), ok: true, none: null },
      retained: false,
    });
    assert.equal(b!.value, ['tuple', 'as', 'list']);
  } finally {
    await r.stop();
  }
});

test('Python consumers in JSON and Pickle pull, list topics and cancel against TypeScript producers', async () => {
  const r = await startBroker();
  try {
    const producer = await r.client('v8', 'producer');
    await producer.publish('/weather/humidity', 0.75, { ack: true });
    await producer.publish('/weather2/temperature/celsius', 40, { ack: true });
    const script = python(
      r.port,
      `
import json, threading
from trellis_broker import JSONQueue, PickleQueue, CONSUMER
j = JSONQueue("/weather", _type=CONSUMER)
p = PickleQueue("/weather", _type=CONSUMER)
print(json.dumps(["retained", j.pull(), p.pull()]))
print("ready", flush=True)
print(json.dumps(["live", j.pull(), list(p.pull())]))
j.list_topics(lambda topics: print(json.dumps(["topics", topics])))
j.cancel()
print(json.dumps(["cancelled", j.stats()["subscriptions"]]))
t, v = p.pull()
print(json.dumps(["after-cancel", t, {"n": v["n"], "raw": v["raw"].hex()}]))
`,
    );
    // wait until both Python consumers hold their subscriptions, then publish live values
    for (let i = 0; i < 200 && r.broker.stats().subscriptions < 2; i++) await new Promise((res) => setTimeout(res, 10));
    await producer.publish('/weather/temperature', { celsius: 19, tags: ['a', 'b'] }, { ack: true });
    for (let i = 0; i < 300 && r.broker.stats().subscriptions > 1; i++) await new Promise((res) => setTimeout(res, 10));
    await producer.publish('/weather/wind', { n: 3, raw: new Uint8Array([1, 2]) }, { ack: true });
    const lines = (await script).map((l) => (l === 'ready' ? l : JSON.parse(l)));
    assert.equal(lines, [
      ['retained', ['/weather/humidity', 0.75], ['/weather/humidity', 0.75]],
      'ready',
      ['live', ['/weather/temperature', { celsius: 19, tags: ['a', 'b'] }], ['/weather/temperature', { celsius: 19, tags: ['a', 'b'] }]],
      ['topics', ['/weather/humidity', '/weather/temperature', '/weather2/temperature/celsius']],
      ['cancelled', 1],
      ['after-cancel', '/weather/wind', { n: 3, raw: '0102' }],
    ]);
  } finally {
    await r.stop();
  }
});

test('Python JSON, XML and Pickle queues exchange equal typed values through the broker', async () => {
  const r = await startBroker();
  try {
    const consumer = await r.client('pickle', 'consumer');
    const sub = await consumer.subscribe('/py');
    const lines = await python(
      r.port,
      `
import json
from trellis_broker import JSONQueue, XMLQueue, PickleQueue, PRODUCER, CONSUMER
value = {"n": 1, "f": 2.5, "s": "a <b> & 'c'\\r\\n", "b": b"\\x00\\x01", "l": [True, False, None, []], "d": {}, "big": -(2**80), "e": ""}
queues = {"json": JSONQueue, "xml": XMLQueue, "pickle": PickleQueue}
consumers = {name: q("/py", _type=CONSUMER) for name, q in queues.items()}
for name, q in queues.items():
    q("/py/" + name, _type=PRODUCER).push(value, ack=True)
for name, c in consumers.items():
    got = [c.pull() for _ in queues]
    print(json.dumps([name, [t for t, _ in got], all(v == value for _, v in got)]))
`,
    );
    assert.equal(lines.map((l) => JSON.parse(l)), ['json', 'xml', 'pickle'].map((name) => [name, ['/py/json', '/py/xml', '/py/pickle'], true]));
    const got = await take(sub, 3);
    const expected = { n: 1, f: 2.5, s: "a <b> & 'c'\r\n", b: new Uint8Array([0, 1]), l: [true, false, null, []], d: {}, big: -(2n ** 80n), e: '' };
    for (const m of got) assert.equal(plain(m.value), expected, m.topic);
  } finally {
    await r.stop();
  }
});

test('the Python client reports a broker refusal as BrokerError', async () => {
  const r = await startBroker();
  try {
    const lines = await python(
      r.port,
      `
from trellis_broker import JSONQueue, PRODUCER, BrokerError
q = JSONQueue("/x", _type=PRODUCER)
try:
    q.topic = "bad//topic"
    q.push(1, ack=True)
except BrokerError as e:
    print(e.name)
`,
    );
    assert.equal(lines, ['BAD_TOPIC']);
  } finally {
    await r.stop();
  }
});

test('the sample producer and consumer script (example.py) runs against the broker', async () => {
  const r = await startBroker();
  try {
    const script = `${PYTHON_DIR}/example.py`;
    const consumer = run(r.port, [script, 'consumer', '--codec', 'xml', '--topic', '/weather', '--count', '3']);
    for (let i = 0; i < 300 && r.broker.stats().subscriptions < 1; i++) await new Promise((res) => setTimeout(res, 10));
    const produced = await run(r.port, [script, 'producer', '--codec', 'pickle', '--topic', '/weather/temperature', '--count', '3', '--interval', '0']);
    assert.is(produced.length, 3);
    const lines = await consumer;
    assert.is(lines[0], 'topics []');
    assert.equal(lines.slice(1).map((l) => /^\('\/weather\/temperature', \{'celsius': [\d.]+, 'seq': (\d)\}\)$/.exec(l)?.[1]), ['0', '1', '2']);
  } finally {
    await r.stop();
  }
});

test.run();
