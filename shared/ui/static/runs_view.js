// The runs view: the last 30 days per pipeline (charts) and the tenant's recent runs, filtered by status, pipeline
// and date (the viewer's calendar days). Refreshes itself while a listed run is still queued or running.

import { summaryCharts } from "./charts.js";
import { ACTIVE, RUN_STATUSES, badge, el, formatDuration, timeEl } from "./format.js";

const DATE = /^\d{4}-\d{2}-\d{2}$/;
const LIST_LIMIT = 100;

function localMidnight(isoDate, plusDays = 0) {
  const [y, m, d] = isoDate.split("-").map(Number);
  return new Date(y, m - 1, d + plusDays).toISOString();
}

function readFilters(params) {
  const status = params.get("status") || "";
  const pipeline = params.get("pipeline") || "";
  const from = params.get("from") || "";
  const to = params.get("to") || "";
  return {
    status: RUN_STATUSES.includes(status) ? status : "",
    pipeline: /^[a-z][a-z0-9_]{0,62}$/.test(pipeline) ? pipeline : "",
    from: DATE.test(from) ? from : "",
    to: DATE.test(to) ? to : "",
  };
}

function filterForm(filters, pipelines) {
  const select = (id, label, options, value) =>
    el(
      "div",
      { class: "field" },
      el("label", { for: id }, label),
      el("select", { id, name: id.replace("f-", "") }, options.map(([v, text]) => el("option", { value: v, selected: v === value }, text))),
    );
  const date = (id, label, value) =>
    el("div", { class: "field" }, el("label", { for: id }, label), el("input", { id, type: "date", value }));
  const form = el(
    "form",
    { class: "filters", "aria-label": "Filter runs", method: "post" },
    select("f-status", "Status", [["", "any status"], ...RUN_STATUSES.map((s) => [s, s])], filters.status),
    select("f-pipeline", "Pipeline", [["", "any pipeline"], ...[...pipelines].sort().map((p) => [p, p])], filters.pipeline),
    date("f-from", "From (your date)", filters.from),
    date("f-to", "To (inclusive)", filters.to),
    el("div", { class: "field buttons" }, el("button", { type: "submit" }, "Apply"), el("a", { href: "#/runs", class: "button-link" }, "Clear")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    for (const [name, id] of [["status", "f-status"], ["pipeline", "f-pipeline"], ["from", "f-from"], ["to", "f-to"]]) {
      const value = form.querySelector(`#${id}`).value;
      if (value) params.set(name, value);
    }
    const query = params.toString();
    location.hash = query ? `#/runs?${query}` : "#/runs";
  });
  return form;
}

function runsTable(runs) {
  if (!runs.length) return el("p", { class: "muted", id: "runs-empty" }, "No runs match these filters.");
  const head = ["Run", "Pipeline", "Status", "Trigger", "Created", "Duration"];
  return el(
    "table",
    { class: "data runs", id: "runs-table" },
    el("caption", null, `${runs.length === LIST_LIMIT ? "The newest " : ""}${runs.length} run${runs.length === 1 ? "" : "s"}, newest first`),
    el("thead", null, el("tr", null, head.map((h) => el("th", { scope: "col" }, h)))),
    el(
      "tbody",
      null,
      runs.map((run) => {
        const trigger = run.trigger || {};
        return el(
          "tr",
          { "data-run-id": run.run_id },
          el("th", { scope: "row" }, el("a", { href: `#/runs/${encodeURIComponent(run.run_id)}`, class: "mono" }, run.run_id)),
          el("td", null, run.pipeline_id),
          el("td", null, badge(run.status)),
          el("td", null, trigger.type || "–", trigger.user_id ? el("span", { class: "muted" }, ` (${trigger.user_id})`) : null),
          el("td", null, timeEl(run.created_at)),
          el("td", { class: "num" }, ACTIVE.has(run.status) ? "running" : formatDuration(run.duration_ms)),
        );
      }),
    ),
  );
}

function failure(ctx, err) {
  return el("p", { class: "error", role: "alert" }, ctx.describeError(err));
}

export async function renderRuns(root, ctx, params) {
  const filters = readFilters(params);
  const summarySlot = el("div", { class: "loading" }, "Loading the last 30 days…");
  const listSlot = el("div", { class: "loading" }, "Loading runs…");
  const formSlot = el("div");
  root.replaceChildren(
    el("h1", { tabindex: "-1" }, "Runs of ", el("span", { class: "mono" }, ctx.tenant)),
    el("section", { "aria-labelledby": "summary-title" }, el("h2", { id: "summary-title" }, "Last 30 days by pipeline"), summarySlot),
    el("section", { "aria-labelledby": "runs-title" }, el("h2", { id: "runs-title" }, "Recent runs"), formSlot, listSlot),
  );
  const offset = -new Date().getTimezoneOffset();
  const query = {
    limit: LIST_LIMIT,
    status: filters.status,
    pipeline_id: filters.pipeline,
    created_after: filters.from ? localMidnight(filters.from) : "",
    created_before: filters.to ? localMidnight(filters.to, 1) : "",
  };
  const [summary, list, pipelines] = await Promise.allSettled([
    ctx.api("metadata/summary", { days: 30, utc_offset_minutes: offset }),
    ctx.api("metadata/executions", query),
    ctx.api("pipelines"), // needs pipelines:read; without it the filter offers the pipelines that have runs
  ]);
  if (!ctx.current()) return;
  const names = new Set(filters.pipeline ? [filters.pipeline] : []);
  if (summary.status === "fulfilled") summary.value.pipelines.forEach((p) => names.add(p.pipeline_id));
  if (list.status === "fulfilled") list.value.executions.forEach((r) => names.add(r.pipeline_id));
  if (pipelines.status === "fulfilled") pipelines.value.pipelines.forEach((p) => names.add(p.pipeline_id));
  formSlot.replaceChildren(filterForm(filters, names));
  summarySlot.className = "";
  summarySlot.replaceChildren(summary.status === "fulfilled" ? summaryCharts(summary.value) : failure(ctx, summary.reason));
  listSlot.className = "";
  if (list.status === "rejected") {
    listSlot.replaceChildren(failure(ctx, list.reason));
    return;
  }
  const runs = list.value.executions;
  listSlot.replaceChildren(runsTable(runs));
  ctx.announce(`${runs.length} runs shown`);
  // while runs are active, refresh the table only (focus and the filter form stay where they are)
  const refresh = async () => {
    const again = await ctx.api("metadata/executions", query).catch(() => null);
    if (!ctx.current() || !again) return;
    listSlot.replaceChildren(runsTable(again.executions));
    if (again.executions.some((r) => ACTIVE.has(r.status))) ctx.later(refresh, 5000);
  };
  if (runs.some((r) => ACTIVE.has(r.status))) ctx.later(refresh, 5000);
}
