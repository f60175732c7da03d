// The live view: one EventSource feeding three panels. Every number on the page comes from the
// demo server's snapshots of the real engines; nothing here invents data.
const $ = (sel) => document.querySelector(sel);
const SVG = 'http://www.w3.org/2000/svg';
const COLORS = ['#4fb3ff', '#3ecf8e', '#f5a623', '#ff6b6b', '#c678dd', '#56d4dd', '#e5c07b', '#98c379'];
const HISTORY = 120;

const state = {
  samples: [], // { t, rates: Map<id, req/s> }
  last: undefined, // previous balancer snapshot, for deltas
  switches: [], // { t, strategy }
  strategy: undefined,
  selectedNode: undefined,
  chord: undefined,
  lookup: undefined,
};

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith('svg:') ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

function fmt(n, digits = 1) {
  return n === null || n === undefined || Number.isNaN(n) ? '–' : Number(n).toFixed(digits);
}

function showPanel(id, snapshot) {
  const panel = document.getElementById(id);
  const box = panel.querySelector('.unavailable');
  const body = panel.querySelector('.body');
  if (snapshot && snapshot.available) {
    box.hidden = true;
    body.hidden = false;
    panel.dataset.ready = 'true';
    return true;
  }
  box.hidden = false;
  box.textContent = !snapshot ? 'waiting for data…' : snapshot.reason === 'starting…' ? 'starting…' : `not running: ${snapshot.reason}`;
  body.hidden = true;
  panel.dataset.ready = 'false';
  return false;
}

// ------------------------------------------------------------------ balancer

function colorOf(ids, id) {
  return COLORS[ids.indexOf(id) % COLORS.length];
}

function renderBalancer(b, t) {
  if (!showPanel('balancer', b)) return;
  const link = $('#lb-url');
  link.textContent = b.url;
  link.href = b.url + '/100';
  const select = $('#strategy');
  const options = [...select.options].map((o) => o.value).join();
  if (options !== b.strategies.join()) {
    select.replaceChildren(...b.strategies.map((s) => el('option', { value: s, text: s })));
  }
  if (document.activeElement !== select) select.value = b.strategy;
  if (state.strategy !== undefined && state.strategy !== b.strategy) state.switches.push({ t, strategy: b.strategy });
  state.strategy = b.strategy;
  $('#balancer').dataset.strategy = b.strategy;

  const ids = b.backends.map((x) => x.id);
  // The first frames can arrive back to back (connect + timer); a tiny interval would spike the rate.
  if (state.last && t - state.last.t < 100) return finishBalancer(b, ids);
  if (state.last) {
    const dt = (t - state.last.t) / 1000;
    if (dt > 0) {
      const rates = new Map();
      for (const x of b.backends) {
        const before = state.last.byId.get(x.id);
        rates.set(x.id, before === undefined ? 0 : Math.max(0, x.requests - before) / dt);
      }
      state.samples.push({ t, rates });
      if (state.samples.length > HISTORY) state.samples.shift();
      while (state.switches.length && state.switches[0].t < state.samples[0].t) state.switches.shift();
    }
  }
  state.last = { t, byId: new Map(b.backends.map((x) => [x.id, x.requests])) };
  finishBalancer(b, ids);
}

function finishBalancer(b, ids) {

  // Rows are kept and updated in place, so the stop/start buttons never move under the pointer.
  const tbody = $('#backends');
  if ([...tbody.rows].map((r) => r.dataset.backend).join() !== ids.join()) {
    tbody.replaceChildren(
      ...b.backends.map((x) =>
        el('tr', { 'data-backend': x.id },
          el('td', {}, el('span', { class: 'swatch', style: `background:${colorOf(ids, x.id)}` }), x.id),
          ...Array.from({ length: 6 }, () => el('td')),
          el('td', {}, el('button', { class: 'toggle', 'data-backend': x.id })),
        ),
      ),
    );
  }
  for (const x of b.backends) {
    const row = tbody.querySelector(`tr[data-backend="${x.id}"]`);
    const cells = row.children;
    cells[1].className = `health ${x.healthy ? 'up' : 'down'}`;
    cells[1].textContent = x.healthy ? 'up' : 'down';
    cells[1].title = x.downReason ?? '';
    cells[2].textContent = x.active;
    cells[3].textContent = x.requests;
    cells[4].textContent = x.errors;
    cells[5].textContent = fmt(x.meanMs);
    cells[6].textContent = fmt(x.p99Ms);
    const button = cells[7].firstChild;
    button.textContent = x.running ? 'stop' : 'start';
    button.dataset.running = String(x.running);
  }
  const rps = state.samples.length ? [...state.samples.at(-1).rates.values()].reduce((a, c) => a + c, 0) : 0;
  $('#lb-totals').textContent = `${b.totals.requests} requests, ${b.totals.errors} errors, ${fmt(rps)} req/s now`;
  drawChart(ids);
}

