// The gateway's API as the page uses it: relative URLs (so the page works under any path
// prefix and behind a TLS proxy), the stored API key, and errors turned into plain sentences.

const KEY_STORAGE = "voicestack.apiKey";

export function apiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

/** An error with a stable code and a sentence a person can act on. */
export class PageError extends Error {
  constructor(code, message, detail = "") {
    super(message);
    this.code = code;
    this.detail = detail;
  }
}

// Codes that mean "a service behind the gateway is down or saturated, not your fault".
const DOWN_CODES = new Set(["saturated", "gateway_saturated", "not_ready", "no_upstream", "upstream_unavailable"]);

/** The sentence for an error code from the gateway (HTTP or WebSocket), or null for the server's own. */
export function explain(code, status, message, retryAfter) {
  if (code === "invalid_api_key") {
    return "The API key was rejected. Check it under Settings.";
  }
  if (code === "unauthorized" || status === 401) {
    return "This gateway needs an API key: enter it under Settings.";
  }
  if (code === "rate_limited" || status === 429) {
    const wait = retryAfter ? ` Try again in ${retryAfter} s.` : " Try again shortly.";
    return `Too many requests: the gateway is rate-limiting this key.${wait}`;
  }
  if (code === "too_many_sessions") {
    return "Too many live sessions are open with this key. Close another tab and try again.";
  }
  if (DOWN_CODES.has(code) || status === 503) {
    const wait = retryAfter ? ` Try again in ${retryAfter} s.` : " Try again in a moment.";
    return `A service is down or busy (${message || code}).${wait}`;
  }
  if (status === 502 || status === 504 || code === "upstream_error" || code === "upstream_timeout") {
    return `A service behind the gateway failed (${message || code}).`;
  }
  return null;
}

/** The page's URL for an API path (relative to the page, so a path prefix is kept). */
export function apiUrl(path) {
  return new URL(path, document.baseURI);
}

/** The WebSocket URL for an API path: wss:// when the page came over https://; the key as a query. */
export function wsUrl(path, params = {}) {
  const url = apiUrl(path);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const key = apiKey();
  if (key) url.searchParams.set("api_key", key);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  return url.toString();
}

/** fetch() a JSON API path with the key; throws a PageError with a plain message. */
export async function request(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = apiKey();
  if (key) headers.set("Authorization", `Bearer ${key}`);
  let response;
  try {
    response = await fetch(apiUrl(path), { ...options, headers, cache: "no-store" });
  } catch {
    throw new PageError("unreachable", "The gateway is unreachable. Is it running, and is this page's address right?");
  }
  if (response.status === 204) return null;
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const error = (body && body.error) || {};
    const code = error.code || `http_${response.status}`;
    const message = explain(code, response.status, error.message, response.headers.get("Retry-After"));
    throw new PageError(code, message || error.message || `The gateway answered ${response.status}.`);
  }
  return body;
}
