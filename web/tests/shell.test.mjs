// The web shell's plain parts without a browser: the event-stream parser,
// the reconnect back-off, the live client against a small server that
// fails, goes silent and resumes, and the tiles a change touched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { sseParser, backoff, follow, BACKOFF_MAX_MS } from '../lib/live.js';
import { touchedTiles, changeBoxes } from '../lib/tiles.js';

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
