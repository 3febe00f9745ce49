// The cloud's REST API (POST /api/v1/<Service>/<Method>, proto3 JSON in and out; cloud.proto is the
// contract). The API token lives in sessionStorage only: it is gone when the tab closes, it is
// sent as a bearer header (never in a URL), and any 401 signs the portal out.

const TOKEN_KEY = 'tether.apiToken';

// An API error: `code` is the gRPC code name ("NOT_FOUND", ...), `status` the HTTP status
// (0 when the cloud could not be reached), `message` the server's message.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

let onUnauthenticated = () => {};

// `handler` runs after a 401 has cleared the token (the app shows the sign-in page).
export function setUnauthenticatedHandler(handler) {
  onUnauthenticated = handler;
}

const CODE_BY_STATUS = {
  400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND',
  409: 'ALREADY_EXISTS', 412: 'FAILED_PRECONDITION', 429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL',
  503: 'UNAVAILABLE',
};

// The error a call rejects with when its `signal` was aborted (the page it was for is gone).
function cancelled() {
  return new ApiError(0, 'CANCELLED', 'The request was abandoned: its page was left.');
}

async function post(token, service, method, body, signal) {
  let response;
  let text;
  try {
    response = await fetch(`/api/v1/${service}/${method}`, {
      method: 'POST',
      headers: {'Authorization': `Bearer ${token}`, 'Content-Type': 'application/json'},
      body: JSON.stringify(body || {}),
      credentials: 'omit',
      cache: 'no-store',
      redirect: 'error',
      signal,
    });
    text = await response.text();
  } catch (e) {
    if (signal && signal.aborted) throw cancelled();
    throw new ApiError(0, 'UNAVAILABLE', `The cloud cannot be reached (${e.message}).`);
  }
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = data && data.error ? data.error : {};
    throw new ApiError(response.status,
                       error.code || CODE_BY_STATUS[response.status] || `HTTP_${response.status}`,
                       error.message || response.statusText || 'request failed');
  }
  if (data === null || typeof data !== 'object') {
    throw new ApiError(response.status, 'INTERNAL', `${service}/${method}: the answer is not JSON`);
  }
  return data;
}

// Calls one RPC with the stored token. A 401 clears the token and signs the portal out. `signal`
// (a page's ctx.signal) abandons the request when the page goes away: the call then rejects with
// code CANCELLED.
export async function call(service, method, body, {signal} = {}) {
  if (signal && signal.aborted) throw cancelled();
  const token = getToken();
  if (!token) {
    onUnauthenticated();
    throw new ApiError(401, 'UNAUTHENTICATED', 'Not signed in.');
  }
  try {
    return await post(token, service, method, body, signal);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      clearToken();
      onUnauthenticated();
    }
    throw e;
  }
}

// WhoAmI with a token that is not stored yet (the sign-in form checks it before keeping it).
export function whoAmIWith(token) {
  return post(token, 'UserService', 'WhoAmI', {});
}

// Every item of a paged List call: follows nextPageToken (at most `maxPages` pages).
export async function listAll(service, method, field, body = {}, {maxPages = 50, signal} = {}) {
  const items = [];
  let pageToken = '';
  for (let page = 0; page < maxPages; page++) {
    const answer = await call(service, method, {...body, pageToken}, {signal});
    items.push(...(answer[field] || []));
    pageToken = answer.nextPageToken || '';
    if (!pageToken) break;
  }
  return items;
}

// proto3 JSON bytes (standard base64, or the URL-safe form, which the mapping also allows).
export function base64ToBytes(text) {
  const normal = String(text || '').replace(/-/g, '+').replace(/_/g, '/');
  const binary = atob(normal + '='.repeat((4 - (normal.length % 4)) % 4));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
