/**
 * The original course's producer/consumer harness, rebuilt over the Python client: random
 * six-letter bare topics, each consumer's blocking pull() loop in a thread, the test thread
 * publishing and listing topics, and assertions after a 0.1 s pause (REFERENCE.md §2).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runPython, startBroker } from './helpers.js';

const python = (port: number, code: string, timeoutMs = 30_000) => runPython(port, ['-c', code], timeoutMs);

const HARNESS = `
import random, string, threading, time
from trellis_broker import JSONQueue, XMLQueue, PickleQueue, MiddlewareType

def random_topic():
    return "".join(random.choice(string.ascii_lowercase) for _ in range(6))

class Consumer:
    def __init__(self, queue_type, topic):
        self.received = []
        self.queue = queue_type(topic, _type=MiddlewareType.CONSUMER)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
    def run(self):
        while True:
            self.received.append(self.queue.pull())

failures = []
def check(cond, what):
    if not cond:
        failures.append(what)

types = [JSONQueue, XMLQueue, PickleQueue]
for producer_type in types:
    for consumer_type in types:
        topic = random_topic()
        consumer = Consumer(consumer_type, topic)
        producer = producer_type(topic, _type=MiddlewareType.PRODUCER)
        messages = [random.randint(0, 10**6), "text " + topic, {"k": [1, 2.5, None, True]}]
        for m in messages:
            producer.push(m)
        time.sleep(0.1)
        deadline = time.time() + 5
        while len(consumer.received) < len(messages) and time.time() < deadline:
            time.sleep(0.05)
        check(consumer.received == [(topic, m) for m in messages], "%s->%s: %r" % (producer_type.__name__, consumer_type.__name__, consumer.received))
        listed = []
        producer.list_topics(listed.extend)
        check(topic in listed, "%s not listed in %r" % (topic, listed))
        # the consumer's own list_topics while its pull() loop runs in the other thread
        own = []
        consumer.queue.list_topics(own.extend)
        check(own == listed, "consumer listed %r, producer %r" % (own, listed))
        producer.push("last")
        time.sleep(0.1)
        deadline = time.time() + 5
        while len(consumer.received) < len(messages) + 1 and time.time() < deadline:
            time.sleep(0.05)
        check(consumer.received[-1] == (topic, "last"), "no live message after list_topics: %r" % consumer.received[-3:])

single = random_topic()
JSONQueue(single, _type=MiddlewareType.PRODUCER).push(1)
time.sleep(0.1)
seen = []
PickleQueue(single, _type=MiddlewareType.CONSUMER).list_topics(seen.extend)
check(single in seen, "bare topic %s listed back exactly: %r" % (single, seen))
print("FAILURES" if failures else "OK")
for f in failures:
    print(f)
`;

test('the course harness: bare random topics, threaded pull loops, every codec pair', async () => {
  const r = await startBroker();
  try {
    const out = await python(r.port, HARNESS, 60_000);
    assert.is(out.trim(), 'OK');
    assert.is(r.broker.topics().length, 10, 'nine pair topics and one single, all bare six-letter names');
    for (const t of r.broker.topics()) assert.match(t, /^[a-z]{6}$/);
  } finally {
    await r.stop();
  }
});

test.run();
