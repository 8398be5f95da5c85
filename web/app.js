// The `/` view, the landing page: the one map with its layer list,
// following the change stream, the command centre's figures, and the way
// to the other views (the wall display, the dispatch console, planning).
// Everything it uses is the shared shell in lib/.
import { createMap } from './lib/map.js';
import { follow } from './lib/live.js';
import { get } from './lib/api.js';
import { figures, reloader } from './lib/summary.js';
import { t, translatePage, langToggle, formatClock, formatNumber, onLangChange } from './lib/i18n.js';

const status = document.getElementById('status');
translatePage();
document.getElementById('lang').replaceChildren(langToggle());

let feed = null; // the live state last reported
let summary = null; // the last summary read
let summaryFailed = null;
const showStatus = () => {
  if (!feed) status.textContent = t('status.loading');
  else if (feed.live && !summaryFailed) status.textContent = t('status.live');
  else status.textContent = t('status.stale', { time: feed.since ? formatClock(feed.since) : '—' });
};

/** The figures, one line per group; a failed reload leaves the last ones. */
const showSummary = () => {
  const list = document.getElementById('summary');
  if (!summary) { list.replaceChildren(); return; }
  const value = (v) => (v === null || v === undefined ? t('kpi.unknown') : formatNumber(v));
  list.replaceChildren(...figures(summary).flatMap((g) => {
    const dt = document.createElement('dt');
    dt.textContent = g.total === null ? g.title : `${g.title} ${value(g.total)}`;
    const dd = document.createElement('dd');
    dd.textContent = g.rows.map((r) => `${r.label} ${value(r.value)}${r.unit && r.value !== null ? ` ${r.unit}` : ''}`).join(t('list.sep'));
    return [dt, dd];
  }));
};

const loadSummary = reloader(async () => {
  try {
    summary = await get('/api/summary');
    summaryFailed = null;
    showSummary();
  } catch (error) {
    summaryFailed = error;
  }
  showStatus();
}, { minGapMs: 2_000 });

showStatus();
onLangChange(() => { showStatus(); showSummary(); });

const { ready, refresh } = createMap({
  layerList: document.getElementById('layers'),
  onStatus: (text) => { status.textContent = text; },
});

ready.then(() => {
  loadSummary();
  follow({
    onChange: (changes) => {
      refresh(changes);
      if (changes.some((c) => c.action?.kind !== 'team.position')) loadSummary();
    },
    onReset: () => { refresh(null); loadSummary(); },
    onOpen: ({ resumed }) => { if (resumed) loadSummary(); },
    onState: (state) => { feed = state; showStatus(); },
  });
});
