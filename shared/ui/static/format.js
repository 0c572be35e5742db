// DOM building and formatting. Everything reaches the page as text nodes or attributes: no HTML strings, ever (the
// Content-Security-Policy requires Trusted Types, so assigning markup to an element would throw).

const SVG_NS = "http://www.w3.org/2000/svg";

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

function setAttrs(node, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.setAttribute("class", value);
    else if (name === "text") node.textContent = String(value);
    else if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
}

/** An HTML element: el("a", {href: "#/runs", class: "x"}, "text", child). */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

/** An SVG element (charts are drawn as inline SVG). */
export function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

export function parseTime(iso) {
  if (!iso) return null;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? null : ms;
}

const LOCAL_DATETIME = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const LOCAL_TIME = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
const LOCAL_DAY = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
const LOCAL_DAY_LONG = new Intl.DateTimeFormat(undefined, { weekday: "short", month: "short", day: "numeric" });

/** "2026-11-25 20:57:45.225 UTC": the hover text of every time shown in local time. */
export function utcText(ms) {
  return new Date(ms).toISOString().replace("T", " ").replace("Z", " UTC");
}

/** A <time> in the viewer's timezone, with UTC on hover (title). */
export function timeEl(iso, timeOnly = false) {
  const ms = parseTime(iso);
  if (ms === null) return el("span", { class: "muted" }, "–");
  const text = (timeOnly ? LOCAL_TIME : LOCAL_DATETIME).format(ms);
  return el("time", { datetime: new Date(ms).toISOString(), title: utcText(ms) }, text);
}

export function localTime(ms) {
  return LOCAL_TIME.format(ms);
}

/** "Nov 25" for a YYYY-MM-DD calendar day (already in the viewer's offset: no timezone shift here). */
export function dayLabel(isoDate, long = false) {
  const [y, m, d] = isoDate.split("-").map(Number);
  return (long ? LOCAL_DAY_LONG : LOCAL_DAY).format(new Date(y, m - 1, d));
}

export function formatDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(Math.round(s % 60)).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

export function formatCount(n) {
  return n === null || n === undefined ? "–" : Number(n).toLocaleString();
}

// Status is never colour alone: every badge has a symbol and the status word.
const SYMBOLS = {
  SUCCEEDED: "✓",
  FAILED: "✗",
  TIMED_OUT: "⌛",
  CANCELLED: "⊘",
  SKIPPED: "↷",
  RUNNING: "▶",
  QUEUED: "…",
  pass: "✓",
  fail: "✗",
  error: "!",
  sent: "✓",
  failed: "✗",
  suppressed: "–",
  retrying: "↻",
  queued: "…",
};

export function statusClass(status) {
  return `s-${String(status || "unknown").toLowerCase().replace(/[^a-z_]/g, "")}`;
}

export function badge(status, label) {
  return el(
    "span",
    { class: `badge ${statusClass(status)}` },
    el("span", { class: "sym", "aria-hidden": "true" }, SYMBOLS[status] || "•"),
    " ",
    label || String(status || "unknown"),
  );
}

export const ACTIVE = new Set(["QUEUED", "RUNNING"]);
export const RUN_STATUSES = ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"];

export function plural(n, word, many) {
  return `${n} ${n === 1 ? word : many || `${word}s`}`;
}
