// One run: its facts, the stage timeline, its data-quality results, its outputs and where its notifications went. Polls while
// the run is queued or running and redraws the sections in place (the heading, and so the focus, stays).

import { ACTIVE, badge, el, formatCount, formatDuration, timeEl } from "./format.js";
import { outputsBlock } from "./outputs_view.js";
import { timeline } from "./timeline.js";

const RUN_ID = /^run_[0-9a-f]{1,64}$/;
const POLL_MS = 1500;

function compact(value) {
  if (value === null || value === undefined || value === "") return "–";
  if (typeof value === "string") return value;
  const text = JSON.stringify(value);
  return text === "{}" ? "–" : text;
}

function facts(run) {
  const trigger = run.trigger || {};
  const rows = [
    ["Pipeline", run.pipeline_id],
    ["Status", badge(run.status)],
    ["Trigger", `${trigger.type || "–"}${trigger.user_id ? ` by ${trigger.user_id}` : ""}`],
    ["Run date", run.run_date || "–"],
    ["Created", timeEl(run.created_at)],
    ["Started", timeEl(run.started_at)],
    ["Ended", run.ended_at ? timeEl(run.ended_at) : ACTIVE.has(run.status) ? "still running" : "–"],
    ["Duration", formatDuration(run.duration_ms)],
    ["Parameters", el("code", null, compact(run.parameters))],
  ];
  if (run.resume_from_run) {
    rows.push(["Re-run of", el("a", { href: `#/runs/${encodeURIComponent(run.resume_from_run)}`, class: "mono" }, run.resume_from_run)]);
  }
  if (run.failed_stage) rows.push(["Failed stage", run.failed_stage]);
  if (run.cancelled_by) rows.push(["Cancelled by", run.cancelled_by]);
  if (run.error) rows.push(["Error", el("span", { class: "err" }, run.error)]);
  return el("dl", { class: "facts" }, rows.map(([k, v]) => [el("dt", null, k), el("dd", null, v)]));
}

function failedRows(r) {
  if (r.failed_rows === null || r.failed_rows === undefined) return "–";
  const total = r.total_rows === null || r.total_rows === undefined ? "" : ` / ${formatCount(r.total_rows)}`;
  return `${formatCount(r.failed_rows)}${total}`;
}

function qualityBlock(ctx, outcome) {
  if (outcome.status === "rejected") return el("p", { class: "error", role: "alert" }, ctx.describeError(outcome.reason));
  const q = outcome.value;
  if (!q.count) {
    const text = q.steps.length
      ? `No results recorded: the checks of ${q.steps.join(", ")} did not run.`
      : "This run has no data-quality checks.";
    return el("p", { class: "muted", id: "quality-empty" }, text);
  }
  const head = ["Step", "Check", "Column", "Severity", "Result", "Failed rows", "What was found"];
  const warnings = q.results.filter((r) => r.status !== "pass" && r.severity === "warn").length;
  return el(
    "div",
    null,
    el("p", { id: "quality-counts" }, `${q.pass} passed · ${q.fail} failed${warnings ? ` (${warnings === 1 ? "1 of them a warning" : `${warnings} of them warnings`})` : ""} · ${q.error} could not run`),
    el(
      "div",
      { class: "scroll" },
      el(
        "table",
        { class: "data", id: "quality-table" },
        el("caption", { class: "visually-hidden" }, "Data-quality results"),
        el("thead", null, el("tr", null, head.map((h) => el("th", { scope: "col" }, h)))),
        el(
          "tbody",
          null,
          q.results.map((r) =>
            el(
              "tr",
              { "data-check": r.check_name },
              el("td", null, r.step_id),
              el("th", { scope: "row" }, r.check_name, el("span", { class: "sub" }, r.check_type)),
              el("td", null, r.column_name || "–"),
              el("td", null, r.severity),
              el("td", null, badge(r.status, r.severity === "warn" && r.status !== "pass" ? `${r.status} (warning)` : r.status)),
              el("td", { class: "num" }, failedRows(r)),
              el(
                "td",
                { class: "found" },
                r.message || "",
                el("span", { class: "sub" }, "observed ", el("code", null, compact(r.observed))),
                el("span", { class: "sub" }, "expected ", el("code", null, compact(r.expected))),
              ),
            ),
          ),
        ),
      ),
    ),
  );
}

