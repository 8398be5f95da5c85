// The layer catalog as the views show it: layer, property and value names in
// the user's language, from `GET /api/layers` (the server's builtin.toml and
// the operator's extra layers), never raw keys.
import { get } from './api.js';
import { lang, t, formatNumber, formatTime } from './i18n.js';

let layers = new Map();
let loading = null;

/** Load (or reload, for fresh counts) the catalog; resolves to it. */
export function load({ fresh = false } = {}) {
  if (!loading || fresh) {
    loading = get('/api/layers').then((answer) => {
      layers = new Map(answer.layers.map((l) => [l.name, l]));
      return layers;
    }).catch((error) => { loading = null; throw error; });
  }
  return loading;
}

export const layer = (name) => layers.get(name);
export const count = (name) => layers.get(name)?.count;

function localized(thing, field) {
  const en = lang() === 'en';
  return (en ? thing?.[`${field}_en`] : thing?.[`${field}_zh`]) ?? thing?.[`${field}_zh`] ?? thing?.[`${field}_en`];
}

export function property(layerName, name) {
  return layers.get(layerName)?.properties?.find((p) => p.name === name);
}

/** The layer's display name. */
export function layerTitle(name) {
  return localized(layers.get(name), 'title') ?? name;
}

/** A property's display name. */
export function propertyTitle(layerName, name, def = property(layerName, name)) {
  if (name === 'id') return t('prop.id');
  return localized(def, 'title') ?? name;
}

/** An enumeration value's display name (the stored value when the catalog
 * names none). */
export function valueTitle(layerName, name, value, def = property(layerName, name)) {
  const titles = lang() === 'en' ? def?.value_titles_en ?? def?.value_titles_zh : def?.value_titles_zh ?? def?.value_titles_en;
  return titles?.[value] ?? String(value);
}

/** The values an enumeration allows, as `[value, title]`. */
export function choices(layerName, name) {
  const def = property(layerName, name);
  return (def?.values ?? []).map((v) => [v, valueTitle(layerName, name, v, def)]);
}

/** A unit in the user's language (`persons` → 人). */
export function unitTitle(unit) {
  return unit ? t(`unit.${unit}`, {}, unit) : '';
}

/** A property value as text: names for enumerations, lists joined, numbers
 * with their unit, times in local time; records summarised by their names. */
export function formatValue(layerName, name, value, def = property(layerName, name)) {
  if (value === null || value === undefined || value === '') return '';
  let v = value;
  // Tiles carry scalars only, but a JSON text may still arrive.
  if (typeof v === 'string' && /^[[{]/.test(v) && (def?.type === 'array' || def?.type === 'records')) {
    try { v = JSON.parse(v); } catch { /* shown as text */ }
  }
  switch (def?.type) {
    case 'enum': return valueTitle(layerName, name, v, def);
    case 'array': return Array.isArray(v) ? v.map((x) => valueTitle(layerName, name, x, def)).join(t('list.sep')) : String(v);
    case 'records':
      if (!Array.isArray(v)) return String(v);
      return v.map((r) => [r.name ?? r.team_name ?? r.depot_name ?? r.item, r.quantity !== undefined ? formatNumber(r.quantity) : '', r.unit ?? '']
        .filter((x) => x !== '' && x !== undefined).join(' ')).join(t('list.sep'));
    case 'datetime': return formatTime(v);
    case 'boolean': return v === true || v === 'true' ? t('bool.yes') : t('bool.no');
    case 'integer':
    case 'number': {
      const unit = unitTitle(def.unit);
      return unit ? `${formatNumber(v)} ${unit}` : formatNumber(v);
    }
    default: return String(v);
  }
}

/** `[title, text]` rows for a feature's properties, in catalog order, empty
 * values left out. */
export function rows(layerName, props) {
  const def = layers.get(layerName);
  const names = def ? def.properties.map((p) => p.name) : Object.keys(props);
  const out = [];
  for (const name of names) {
    if (name === 'name') continue;
    const text = formatValue(layerName, name, props[name]);
    if (text !== '') out.push([propertyTitle(layerName, name), text]);
  }
  return out;
}
