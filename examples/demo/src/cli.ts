/** `trellis demo`: the three hosts at once, with traffic and a live web view, until Ctrl-C. */
import { defineCommand, intOption, portOption, untilAborted, pluginDirOption } from '@trellis/sdk/cli';
import { createLogger } from '@trellis/sdk';
import { spawn } from 'node:child_process';
import { startDemo } from './demo.js';
import { starters } from './starters.js';
import { DEFAULT_BASE_PORT } from './ports.js';

/** Opens the page in the desktop's browser when there is one; a headless machine just prints the URL. */
function openBrowser(url: string): void {
  const cmd = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  const child = spawn(cmd, [url], { stdio: 'ignore', detached: true });
  child.on('error', () => undefined);
  child.unref();
}

export const demo = defineCommand({
  name: 'demo',
  summary: 'Run the load balancer, the broker and a Chord ring at once, with traffic and a live web view',
  options: {
    port: { type: 'string', short: 'p', default: String(DEFAULT_BASE_PORT), description: 'base port: web view on it, the services just above it (0 = ephemeral ports)', placeholder: 'port' },
    nodes: { type: 'string', default: '8', description: 'Chord ring size', placeholder: 'n' },
    bits: { type: 'string', default: '10', description: 'Chord identifier bits m', placeholder: 'm' },
    rate: { type: 'string', default: '30', description: 'requests per second sent through the balancer', placeholder: 'n' },
    duration: { type: 'string', description: 'stop after this many seconds (default: run until Ctrl-C)', placeholder: 'seconds' },
    'no-open': { type: 'boolean', description: 'do not open the web view in a browser' },
    'plugin-dir': pluginDirOption,
  },
  examples: ['trellis demo', 'trellis demo --port 9600 --no-open', 'npm start'],
  async run({ values }, io) {
    const basePort = portOption('port', values.port)!;
    const nodes = intOption('nodes', values.nodes, { min: 2, max: 64 })!;
    const bits = intOption('bits', values.bits, { min: 4, max: 32 })!;
    const rate = intOption('rate', values.rate, { min: 0, max: 10_000 })!;
    const duration = intOption('duration', values.duration, { min: 1 });
    const log = createLogger('demo');
    let running;
    try {
      running = await startDemo(starters, { basePort, nodes, bits, rate, logger: log, pluginDirs: values['plugin-dir'] ?? [] });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      io.stderr.write(`trellis demo: port ${basePort} for the web view is in use; pick another base with --port (0 = any free ports)\n`);
      return 1;
    }
    io.stdout.write(['Trellis demo is running (Ctrl-C stops everything):', '', ...running.hints.map((h) => `  ${h}`), ''].join('\n') + '\n');
    for (const [name, why] of Object.entries(running.failures)) io.stderr.write(`  (${name} not running: ${why})\n`);
    if (!values['no-open'] && process.stdout.isTTY) openBrowser(running.webUrl);
    const stop = new AbortController();
    const timer = duration !== undefined ? setTimeout(() => stop.abort(), duration * 1000) : undefined;
    await Promise.race([untilAborted(io.signal), untilAborted(stop.signal)]);
    clearTimeout(timer);
    io.stdout.write('stopping…\n');
    await running.close();
    io.stdout.write('stopped\n');
    return Object.keys(running.failures).length === 0 ? 0 : 1;
  },
});

export default demo;
