// The web shell's plain parts without a browser: the event-stream parser,
// the reconnect back-off, the live client against a small server that
// fails, goes silent and resumes (at the heartbeat period the server
// names), the tiles a change touched, the style's colours and sizes, and
// the summary's figures and reloader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { sseParser, backoff, follow, BACKOFF_MAX_MS } from '../lib/live.js';
import { touchedTiles, changeBoxes } from '../lib/tiles.js';
import { matchColours, scaleSize } from '../lib/style.js';
import { figures, reloader } from '../lib/summary.js';

test('the parser reads events split anywhere, with CRLF, comments and ids', () => {
  const events = [];
  let comments = 0;
  const feed = sseParser({ onEvent: (e) => events.push(e), onComment: () => { comments += 1; } });
  const text = ':\r\n\r\nevent: change\r\nid: 7\r\ndata: {"seq":7,\r\ndata: "x":1}\r\n\r\n:\n\nevent: reset\nid: 9\ndata: {}\n\ndata: no type\n\n';
  for (let i = 0; i < text.length; i += 3) feed(text.slice(i, i + 3));
  assert.equal(comments, 2);
  assert.deepEqual(events, [
    { type: 'change', id: '7', data: '{"seq":7,\n"x":1}' },
    { type: 'reset', id: '9', data: '{}' },
    { type: 'message', id: null, data: 'no type' },
  ]);
});

test('the back-off doubles from a second and stops growing at its cap', () => {
  const mid = () => 0.5; // no jitter
  assert.deepEqual([0, 1, 2, 3].map((n) => backoff(n, mid)), [1000, 2000, 4000, 8000]);
  assert.equal(backoff(10, mid), BACKOFF_MAX_MS);
  assert.equal(backoff(1e6, mid), BACKOFF_MAX_MS);
  assert.ok(backoff(10, () => 1) <= BACKOFF_MAX_MS * 1.2);
});

