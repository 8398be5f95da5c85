// The change stream (`GET /api/events`, Server-Sent Events) for every view.
//
// Read with fetch rather than EventSource: EventSource hides the server's
// heartbeat comments (so a silent dead connection cannot be told from a
// quiet one) and gives up for good after a 5xx answer (a 503 when the
// server holds its stream limit). Here every failure, whatever it is, is
// followed by a reconnect after a capped exponential back-off, for ever,
// resuming from the last event seen (Last-Event-ID), and a watchdog marks
// the feed not live when neither an event nor a heartbeat came for two
// heartbeat periods. The period is the server's: each answer names it in
// its `X-Heartbeat-Seconds` header (`--events-heartbeat`), and the watchdog
// follows it from then on.

/** The heartbeat period assumed until the server names its own (the
 * server's default `events_heartbeat`). */
export const HEARTBEAT_MS = 15_000;
/** The response header naming the server's heartbeat period in seconds. */
export const HEARTBEAT_HEADER = 'x-heartbeat-seconds';
/** First and longest wait before reconnecting. */
export const BACKOFF_MIN_MS = 1_000;
export const BACKOFF_MAX_MS = 30_000;

/** The wait before reconnect attempt `n` (0, 1, …): doubling from
 * BACKOFF_MIN_MS up to BACKOFF_MAX_MS, with ±20 % jitter so a server that
 * restarts is not hit by every client at the same instant. */
export function backoff(n, random = Math.random) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(n, 16));
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** An incremental parser of the `text/event-stream` format (HTML Living
 * Standard §9.2.6): feed it text as it arrives; it calls `onEvent({type,
 * id, data})` per dispatched event and `onComment()` per comment line. */
export function sseParser({ onEvent, onComment }) {
  let buffer = '';
  let data = [];
  let type = '';
  let id = null;
  const line = (text) => {
    if (text === '') {
      if (data.length) onEvent({ type: type || 'message', id, data: data.join('\n') });
      data = [];
      type = '';
      id = null;
      return;
    }
    if (text.startsWith(':')) { onComment?.(text.slice(1)); return; }
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') type = value;
    else if (field === 'id' && !value.includes('\0')) id = value;
  };
  return (chunk) => {
    buffer += chunk;
    let at;
    while ((at = buffer.search(/\r\n|\r|\n/)) >= 0) {
      // A lone \r at the end may be the first half of \r\n: wait for more.
      if (buffer[at] === '\r' && at === buffer.length - 1) break;
      const width = buffer.startsWith('\r\n', at) ? 2 : 1;
      line(buffer.slice(0, at));
      buffer = buffer.slice(at + width);
    }
  };
}

/**
 * Follow the change stream until `stop()`.
 *
 * - `onChange(changes)`: the parsed `change` events of a burst, in order
 *   (a burst is what arrives within `coalesceMs`: an import or a
 *   dispatcher's quick edits become one batch).
 * - `onReset(detail)`: reload what `detail.layers` names (a bulk import
 *   replaced a layer's contents), or everything when it names none (the
 *   server could not replay what was missed).
 * - `onOpen({resumed, heartbeatMs})`: a connection was opened; `resumed`
 *   after an earlier one (reload what is not event-driven, such as
 *   summaries: the missed changes themselves are replayed as events).
 * - `onState({live, since, error, retryIn})`: `live` is false while
 *   disconnected or silent; `since` is when data last arrived.
 *
 * Nothing here grows with the number of events: one parser, one reader
 * and one watchdog timer per connection, and a batch emptied per burst.
 */
export function follow({ url = '/api/events', onChange, onReset, onOpen, onState, coalesceMs = 150,
  heartbeatMs = HEARTBEAT_MS, headers = () => ({}) } = {}) {
  let lastId = null;
  let opened = 0;
  let stopped = false;
  let controller = null;
  let watchdog = null;
  let attempt = 0;
  let since = null;
  let live = false;
  let batch = [];
  let flushTimer = null;

  const state = (patch) => {
    live = patch.live;
    onState?.({ live, since, ...patch });
  };
  const flush = () => {
    flushTimer = null;
    const changes = batch;
    batch = [];
    if (changes.length) onChange?.(changes);
  };
  const arm = () => {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => {
      state({ live: false, error: 'silent' });
      controller?.abort();
    }, 2 * heartbeatMs);
  };
  const heard = () => {
    since = new Date();
    if (!live) state({ live: true });
    arm();
  };
  const dispatch = ({ type, id, data }) => {
    if (id !== null) lastId = id;
    if (type === 'change') {
      let change;
      try { change = JSON.parse(data); } catch { change = null; }
      // An unreadable change is treated as "anything may have changed".
      if (!change) { onReset?.(); return; }
      batch.push(change);
      flushTimer ??= setTimeout(flush, coalesceMs);
    } else if (type === 'reset') {
      let detail;
      try { detail = JSON.parse(data); } catch { detail = {}; }
      // Changes batched before the reset are covered by the reload.
      batch = [];
      clearTimeout(flushTimer);
      flushTimer = null;
      onReset?.(detail ?? {});
    }
  };

  const run = async () => {
    while (!stopped) {
      controller = new AbortController();
      let failure = null;
      try {
        const h = { accept: 'text/event-stream', ...headers() };
        if (lastId !== null) h['last-event-id'] = lastId;
        // A connection attempt that hangs is given up like a silent stream.
        arm();
        const response = await fetch(url, { headers: h, signal: controller.signal, cache: 'no-store' });
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        const announced = Number(response.headers.get(HEARTBEAT_HEADER));
        if (Number.isFinite(announced) && announced > 0) heartbeatMs = announced * 1000;
        attempt = 0;
        heard();
        onOpen?.({ resumed: opened++ > 0, heartbeatMs });
        const parse = sseParser({ onEvent: (e) => { heard(); dispatch(e); }, onComment: heard });
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          heard();
          parse(value);
        }
        failure = 'closed';
      } catch (error) {
        failure = error.name === 'AbortError' ? 'silent' : error.message;
      }
      clearTimeout(watchdog);
      if (stopped) break;
      const retryIn = backoff(attempt++);
      state({ live: false, error: failure, retryIn });
      await new Promise((ok) => setTimeout(ok, retryIn));
    }
  };
  run();
  return {
    stop() {
      stopped = true;
      clearTimeout(watchdog);
      clearTimeout(flushTimer);
      controller?.abort();
    },
    get live() { return live; },
    get lastEventId() { return lastId; },
    get heartbeatMs() { return heartbeatMs; },
  };
}
