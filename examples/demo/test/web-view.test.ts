/**
 * The live view in a real browser: Debian chromium driven headless by playwright-core. Each panel
 * must show real data from the running demo and react: switching the strategy changes the
 * balancer, clicking a node draws its fingers, a lookup is drawn hop by hop.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger } from '@trellis/sdk';
import { startDemo, type RunningDemo } from '../src/demo.js';
import { starters } from '../src/starters.js';
import type { Snapshot } from '../src/view-model.js';

// The page functions below run in the browser; the suite's tsconfig has no DOM lib.
declare const document: any;

const CHROMIUM = '/usr/bin/chromium';
// The README's screenshot is refreshed on request (TRELLIS_SCREENSHOT=1) so a test run never dirties the checkout.
const KEEP_SCREENSHOT = process.env.TRELLIS_SCREENSHOT === '1';
const SCREENSHOT = KEEP_SCREENSHOT ? fileURLToPath(new URL('../screenshot.png', import.meta.url)) : join(tmpdir(), `trellis-demo-${process.pid}.png`);
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

if (!existsSync(CHROMIUM)) {
  console.log(`SKIP web view browser test: ${CHROMIUM} is absent (apt-get install -y chromium)`);
  test.skip('the live view renders every panel from the running demo and reacts', () => {});
} else {
  test('the live view renders every panel from the running demo and reacts', async () => {
    const { chromium } = await import('playwright-core');
    let demo: RunningDemo | undefined;
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    try {
      demo = await startDemo(starters, { basePort: 0, nodes: 6, intervalMs: 250, rate: 40, logger: createLogger('demo', 'error') });
      assert.equal(demo.failures, {}, `every part of the demo started: ${JSON.stringify(demo.failures)}`);
      const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(demo.webUrl);
      await page.waitForSelector('#conn[data-state="open"]');

      // Balancer: four back-ends with counters moving, and a chart with samples.
      await page.waitForSelector('#balancer[data-ready="true"]');
      await page.waitForFunction(() => document.querySelectorAll('#backends tr').length === 4);
      await page.waitForFunction(() => [...document.querySelectorAll('#backends tr')].filter((tr) => Number(tr.children[3]!.textContent) > 0).length >= 3, undefined, { timeout: 15_000 });
      await page.waitForFunction(() => Number(document.querySelector('#chart')!.getAttribute('data-samples')) >= 4);
      const rows = await page.$$eval('#backends tr', (trs) => trs.map((tr) => ({ id: tr.getAttribute('data-backend'), health: tr.children[1]!.textContent })));
      const stats = demo.model.snapshot().balancer;
      assert.ok(stats.available);
      if (stats.available) assert.equal(rows.map((r) => r.id), stats.backends.map((b) => b.id), 'the table lists the balancer\'s real back-ends');
      assert.ok(rows.every((r) => r.health === 'up'));
      const options = await page.$$eval('#strategy option', (os) => os.map((o) => (o as unknown as { value: string }).value));
      for (const id of ['round-robin', 'least-connections', 'n-to-1', 'p2c-least-request']) assert.ok(options.includes(id), `strategy menu lists ${id}`);

      // For the README's screenshot, let the chart fill with a stretch of round robin first.
      if (KEEP_SCREENSHOT) await page.waitForTimeout(8_000);

      // Routed = finished + in flight, so requests picked before a change and finishing after it do not count twice.
      const routed = (v: Snapshot['balancer']) => (v.available ? v.backends.map((b) => b.requests + b.active) : []);

      // Stopping a back-end from the page (under round robin, so the chart shows its share move):
      // the balancer's health checks mark it down and route around it; starting it brings it back.
      const last = rows.at(-1)!.id!;
      await page.click(`#backends button[data-backend="${last}"]`);
      await page.waitForSelector(`#backends tr[data-backend="${last}"] td.health.down`, { timeout: 15_000 });
      if (KEEP_SCREENSHOT) await page.waitForTimeout(5_000);
      const down = demo.model.snapshot().balancer;
      assert.ok(down.available && down.backends.find((b) => b.id === last)?.healthy === false, 'the engine marked it down');
      assert.is(await page.textContent(`#backends button[data-backend="${last}"]`), 'start');
      const whileDown = routed(demo.model.snapshot().balancer);
      await page.waitForTimeout(1000);
      const laterDown = routed(demo.model.snapshot().balancer);
      assert.is(laterDown.at(-1), whileDown.at(-1), 'nothing is routed to the down back-end');
      assert.ok(laterDown.slice(0, -1).reduce((a, n) => a + n, 0) - whileDown.slice(0, -1).reduce((a, n) => a + n, 0) >= 10, 'the others took the load');
      await page.click(`#backends button[data-backend="${last}"]`);
      await page.waitForSelector(`#backends tr[data-backend="${last}"] td.health.up`, { timeout: 15_000 });
      const up = demo.model.snapshot().balancer;
      assert.ok(up.available && up.backends.find((b) => b.id === last)?.healthy === true, 'the engine marked it up again');
      if (KEEP_SCREENSHOT) await page.waitForTimeout(5_000);

      // Switching to n-to-1 from the page: the balancer switches, and from then on only the first back-end gets requests.
      await page.selectOption('#strategy', 'n-to-1');
      await page.waitForSelector('#balancer[data-strategy="n-to-1"]');
      const current = demo.model.snapshot().balancer;
      assert.ok(current.available && current.strategy === 'n-to-1', 'the engine itself runs n-to-1 now');
      const before = routed(current);
      await page.waitForTimeout(1500);
      const after = routed(demo.model.snapshot().balancer);
      assert.ok(after[0]! - before[0]! >= 10, `the first back-end took the load (${before[0]} → ${after[0]})`);
      assert.equal(after.slice(1), before.slice(1), 'no new request went to any other back-end');
      await page.waitForSelector('#chart line.switch', { state: 'attached' });

      // The plugin author's strategy, loaded from examples/custom-strategy, is one click away too.
      await page.selectOption('#strategy', 'p2c-least-request');
      await page.waitForSelector('#balancer[data-strategy="p2c-least-request"]');
      const p2c = demo.model.snapshot().balancer;
      assert.ok(p2c.available && p2c.strategy === 'p2c-least-request');
      assert.is(demo.host.plugin('p2c-least-request')?.state, 'active');

      // Broker: the sample topics with last values, subscriber counts and rates.
      await page.waitForSelector('#broker[data-ready="true"]');
      for (const topic of ['/temp', '/msg', '/weather/temperature', '/weather/humidity', '/weather/wind', '/weather2/temperature/celsius']) {
        await page.waitForSelector(`#topics li[data-topic="${topic}"] [data-testid="topic-value"]`);
      }
      const brokerView = demo.model.snapshot().broker;
      assert.ok(brokerView.available);
      const tempText = await page.textContent('#topics li[data-topic="/temp"] > .meta');
      assert.match(tempText!, /1 sub/, 'one consumer on /temp');
      const msgs = await page.textContent('#broker-totals');
      assert.match(msgs!, /[1-9]\d* messages in/);

      // The topic tree's values arrive over the broker's WebSocket transport: the page is a broker
      // client subscribed to "/". A value published over TCP now shows up through it.
      await page.waitForSelector('#broker-ws[data-state="open"]');
      assert.ok(await page.$('#topics li[data-topic="/temp"][data-ws="true"]'), 'values come from the WebSocket subscription');
      const { connect } = await import('@trellis/sdk/broker');
      const producer = await connect({ port: Number(brokerView.url.split(':').pop()), codec: 'xml', plugins: demo.host, role: 'producer' });
      try {
        await producer.publish('/from-test/greeting', { text: 'over WebSocket', n: 7 }, { ack: true });
        await page.waitForSelector('#topics li[data-topic="/from-test/greeting"][data-ws="true"] [data-testid="topic-value"]');
        const shown = await page.textContent('#topics li[data-topic="/from-test/greeting"] [data-testid="topic-value"]');
        assert.equal(JSON.parse(shown!), { text: 'over WebSocket', n: 7 });
      } finally {
        await producer.close();
      }

      // Chord: one circle node per ring member; clicking one draws its finger arrows and table.
      await page.waitForSelector('#chord[data-ready="true"]');
      await page.waitForFunction(() => document.querySelectorAll('#ring g.node').length === 6);
      const ring = demo.model.snapshot().chord;
      assert.ok(ring.available);
      if (!ring.available) return;
      const ids = await page.$$eval('#ring g.node', (gs) => gs.map((g) => Number(g.getAttribute('data-node'))));
      assert.equal(ids.sort((a, b) => a - b), ring.nodes.map((n) => n.id));
      await page.waitForFunction(() => document.querySelectorAll('#ring path.succ').length === 6, undefined, { timeout: 15_000 });
      // The most isolated node: ids a few units apart are drawn on top of each other.
      const gap = (i: number) => {
        const n = ring.nodes.length;
        const size = 2 ** ring.bits;
        const id = ring.nodes[i]!.id;
        return Math.min((id - ring.nodes[(i + n - 1) % n]!.id + size) % size, (ring.nodes[(i + 1) % n]!.id - id + size) % size);
      };
      const chosen = ring.nodes[ring.nodes.map((_, i) => i).sort((a, b) => gap(b) - gap(a))[0]!]!;
      await page.click(`#ring g.node[data-node="${chosen.id}"] circle`);
      await page.waitForSelector(`#ring g.node.selected[data-node="${chosen.id}"]`);
      await page.waitForSelector('[data-testid="finger-table"]');
      const fingerRows = await page.$$eval('[data-testid="finger-table"] tbody tr', (trs) => trs.length);
      assert.is(fingerRows, ring.bits);
      await page.waitForSelector('#ring path.finger');

      // A lookup of "A" from the chosen node, drawn hop by hop, ends at the owner holding [0, 1, 2].
      await page.fill('#lookup-key', 'A');
      await page.click('#lookup-form button');
      await page.waitForSelector('#hops[data-done="true"]', { timeout: 15_000 });
      const hopTexts = await page.$$eval('#hops li', (lis) => lis.map((li) => li.textContent ?? ''));
      assert.match(hopTexts[0]!, new RegExp(`start at node ${chosen.id}\\b`));
      assert.match(hopTexts.at(-1)!, /value \[0,1,2\]/);
      const arrows = await page.$$eval('#ring path.hop', (ps) => ps.length);
      assert.is(arrows, hopTexts.length - 2, 'one arrow per hop');

      if (KEEP_SCREENSHOT) await page.waitForTimeout(6_000);
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      assert.ok(statSync(SCREENSHOT).size > 10_000, 'the screenshot holds a rendered page');
      if (!KEEP_SCREENSHOT) rmSync(SCREENSHOT);
      assert.equal(errors, [], 'no script errors on the page');
    } finally {
      await browser.close();
      await demo?.close();
    }
  });
}

test.run();
