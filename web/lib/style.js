// Reading and adjusting the style's expressions: plain functions, no map,
// so they are tested without a browser (tests/shell.test.mjs).

/** The colours of a `["match", ["get", property], v1, c1, …, default]`
 * paint expression (how the style colours statuses and risk levels):
 * `{property, colours: Map(value → colour), fallback}`, or `null` for any
 * other expression. */
export function matchColours(expression) {
  if (!Array.isArray(expression) || expression[0] !== 'match' || expression.length < 5) return null;
  const input = expression[1];
  if (!Array.isArray(input) || input[0] !== 'get' || typeof input[1] !== 'string') return null;
  const colours = new Map();
  for (let i = 2; i + 1 < expression.length - 1; i += 2) {
    for (const v of [expression[i]].flat()) colours.set(String(v), expression[i + 1]);
  }
  return { property: input[1], colours, fallback: expression[expression.length - 1] };
}

const mentionsZoom = (v) => Array.isArray(v) && (v[0] === 'zoom' || v.some(mentionsZoom));

/** A size (a radius, a width, a text size) multiplied by `k`: a number,
 * any expression of data, or a zoom curve, whose outputs are scaled since
 * a zoom curve must stay the outermost expression. Anything else is
 * returned as it is. */
export function scaleSize(v, k) {
  if (typeof v === 'number') return v * k;
  if (!Array.isArray(v)) return v;
  if (!mentionsZoom(v)) return ['*', v, k];
  const outputs = (from) => v.slice(from).map((x, i) => (i % 2 ? scaleSize(x, k) : x));
  if (v[0] === 'interpolate' && v[2]?.[0] === 'zoom') return [...v.slice(0, 3), ...outputs(3)];
  if (v[0] === 'step' && v[1]?.[0] === 'zoom') return [v[0], v[1], scaleSize(v[2], k), ...outputs(3)];
  return v;
}
