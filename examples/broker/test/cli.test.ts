/** `trellis broker|pub|sub|topics`, run in-process through the CLI toolkit with real sockets. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PassThrough } from 'node:stream';
import { runCommand, type CommandIO } from '@trellis/sdk/cli';
import { broker, pub, sub, topics } from '../src/cli.js';
import { fromCommandLine, toJsonText } from '../src/json-text.js';

function io(signal = new AbortController().signal): CommandIO & { out(): string; err(): string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c) => (out += c));
  stderr.on('data', (c) => (err += c));
  return { stdout, stderr, signal, out: () => out, err: () => err };
}

async function startBrokerCommand(): Promise<{ port: number; stop(): Promise<number> }> {
  const controller = new AbortController();
  const brokerIo = io(controller.signal);
  const running = runCommand('trellis broker', broker, ['--port', '0'], brokerIo);
  for (let i = 0; i < 500 && !/listening on/.test(brokerIo.out()); i++) await new Promise((r) => setTimeout(r, 10));
  const m = /listening on 127\.0\.0\.1:(\d+) \(codecs: (.*)\)/.exec(brokerIo.out());
  assert.ok(m, `broker did not start: ${brokerIo.out()} ${brokerIo.err()}`);
  assert.match(m![2]!, /pickle\(2\)/);
  return {
    port: Number(m![1]),
    async stop() {
      controller.abort();
      return running;
    },
  };
}

test('pub, sub and topics talk to a running broker; sub prints one JSON line per message', async () => {
  const b = await startBrokerCommand();
  try {
    const port = String(b.port);
    const pubIo = io();
    assert.is(await runCommand('trellis pub', pub, ['--port', port, '--topic', '/weather/temperature', '--codec', 'pickle', '21.5', '{"city":"Aveiro"}', 'plain words', '123456789012345678901234', '{"deep":[123456789012345678901235]}'], pubIo), 0, pubIo.err());
    assert.match(pubIo.err(), /published 5 messages to \/weather\/temperature/);
    const subIo = io();
    assert.is(await runCommand('trellis sub', sub, ['--port', port, '--topic', '/weather', '--codec', 'pickle', '--count', '1'], subIo), 0, subIo.err());
    assert.is(subIo.out(), '{"topic":"/weather/temperature","value":{"deep":[123456789012345678901235]}}\n', 'big integers inside a document stay exact');
    const topicsIo = io();
    assert.is(await runCommand('trellis topics', topics, ['--port', port, '--codec', 'pickle'], topicsIo), 0, topicsIo.err());
    assert.equal(JSON.parse(topicsIo.out()), ['/weather/temperature']);
  } finally {
    assert.is(await b.stop(), 0);
  }
});

test('pub, sub and topics take bare topics (the original API) and list them exactly', async () => {
  const b = await startBrokerCommand();
  try {
    const port = String(b.port);
    const pubIo = io();
    assert.is(await runCommand('trellis pub', pub, ['--port', port, '--topic', 'qwerty', '42'], pubIo), 0, pubIo.err());
    const subIo = io();
    assert.is(await runCommand('trellis sub', sub, ['--port', port, '--topic', 'qwerty', '--count', '1'], subIo), 0, subIo.err());
    assert.is(subIo.out(), '{"topic":"qwerty","value":42}\n');
    const topicsIo = io();
    assert.is(await runCommand('trellis topics', topics, ['--port', port], topicsIo), 0, topicsIo.err());
    assert.equal(JSON.parse(topicsIo.out()), ['qwerty']);
    const bad = io();
    assert.is(await runCommand('trellis pub', pub, ['--port', port, '--topic', 'a//b', '1'], bad), 2);
    assert.match(bad.err(), /empty segment/);
  } finally {
    assert.is(await b.stop(), 0);
  }
});

test('pub refuses JSON the value model refuses and wildcard topics with the reason, exit 2, nothing sent', async () => {
  const b = await startBrokerCommand();
  try {
    const port = String(b.port);
    const cases: [string[], RegExp][] = [
      [['--topic', '/t', '{"__proto__":{"x":1}}'], /__proto__/],
      [['--topic', '/t', '['.repeat(600) + ']'.repeat(600)], /refused as JSON: .*deeper/],
      [['--topic', '/t', '{"unterminated": '], /does not parse|refused as JSON/],
      [['--topic', '/t', 'fine', '{"__proto__":1}'], /__proto__/],
      [['--topic', '/a/+', '1'], /"\+" .*wildcard/],
      [['--topic', '/a/#', '1'], /"#" .*wildcard/],
    ];
    for (const [args, reason] of cases) {
      const e = io();
      assert.is(await runCommand('trellis pub', pub, ['--port', port, ...args], e), 2, `${args.join(' ')}: ${e.err()}`);
      assert.match(e.err(), reason);
      assert.is(e.err().trim().split('\n').length, 1, 'one line');
    }
    const topicsIo = io();
    await runCommand('trellis topics', topics, ['--port', port], topicsIo);
    assert.equal(JSON.parse(topicsIo.out()), [], 'nothing was published, not even the valid value before a bad one');
    const asText = io();
    assert.is(await runCommand('trellis pub', pub, ['--port', port, '--topic', '/t', '--string', '{"__proto__":1}'], asText), 0, asText.err());
    const subIo = io();
    await runCommand('trellis sub', sub, ['--port', port, '--topic', '/t', '--count', '1'], subIo);
    assert.is(subIo.out(), '{"topic":"/t","value":"{\\"__proto__\\":1}"}\n', '--string sends the text verbatim');
  } finally {
    assert.is(await b.stop(), 0);
  }
});

test('pub --clear clears a last value; pub --expiry sets one that expires', async () => {
  const b = await startBrokerCommand();
  try {
    const port = String(b.port);
    const list = async () => {
      const t = io();
      await runCommand('trellis topics', topics, ['--port', port], t);
      return JSON.parse(t.out()) as string[];
    };
    assert.is(await runCommand('trellis pub', pub, ['--port', port, '--topic', 'keep', '1'], io()), 0);
    assert.is(await runCommand('trellis pub', pub, ['--port', port, '--topic', 'brief', '--expiry', '1', '2'], io()), 0);
    assert.equal(await list(), ['brief', 'keep']);
    const cleared = io();
    assert.is(await runCommand('trellis pub', pub, ['--port', port, '--topic', 'keep', '--clear'], cleared), 0, cleared.err());
    assert.match(cleared.err(), /cleared the last value of keep/);
    for (let i = 0; i < 60 && (await list()).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await list(), []);
    const bad = io();
    assert.is(await runCommand('trellis pub', pub, ['--port', port, '--topic', 'keep', '--clear', '1'], bad), 2);
  } finally {
    assert.is(await b.stop(), 0);
  }
});

test('bad flags give one line and exit 2; an unknown codec names the installed ones', async () => {
  const bad = io();
  assert.is(await runCommand('trellis sub', sub, ['--port', 'x', '--topic', '/t'], bad), 2);
  assert.match(bad.err(), /--port must be a whole number/);
  const noTopic = io();
  assert.is(await runCommand('trellis pub', pub, ['--port', '1', '1'], noTopic), 2);
  assert.match(noTopic.err(), /--topic is required/);
  const codec = io();
  assert.is(await runCommand('trellis topics', topics, ['--port', '1', '--codec', 'yaml'], codec), 2);
  assert.match(codec.err(), /--codec "yaml" is not installed; available: .*pickle/);
});

test('command-line values: JSON when it is JSON, big integers exact, bytes as $bytes', () => {
  assert.equal(fromCommandLine('{"a":[1,true,null]}'), { a: [1, true, null] });
  assert.is(fromCommandLine('hello world'), 'hello world');
  assert.is(fromCommandLine('12345678901234567890'), 12345678901234567890n);
  assert.equal(fromCommandLine('{"$bytes":"AP8="}'), new Uint8Array([0, 255]));
  assert.throws(() => fromCommandLine('{"__proto__":1}'), /__proto__/);
  assert.throws(() => fromCommandLine('[1, 2'), /looks like JSON/);
  assert.is(fromCommandLine('plain {words'), 'plain {words');
  assert.is(toJsonText({ n: 2n ** 64n, b: new Uint8Array([0, 255]), s: 'x' }), '{"n":18446744073709551616,"b":{"$bytes":"AP8="},"s":"x"}');
});

test.run();
