// Per-pipeline charts of the last N days, drawn as inline SVG: runs per day stacked by outcome (the success rate at
// a glance), and the median run duration per day with a tick at the slowest run. Each day has a hover title; the
// same numbers are in a table under "Show as table", and the headline says them in words.

import { dayLabel, el, formatDuration, svg } from "./format.js";

const DAY_W = 14;
const BAR_W = 10;
const LEFT = 44;
const RIGHT = 6;
const RUNS_TOP = 6;
const RUNS_H = 56;
const DUR_TOP = RUNS_TOP + RUNS_H + 18;
const DUR_H = 36;
const AXIS_Y = DUR_TOP + DUR_H + 14;
let chartCounter = 0;

function pct(rate) {
  return rate === null || rate === undefined ? "–" : `${Math.round(rate * 100)} %`;
}

function dayTitle(date, day) {
  if (!day) return `${dayLabel(date, true)}: no runs`;
  const parts = [`${dayLabel(date, true)}: ${day.runs} run${day.runs === 1 ? "" : "s"}`];
  parts.push(`${day.succeeded} succeeded, ${day.failed} failed`);
  if (day.cancelled) parts.push(`${day.cancelled} cancelled`);
  if (day.active) parts.push(`${day.active} running or queued`);
  parts.push(`success ${pct(day.success_rate)}`);
  if (day.median_duration_ms !== null) {
    parts.push(`median ${formatDuration(day.median_duration_ms)}, slowest ${formatDuration(day.max_duration_ms)}`);
  }
  return parts.join(" · ");
}

function headline(p) {
  const words = [`${p.runs} run${p.runs === 1 ? "" : "s"}`, `${p.succeeded} succeeded`, `${p.failed} failed`];
  if (p.cancelled) words.push(`${p.cancelled} cancelled`);
  words.push(`${pct(p.success_rate)} success`);
  if (p.median_duration_ms !== null) words.push(`median ${formatDuration(p.median_duration_ms)}`);
  if (p.p95_duration_ms !== null) words.push(`p95 ${formatDuration(p.p95_duration_ms)}`);
  return words.join(" · ");
}

function chartSvg(p, dates) {
  chartCounter += 1;
  const hatchId = `hatch-${chartCounter}`;
  const width = LEFT + dates.length * DAY_W + RIGHT;
  const byDate = new Map(p.days.map((d) => [d.date, d]));
  const maxRuns = Math.max(1, ...p.days.map((d) => d.runs));
  const maxDur = Math.max(0, ...p.days.map((d) => d.max_duration_ms || 0));
  const root = svg("svg", {
    class: "chart",
    viewBox: `0 0 ${width} ${AXIS_Y + 4}`,
    role: "img",
    "aria-label": `${p.pipeline_id}, last ${dates.length} days: ${headline(p)}`,
    preserveAspectRatio: "xMinYMin meet",
  });
  root.append(
    svg(
      "defs",
      null,
      svg(
        "pattern",
        { id: hatchId, patternUnits: "userSpaceOnUse", width: 4, height: 4 },
        svg("rect", { width: 4, height: 4, class: "c-fail-bg" }),
        svg("path", { d: "M-1,1 l2,-2 M0,4 l4,-4 M3,5 l2,-2", class: "c-fail-line" }),
      ),
    ),
  );
  // axes and labels
  root.append(
    svg("text", { x: LEFT - 4, y: RUNS_TOP + 8, class: "c-label", "text-anchor": "end" }, String(maxRuns)),
    svg("text", { x: LEFT - 4, y: RUNS_TOP + RUNS_H, class: "c-label", "text-anchor": "end" }, "0"),
    svg("text", { x: 0, y: RUNS_TOP + RUNS_H / 2 + 3, class: "c-label" }, "runs"),
    svg("line", { x1: LEFT, x2: width - RIGHT, y1: RUNS_TOP + RUNS_H + 0.5, y2: RUNS_TOP + RUNS_H + 0.5, class: "c-axis" }),
    svg("text", { x: LEFT - 4, y: DUR_TOP + 8, class: "c-label", "text-anchor": "end" }, maxDur ? formatDuration(maxDur) : "–"),
    svg("text", { x: 0, y: DUR_TOP + DUR_H / 2 + 3, class: "c-label" }, "time"),
    svg("line", { x1: LEFT, x2: width - RIGHT, y1: DUR_TOP + DUR_H + 0.5, y2: DUR_TOP + DUR_H + 0.5, class: "c-axis" }),
  );
  dates.forEach((date, i) => {
    const x = LEFT + i * DAY_W + (DAY_W - BAR_W) / 2;
    const day = byDate.get(date);
    const group = svg("g", { class: "c-day" }, svg("title", null, dayTitle(date, day)));
    // a transparent column so the whole day is hoverable, not just its bars
    group.append(svg("rect", { x: x - 2, y: 0, width: DAY_W, height: AXIS_Y - 10, class: "c-hit" }));
    if (!day) {
      group.append(svg("rect", { x, y: RUNS_TOP + RUNS_H - 1, width: BAR_W, height: 1, class: "c-empty" }));
    } else {
      let y = RUNS_TOP + RUNS_H;
      const stack = [
        [day.succeeded, "c-ok", null],
        [day.failed, "c-fail", `url(#${hatchId})`],
        [day.cancelled + day.active, "c-other", null],
      ];
      for (const [count, cls, fill] of stack) {
        if (!count) continue;
        const h = (count / maxRuns) * RUNS_H;
        y -= h;
        group.append(svg("rect", { x, y, width: BAR_W, height: h, class: cls, fill }));
      }
      if (day.median_duration_ms !== null && maxDur) {
        const h = Math.max(1, (day.median_duration_ms / maxDur) * DUR_H);
        group.append(svg("rect", { x, y: DUR_TOP + DUR_H - h, width: BAR_W, height: h, class: "c-dur" }));
        const top = DUR_TOP + DUR_H - (day.max_duration_ms / maxDur) * DUR_H;
        group.append(svg("line", { x1: x - 1, x2: x + BAR_W + 1, y1: top, y2: top, class: "c-max" }));
      }
    }
    root.append(group);
  });
  for (const i of [0, Math.floor((dates.length - 1) / 2), dates.length - 1]) {
    const anchor = i === 0 ? "start" : i === dates.length - 1 ? "end" : "middle";
    const x = LEFT + i * DAY_W + (anchor === "start" ? 0 : anchor === "end" ? DAY_W : DAY_W / 2);
    root.append(svg("text", { x, y: AXIS_Y, class: "c-label", "text-anchor": anchor }, dayLabel(dates[i])));
  }
  return root;
}

