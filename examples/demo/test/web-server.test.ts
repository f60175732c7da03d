/**
 * The demo's web server on its own (a demo whose engines are all missing): the SSE feed, the
 * honest "not running" panels, typed errors for actions, and a close that does not wait for a
 * browser's open connections.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from 'node:net';
import { createLogger } from '@trellis/sdk';
import { startDemo } from '../src/demo.js';

const quiet = createLogger('demo', 'silent');

test('a part without an engine is reported as not running, never filled in', async () => {
  const demo = await startDemo({}, { basePort: 0, logger: quiet });
  try {
    const snap = (await (await fetch(`${demo.webUrl}api/snapshot`)).json()) as Record<string, { available: boolean; reason?: string }>;
    for (const part of ['balancer', 'broker', 'chord']) {
      assert.is(snap[part]!.available, false);
      assert.match(snap[part]!.reason!, /not part of this build/);
    }
    const res = await fetch(`${demo.webUrl}api/strategy`, { method: 'POST', body: '{"strategy":"round-robin"}' });
    assert.is(res.status, 400);
    assert.match(((await res.json()) as { error: string }).error, /the balancer is not running/);
  } finally {
    await demo.close();
  }
});

test('the SSE feed sends a snapshot at once and then every interval', async () => {
  const demo = await startDemo({}, { basePort: 0, intervalMs: 50, logger: quiet });
  try {
    const controller = new AbortController();
    const res = await fetch(`${demo.webUrl}events`, { signal: controller.signal });
    assert.is(res.headers.get('content-type'), 'text/event-stream');
    const reader = res.body!.getReader();
    let text = '';
    while ((text.match(/event: snapshot\n/g) ?? []).length < 3) text += new TextDecoder().decode((await reader.read()).value);
    const first = JSON.parse(/data: (.*)\n/.exec(text)![1]!) as { t: number; balancer: { available: boolean } };
    assert.is(first.balancer.available, false);
    assert.ok(first.t > 0);
    controller.abort();
  } finally {
    await demo.close();
  }
});

test('close() does not wait for a client stuck half-way through a request', async () => {
  const demo = await startDemo({}, { basePort: 0, logger: quiet });
  const { port } = new URL(demo.webUrl);
  // Headers never finished: the server would otherwise wait for its headers timeout (a minute).
  const socket = connect(Number(port), '127.0.0.1');
  await new Promise<void>((resolve) => socket.on('connect', resolve));
  socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  const socketClosed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('error', () => undefined);
  await new Promise((r) => setTimeout(r, 50));
  let closed = false;
  const closing = demo.close().then(() => (closed = true));
  await new Promise((r) => setTimeout(r, 1_000));
  assert.ok(closed, 'close() still waiting for the half-open request after 1 s');
  await closing;
  await socketClosed;
});

test.run();
