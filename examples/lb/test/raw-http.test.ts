import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { startBalancer, startServer, raw, get } from './helpers.js';

// the raw engine's HTTP/1.1 framing, checked on the wire

async function echoBackend() {
  return startServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      if (req.url === '/chunked') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('part1-');
        setTimeout(() => res.end('part2'), 5);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain', 'x-method': req.method!, 'x-te': String(req.headers['transfer-encoding'] ?? '') });
      res.end(`${req.method} ${req.url} ${body}`);
    });
  });
}

test('pipelined requests on one connection are answered in order', async () => {
  const echo = await echoBackend();
  const lb = await startBalancer([echo.port]);
  try {
    const r = await raw(lb.port, 'GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const bodies = [...r.text.matchAll(/GET \/(\w) /g)].map((m) => m[1]);
    assert.equal(bodies, ['a', 'b', 'c']);
    assert.ok(r.closed);
  } finally {
    await lb.close();
    await echo.close();
  }
});

test('a chunked request body streams upstream and a chunked response streams back', async () => {
  const echo = await echoBackend();
  const lb = await startBalancer([echo.port]);
  try {
    const r = await raw(lb.port, 'POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n');
    assert.match(r.text, /^HTTP\/1\.1 200 /);
    assert.match(r.text, /x-te: chunked/i);
    assert.match(r.text, /POST \/up hello world/);
    const c = await raw(lb.port, 'GET /chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(c.text, /transfer-encoding: chunked\r\n/i);
    assert.match(c.text, /\r\n\r\n6\r\npart1-\r\n5\r\npart2\r\n0\r\n\r\n$/);
  } finally {
    await lb.close();
    await echo.close();
  }
});

test('an HTTP/1.0 client gets a chunked response de-chunked and the connection closed', async () => {
  const echo = await echoBackend();
  const lb = await startBalancer([echo.port]);
  try {
    const r = await raw(lb.port, 'GET /chunked HTTP/1.0\r\n\r\n');
    assert.match(r.text, /^HTTP\/1\.1 200 /);
    assert.not.match(r.text, /transfer-encoding/i);
    assert.match(r.text, /connection: close\r\n\r\npart1-part2$/);
    assert.ok(r.closed);
  } finally {
    await lb.close();
    await echo.close();
  }
});

test('request smuggling shapes and oversized heads are refused', async () => {
  const echo = await echoBackend();
  const lb = await startBalancer([echo.port]);
  try {
    const both = await raw(lb.port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
    assert.match(both.text, /^HTTP\/1\.1 400 .*\r\n[\s\S]*both Content-Length and Transfer-Encoding/);
    const twoLengths = await raw(lb.port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!');
    assert.match(twoLengths.text, /^HTTP\/1\.1 400 /);
    const noHost = await raw(lb.port, 'GET / HTTP/1.1\r\n\r\n');
    assert.match(noHost.text, /^HTTP\/1\.1 400 [\s\S]*missing Host/);
    const huge = await raw(lb.port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    assert.match(huge.text, /^HTTP\/1\.1 431 /);
    const v2 = await raw(lb.port, 'GET / HTTP/2.0\r\nHost: x\r\n\r\n');
    assert.match(v2.text, /^HTTP\/1\.1 505 /);
  } finally {
    await lb.close();
    await echo.close();
  }
});

test('HEAD responses carry no body and the connection stays usable', async () => {
  const echo = await echoBackend();
  const lb = await startBalancer([echo.port]);
  try {
    const r = await raw(lb.port, 'HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const parts = r.text.split('HTTP/1.1 200 OK');
    assert.is(parts.length, 3);
    assert.match(parts[1]!, /x-method: HEAD/i);
    assert.match(parts[1]!, /\r\n\r\n$/);
    assert.match(parts[2]!, /\r\n\r\nb\r\nGET \/after \r\n0\r\n\r\n$/);
  } finally {
    await lb.close();
    await echo.close();
  }
});

test('Expect: 100-continue is answered by the balancer and the body still arrives', async () => {
  const echo = await echoBackend();
  const lb = await startBalancer([echo.port]);
  try {
    const r = await get(lb.port, '/e', { method: 'PUT', body: 'payload', headers: { expect: '100-continue', 'content-length': '7' } });
    assert.is(r.status, 200);
    assert.is(r.body, 'PUT /e payload');
  } finally {
    await lb.close();
    await echo.close();
  }
});

test('a close-delimited response from an HTTP/1.0 back-end is relayed in full', async () => {
  const old = createServer((s) => {
    s.once('data', () => s.end('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nno length, ends at close'));
  });
  await new Promise<void>((r) => old.listen(0, '127.0.0.1', () => r()));
  const lb = await startBalancer([(old.address() as AddressInfo).port], { healthCheck: false });
  try {
    const r = await get(lb.port, '/');
    assert.is(r.status, 200);
    assert.is(r.body, 'no length, ends at close');
    assert.is(r.headers.connection, 'close');
  } finally {
    await lb.close();
    await new Promise<void>((r) => old.close(() => r()));
  }
});

test('a back-end that breaks framing mid-response cuts the client instead of lying', async () => {
  const liar = createServer((s) => {
    s.once('data', () => {
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part');
      setTimeout(() => s.destroy(), 20);
    });
  });
  await new Promise<void>((r) => liar.listen(0, '127.0.0.1', () => r()));
  const lb = await startBalancer([(liar.address() as AddressInfo).port], { healthCheck: false });
  try {
    const r = await raw(lb.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(r.text, /^HTTP\/1\.1 200 [\s\S]*only part$/);
    assert.ok(r.closed, 'the client connection is cut');
    assert.is(lb.lb.stats().upstreamErrors, 1);
  } finally {
    await lb.close();
    await new Promise<void>((r) => liar.close(() => r()));
  }
});

test('a slow reader applies backpressure to the back-end response', async () => {
  let written = 0;
  const flood = await startServer((_req, res) => {
    res.writeHead(200, { 'content-length': String(1024 * 64 * 1024) });
    const chunk = Buffer.alloc(64 * 1024, 1);
    const pump = () => {
      while (written < 1024) {
        written++;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  });
  const lb = await startBalancer([flood.port]);
  try {
    const client = connect({ host: '127.0.0.1', port: lb.port });
    client.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    client.pause();
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(written < 256, `the back-end wrote ${written} of 1024 chunks to a paused client`);
    let received = 0;
    client.on('data', (c) => (received += c.length));
    client.resume();
    await new Promise((r) => client.on('close', r));
    assert.ok(received > 64 * 1024 * 1024, `received ${received}`);
  } finally {
    await lb.close();
    await flood.close();
  }
});

test.run();