function whereItWent(d) {
  if (d.status !== "sent") return d.error || d.note || "–";
  if (d.outbox_path) {
    const file = String(d.outbox_path).split(/[\\/]/).pop();
    return el("span", { title: d.outbox_path }, "written to the local outbox, not sent: ", el("code", null, file));
  }
  return d.target || d.transport || "sent";
}

function notificationsBlock(ctx, outcome) {
  if (outcome.status === "rejected") return el("p", { class: "error", role: "alert" }, ctx.describeError(outcome.reason));
  const list = outcome.value.notifications;
  if (!list.length) return el("p", { class: "muted", id: "notifications-empty" }, "No notification for this run: no rule matched its events.");
  const head = ["Event", "Rule", "Channel", "Status", "Attempts", "Went to", "When"];
  return el(
    "div",
    { class: "scroll" },
    el(
      "table",
      { class: "data", id: "notifications-table" },
      el("caption", { class: "visually-hidden" }, "Notifications of this run"),
      el("thead", null, el("tr", null, head.map((h) => el("th", { scope: "col" }, h)))),
      el(
        "tbody",
        null,
        list.map((d) =>
          el(
            "tr",
            { "data-channel": d.channel },
            el("td", null, d.event_type || d.source || "–"),
            el("td", null, d.rule || "–"),
            el("th", { scope: "row" }, d.channel, el("span", { class: "muted" }, d.channel_type ? ` (${d.channel_type})` : "")),
            // an outbox write is labelled QUEUED: it reached no one yet (shared/notify/outbox.py delivery_label)
            el("td", null, d.label === "QUEUED" ? badge("QUEUED", "queued") : badge(d.status)),
            el("td", { class: "num" }, String(d.attempts ?? "–")),
            el("td", { class: d.status === "sent" ? "" : "err" }, whereItWent(d)),
            el("td", { class: "nowrap" }, timeEl(d.sent_at || d.updated_at || d.created_at)),
          ),
        ),
      ),
    ),
  );
}

function section(id, title, body) {
  return el("section", { "aria-labelledby": id }, el("h2", { id }, title), body);
}

export async function renderRun(root, ctx, runId) {
  const back = el("p", { class: "back" }, el("a", { href: "#/runs" }, "← All runs"));
  const heading = el("h1", { tabindex: "-1" }, "Run ", el("span", { class: "mono" }, runId));
  if (!RUN_ID.test(runId)) {
    root.replaceChildren(back, heading, el("p", { class: "error", role: "alert", id: "run-error" }, "That is not a run id."));
    return;
  }
  const badgeSlot = el("span", { class: "h-badge" });
  heading.append(" ", badgeSlot);
  const body = el("div", { class: "loading" }, "Loading the run…");
  root.replaceChildren(back, heading, body);
  document.title = `${runId} · Runs`;
  let openAttempts = false;

  const draw = async () => {
    let run;
    try {
      run = await ctx.api(`metadata/executions/${encodeURIComponent(runId)}`);
    } catch (err) {
      if (!ctx.current()) return;
      const text = err.status === 404 ? `Tenant ${ctx.tenant} has no run ${runId}.` : ctx.describeError(err);
      body.className = "";
      body.replaceChildren(el("p", { class: "error", role: "alert", id: "run-error" }, text));
      return;
    }
    const [quality, notes] = await Promise.allSettled([
      ctx.api(`metadata/executions/${encodeURIComponent(runId)}/quality`),
      ctx.api("notifications", { run_id: runId }),
    ]);
    // Outputs once the run has ended: a running run's tables are still being written (and polling them would cost
    // a warehouse query per stage every few seconds).
    const outputs = ACTIVE.has(run.status) ? null : await outputsBlock(ctx, run);
    if (!ctx.current()) return;
    const previous = body.querySelector("details.attempts");
    if (previous) openAttempts = previous.open;
    badgeSlot.replaceChildren(badge(run.status));
    body.className = "";
    const chart = timeline(run);
    const attempts = chart.querySelector("details.attempts");
    if (attempts) attempts.open = openAttempts;
    const sections = [
      facts(run),
      section("timeline-title", "Stage timeline", chart),
      section("quality-title", "Data quality", qualityBlock(ctx, quality)),
      outputs ? section("outputs-title", "Outputs (first rows)", outputs) : null,
      section("notifications-title", "Notifications", notificationsBlock(ctx, notes)),
    ];
    body.replaceChildren(...sections.filter(Boolean));
    if (ACTIVE.has(run.status)) ctx.later(draw, POLL_MS);
    else ctx.announce(`Run ${run.run_id} ${run.status}`);
  };
  await draw();
}
