// The `/` view: the one map with its layer list, following the change
// stream. Everything it uses is the shared shell in lib/.
import { createMap } from './lib/map.js';
import { follow } from './lib/live.js';
import { t, translatePage, langToggle, formatClock, onLangChange } from './lib/i18n.js';

const status = document.getElementById('status');
translatePage();
document.getElementById('lang').replaceChildren(langToggle());

let feed = null; // the live state last reported
const showStatus = () => {
  if (!feed) status.textContent = t('status.loading');
  else status.textContent = feed.live ? t('status.live') : t('status.stale', { time: feed.since ? formatClock(feed.since) : '—' });
};
showStatus();
onLangChange(showStatus);

const { ready, refresh } = createMap({
  layerList: document.getElementById('layers'),
  onStatus: (text) => { status.textContent = text; },
});

ready.then(() => {
  follow({
    onChange: (changes) => refresh(changes),
    onReset: () => refresh(null),
    onState: (state) => { feed = state; showStatus(); },
  });
});
