// The command centre's figures as the views show them: `GET /api/summary`
// (or the summary of a replayed moment) turned into labelled groups, in the
// user's language, and a reloader that keeps at most one request in flight.
// A failed request leaves the figures last shown where they are: a view
// marks them stale, it never draws a zero for an unknown.
import * as catalog from './catalog.js';
import { t } from './i18n.js';

/** Incident severities, the gravest first (China's four levels I–IV:
 * red, orange, yellow, blue). */
export const SEVERITIES = ['especially_major', 'major', 'large', 'general'];
/** The depot stock a flood-season wall watches (item codes of the demo's
 * and the dispatch module's supply records). */
export const WATCHED_ITEMS = ['sandbags', 'life_jackets', 'assault_boats', 'pumps', 'tents'];

/** A supply item's name: the English dictionary's when shown in English,
 * otherwise the name the depots record. */
export function itemTitle(code, recorded) {
  return t(`item.${code}`, {}, recorded ?? code);
}

/** A depot unit (recorded in Chinese) in the user's language. */
export function stockUnit(unit) {
  return unit ? t(`unit.${unit}`, {}, unit) : '';
}

/**
 * The summary as groups of `{key, label, value, unit?, className?}` rows:
 * teams by status (every status of the catalog, in its order), open
 * incidents by severity (gravest first), shelters, and the watched stock.
 * A figure the summary does not hold is `null` (drawn as "—"), never 0.
 */
export function figures(summary, { items = WATCHED_ITEMS } = {}) {
  const teamStatuses = catalog.property('rescue_teams', 'status')?.values ?? Object.keys(summary.teams?.by_status ?? {});
  const byStatus = summary.teams?.by_status ?? {};
  const bySeverity = summary.incidents?.open_by_severity ?? {};
  const shelters = summary.shelters ?? {};
  const supplies = summary.supplies ?? {};
  const known = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  return [
    {
      key: 'teams',
      title: t('kpi.teams'),
      total: known(Object.values(byStatus).reduce((a, b) => a + b, 0)),
      rows: teamStatuses.map((s) => ({
        key: s, label: catalog.valueTitle('rescue_teams', 'status', s), value: byStatus[s] ?? 0, className: `status-${s}`,
      })),
    },
    {
      key: 'incidents',
      title: t('kpi.incidents'),
      total: known(summary.incidents?.open),
      rows: SEVERITIES.map((s) => ({
        key: s, label: catalog.valueTitle('incidents', 'severity', s), value: bySeverity[s] ?? 0, className: `sev-${s}`,
      })),
    },
    {
      key: 'shelters',
      title: t('kpi.shelters'),
      total: known(shelters.count),
      rows: [
        { key: 'capacity', label: t('kpi.capacity'), value: known(shelters.capacity), unit: catalog.unitTitle('persons') },
        { key: 'occupancy', label: t('kpi.occupancy'), value: known(shelters.occupancy), unit: catalog.unitTitle('persons') },
        { key: 'free', label: t('kpi.free'), value: known(shelters.free), unit: catalog.unitTitle('persons') },
      ],
    },
    {
      key: 'supplies',
      title: t('kpi.supplies'),
      total: null,
      rows: items.map((code) => {
        const s = supplies[code];
        return {
          key: code, label: itemTitle(code, s?.name), value: known(s?.available), unit: stockUnit(s?.unit),
          // Reserved stock is on its way to an incident: shown beside.
          reserved: known(s?.reserved),
        };
      }),
    },
  ];
}

/**
 * `run()` calls `load()` now, or, when a load is under way, once more
 * after it (however many calls came meanwhile), at least `minGapMs` after
 * the previous start: a burst of events costs one or two requests, and
 * nothing queues up.
 */
export function reloader(load, { minGapMs = 0, onError = () => {} } = {}) {
  let running = null;
  let again = false;
  let lastStart = 0;
  const start = async () => {
    const wait = lastStart + minGapMs - Date.now();
    if (wait > 0) await new Promise((ok) => setTimeout(ok, wait));
    lastStart = Date.now();
    try {
      await load();
    } catch (error) {
      onError(error);
    }
  };
  const run = () => {
    if (running) { again = true; return running; }
    running = (async () => {
      do {
        again = false;
        await start();
      } while (again);
      running = null;
    })();
    return running;
  };
  return run;
}
