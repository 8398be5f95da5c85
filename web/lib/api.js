// Fetch wrappers for onemap's API. Every failure becomes an ApiError that
// carries the server's own explanation (RFC 9457 problem+json `detail`), so a
// view can show it; nothing turns into a silent empty list or a zero.
import { t } from './i18n.js';

const TOKEN_KEY = 'onemap.token';

/** A request that did not succeed: `status` is 0 when no answer came. */
export class ApiError extends Error {
  constructor(message, { status = 0, problem = null, path = '' } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.problem = problem;
    this.path = path;
  }
}

/** The dispatcher's token for this browser tab (sessionStorage only: it
 * is gone when the tab closes and never shared with other tabs). */
export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** The JSON answer of `method path`, or an ApiError. Writes carry the
 * token as `Authorization: Bearer`. */
export async function request(method, path, body) {
  const headers = { accept: 'application/json, application/geo+json, application/problem+json' };
  const secret = token.get();
  if (secret) headers.authorization = `Bearer ${secret}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw new ApiError(t('error.network', { message: error.message }), { path });
  }
  const type = response.headers.get('content-type') ?? '';
  if (!response.ok) {
    let problem = null;
    if (type.includes('json')) problem = await response.json().catch(() => null);
    const detail = problem?.detail ?? problem?.title ?? response.statusText;
    throw new ApiError(t('error.http', { status: response.status, detail }), { status: response.status, problem, path });
  }
  if (response.status === 204) return null;
  if (!type.includes('json')) {
    throw new ApiError(t('error.not_json', { path, type }), { status: response.status, path });
  }
  return response.json();
}

export const get = (path) => request('GET', path);
export const post = (path, body) => request('POST', path, body ?? {});
export const patch = (path, body) => request('PATCH', path, body);
export const del = (path) => request('DELETE', path);

/** `path?k=v&…`, leaving out empty values. */
export function query(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
