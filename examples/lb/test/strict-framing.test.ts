import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { startBalancer, raw, sleep } from './helpers.js';

// Regression tests for issue 12's framing defects: each one failed on the engine before the fix.

/**
 * A raw back-end that records every byte it receives and answers each request head it sees
 * (split on CRLFCRLF, as a lenient back-end would) with `answer(head)`; by default a tiny 200.
 */
async function recordingBackend(answer: (head: string) => string = () => 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok') {
  let received = '';
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let pending = '';
    s.on('data', (c) => {
      received += c.toString('latin1');
      pending += c.toString('latin1');
      for (;;) {
        const end = pending.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = pending.slice(0, end);
        pending = pending.slice(end + 4);
        if (!/^[A-Z]+ /.test(head)) continue;
        s.write(answer(head));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    received: () => received,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

const bytes = (s: string) => Buffer.from(s, 'latin1');

test('a chunked body whose last chunk is followed by a bare LF is refused, nothing is smuggled', async () => {
  const be = await recordingBackend();
  const lb = await startBalancer([be.port]);
  try {
    const r = await raw(
      lb.port,
      'POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\nGET /smuggled HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n',
    );
    assert.match(r.text, /^HTTP\/1\.1 400 /);
    assert.ok(r.closed);
    await sleep(50);
    assert.not.ok(be.received().includes('/smuggled'), 'the smuggled request reached the back-end');
    // trailer lines ending with a bare LF, and trailer lines that are not fields, are refused too
    const trailer = await raw(lb.port, 'POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\n\r\n');
    assert.match(trailer.text, /^HTTP\/1\.1 400 /);
    const notField = await raw(lb.port, 'POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nGET / HTTP/1.1\r\n\r\n');
    assert.match(notField.text, /^HTTP\/1\.1 400 /);
    const ext = await raw(lb.port, 'POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;a\x00b\r\nx\r\n0\r\n\r\n');
    assert.match(ext.text, /^HTTP\/1\.1 400 /);
    // a well-formed trailer still passes
    const good = await raw(lb.port, 'POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n1;ext=1\r\nx\r\n0\r\nX-Sum: 1\r\n\r\n');
    assert.match(good.text, /^HTTP\/1\.1 200 /);
  } finally {
    await lb.close();
    await be.close();
  }
});

test('a transfer coding list ending in chunked is forwarded whole; chunked not last is refused', async () => {
  const be = await recordingBackend();
  const lb = await startBalancer([be.port]);
  try {
    const r = await raw(lb.port, 'POST /gz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n1\r\nx\r\n0\r\n\r\n');
    assert.match(r.text, /^HTTP\/1\.1 200 /);
    assert.match(be.received(), /\r\ntransfer-encoding: gzip, chunked\r\n/);
    const notLast = await raw(lb.port, 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n1\r\nx\r\n0\r\n\r\n');
    assert.match(notLast.text, /^HTTP\/1\.1 400 /);
    const twice = await raw(lb.port, 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
    assert.match(twice.text, /^HTTP\/1\.1 400 /);
    const param = await raw(lb.port, 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n');
    assert.match(param.text, /^HTTP\/1\.1 400 /);
  } finally {
    await lb.close();
    await be.close();
  }
});

test('non-ASCII and non-SP/HTAB whitespace around Transfer-Encoding / Content-Length is refused', async () => {
  const be = await recordingBackend();
  const lb = await startBalancer([be.port]);
  try {
    for (const head of [
      'Transfer-Encoding: chunked\xa0',
      'Transfer-Encoding: \xa0chunked',
      'Transfer-Encoding: chunked\x0b',
      'Content-Length: \xa01',
      'Content-Length: 1\x0c',
      'Content-Length: 1\x85',
    ]) {
      const r = await raw(lb.port, bytes(`POST /ws HTTP/1.1\r\nHost: x\r\n${head}\r\n\r\n1\r\nx\r\n0\r\n\r\n`));
      assert.match(r.text, /^HTTP\/1\.1 400 /, JSON.stringify(head));
    }
    assert.not.ok(be.received().includes('/ws'));
  } finally {
    await lb.close();
    await be.close();
  }
});

test('Transfer-Encoding on HTTP/1.0 and control characters in the target are refused', async () => {
  const be = await recordingBackend();
  const lb = await startBalancer([be.port]);
  try {
    const te10 = await raw(lb.port, 'POST /old HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n');
    assert.match(te10.text, /^HTTP\/1\.1 400 /);
    for (const c of ['\x00', '\x01', '\x7f', '\x1b', '\x80', '\xff']) {
      const r = await raw(lb.port, bytes(`GET /a${c}b HTTP/1.1\r\nHost: x\r\n\r\n`));
      assert.match(r.text, /^HTTP\/1\.1 400 /, JSON.stringify(c));
    }
    await sleep(50);
    assert.is(be.received(), '');
  } finally {
    await lb.close();
    await be.close();
  }
});

test('a bare-LF request head gets 400 at once, not a 408 at the headers deadline', async () => {
  const be = await recordingBackend();
  const lb = await startBalancer([be.port], { timeouts: { headersMs: 10_000 } });
  try {
    for (const req of ['GET / HTTP/1.1\nHost: x\n\n', 'GET / HTTP/1.1\r\nHost: x\n\n', '\nGET / HTTP/1.1\r\nHost: x\r\n\r\n', 'GET / HTTP/1.1\r\nHost: x\rY: z\r\n']) {
      const started = Date.now();
      const r = await raw(lb.port, req, { timeoutMs: 5000 });
      assert.match(r.text, /^HTTP\/1\.1 400 /, JSON.stringify(req));
      assert.ok(Date.now() - started < 5000);
    }
    assert.is(be.received(), '');
  } finally {
    await lb.close();
    await be.close();
  }
});

test('absolute-form targets are accepted: origin-form upstream, Host from the target (RFC 9112 §3.2.2)', async () => {
  const be = await recordingBackend();
  const lb = await startBalancer([be.port]);
  try {
    const r = await raw(lb.port, 'GET http://Example.test:8080/p/q?x=1 HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n');
    assert.match(r.text, /^HTTP\/1\.1 200 /);
    assert.match(be.received(), /^GET \/p\/q\?x=1 HTTP\/1\.1\r\n/);
    assert.match(be.received(), /\r\nhost: Example\.test:8080\r\n/);
    assert.not.match(be.received(), /other\.test/);
    const bare = await raw(lb.port, 'GET https://e.test HTTP/1.1\r\nHost: e.test\r\nConnection: close\r\n\r\n');
    assert.match(bare.text, /^HTTP\/1\.1 200 /);
    assert.match(be.received(), /\r\nGET \/ HTTP\/1\.1\r\nhost: e\.test\r\n/);
    const userinfo = await raw(lb.port, 'GET http://u@e.test/ HTTP/1.1\r\nHost: e.test\r\n\r\n');
    assert.match(userinfo.text, /^HTTP\/1\.1 400 /);
    // an empty Host (found by the differential run against nginx, which refuses it too)
    const emptyHost = await raw(lb.port, 'GET / HTTP/1.1\r\nHost: \r\n\r\n');
    assert.match(emptyHost.text, /^HTTP\/1\.1 400 /);
  } finally {
    await lb.close();
    await be.close();
  }
});

test('responses are validated like requests: bad names, NUL, bare LF/CR and oversized heads are 502', async () => {
  const cases: [string, string][] = [
    ['name', 'HTTP/1.1 200 OK\r\nBad Name: x\r\ncontent-length: 2\r\n\r\nok'],
    ['nul', 'HTTP/1.1 200 OK\r\nX-A: a\x00b\r\ncontent-length: 2\r\n\r\nok'],
    ['lf', 'HTTP/1.1 200 OK\r\nX-A: a\nSet-Cookie: injected=1\r\ncontent-length: 2\r\n\r\nok'],
    ['cr', 'HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: injected=1\r\ncontent-length: 2\r\n\r\nok'],
    ['reason', 'HTTP/1.1 200 O\x00K\r\ncontent-length: 2\r\n\r\nok'],
    ['big', `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(20_000)}\r\ncontent-length: 2\r\n\r\nok`],
    ['barelf', 'HTTP/1.1 200 OK\nX-A: a\n\nok'],
    ['te10', 'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n'],
  ];
  const be = await recordingBackend((head) => cases.find(([k]) => head.startsWith(`GET /${k} `))![1]);
  try {
    for (const [k] of cases) {
      // a back-end that breaks HTTP is ejected: one balancer per case
      const lb = await startBalancer([be.port], { healthCheck: false });
      try {
        const r = await raw(lb.port, `GET /${k} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, { timeoutMs: 5000 });
        assert.match(r.text, /^HTTP\/1\.1 502 /, k);
        assert.not.match(r.text, /injected/);
      } finally {
        await lb.close();
      }
    }
  } finally {
    await be.close();
  }
});

test('a response with both Content-Length and Transfer-Encoding is framed by chunked, Content-Length dropped', async () => {
  const be = await recordingBackend(() => 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
  const lb = await startBalancer([be.port]);
  try {
    const r11 = await raw(lb.port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(r11.text, /^HTTP\/1\.1 200 /);
    assert.not.match(r11.text, /content-length/i);
    assert.match(r11.text, /transfer-encoding: chunked\r\n[\s\S]*\r\n\r\n5\r\nhello\r\n0\r\n\r\n$/);
    const r10 = await raw(lb.port, 'GET / HTTP/1.0\r\n\r\n');
    assert.match(r10.text, /^HTTP\/1\.1 200 /);
    assert.not.match(r10.text, /content-length|transfer-encoding/i);
    assert.match(r10.text, /\r\n\r\nhello$/);
  } finally {
    await lb.close();
    await be.close();
  }
});

test('empty lines before the request line do not extend the headers deadline (slowloris)', async () => {
  const be = await recordingBackend();
  const lb = await startBalancer([be.port], { timeouts: { headersMs: 400, idleMs: 10_000 } });
  try {
    const socket = connect({ host: '127.0.0.1', port: lb.port });
    socket.on('error', () => {});
    let text = '';
    socket.on('data', (c) => (text += c));
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    const timer = setInterval(() => {
      if (!socket.destroyed) socket.write('\r\n');
    }, 50);
    const outcome = await Promise.race([closed.then(() => 'closed'), sleep(4000).then(() => 'open')]);
    clearInterval(timer);
    socket.destroy();
    assert.is(outcome, 'closed', 'a trickle of empty lines kept the connection open');
    assert.match(text, /^HTTP\/1\.1 408 /);
  } finally {
    await lb.close();
    await be.close();
  }
});

test.run();