function drawChart(ids) {
  const svg = $('#chart');
  const W = 600, H = 200, pad = 4;
  const samples = state.samples;
  const max = Math.max(1, ...samples.flatMap((s) => [...s.rates.values()]));
  const x = (i) => pad + (i / (HISTORY - 1)) * (W - 2 * pad);
  const y = (v) => H - pad - (v / max) * (H - 2 * pad);
  const children = [];
  for (const frac of [0.25, 0.5, 0.75]) {
    children.push(el('svg:line', { x1: 0, x2: W, y1: y(max * frac), y2: y(max * frac), stroke: '#2a333d', 'stroke-width': 1 }));
  }
  children.push(el('svg:text', { x: W - 6, y: 14, 'text-anchor': 'end', fill: '#8a96a3', 'font-size': 11, text: `${fmt(max, 0)}/s` }));
  const offset = HISTORY - samples.length;
  for (const [k, sw] of state.switches.entries()) {
    // A switch older than the window has scrolled off the chart.
    if (!samples.length || sw.t < samples[0].t) continue;
    const i = samples.findIndex((s) => s.t >= sw.t);
    if (i < 0) continue;
    const sx = x(offset + i);
    children.push(el('svg:line', { class: 'switch', x1: sx, x2: sx, y1: 0, y2: H, stroke: '#d9e1e8', 'stroke-dasharray': '4 4', 'stroke-width': 1 }));
    // Stagger labels so switches close together stay readable.
    children.push(el('svg:text', { x: sx + 4, y: H - 8 - 14 * (k % 3), fill: '#d9e1e8', 'font-size': 11, text: sw.strategy }));
  }
  for (const id of ids) {
    const points = samples.map((s, i) => `${x(offset + i).toFixed(1)},${y(s.rates.get(id) ?? 0).toFixed(1)}`).join(' ');
    if (points) children.push(el('svg:polyline', { 'data-backend': id, points, fill: 'none', stroke: colorOf(ids, id), 'stroke-width': 2 }));
  }
  svg.replaceChildren(...children);
  svg.dataset.samples = String(samples.length);
  $('#legend').replaceChildren(...ids.map((id) => el('span', {}, el('span', { class: 'swatch', style: `background:${colorOf(ids, id)}` }), id)));
}

$('#backends').addEventListener('click', async (e) => {
  const button = e.target.closest?.('button.toggle');
  if (!button) return;
  button.disabled = true;
  const running = button.dataset.running !== 'true';
  const res = await fetch('/api/backend', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: button.dataset.backend, running }) });
  button.disabled = false;
  if (!res.ok) alert(`${running ? 'starting' : 'stopping'} the back-end failed: ${(await res.json()).error}`);
});

$('#strategy').addEventListener('change', async (e) => {
  const strategy = e.target.value;
  const res = await fetch('/api/strategy', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ strategy }) });
  if (!res.ok) alert(`switching strategy failed: ${(await res.json()).error}`);
});

// -------------------------------------------------------------------- broker

// The topic tree's values come straight from the broker over its WebSocket transport: the page is
// a broker client (protocol v1 frames, JSON codec) subscribed to "/", so it sees every last value
// and every message as a subscriber does. The snapshot adds the meta (subscribers, rates).
const live = { url: null, values: new Map(), messages: 0, pending: new Uint8Array(0), snapshot: undefined, scheduled: false };

