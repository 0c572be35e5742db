// The run-history page: sign in with an API key (kept in sessionStorage only), then a hash router over two views.
// All data comes from the JSON API of the same origin with the X-API-Key header; nothing is baked into the page.

import { renderRun } from "./run_view.js";
import { renderRuns } from "./runs_view.js";

const KEY = "cloudact.apiKey";
const TENANT = "cloudact.tenant";
const TENANT_ID = /^[a-z][a-z0-9_]{2,49}$/;
const $ = (id) => document.getElementById(id);

export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.retryAfter = retryAfter;
  }
}

/** What went wrong, in a sentence a person can act on. */
export function describeError(err) {
  if (!(err instanceof ApiError)) return `Could not reach the API: ${err && err.message ? err.message : err}`;
  const message = err.body.message || "";
  switch (err.status) {
    case 401:
      return `The API key was refused (401): ${message}. Check the key, or ask for a new one.`;
    case 403:
      return `Not allowed (403): ${message}.`;
    case 404:
      return message ? `Not found: ${message}.` : "Not found.";
    case 429:
      return `Too many requests: try again in ${err.retryAfter || "a few"} s.`;
    default:
      return `The API answered ${err.status} ${err.body.error || ""}: ${message}`;
  }
}

function session() {
  return { tenant: sessionStorage.getItem(TENANT), key: sessionStorage.getItem(KEY) };
}

function apiBase() {
  // the page lives at <base>/ui/, the API at <base>/api/v1/: relative, so a path prefix in front of both still works
  return new URL("../api/v1/", document.baseURI);
}

async function call(tenant, key, path, query) {
  const url = new URL(`tenants/${encodeURIComponent(tenant)}/${path}`, apiBase());
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  const response = await fetch(url, {
    headers: { "X-API-Key": key, Accept: "application/json" },
    cache: "no-store",
    credentials: "omit",
    redirect: "error",
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) throw new ApiError(response.status, body, response.headers.get("Retry-After"));
  return body;
}

let generation = 0;
let timer = null;

function signOut(message) {
  sessionStorage.removeItem(KEY);
  generation += 1;
  clearTimeout(timer);
  showLogin(message);
}

function showLogin(message) {
  $("view").hidden = true;
  $("view").replaceChildren();
  $("who").hidden = true;
  $("login").hidden = false;
  const tenant = session().tenant || new URLSearchParams(location.search).get("tenant") || "";
  if (!$("tenant-input").value) $("tenant-input").value = TENANT_ID.test(tenant) ? tenant : "";
  $("key-input").value = "";
  const error = $("login-error");
  error.hidden = !message;
  error.textContent = message || "";
  ($("tenant-input").value ? $("key-input") : $("tenant-input")).focus();
}

async function signIn(event) {
  event.preventDefault();
  const tenant = $("tenant-input").value.trim();
  const key = $("key-input").value.trim();
  const error = $("login-error");
  const fail = (text) => {
    error.textContent = text;
    error.hidden = false;
  };
  if (!TENANT_ID.test(tenant)) return fail("Enter the tenant id: lower case letters, digits and _, 3 to 50 characters.");
  if (!key) return fail("Enter an API key.");
  $("login-submit").disabled = true;
  try {
    await call(tenant, key, "metadata/executions", { limit: 1 });
  } catch (err) {
    $("key-input").value = "";
    $("key-input").focus();
    return fail(`Sign-in failed. ${describeError(err)}`);
  } finally {
    $("login-submit").disabled = false;
  }
  sessionStorage.setItem(TENANT, tenant);
  sessionStorage.setItem(KEY, key);
  $("key-input").value = "";
  error.hidden = true;
  if (!location.hash || location.hash === "#") location.hash = "#/runs";
  else route(true);
}

function context(tenant, key, mine) {
  return {
    tenant,
    current: () => mine === generation,
    async api(path, query) {
      try {
        return await call(tenant, key, path, query);
      } catch (err) {
        if (err instanceof ApiError && err.status === 401 && mine === generation) {
          signOut(`Signed out. ${describeError(err)}`);
        }
        throw err;
      }
    },
    later(fn, ms) {
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (mine === generation) fn();
      }, ms);
    },
    announce(text) {
      $("live").textContent = text;
    },
    describeError,
  };
}

function route(moveFocus = true) {
  generation += 1;
  clearTimeout(timer);
  const { tenant, key } = session();
  if (!tenant || !key) return showLogin();
  $("login").hidden = true;
  $("login-error").hidden = true;
  $("who").hidden = false;
  $("who-tenant").textContent = tenant;
  const view = $("view");
  view.hidden = false;
  const [path, query = ""] = (location.hash.slice(1) || "/runs").split("?");
  const ctx = context(tenant, key, generation);
  const match = /^\/runs\/([^/]+)$/.exec(path);
  const rendering = match ? renderRun(view, ctx, decodeURIComponent(match[1])) : renderRuns(view, ctx, new URLSearchParams(query));
  Promise.resolve(rendering).finally(() => {
    if (moveFocus && ctx.current()) {
      const heading = view.querySelector("h1");
      if (heading) heading.focus({ preventScroll: false });
    }
  });
}

// `cloudact ui` prints a one-time link ending in #signin=TOKEN (a fragment: never sent to a server or in a Referer).
// The token is taken out of the address bar at once, then exchanged once for a read-only key of the tenant.
async function signInWithLink() {
  const match = /^#signin=([A-Za-z0-9_-]{20,200})$/.exec(location.hash);
  if (!match) return false;
  history.replaceState(null, "", location.pathname + location.search + "#/runs");
  try {
    const response = await fetch(new URL("ui/session", apiBase()), {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ token: match[1] }),
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, body, null);
    sessionStorage.setItem(TENANT, body.tenant_id);
    sessionStorage.setItem(KEY, body.api_key);
    return true;
  } catch (err) {
    const why = err instanceof ApiError && err.status === 401 ? `${err.body.message}.` : describeError(err);
    showLogin(`The sign-in link did not work: ${why}`);
    return "failed";
  }
}

async function start() {
  $("login-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut(""));
  const linked = await signInWithLink();
  window.addEventListener("hashchange", async () => {
    // the link opened in a tab already showing the page changes only the fragment: no reload
    if ((await signInWithLink()) !== "failed") route(true);
  });
  // a run or runs link opened in a new tab: the key is per tab, so that tab asks again (by design)
  if (linked !== "failed") route(false);
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
