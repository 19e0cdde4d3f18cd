// The console's JSON API (same origin, under ./api/). Every change is a POST
// with the session's CSRF token; a 401 SessionExpired sends the user back to
// the sign-in page.

export class ApiError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

const base = new URL('api/', document.baseURI);
let csrfToken = '';
let expiredHandler = null;

export function setCsrfToken(token) {
  csrfToken = token || '';
}

/** Called with the ApiError when the server says the session is gone. */
export function onSessionExpired(fn) {
  expiredHandler = fn;
}

async function request(method, path, body, retried) {
  const opts = {method, credentials: 'same-origin', cache: 'no-store', headers: {Accept: 'application/json'}};
  if (method === 'POST') {
    opts.headers['Content-Type'] = 'application/json';
    opts.headers['X-CSRF-Token'] = csrfToken;
    opts.body = JSON.stringify(body || {});
  }
  let resp;
  try {
    resp = await fetch(new URL(path, base), opts);
  } catch (e) {
    throw new ApiError(0, 'NetworkError',
      'Pier did not answer. The server may be down or the network interrupted; try again.');
  }
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : {};
  } catch (e) {
    data = null;
  }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    const type = err.type || `HTTP${resp.status}`;
    const message = err.message || `Pier answered ${resp.status} ${resp.statusText || ''}`.trim() + '.';
    const e = new ApiError(resp.status, type, message);
    if (resp.status === 401 && type === 'SessionExpired') {
      if (expiredHandler) expiredHandler(e);
    }
    // A session made in another tab has another token: fetch it and try once more.
    if (resp.status === 403 && type === 'InvalidCsrfToken' && !retried) {
      const s = await request('GET', 'session');
      setCsrfToken(s.csrfToken);
      return request(method, path, body, true);
    }
    throw e;
  }
  if (data === null) throw new ApiError(resp.status, 'BadResponse', 'Pier sent an answer the console cannot read.');
  return data;
}

export const api = {
  session: () => request('GET', 'session'),
  login: (accessKeyId, secretAccessKey) => request('POST', 'login', {accessKeyId, secretAccessKey}),
  logout: () => request('POST', 'logout', {}),
  overview: () => request('GET', 'overview'),
  storage: (q) => request('GET', `storage${q ? `?q=${encodeURIComponent(q)}` : ''}`),
  repositories: (q) => request('GET', `repositories?q=${encodeURIComponent(q || '')}`),
  repository: (name) => request('GET', `repository?name=${encodeURIComponent(name)}`),
  policyActions: () => request('GET', 'policy-actions'),
  image: (name, ref) => request('GET', `image?name=${encodeURIComponent(name)}&ref=${encodeURIComponent(ref)}`),
  checkUpstream: (repositoryName, imageTag) => request('POST', 'image/check', {repositoryName, imageTag}),
  evictTag: (repositoryName, imageTag) => request('POST', 'image/evict', {repositoryName, imageTag}),
  // Try an upstream with a rule's settings before saving them (nothing is stored).
  test: (input) => request('POST', 'rules/test', input || {}),
  ecr: (operation, input) => request('POST', `ecr/${operation}`, input || {}),
  secrets: (operation, input) => request('POST', `secretsmanager/${operation}`, input || {}),
  iam: (operation, input) => request('POST', `iam/${operation}`, input || {}),
  /** The audit trail: filters {principal, repository, action, since, limit, before}. */
  activity: (filters) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filters || {})) if (v) q.set(k, v);
    return request('GET', `activity?${q}`);
  },
};

/** All pages of an ECR list operation (nextToken/maxResults). */
export async function ecrAll(operation, input, listKey) {
  const out = [];
  let nextToken;
  for (let i = 0; i < 50; i++) {
    const page = await api.ecr(operation, Object.assign({}, input, nextToken ? {nextToken} : {}));
    out.push(...(page[listKey] || []));
    nextToken = page.nextToken;
    if (!nextToken) break;
  }
  return out;
}