function brokerFrame(type, body) {
  const f = new Uint8Array(5 + body.length);
  new DataView(f.buffer).setUint32(0, 1 + body.length);
  f[4] = type;
  f.set(body, 5);
  return f;
}

function connectBrokerWs(url) {
  if (live.url === url) return;
  live.url = url;
  const status = (s) => {
    const e = $('#broker-ws');
    e.dataset.state = s;
    e.textContent = `WebSocket: ${s}`;
  };
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => {
    status('open');
    ws.send(brokerFrame(0x01, new Uint8Array([1, 0, 2]))); // HELLO v1, JSON, consumer
    const topic = new TextEncoder().encode('/');
    const body = new Uint8Array(6 + topic.length);
    new DataView(body.buffer).setUint32(0, 1);
    new DataView(body.buffer).setUint16(4, topic.length);
    body.set(topic, 6);
    ws.send(brokerFrame(0x20, body)); // SUBSCRIBE id 1 "/"
  };
  ws.onmessage = (ev) => {
    const chunk = new Uint8Array(ev.data);
    const buf = new Uint8Array(live.pending.length + chunk.length);
    buf.set(live.pending);
    buf.set(chunk, live.pending.length);
    const view = new DataView(buf.buffer);
    let off = 0;
    const text = new TextDecoder();
    while (buf.length - off >= 4) {
      const len = view.getUint32(off);
      if (buf.length - off - 4 < len) break;
      const type = buf[off + 4];
      if (type === 0x40) {
        const tlen = view.getUint16(off + 6);
        const topic = text.decode(buf.subarray(off + 8, off + 8 + tlen));
        live.values.set(topic, JSON.parse(text.decode(buf.subarray(off + 8 + tlen, off + 4 + len))));
        live.messages++;
      }
      off += 4 + len;
    }
    live.pending = buf.slice(off);
    $('#broker-ws').dataset.messages = String(live.messages);
    if (!live.scheduled && live.snapshot) {
      live.scheduled = true;
      requestAnimationFrame(() => {
        live.scheduled = false;
        renderBroker(live.snapshot);
      });
    }
  };
  ws.onclose = () => {
    status('closed');
    live.url = null;
    setTimeout(() => live.snapshot && connectBrokerWs(live.snapshot.wsUrl), 1000);
  };
}

function renderBroker(b) {
  if (!showPanel('broker', b)) return;
  live.snapshot = b;
  if (b.wsUrl) connectBrokerWs(b.wsUrl);
  $('#broker-url').textContent = b.url;
  const encodes = Object.entries(b.encodes).map(([codec, n]) => `${codec} ${n}`).join(', ');
  $('#broker-totals').textContent = `${b.totals.clients} clients · ${b.totals.subscriptions} subscriptions · ${b.totals.messagesIn} messages in · ${b.totals.messagesOut} out · encodings: ${encodes || 'none yet'}`;
  // Build the tree of path segments; topics holding a value carry it, parents are just folders.
  const root = { children: new Map() };
  const nodeOf = (path) => {
    let node = root;
    for (const seg of path.split('/').filter(Boolean)) {
      if (!node.children.has(seg)) node.children.set(seg, { children: new Map() });
      node = node.children.get(seg);
    }
    return node;
  };
  for (const topic of b.topics) nodeOf(topic.topic).topic = topic;
  for (const [path, value] of live.values) nodeOf(path).live = { value };
  const render = (node, path) =>
    [...node.children.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([seg, child]) => {
      const full = `${path}/${seg}`;
      const t = child.topic;
      const v = child.live;
      const li = el('li', { 'data-topic': full, ...(v ? { 'data-ws': 'true' } : {}) },
        el('span', { class: 'seg', text: `/${seg}` }),
        v ? el('span', { class: 'val', 'data-testid': 'topic-value', text: JSON.stringify(v.value).slice(0, 60) }) : null,
        t ? el('span', { class: 'meta', text: `${t.subscribers} sub · ${fmt(t.rate)} msg/s · ${t.messages} msgs` }) : null,
      );
      if (child.children.size) li.append(el('ul', {}, ...render(child, full)));
      return li;
    });
  $('#topics').replaceChildren(...render(root, ''));
}