function dataTable(p) {
  const rows = p.days.map((d) =>
    el(
      "tr",
      null,
      el("th", { scope: "row" }, dayLabel(d.date, true)),
      el("td", { class: "num" }, String(d.runs)),
      el("td", { class: "num" }, String(d.succeeded)),
      el("td", { class: "num" }, String(d.failed)),
      el("td", { class: "num" }, pct(d.success_rate)),
      el("td", { class: "num" }, formatDuration(d.median_duration_ms)),
      el("td", { class: "num" }, formatDuration(d.max_duration_ms)),
    ),
  );
  const head = ["Day", "Runs", "Succeeded", "Failed", "Success", "Median", "Slowest"];
  return el(
    "details",
    { class: "chart-table" },
    el("summary", null, "Show as table"),
    el(
      "table",
      { class: "data" },
      el("thead", null, el("tr", null, head.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", null, rows),
    ),
  );
}

/** One card per pipeline: headline in words, the SVG chart, and the numbers as a table. */
export function summaryCharts(summary) {
  const dates = summary.dates || [];
  if (!summary.pipelines || !summary.pipelines.length) {
    return el("p", { class: "muted" }, `No runs in the last ${dates.length} days.`);
  }
  const cards = summary.pipelines.map((p) => {
    return el(
      "figure",
      { class: "card chart-card", "data-pipeline": p.pipeline_id },
      el("figcaption", null, el("a", { href: `#/runs?pipeline=${encodeURIComponent(p.pipeline_id)}`, class: "card-title" }, p.pipeline_id),
        el("span", { class: "card-sub" }, headline(p))),
      chartSvg(p, dates),
      el(
        "p",
        { class: "chart-key", "aria-hidden": "true" },
        el("span", { class: "k k-ok" }), "succeeded ",
        el("span", { class: "k k-fail" }), "failed ",
        el("span", { class: "k k-other" }), "cancelled / active ",
        el("span", { class: "k k-dur" }), "median time (tick: slowest)",
      ),
      dataTable(p),
    );
  });
  const note = summary.truncated
    ? el("p", { class: "muted" }, `Based on the newest ${summary.runs_considered} runs of the window.`)
    : null;
  return el("div", null, el("div", { class: "cards" }, cards), note);
}
