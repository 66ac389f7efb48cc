// The MW self-care API client: JSON in and out, ProblemDetails turned into ApiError, and the
// session (access token in memory only; refresh token in localStorage when "remember me" was
// ticked, else sessionStorage, so it dies with the tab).

const BASE = "/api/v1";
const REFRESH_KEY = "cc.refresh";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.cause = problem.cause || (status === 0 ? "OFFLINE" : "");
    this.invalidParams = problem.invalidParams || [];
    this.retryAfter = problem.retryAfter;
  }
}

let accessToken = null;
let role = null;
let refreshing = null; // one refresh at a time: the refresh token is rotated on use

function store(kind) {
  try {
    return kind === "local" ? window.localStorage : window.sessionStorage;
  } catch (_) {
    return null;
  }
}

function savedRefresh() {
  const local = store("local")?.getItem(REFRESH_KEY);
  if (local) return { token: local, remember: true };
  const session = store("session")?.getItem(REFRESH_KEY);
  return session ? { token: session, remember: false } : null;
}

function keep(tokens, remember) {
  accessToken = tokens.accessToken;
  role = tokens.role || role;
  store("local")?.removeItem(REFRESH_KEY);
  store("session")?.removeItem(REFRESH_KEY);
  if (tokens.refreshToken) store(remember ? "local" : "session")?.setItem(REFRESH_KEY, tokens.refreshToken);
}

export function clearSession() {
  accessToken = null;
  role = null;
  store("local")?.removeItem(REFRESH_KEY);
  store("session")?.removeItem(REFRESH_KEY);
}

/** True when there is a way to call authenticated endpoints (a token or a saved refresh token). */
export function hasSession() {
  return accessToken !== null || savedRefresh() !== null;
}

export function currentRole() {
  return role;
}

async function send(method, path, body, token) {
  const headers = { Accept: "application/json, application/problem+json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(BASE + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "same-origin",
    });
  } catch (_) {
    throw new ApiError(0, { cause: "OFFLINE" });
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  const payload = type.includes("json") ? await response.json().catch(() => ({})) : {};
  if (!response.ok) {
    if (payload.retryAfter === undefined && response.headers.get("Retry-After")) {
      payload.retryAfter = Number(response.headers.get("Retry-After"));
    }
    throw new ApiError(response.status, payload);
  }
  return payload;
}

async function refresh() {
  const saved = savedRefresh();
  if (!saved) throw new ApiError(401, { cause: "TOKEN_INVALID" });
  if (!refreshing) {
    refreshing = send("POST", "/auth/refresh", { refreshToken: saved.token })
      .then((tokens) => keep(tokens, saved.remember))
      .catch((err) => {
        if (err.cause !== "OFFLINE") clearSession();
        throw err;
      })
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

/** An authenticated call: on TOKEN_INVALID the access token is renewed once, then retried. */
export async function authed(method, path, body) {
  if (!accessToken) await refresh();
  try {
    return await send(method, path, body, accessToken);
  } catch (err) {
    if (err.status !== 401 || err.cause !== "TOKEN_INVALID") throw err;
    await refresh();
    return send(method, path, body, accessToken);
  }
}

export const api = {
  packages: () => send("GET", "/packages"),
  register: (data) => send("POST", "/auth/register", data),
  async login(msisdn, password, rememberMe) {
    const tokens = await send("POST", "/auth/login", { msisdn, password, rememberMe });
    keep(tokens, rememberMe);
    return tokens;
  },
  async logout() {
    const saved = savedRefresh();
    clearSession();
    if (saved) await send("POST", "/auth/logout", { refreshToken: saved.token }).catch(() => null);
  },
  forgot: (msisdn, channel) => send("POST", "/auth/forgot", { msisdn, channel }),
  reset: (data) => send("POST", "/auth/reset", data),
  me: () => authed("GET", "/me"),
  balance: () => authed("GET", "/me/balance"),
  // a page of usage: `before` is the `next` of the page before it
  usage: (limit = 50, before = null) =>
    authed("GET", `/me/usage?limit=${limit}${before ? `&before=${encodeURIComponent(before)}` : ""}`),
  buy: (pkg, requestId) => authed("POST", "/me/packages", { package: pkg, requestId }),
  topup: (voucher) => authed("POST", "/me/topup", { voucher }),
  renewals: () => authed("GET", "/me/renewals"),
  setRenewal: (code, renew) => authed("PUT", `/me/renewals/${encodeURIComponent(code)}`, { renew }),
  changePassword: (currentPassword, newPassword) =>
    authed("POST", "/me/password", { currentPassword, newPassword }),
};
