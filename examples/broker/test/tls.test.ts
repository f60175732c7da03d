/**
 * TLS for broker connections: the broker serves TLS with a certificate and key; the TS client,
 * the Python client and the CLI connect with `tls` and a CA to verify the broker against.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { PassThrough } from 'node:stream';
import { connect, helloFrame, Role } from '@trellis/sdk';
import { runCommand } from '@trellis/sdk/cli';
import { startBroker, take } from './helpers.js';
import { broker, pub, sub } from '../src/cli.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/tls/', import.meta.url));
const cert = readFileSync(`${FIXTURES}broker.crt`, 'utf8');
const key = readFileSync(`${FIXTURES}broker.key`, 'utf8');
const ca = readFileSync(`${FIXTURES}ca.crt`, 'utf8');

test('TS clients publish and subscribe over TLS, verifying the broker with a CA', async () => {
  const r = await startBroker({ tls: { cert, key } });
  try {
    const consumer = await connect({ port: r.port, codec: 'xml', plugins: r.host, tls: true, ca });
    const producer = await connect({ port: r.port, codec: 'pickle', plugins: r.host, tls: true, ca });
    r.clients.push(consumer, producer);
    const s = await consumer.subscribe('qwerty');
    await producer.publish('qwerty', { secret: 'over TLS' }, { ack: true });
    assert.equal((await take(s, 1))[0]!.value, { secret: 'over TLS' });
  } finally {
    await r.stop();
  }
});

test('an unverifiable broker certificate is refused; a plain-TCP client gets no service', async () => {
  const r = await startBroker({ tls: { cert, key } });
  try {
    const unverified = await connect({ port: r.port, codec: 'json', plugins: r.host, tls: true, timeoutMs: 5000 }).then(() => 'connected', (e: Error) => e.message);
    assert.match(unverified, /certificate|self.signed|issuer/i);
    // a plain HELLO is not a TLS ClientHello: the broker never answers it with WELCOME
    const plain = netConnect({ port: r.port, host: '127.0.0.1' });
    let got = Buffer.alloc(0);
    plain.on('data', (c: Buffer) => (got = Buffer.concat([got, c])));
    plain.on('error', () => undefined);
    await new Promise<void>((res) => plain.once('connect', () => res()));
    plain.write(helloFrame(0, Role.BOTH));
    await new Promise<void>((res) => {
      plain.once('close', () => res());
      setTimeout(() => res(), 2000).unref();
    });
    plain.destroy();
    assert.not.ok(got.length >= 5 && got[4] === 0x02, 'no WELCOME over plain TCP');
    assert.is(r.broker.stats().connections, 0);
  } finally {
    await r.stop();
  }
});

test('the Python client connects with tls=True and a CA', async () => {
  const r = await startBroker({ tls: { cert, key } });
  try {
    const producer = await connect({ port: r.port, codec: 'json', plugins: r.host, tls: true, ca });
    r.clients.push(producer);
    await producer.publish('/t', 42, { ack: true });
    const PYTHON_DIR = fileURLToPath(new URL('../python', import.meta.url));
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn('python3', ['-c', `
from trellis_broker import PickleQueue, CONSUMER
q = PickleQueue("/t", _type=CONSUMER, host="127.0.0.1", tls=True, ca=${JSON.stringify(`${FIXTURES}ca.crt`)})
print(q.pull())
`], { env: { ...process.env, PYTHONPATH: PYTHON_DIR, TRELLIS_BROKER_PORT: String(r.port) }, stdio: ['ignore', 'pipe', 'pipe'] });
      let o = '';
      let e = '';
      child.stdout.on('data', (c) => (o += c));
      child.stderr.on('data', (c) => (e += c));
      const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('close', (code) => {
        clearTimeout(t);
        if (code === 0) resolve(o);
        else reject(new Error(`python3 exited ${code}: ${e}`));
      });
    });
    assert.is(out.trim(), "('/t', 42)");
  } finally {
    await r.stop();
  }
});

test('trellis broker --tls-cert --tls-key; pub and sub with --tls --ca', async () => {
  const io = (signal = new AbortController().signal) => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (c) => (out += c));
    stderr.on('data', (c) => (err += c));
    return { stdout, stderr, signal, out: () => out, err: () => err };
  };
  const controller = new AbortController();
  const brokerIo = io(controller.signal);
  const running = runCommand('trellis broker', broker, ['--port', '0', '--tls-cert', `${FIXTURES}broker.crt`, '--tls-key', `${FIXTURES}broker.key`], brokerIo);
  try {
    for (let i = 0; i < 500 && !/listening on/.test(brokerIo.out()); i++) await new Promise((res) => setTimeout(res, 10));
    const m = /listening on 127\.0\.0\.1:(\d+) with TLS/.exec(brokerIo.out());
    assert.ok(m, brokerIo.out() + brokerIo.err());
    const port = m![1]!;
    const p = io();
    assert.is(await runCommand('trellis pub', pub, ['--port', port, '--topic', 'qwerty', '--tls', '--ca', `${FIXTURES}ca.crt`, '1'], p), 0, p.err());
    const s = io();
    assert.is(await runCommand('trellis sub', sub, ['--port', port, '--topic', 'qwerty', '--tls', '--ca', `${FIXTURES}ca.crt`, '--count', '1'], s), 0, s.err());
    assert.is(s.out(), '{"topic":"qwerty","value":1}\n');
    const half = io();
    assert.is(await runCommand('trellis broker', broker, ['--port', '0', '--tls-cert', `${FIXTURES}broker.crt`], half), 2);
    assert.match(half.err(), /--tls-cert and --tls-key go together/);
  } finally {
    controller.abort();
    assert.is(await running, 0);
  }
});

test.run();
