// The account API, as the console uses it. The session token lives in localStorage and
// travels only in the Authorization header: never in a URL, never in a cookie, so no
// other site can make the browser send it (no CSRF), and it never reaches a log line.

const STORE = "tokensea.session";

export class ApiError extends Error {
  constructor(status, message, param) {
    super(message);
    this.status = status;
    this.param = param;
  }
}

function expiryOf(token) {
  try {
    const payload = token.split(".")[1].replaceAll("-", "+").replaceAll("_", "/");
    const exp = JSON.parse(atob(payload)).exp;
    return typeof exp === "number" ? new Date(exp * 1000).toISOString() : null;
  } catch {
    return null;
  }
}

export const session = {
  get() {
    try {
      const stored = JSON.parse(localStorage.getItem(STORE) || "null");
      if (stored && typeof stored.token === "string") return stored;
    } catch {
      // a damaged entry is no session
    }
    return null;
  },
  /** Keep a token; its expiry comes from the answer or, failing that, the token itself. */
  set(token, expiresAt) {
    localStorage.setItem(STORE, JSON.stringify({ token, expiresAt: expiresAt || expiryOf(token) }));
  },
  clear() {
    localStorage.removeItem(STORE);
  },
  /** True when the stored session has passed its expiry. */
  expired() {
    const stored = this.get();
    return Boolean(stored && stored.expiresAt && Date.parse(stored.expiresAt) <= Date.now());
  },
};

let expiredHandler = () => {};

/** What to do when the server says the session is no longer valid. */
export function onExpired(handler) {
  expiredHandler = handler;
}

const PLAIN = {
  0: "The server cannot be reached. Check your connection and try again.",
  401: "Your session has expired. Sign in again.",
  403: "You are not allowed to do that.",
  404: "That was not found. It may have been deleted.",
  409: "That conflicts with something that exists already.",
  413: "That is too large to send.",
  429: "Too many attempts. Wait a few minutes and try again.",
  503: "The server is unavailable for a moment (its database cannot be reached). Try again shortly.",
};

/** The API's own message where it gave one (they are written for people), else plain words. */
function message(status, body) {
  const given = body && body.error && typeof body.error.message === "string" ? body.error.message : "";
  if (given && status < 500) return given.charAt(0).toUpperCase() + given.slice(1) + (/[.!?]$/.test(given) ? "" : ".");
  return PLAIN[status] || `The server could not do that (error ${status}). Try again in a moment.`;
}

/** Call the API. ``query`` values that are empty are left out. Throws ApiError. */
export async function api(method, path, { body, query, headers } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  const init = { method, headers: { accept: "application/json", ...headers }, credentials: "omit", cache: "no-store" };
  const stored = session.get();
  if (stored) init.headers.authorization = `Bearer ${stored.token}`;
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let answer;
  try {
    answer = await fetch(url, init);
  } catch {
    throw new ApiError(0, PLAIN[0]);
  }
  if (answer.status === 204) return null;
  let data = null;
  try {
    data = await answer.json();
  } catch {
    data = null;
  }
  if (answer.ok) return data;
  if (answer.status === 401 && stored) {
    session.clear();
    expiredHandler();
    throw new ApiError(401, PLAIN[401]);
  }
  // Validation messages start with the field they are about ("password: ..."): forms
  // use it to point at the field.
  const text = data && data.error && typeof data.error.message === "string" ? data.error.message : "";
  const field = /^([A-Za-z][A-Za-z.]*): /.exec(text);
  throw new ApiError(answer.status, message(answer.status, data), field ? field[1] : undefined);
}

/** A random Idempotency-Key (crypto.getRandomValues works on plain http too). */
export function idempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
