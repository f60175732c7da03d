#!/usr/bin/env node
/**
 * The `trellis` command. Each host contributes its commands from its own folder; this file only
 * maps names to lazily imported modules so `trellis --help` starts fast.
 */
import { defineGroup, runCommand, shutdownSignal, type Command, type CommandGroup } from '@trellis/sdk/cli';
import { SDK_VERSION } from '@trellis/sdk';

type Loader = () => Promise<Command<any> | CommandGroup>;

/** Every top-level command, in the order `trellis --help` lists them. */
export const commands: Record<string, { summary: string; load: Loader }> = {
  demo: { summary: 'run all three hosts at once with traffic and a live web view', load: () => import('@trellis/example-demo/cli').then((m) => m.demo) },
  lb: { summary: 'run the load balancer (HTTP per request or TCP per connection)', load: () => import('@trellis/example-lb/cli').then((m) => m.lb) },
  pi: { summary: 'run the Pi back-end (GET /<precision> computes pi)', load: () => import('@trellis/example-lb/cli').then((m) => m.pi) },
  stress: { summary: 'load a URL concurrently: progress, req/s, p50/p99, errors, share per back-end', load: () => import('@trellis/example-lb/cli').then((m) => m.stress) },
  broker: { summary: 'run the pub/sub message broker', load: () => import('@trellis/example-broker/cli').then((m) => m.broker) },
  pub: { summary: 'publish values to a broker topic', load: () => import('@trellis/example-broker/cli').then((m) => m.pub) },
  sub: { summary: 'subscribe to a broker topic (one JSON line per message)', load: () => import('@trellis/example-broker/cli').then((m) => m.sub) },
  topics: { summary: 'list the broker topics that hold a value (JSON array)', load: () => import('@trellis/example-broker/cli').then((m) => m.topics) },
  passwd: { summary: 'add, change or delete a user in a broker password file (salted scrypt)', load: () => import('@trellis/example-broker/cli').then((m) => m.passwd) },
  dht: { summary: 'Chord DHT: run nodes and rings, put/get keys, inspect nodes', load: () => import('@trellis/example-dht/cli').then((m) => m.dht) },
  plugins: { summary: 'list discovered plugins, versions, contributions and state', load: () => import('./plugins-command.js').then((m) => m.default) },
};

export const root = defineGroup({
  name: 'trellis',
  summary: `trellis ${SDK_VERSION}: plugin SDK with a load balancer, a pub/sub broker and a Chord DHT`,
  subcommands: Object.fromEntries(Object.entries(commands).map(([name, c]) => [name, c.load])),
});

function rootHelp(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  return [
    root.summary,
    '',
    'Usage: trellis <command> [options]',
    '',
    'Commands:',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'Options:',
    '  -h, --help     show help (also: trellis <command> --help)',
    '  -v, --version  print the version',
    '',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [first] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(rootHelp());
    return first === undefined ? 2 : 0;
  }
  if (first === '--version' || first === '-v') {
    process.stdout.write(`${SDK_VERSION}\n`);
    return 0;
  }
  if (first.startsWith('-')) {
    process.stderr.write(`trellis: unknown option '${first}' (see "trellis --help")\n`);
    return 2;
  }
  return runCommand('trellis', root, argv, { stdout: process.stdout, stderr: process.stderr, signal: shutdownSignal() });
}

const code = await main(process.argv.slice(2));
process.exitCode = code;
