import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from 'node:net';
import { startBalancer, startServer, get, sleep } from './helpers.js';

/** Privileged ports nothing listens on here: a connect to them is refused for sure. */
const REFUSED = 1;

/** Sends `data`, half-closes (FIN), and collects the answer until the balancer closes. */
function halfClose(port: number, data: string, timeoutMs = 5000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, closed: false });
    }, timeoutMs);
    socket.on('data', (c) => (text += c.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
    socket.on('connect', () => socket.end(data));
  });
}

async function echo() {
  return startServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c) => parts.push(c));
    req.on('end', () => {
      setTimeout(() => res.end(`${req.method} ${req.url} ${Buffer.concat(parts).toString()}`), 30);
    });
  });
}

test('a client that half-closes after its request still gets the response', async () => {
  const be = await echo();
  const lb = await startBalancer([be.port]);
  try {
    const r = await halfClose(lb.port, 'GET /one HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.ok(r.closed);
    assert.match(r.text, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nGET \/one $/);
    const post = await halfClose(lb.port, 'POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody');
    assert.match(post.text, /\r\n\r\nPOST \/p body$/);
    // pipelined requests sent before the FIN are all answered, in order
    const two = await halfClose(lb.port, 'GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.is(two.text.split('HTTP/1.1 200 OK').length, 3);
    assert.match(two.text, /GET \/a [\s\S]*GET \/b $/);
    // a body cut short by the FIN can never complete: dropped, nothing forwarded as complete
    const cut = await halfClose(lb.port, 'POST /cut HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc');
    assert.ok(cut.closed);
    assert.not.match(cut.text, /200 OK/);
    assert.is((await get(lb.port, '/after')).status, 200);
  } finally {
    await lb.close();
    await be.close();
  }
});

test('a POST refused by one back-end goes to another: it was never sent', async () => {
  const be = await echo();
  const lb = await startBalancer([REFUSED, be.port], { strategy: 'n-to-1', healthCheck: false, ejectMs: 60_000 });
  try {
    const r = await get(lb.port, '/p', { method: 'POST', body: 'x'.repeat(1000) });
    assert.is(r.status, 200);
    assert.is(r.body, `POST /p ${'x'.repeat(1000)}`);
    const s = lb.lb.stats();
    assert.is(s.retries, 1);
    assert.is(s.backends[0]!.healthy, false);
  } finally {
    await lb.close();
    await be.close();
  }
});

test('a chunked POST streaming while the connect fails is redispatched whole', async () => {
  const be = await echo();
  const lb = await startBalancer([REFUSED, be.port], { strategy: 'least-connections', healthCheck: false, ejectMs: 60_000 });
  try {
    const r = await new Promise<string>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: lb.port });
      let text = '';
      socket.on('data', (c) => (text += c));
      socket.on('close', () => resolve(text));
      socket.write('POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n');
      setTimeout(() => socket.write('3\r\ndef\r\n0\r\n\r\n'), 100);
    });
    assert.match(r, /^HTTP\/1\.1 200 /);
    assert.match(r, /POST \/c abcdef/);
  } finally {
    await lb.close();
    await be.close();
  }
});

test('a retry never returns to the back-end that just failed while another is usable', async () => {
  const be = await echo();
  // every strategy that would choose the refused back-end first: it must not get the retry
  for (const strategy of ['n-to-1', 'least-connections', 'round-robin']) {
    const lb = await startBalancer([REFUSED, REFUSED + 1, be.port], { strategy, healthCheck: false, ejectMs: 60_000, retries: 2 });
    try {
      const r = await get(lb.port, '/r', { method: 'DELETE' });
      assert.is(r.status, 200, strategy);
      const s = lb.lb.stats();
      // each failed back-end was tried once at most
      assert.ok(s.backends[0]!.requests <= 1 && s.backends[1]!.requests <= 1, strategy);
      assert.is(s.backends[2]!.requests, 1, strategy);
    } finally {
      await lb.close();
    }
  }
  await be.close();
  await sleep(0);
});

test('a GET answered with a malformed response is retried on another back-end, not the same one', async () => {
  const { createServer } = await import('node:net');
  const bad = createServer((s) => {
    s.on('error', () => {});
    s.on('data', () => s.write('HTTP/1.1 200 OK\r\nBad Header: x\r\ncontent-length: 2\r\n\r\nok'));
  });
  await new Promise<void>((r) => bad.listen(0, '127.0.0.1', () => r()));
  const badPort = (bad.address() as import('node:net').AddressInfo).port;
  const be = await echo();
  const lb = await startBalancer([badPort, be.port], { strategy: 'n-to-1', healthCheck: false, ejectMs: 60_000 });
  try {
    const r = await get(lb.port, '/g');
    assert.is(r.status, 200);
    assert.is(r.body, 'GET /g ');
    const s = lb.lb.stats();
    assert.is(s.backends[0]!.requests, 1);
    assert.is(s.backends[0]!.healthy, false);
    assert.match(s.backends[0]!.downReason!, /invalid response/);
  } finally {
    await lb.close();
    await be.close();
    await new Promise<void>((r) => bad.close(() => r()));
  }
});

test.run();
