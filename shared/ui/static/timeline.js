// The stage timeline of one run: a Gantt row per stage with one bar per attempt, the waits between retries, and
// skipped stages marked. The bars are a picture (aria-hidden); each row says the same in words, and the attempts
// table below lists every attempt for keyboard and screen-reader users.

import { badge, el, formatCount, formatDuration, localTime, parseTime, plural, timeEl, utcText } from "./format.js";

function span(run, stages, now) {
  const times = [];
  for (const stage of stages) {
    for (const a of stage.attempts || []) {
      times.push(parseTime(a.started_at), parseTime(a.ended_at));
    }
    times.push(parseTime(stage.ended_at));
  }
  const start = parseTime(run.started_at) ?? parseTime(run.created_at) ?? Math.min(...times.filter(Boolean));
  const active = run.status === "RUNNING" || run.status === "QUEUED";
  const end = active ? now : parseTime(run.ended_at) ?? Math.max(start, ...times.filter(Boolean));
  return { start, end: Math.max(end, start + 1) };
}

function percent(ms, range) {
  return Math.min(100, Math.max(0, ((ms - range.start) / (range.end - range.start)) * 100));
}

function place(node, from, to, range) {
  const left = percent(from, range);
  node.style.left = `${left}%`; // CSSOM, allowed by the CSP (no inline style attributes)
  node.style.width = `${Math.max(0, percent(to, range) - left)}%`;
  return node;
}

function attemptTitle(stage, a, end) {
  const start = parseTime(a.started_at);
  const parts = [
    `${stage.stage_id}: attempt ${a.attempt} of ${stage.max_attempts || "?"} ${a.status || "RUNNING"}`,
    formatDuration(end - start),
    `${localTime(start)} → ${a.ended_at ? localTime(end) : "now"}`,
    `UTC ${utcText(start)}`,
  ];
  if (a.error) parts.push(a.error);
  return parts.join(" · ");
}

/** The attempt in progress, which the stage's `attempts` list (finished attempts) does not hold yet. */
function currentAttempt(stage) {
  if (stage.status !== "RUNNING" || !stage.attempt_started_at) return null;
  if ((stage.attempts || []).some((a) => a.attempt === stage.attempt)) return null;
  return { attempt: stage.attempt, status: "RUNNING", started_at: stage.attempt_started_at, ended_at: null };
}

function allAttempts(stage) {
  const current = currentAttempt(stage);
  return current ? [...(stage.attempts || []), current] : stage.attempts || [];
}

function stageSummary(stage) {
  const attempts = allAttempts(stage).length;
  const parts = [];
  if (stage.carried_from) parts.push(`carried over from ${stage.carried_from}`);
  if (attempts > 1) parts.push(`${plural(attempts, "attempt")} (${plural(attempts - 1, "retry", "retries")})`);
  else if (attempts === 1) parts.push("1 attempt");
  if (stage.status === "SKIPPED") parts.push("skipped: a stage it depends on did not succeed");
  if (stage.status === "QUEUED") parts.push(stage.not_before ? "waiting to retry" : "waiting for its dependencies");
  if (currentAttempt(stage)) parts.push(`attempt ${stage.attempt} running`);
  if (attempts && stage.duration_ms !== null && stage.duration_ms !== undefined && !stage.carried_from) {
    parts.push(formatDuration(stage.duration_ms));
  }
  if (stage.rows_out !== null && stage.rows_out !== undefined) parts.push(`${formatCount(stage.rows_out)} rows`);
  return parts.join(" · ");
}

function track(stage, range, now) {
  const bars = el("div", { class: "g-track", "aria-hidden": "true" });
  const attempts = allAttempts(stage);
  let previousEnd = null;
  for (const a of attempts) {
    const start = parseTime(a.started_at);
    if (start === null) continue;
    const end = parseTime(a.ended_at) ?? (stage.status === "RUNNING" ? now : start);
    if (previousEnd !== null && start > previousEnd) {
      bars.append(place(el("span", { class: "g-wait", title: `waiting to retry: ${formatDuration(start - previousEnd)}` }), previousEnd, start, range));
    }
    const status = a.ended_at ? a.status : "RUNNING";
    const bar = el("span", { class: `g-bar b-${String(status).toLowerCase()}`, title: attemptTitle(stage, a, end) });
    bar.append(el("span", { class: "g-num" }, String(a.attempt)));
    bars.append(place(bar, start, end, range));
    previousEnd = end;
  }
  if (stage.status === "QUEUED" && stage.not_before && previousEnd !== null) {
    bars.append(place(el("span", { class: "g-wait", title: "waiting to retry" }), previousEnd, Math.min(now, range.end), range));
  }
  if (!attempts.length && ["SKIPPED", "CANCELLED", "FAILED", "TIMED_OUT"].includes(stage.status)) {
    const at = parseTime(stage.ended_at) ?? parseTime(stage.updated_at) ?? range.end;
    const mark = el("span", { class: `g-mark m-${stage.status.toLowerCase()}`, title: `${stage.stage_id} ${stage.status}` });
    mark.append(stage.status === "SKIPPED" ? "skipped" : stage.status.toLowerCase());
    mark.style.left = `${Math.min(percent(at, range), 88)}%`;
    bars.append(mark);
  }
  if (stage.carried_from) {
    bars.append(el("span", { class: "g-mark m-carried", title: `carried over from ${stage.carried_from}` }, "carried over"));
  }
  return bars;
}

