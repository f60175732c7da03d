/**
 * The Python client under threads, as the original API invites: `list_topics()` (and `push()`)
 * in one thread while another blocks in `pull()` on the same queue. Every message must arrive
 * once, in order, and every listing must come back whole.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runPython, startBroker } from './helpers.js';

const python = (port: number, code: string, timeoutMs: number) => runPython(port, ['-c', code], timeoutMs);

const STRESS = `
import json, threading
from trellis_broker import JSONQueue, PickleQueue, XMLQueue, CONSUMER, PRODUCER

N = 3000
LISTS = 300
report = {}
for name, Q in (("json", JSONQueue), ("xml", XMLQueue), ("pickle", PickleQueue)):
    topic = "stress" + name
    consumer = Q(topic, _type=CONSUMER)
    got = []
    def pull_loop():
        for _ in range(N):
            got.append(consumer.pull())
    puller = threading.Thread(target=pull_loop)
    puller.start()
    producer = Q(topic, _type=PRODUCER)
    def push_loop():
        for i in range(N):
            producer.push(i)
        producer.push(-1, ack=True)
    pusher = threading.Thread(target=push_loop)
    pusher.start()
    listings = []
    for _ in range(LISTS):
        consumer.list_topics(listings.append)   # same queue as the blocked pull()
    pusher.join(60)
    puller.join(60)
    values = [v for _, v in got]
    report[name] = {
        "in_order": values == list(range(N)),
        "count": len(values),
        "listings": len(listings),
        "listings_ok": all(isinstance(l, list) and all(t.startswith("stress") for t in l) for l in listings),
        "alive": puller.is_alive() or pusher.is_alive(),
    }
print(json.dumps(report))
`;

test('list_topics() in one thread while pull() blocks in another: no hang, no loss, no duplicate, in order', async () => {
  const r = await startBroker();
  try {
    const report = JSON.parse(await python(r.port, STRESS, 120_000)) as Record<string, { in_order: boolean; count: number; listings: number; listings_ok: boolean; alive: boolean }>;
    for (const name of ['json', 'xml', 'pickle']) {
      assert.equal(report[name], { in_order: true, count: 3000, listings: 300, listings_ok: true, alive: false }, name);
    }
  } finally {
    await r.stop();
  }
});

test('an ERROR from the broker reaches every thread waiting on the queue', async () => {
  const r = await startBroker();
  try {
    const out = await python(
      r.port,
      `
import threading
from trellis_broker import JSONQueue, CONSUMER, BrokerError
q = JSONQueue("t", _type=CONSUMER)
errors = []
def puller():
    try:
        q.pull()
    except BrokerError as e:
        errors.append(e.name)
t = threading.Thread(target=puller)
t.start()
import time; time.sleep(0.2)
try:
    q.push(1)            # a consumer may not publish: NOT_ALLOWED, then the broker closes
    q.list_topics(print)
except BrokerError as e:
    errors.append(e.name)
t.join(10)
print(sorted(errors), t.is_alive())
`,
      30_000,
    );
    assert.is(out.trim(), "['NOT_ALLOWED', 'NOT_ALLOWED'] False");
  } finally {
    await r.stop();
  }
});

test.run();
