import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHost, TrellisError, PluginError, CodecError, ProtocolError, ErrorCodes, SafeEmitter } from '@trellis/sdk';
import { memoryLogger } from './helpers.js';

const test = suite('errors and events');

test('errors carry stable codes and instanceof works across duplicate SDK copies', async () => {
  // A second copy of the errors module, as a bundled duplicate of the SDK would be.
  const copy = (await import(`../src/errors.ts?copy=${Date.now()}`)) as typeof import('../src/errors.js');
  assert.is.not(copy.CodecError, CodecError, 'really a second copy');
  const foreign = new copy.CodecError('pickle', 'truncated');
  assert.ok(foreign instanceof CodecError);
  assert.ok(foreign instanceof TrellisError);
  assert.not.ok(foreign instanceof ProtocolError);
  assert.is(foreign.code, ErrorCodes.CODEC);
  const local = new PluginError('p', 'h', new Error('x'));
  assert.ok(local instanceof copy.PluginError);
  assert.ok(local instanceof copy.TrellisError);
  assert.not.ok(new Error('plain') instanceof TrellisError);
  assert.not.ok((null as unknown) instanceof TrellisError);
});

test('every error code is namespaced TRELLIS_ERR_*', () => {
  for (const code of Object.values(ErrorCodes)) assert.match(code, /^TRELLIS_ERR_[A-Z_]+$/);
});

test('one throwing event listener does not stop the others', async () => {
  const host = createHost({ builtins: false, logger: memoryLogger() });
  host.register({ manifest: { name: 'p', version: '1.0.0', engines: { trellis: '*' } }, activate() {} });
  const seen: string[] = [];
  host.on('activated', () => {
    throw new Error('listener 1 broke');
  });
  host.on('activated', (i) => void seen.push(`2:${i.id}`));
  host.once('activated', (i) => void seen.push(`once:${i.id}`));
  await host.activate('p');
  assert.equal(seen, ['2:p', 'once:p']);
  assert.is(host.listenerCount('activated'), 2, 'the once listener was removed');
  await host.dispose();
});

test('SafeEmitter returns false when nobody listens and passes every argument', () => {
  const e = new SafeEmitter<{ x: [number, string] }>();
  assert.is(e.emit('x', 1, 'a'), false);
  let got: unknown[] = [];
  e.on('x', (...args) => void (got = args));
  assert.is(e.emit('x', 2, 'b'), true);
  assert.equal(got, [2, 'b']);
});

test.run();