test('the live client reconnects after a 503 and after silence, resuming from the last event', async () => {
  const seen = []; // Last-Event-ID of each request
  let request = 0;
  const server = createServer((req, res) => {
    request += 1;
    seen.push(req.headers['last-event-id'] ?? null);
    if (request === 1) { res.writeHead(503, { 'content-type': 'application/problem+json' }); res.end('{}'); return; }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    if (request === 2) {
      // One change, then silence: the watchdog must give up on it.
      res.write('event: change\nid: 41\ndata: {"seq":41,"layer":"incidents"}\n\n');
      return;
    }
    res.write(':\n\nevent: change\nid: 42\ndata: {"seq":42,"layer":"rescue_teams"}\n\n');
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const url = `http://127.0.0.1:${server.address().port}/api/events`;
  const batches = [];
  const states = [];
  const feed = follow({ url, heartbeatMs: 150, coalesceMs: 10,
    onChange: (changes) => batches.push(changes.map((c) => c.seq)),
    onState: (s) => states.push(s.live) });
  try {
    const deadline = Date.now() + 10_000;
    while (batches.length < 2 && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 50));
    assert.deepEqual(batches, [[41], [42]]);
    assert.deepEqual(seen, [null, null, '41'], 'the third request resumes after event 41');
    assert.ok(states.includes(false) && states.at(-1) === true, `went not-live and live again: ${states}`);
    assert.equal(feed.lastEventId, '42');
  } finally {
    feed.stop();
    server.closeAllConnections();
    server.close();
  }
});

test('a change touches its own boxes and those of the other layers it wrote', () => {
  const change = {
    layer: 'rescue_teams', bbox_before: [118.30, 35.00, 118.30, 35.00], bbox_after: [118.31, 35.00, 118.31, 35.00],
    also: [{ layer: 'incidents', bbox_before: [118.40, 35.10, 118.40, 35.10], bbox_after: [118.40, 35.10, 118.40, 35.10] }],
  };
  const boxes = changeBoxes(change);
  assert.equal(boxes.length, 4);
  const view = [118.0, 34.8, 118.6, 35.3];
  const tiles = touchedTiles(boxes, view, 12);
  const keys = tiles.map(({ z, x, y }) => `${z}/${x}/${y}`);
  assert.equal(new Set(keys).size, keys.length, 'each tile once');
  // At z12 the team and the incident lie in different tiles, both reloaded,
  // and nothing between them is.
  const z12 = tiles.filter((t) => t.z === 12);
  assert.ok(z12.length >= 2 && z12.length <= 4, JSON.stringify(z12));
  assert.deepEqual(touchedTiles([118.30, 35.00, 118.30, 35.00], view, 0), [{ z: 0, x: 0, y: 0 }], 'one box still works');
  assert.equal(changeBoxes({ layer: 'x' }), null, 'a change that says nowhere reloads everything');
});

test('the live client follows the heartbeat period the server names and says when it reconnected', async () => {
  let request = 0;
  const server = createServer((req, res) => {
    request += 1;
    // 0.2 s: the client, told to expect a minute, must give up on the
    // silence within 0.4 s because the server said so.
    res.writeHead(200, { 'content-type': 'text/event-stream', 'x-heartbeat-seconds': '0.2' });
    if (request === 1) res.write('event: change\nid: 5\ndata: {"seq":5}\n\n');
    else res.write(':\n\n');
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const opens = [];
  const states = [];
  const started = Date.now();
  const feed = follow({ url: `http://127.0.0.1:${server.address().port}/api/events`, heartbeatMs: 60_000, coalesceMs: 10,
    onOpen: (o) => opens.push(o), onState: (s) => states.push([s.live, Date.now() - started]) });
  try {
    const deadline = Date.now() + 8_000;
    while (opens.length < 2 && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 20));
    assert.deepEqual(opens.map((o) => o.resumed), [false, true]);
    assert.equal(opens[0].heartbeatMs, 200);
    assert.equal(feed.heartbeatMs, 200);
    const dead = states.find(([live]) => !live);
    assert.ok(dead && dead[1] < 2_000, `declared dead after ${dead?.[1]} ms of silence`);
  } finally {
    feed.stop();
    server.closeAllConnections();
    server.close();
  }
});

test('the colours of a match expression, and sizes scaled whatever their expression', () => {
  const m = matchColours(['match', ['get', 'status'], 'standby', '#2e7d32', ['dispatched', 'x'], '#f57c00', '#9e9e9e']);
  assert.equal(m.property, 'status');
  assert.deepEqual([...m.colours], [['standby', '#2e7d32'], ['dispatched', '#f57c00'], ['x', '#f57c00']]);
  assert.equal(m.fallback, '#9e9e9e');
  assert.equal(matchColours('#fff'), null);
  assert.equal(matchColours(['interpolate', ['linear'], ['zoom'], 1, 2, 3, 4]), null);

  assert.equal(scaleSize(7, 2), 14);
  assert.deepEqual(scaleSize(['get', 'r'], 2), ['*', ['get', 'r'], 2]);
  assert.deepEqual(scaleSize(['interpolate', ['linear'], ['zoom'], 7, 12, 12, 18], 2),
    ['interpolate', ['linear'], ['zoom'], 7, 24, 12, 36], 'a zoom curve stays outermost');
  assert.deepEqual(scaleSize(['step', ['zoom'], 1, 10, 3], 2), ['step', ['zoom'], 2, 10, 6]);
  assert.equal(scaleSize('auto', 2), 'auto');
});

test('figures of a summary: every team status and severity counted, unknowns never zero', () => {
  const summary = {
    teams: { by_status: { standby: 3, dispatched: 1 } },
    incidents: { open: 2, open_by_severity: { major: 2 } },
    shelters: { count: 4, capacity: 100, occupancy: 10, free: 90 },
    supplies: { sandbags: { name: '编织袋（沙袋）', unit: '条', available: 500, reserved: 20 } },
  };
  const groups = Object.fromEntries(figures(summary).map((g) => [g.key, g]));
  assert.equal(groups.teams.total, 4);
  assert.equal(groups.teams.rows.find((r) => r.key === 'standby').value, 3);
  assert.deepEqual(groups.incidents.rows.map((r) => [r.key, r.value]),
    [['especially_major', 0], ['major', 2], ['large', 0], ['general', 0]], 'gravest first, zeros where the server counted none');
  assert.equal(groups.shelters.rows.find((r) => r.key === 'free').value, 90);
  const stock = Object.fromEntries(groups.supplies.rows.map((r) => [r.key, r]));
  assert.equal(stock.sandbags.value, 500);
  assert.equal(stock.sandbags.reserved, 20);
  assert.equal(stock.tents.value, null, 'an item no depot holds is unknown, not 0');
  const empty = Object.fromEntries(figures({}).map((g) => [g.key, g]));
  assert.equal(empty.incidents.total, null);
  assert.equal(empty.shelters.rows[0].value, null);
});

test('the reloader runs one load at a time and one more for every burst of calls meanwhile', async () => {
  let running = 0;
  let most = 0;
  let runs = 0;
  const run = reloader(async () => {
    running += 1;
    most = Math.max(most, running);
    runs += 1;
    await new Promise((ok) => setTimeout(ok, 30));
    running -= 1;
  });
  const first = run();
  for (let i = 0; i < 50; i++) run();
  await first;
  assert.equal(runs, 2, 'the first load and one more for the 50 calls during it');
  assert.equal(most, 1, 'never two at once');
  await run();
  assert.equal(runs, 3);
  const failing = [];
  await reloader(async () => { throw new Error('down'); }, { onError: (e) => failing.push(e.message) })();
  assert.deepEqual(failing, ['down']);
});
