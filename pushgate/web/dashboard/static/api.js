// The dashboard's one door to data: /v1 calls with the signed-in admin key as a Bearer token.
// The key lives in sessionStorage only (gone when the tab closes); a 401 or 403 forgets it.

const STORAGE = "pushgate.dashboard.key";

// Where pushgate is mounted: this file is <root>/dashboard/static/api.js.
export const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
export const DASHBOARD = ROOT + "/dashboard";

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export class SignedOut extends ApiError {}

let signedOut = () => {};

/** `handler(message)` runs when a call finds no key or the key is refused. */
export function onSignedOut(handler) { signedOut = handler; }

export function currentKey() { return sessionStorage.getItem(STORAGE); }
export function forgetKey() { sessionStorage.removeItem(STORAGE); }
export function keepKey(key) { sessionStorage.setItem(STORAGE, key); }

function address(path, params) {
  const url = new URL(ROOT + path, location.origin);
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  return url;
}

/**
 * Calls `path` (starting with /v1) and returns its JSON body, or throws an ApiError.
 * With `key` given (the sign-in check) a refusal is only thrown, not a sign-out.
 */
export async function api(path, { params, method = "GET", body, key } = {}) {
  const bearer = key ?? currentKey();
  if (!bearer) {
    signedOut("");
    throw new SignedOut(401, "unauthenticated", "Not signed in");
  }
  const headers = { "Authorization": "Bearer " + bearer, "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(address(path, params), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store", credentials: "omit",
    });
  } catch (error) {
    throw new ApiError(0, "unreachable", "pushgate did not answer: " + error.message);
  }
  const data = await response.json().catch(() => null);
  if (response.ok) return data;
  const error = (data && data.error) || {};
  const message = error.message || response.statusText || "HTTP " + response.status;
  if (response.status === 401 || response.status === 403) {
    if (key === undefined) {
      forgetKey();
      signedOut(response.status === 403 ? "This key may not do that: sign in with an admin key." :
        "Your key was refused: sign in again.");
    }
    throw new SignedOut(response.status, error.code || "unauthenticated", message);
  }
  throw new ApiError(response.status, error.code || "http_error", message, error.details);
}