function axis(range) {
  const row = el("div", { class: "g-axis", "aria-hidden": "true" });
  for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
    const tick = el("span", { class: "g-tick" }, `+${formatDuration((range.end - range.start) * fraction)}`);
    tick.style.left = `${fraction * 100}%`;
    row.append(tick);
  }
  return row;
}

function legend() {
  const item = (cls, text) => el("li", null, el("span", { class: `g-key ${cls}`, "aria-hidden": "true" }), text);
  return el(
    "ul",
    { class: "g-legend", "aria-label": "Legend" },
    item("b-succeeded", "attempt succeeded"),
    item("b-failed", "attempt failed (hatched)"),
    item("b-running", "running (striped)"),
    item("g-wait-key", "waiting to retry (dotted)"),
    item("m-skipped", "skipped (dashed)"),
  );
}

function attemptsTable(stages) {
  const rows = [];
  for (const stage of stages) {
    const attempts = allAttempts(stage);
    if (!attempts.length) {
      rows.push(el("tr", null, el("th", { scope: "row" }, stage.stage_id), el("td", null, "–"), el("td", null, badge(stage.status)),
        el("td", null, "–"), el("td", null, "–"), el("td", null, "–"), el("td", null, "–"), el("td", { class: "err" }, stage.error || "")));
      continue;
    }
    for (const a of attempts) {
      const start = parseTime(a.started_at);
      const end = parseTime(a.ended_at);
      rows.push(
        el(
          "tr",
          null,
          el("th", { scope: "row" }, stage.stage_id),
          el("td", { class: "num" }, `${a.attempt} / ${stage.max_attempts || "?"}`),
          el("td", null, badge(a.ended_at ? a.status : "RUNNING")),
          el("td", null, timeEl(a.started_at, true)),
          el("td", null, a.ended_at ? timeEl(a.ended_at, true) : "running"),
          el("td", { class: "num" }, start !== null && end !== null ? formatDuration(end - start) : "–"),
          el("td", { class: "num" }, formatCount(a.rows_out)),
          el("td", { class: "err" }, a.error || ""),
        ),
      );
    }
  }
  return el(
    "table",
    { class: "data" },
    el("caption", { class: "visually-hidden" }, "Every attempt of every stage"),
    el("thead", null, el("tr", null, ...["Stage", "Attempt", "Status", "Started", "Ended", "Duration", "Rows", "Error"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", null, rows),
  );
}

/** The Gantt chart of a run's stages plus its attempts table. */
export function timeline(run, now = Date.now()) {
  const stages = run.stages || [];
  if (!stages.length) return el("p", { class: "muted" }, "No stages yet: the run has not started.");
  const range = span(run, stages, now);
  const list = el("ol", { class: "gantt", "aria-label": `Stages of ${run.run_id}` });
  for (const stage of stages) {
    const label = el(
      "div",
      { class: "g-label" },
      el("span", { class: "g-name" }, stage.stage_id),
      " ",
      badge(stage.status),
      el("span", { class: "g-type" }, stage.ps_type || ""),
      el("span", { class: "g-sum" }, stageSummary(stage)),
    );
    if (stage.error) label.append(el("span", { class: "g-error", title: stage.error }, stage.error));
    const attempts = allAttempts(stage).length;
    list.append(
      el(
        "li",
        { class: `g-row ${attempts > 1 ? "retried" : ""}`, "data-stage": stage.stage_id, "data-status": stage.status },
        label,
        track(stage, range, now),
      ),
    );
  }
  return el(
    "div",
    { class: "timeline" },
    el(
      "p",
      { class: "g-range" },
      "From ",
      timeEl(new Date(range.start).toISOString()),
      " to ",
      run.ended_at ? timeEl(run.ended_at, true) : "now",
      ` (${formatDuration(range.end - range.start)})`,
    ),
    el("div", { class: "g-head" }, el("span", { class: "g-label-head" }, "Stage"), axis(range)),
    list,
    legend(),
    el("details", { class: "attempts" }, el("summary", null, `All attempts (${stages.reduce((n, s) => n + allAttempts(s).length, 0)})`), attemptsTable(stages)),
  );
}
