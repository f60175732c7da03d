/** `trellis plugins`: what the plugin host discovers, without activating anything unless asked. */
import { defineCommand, intOption } from '@trellis/sdk/cli';
import { createHost, createLogger, type PluginInfo } from '@trellis/sdk';

function contributions(info: PluginInfo): string {
  const c = info.manifest?.contributes;
  if (!c) return '';
  return [
    ...c.strategies.map((s) => `strategy:${s.id}`),
    ...c.serializers.map((s) => `serializer:${s.id}(${s.wireId})`),
    ...c.dhtRouting.map((s) => `dhtRouting:${s.id}`),
    ...(c.access ?? []).map((s) => `access:${s.id}`),
  ].join(' ');
}

export default defineCommand({
  name: 'plugins',
  summary: 'List discovered plugins, their versions, contributions and state',
  options: {
    dir: { type: 'string', short: 'd', multiple: true, description: 'also scan this plugin directory', placeholder: 'dir' },
    'no-builtins': { type: 'boolean', description: 'do not scan the plugins shipped with Trellis' },
    activate: { type: 'boolean', description: 'activate every plugin, to show which ones fail' },
    json: { type: 'boolean', description: 'print JSON instead of a table' },
    'activation-timeout': { type: 'string', default: '10000', description: 'milliseconds a plugin may take to activate', placeholder: 'ms' },
  },
  examples: ['trellis plugins', 'trellis plugins --dir ./my-plugins --activate'],
  async run({ values }, io) {
    const activationTimeoutMs = intOption('activation-timeout', values['activation-timeout'], { min: 1 });
    const host = createHost({ dirs: values.dir ?? [], builtins: !values['no-builtins'], activationTimeoutMs, logger: createLogger('trellis', 'silent') });
    await host.scan();
    if (values.activate) {
      await Promise.all(host.plugins().filter((p) => p.state === 'discovered').map((p) => host.activate(p.id).catch(() => undefined)));
    }
    const plugins = host.plugins();
    if (values.json) {
      io.stdout.write(
        JSON.stringify(
          plugins.map((p) => ({
            id: p.id,
            version: p.version,
            dir: p.dir ?? null,
            state: p.state,
            contributes: p.manifest?.contributes ?? null,
            error: p.error ? { code: p.error.code, message: p.error.message } : null,
          })),
          null,
          2,
        ) + '\n',
      );
    } else {
      const rows = plugins.map((p) => [p.id, p.version || '-', p.state, contributions(p) || (p.error ? p.error.message : '')]);
      const head = ['PLUGIN', 'VERSION', 'STATE', 'CONTRIBUTES'];
      const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
      io.stdout.write([line(head), ...rows.map(line)].join('\n') + '\n');
      if (plugins.length === 0) io.stdout.write(`no plugins found in: ${host.dirs.join(', ')}\n`);
    }
    await host.dispose();
    return plugins.some((p) => p.state === 'failed' || p.state === 'invalid') ? 1 : 0;
  },
});