// --------------------------------------------------------------------- chord

const R = 200;
function angleOf(id, bits) {
  return (Number(id) / 2 ** bits) * 2 * Math.PI - Math.PI / 2;
}
function pos(id, bits, r = R) {
  const a = angleOf(id, bits);
  return [r * Math.cos(a), r * Math.sin(a)];
}
/** A chord between two ring points, bowed toward the centre so arrows stay readable. */
function arc(from, to, bits, cls, extra = {}) {
  const [x1, y1] = pos(from, bits);
  const [x2, y2] = pos(to, bits);
  const mx = (x1 + x2) / 2 * 0.6, my = (y1 + y2) / 2 * 0.6;
  // End the arrow at the target circle's edge, not its centre, so the head stays visible.
  const dx = x2 - mx, dy = y2 - my, len = Math.hypot(dx, dy) || 1;
  const ex = x2 - (dx / len) * 10, ey = y2 - (dy / len) * 10;
  return el('svg:path', { class: cls, d: `M${x1.toFixed(1)},${y1.toFixed(1)} Q${mx.toFixed(1)},${my.toFixed(1)} ${ex.toFixed(1)},${ey.toFixed(1)}`, ...extra });
}

function renderChord(c) {
  if (!showPanel('chord', c)) return;
  state.chord = c;
  $('#chord-info').textContent = `${c.nodes.length} nodes · m = ${c.bits} · ids 0…${2 ** c.bits - 1} · ${c.nodes.reduce((a, n) => a + n.keys, 0)} keys stored (with replicas) · ${c.traffic.puts} puts, ${c.traffic.gets} gets (${c.traffic.hits} found), ${c.traffic.failures} failed`;
  // Redraw the ring only when its shape changed (not on every key count), so a click never lands
  // on a node being replaced.
  const shape = c.nodes.map((n) => [n.id, n.successor, n.fingers]);
  const key = JSON.stringify([c.bits, shape, state.selectedNode, state.lookup?.id, state.lookup?.path, state.lookup?.shown]);
  if (key === state.chordKey) return renderNodeDetail();
  state.chordKey = key;
  const svg = $('#ring');
  const bits = c.bits;
  const defs = el('svg:defs', {},
    ...[['succ', '#4fb3ff'], ['finger', '#f5a623'], ['hop', '#c678dd']].map(([id, color]) =>
      el('svg:marker', { id: `arrow-${id}`, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto-start-reverse' },
        el('svg:path', { d: 'M0,0 L10,5 L0,10 z', fill: color }))));
  const children = [defs, el('svg:circle', { cx: 0, cy: 0, r: R, fill: 'none', stroke: '#2a333d', 'stroke-width': 2 })];
  for (const n of c.nodes) {
    if (n.successor !== null && n.successor !== n.id) children.push(arc(n.id, n.successor, bits, 'succ', { 'marker-end': 'url(#arrow-succ)', 'data-from': n.id, 'data-to': n.successor }));
  }
  const selected = c.nodes.find((n) => n.id === state.selectedNode);
  if (selected) {
    const seen = new Set();
    for (const f of selected.fingers) {
      if (f === null || f === selected.id || seen.has(f)) continue;
      seen.add(f);
      children.push(arc(selected.id, f, bits, 'finger', { 'marker-end': 'url(#arrow-finger)', 'data-testid': 'finger-arrow', 'data-to': f }));
    }
  }
  const lookup = state.lookup;
  if (lookup) {
    const [kx, ky] = pos(lookup.id, bits, R + 22);
    children.push(el('svg:circle', { class: 'key', cx: kx, cy: ky, r: 5 }), el('svg:text', { x: kx + 7, y: ky, fill: '#c678dd', 'font-size': 11, text: `key ${lookup.key} → ${lookup.id}` }));
    for (let i = 0; i < Math.min(lookup.shown, lookup.path.length - 1); i++) {
      children.push(arc(lookup.path[i], lookup.path[i + 1], bits, 'hop', { 'marker-end': 'url(#arrow-hop)', 'data-testid': 'hop-arrow' }));
    }
  }
  let lastLabel = -Infinity;
  let pushed = false;
  for (const n of c.nodes) {
    const [x, y] = pos(n.id, bits);
    // Neighbours closer than ~3° would print their ids on top of each other: move every other one out.
    const crowded = (n.id - lastLabel) / 2 ** bits < 0.01;
    pushed = crowded && !pushed;
    lastLabel = n.id;
    const [lx, ly] = pos(n.id, bits, R + (pushed ? 44 : 24));
    children.push(el('svg:g', { class: `node${n.id === state.selectedNode ? ' selected' : ''}`, 'data-node': n.id },
      el('svg:circle', { cx: x, cy: y, r: 9 }),
      el('svg:text', { x: lx, y: ly + 4, 'text-anchor': 'middle', text: n.id })));
  }
  svg.replaceChildren(...children);
  renderNodeDetail();
}

function renderNodeDetail() {
  const c = state.chord;
  const n = c?.nodes.find((x) => x.id === state.selectedNode);
  const box = $('#node-detail');
  if (!n) return;
  box.classList.remove('muted');
  box.replaceChildren(
    el('div', { text: `node ${n.id} at ${n.address} · predecessor ${n.predecessor ?? '–'} · successor ${n.successor ?? '–'} · ${n.keys} keys` }),
    el('table', { class: 'grid', 'data-testid': 'finger-table' },
      el('thead', {}, el('tr', {}, el('th', { text: 'i' }), el('th', { text: 'start' }), el('th', { text: 'node' }))),
      el('tbody', {}, ...n.fingers.map((f, i) => el('tr', {}, el('td', { text: i + 1 }), el('td', { text: (n.id + 2 ** i) % 2 ** c.bits }), el('td', { text: f ?? '–' }))))),
  );
}

// One delegated listener: node groups are redrawn, the svg stays.
$('#ring').addEventListener('click', (e) => {
  const g = e.target.closest?.('g.node');
  if (g) selectNode(Number(g.getAttribute('data-node')));
});

function selectNode(id) {
  state.selectedNode = id;
  if (state.chord) renderChord(state.chord);
}

$('#lookup-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const key = $('#lookup-key').value;
  const list = $('#hops');
  list.replaceChildren(el('li', { text: 'tracing…' }));
  const res = await fetch('/api/lookup', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key, from: state.selectedNode ?? null }) });
  const body = await res.json();
  if (!res.ok) {
    list.replaceChildren(el('li', { text: `lookup failed: ${body.error}` }));
    return;
  }
  state.lookup = { ...body, shown: 0 };
  list.replaceChildren(
    ...body.path.map((id, i) => el('li', { class: 'pending', 'data-hop': i, text: i === 0 ? `start at node ${id}` : `hop ${i} → node ${id}` })),
    el('li', { class: 'pending', 'data-hop': body.path.length, text: `key "${body.key}" (id ${body.id}) is owned by node ${body.owner}${body.found ? `, value ${JSON.stringify(body.value)}` : ', no value stored'}` }),
  );
  // Draw the path hop by hop.
  for (let i = 0; i <= body.path.length; i++) {
    list.querySelector(`[data-hop="${i}"]`)?.classList.remove('pending');
    state.lookup.shown = i;
    if (state.chord) renderChord(state.chord);
    await new Promise((r) => setTimeout(r, 350));
  }
  list.dataset.done = 'true';
});

// ------------------------------------------------------------------ the feed

const conn = $('#conn');
const events = new EventSource('/events');
events.addEventListener('open', () => {
  conn.dataset.state = 'open';
  conn.textContent = 'live';
});
events.addEventListener('error', () => {
  conn.dataset.state = 'closed';
  conn.textContent = 'disconnected — retrying';
});
events.addEventListener('snapshot', (e) => {
  const snap = JSON.parse(e.data);
  renderBalancer(snap.balancer, snap.t);
  renderBroker(snap.broker);
  renderChord(snap.chord);
  document.body.dataset.snapshots = String(Number(document.body.dataset.snapshots ?? 0) + 1);
});
