/** The Python client's acknowledged delivery and persistent session (the original API plus `acked`/`client_id`). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pythonLines, startBroker } from './helpers.js';

const python = (port: number, code: string, timeoutMs = 15_000) => pythonLines(port, code, timeoutMs);

test('a Python consumer with a client id resumes its session: the unacked message again (duplicate), then what queued', async () => {
  const r = await startBroker();
  try {
    const producer = await r.client('json', 'producer');
    const first = await python(
      r.port,
      `
from trellis_broker import JSONQueue, MiddlewareType
q = JSONQueue("/py", _type=MiddlewareType.CONSUMER, client_id="py-1")
p = JSONQueue("/py/a", _type=MiddlewareType.PRODUCER)
p.push(1, ack=True); p.push(2, ack=True)
print(q.pull(), q.last_number, q.last_duplicate)
print(q.pull(), q.last_number, q.last_duplicate)   # acks 1; 2 stays unacked
q.close()
`,
    );
    assert.equal(first, ["('/py/a', 1) 1 False", "('/py/a', 2) 2 False"]);
    await producer.publish('/py/a', 3, { ack: true });
    const second = await python(
      r.port,
      `
from trellis_broker import JSONQueue, MiddlewareType
q = JSONQueue("/py", _type=MiddlewareType.CONSUMER, client_id="py-1")
print(q.pull(), q.last_number, q.last_duplicate)
print(q.pull(), q.last_number, q.last_duplicate)
q.close()
`,
    );
    assert.equal(second, ["('/py/a', 2) 2 True", "('/py/a', 3) 3 False"]);
    assert.is(r.broker.stats().delivery.sessions, 1);
  } finally {
    await r.stop();
  }
});

test('acked=True without a client id: numbered delivery on the connection, the original pull()', async () => {
  const r = await startBroker();
  try {
    const out = await python(
      r.port,
      `
from trellis_broker import PickleQueue, MiddlewareType
p = PickleQueue("/k", _type=MiddlewareType.PRODUCER)
p.push({"v": 1}, ack=True)
q = PickleQueue("/k", _type=MiddlewareType.CONSUMER, acked=True)
print(q.pull(), q.last_number)
p.push({"v": 2}, ack=True)
print(q.pull(), q.last_number)
q.cancel(); q.close()
`,
    );
    assert.equal(out, ["('/k', {'v': 1}) 1", "('/k', {'v': 2}) 2"]);
  } finally {
    await r.stop();
  }
});

test.run();
