import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { validateManifest, ManifestError, EngineMismatchError, ErrorCodes, TrellisError } from '@trellis/sdk';

const test = suite('manifest');
const base = { name: 'p', version: '1.0.0', main: './index.js', engines: { trellis: '^0.1.0' } };

function rejects(raw: unknown, field: string, code: string = ErrorCodes.MANIFEST) {
  try {
    validateManifest(raw, '/x/package.json', '0.1.0');
  } catch (err) {
    assert.ok(err instanceof TrellisError, 'a TrellisError');
    assert.is((err as TrellisError).code, code);
    if (err instanceof ManifestError) {
      assert.is(err.field, field);
      assert.is(err.file, '/x/package.json');
      assert.ok(err.message.startsWith('/x/package.json: "' + field + '"'), err.message);
    }
    return err;
  }
  assert.unreachable(`expected the manifest to be rejected at ${field}`);
}

test('contributions imply their activation events, as VS Code 1.74+ does', () => {
  const m = validateManifest(
    {
      ...base,
      contributes: {
        strategies: [{ id: 'rr', title: 'RR' }],
        serializers: [{ id: 'json', title: 'JSON', wireId: 0 }],
        dhtRouting: [{ id: 'fingers', title: 'Fingers' }],
      },
      activationEvents: ['onStartup'],
    },
    'f',
    '0.1.0',
  );
  assert.equal([...m.activationEvents], ['onStartup', 'onStrategy:rr', 'onSerializer:json', 'onDhtRouting:fingers']);
  assert.ok(Object.isFrozen(m) && Object.isFrozen(m.contributes.strategies));
});

test('each missing or malformed field is named in the error', () => {
  rejects([], '(root)');
  rejects({ ...base, name: undefined }, 'name');
  rejects({ ...base, name: 'Bad Name!' }, 'name');
  rejects({ ...base, version: 'one' }, 'version');
  rejects({ ...base, engines: undefined }, 'engines.trellis');
  rejects({ ...base, engines: { trellis: 'not a range' } }, 'engines.trellis');
  rejects({ ...base, contributes: { themes: [] } }, 'contributes.themes');
  rejects({ ...base, contributes: { strategies: {} } }, 'contributes.strategies');
  rejects({ ...base, contributes: { strategies: [{ title: 'x' }] } }, 'contributes.strategies[0].id');
  rejects({ ...base, contributes: { strategies: [{ id: 'a', title: 'A' }, { id: 'a', title: 'B' }] } }, 'contributes.strategies[1].id');
  rejects({ ...base, contributes: { strategies: [{ id: 'a' }] } }, 'contributes.strategies[0].title');
  rejects({ ...base, contributes: { serializers: [{ id: 's', title: 'S' }] } }, 'contributes.serializers[0].wireId');
  rejects({ ...base, contributes: { serializers: [{ id: 's', title: 'S', wireId: 256 }] } }, 'contributes.serializers[0].wireId');
  rejects({ ...base, activationEvents: ['onCommand:x'] }, 'activationEvents[0]');
  rejects({ ...base, pluginDependencies: [3] }, 'pluginDependencies[0]');
  rejects({ ...base, pluginDependencies: ['p'] }, 'pluginDependencies[0]');
});

test('an engines.trellis range that excludes the SDK version is an engine mismatch', () => {
  const err = rejects({ ...base, engines: { trellis: '^2.0.0' } }, 'engines.trellis', ErrorCodes.ENGINE_MISMATCH);
  assert.ok(err instanceof EngineMismatchError);
  assert.match((err as Error).message, /requires trellis \^2\.0\.0, but this SDK is 0\.1\.0/);
});

test.run();
