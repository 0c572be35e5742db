// A finished run's outputs: for each stage that wrote a table, the table's name, its row count and its first rows
// (GET .../stages/{stage_id}/preview). Values are shown as the API gives them (text nodes only, never HTML).

import { el, formatCount } from "./format.js";

const PREVIEW_ROWS = 5;
const MAX_STAGES = 20;

function cell(value) {
  if (value === null || value === undefined) return el("span", { class: "muted" }, "NULL");
  return typeof value === "string" ? value : JSON.stringify(value);
}

function previewTable(p) {
  return el(
    "div",
    { class: "scroll" },
    el(
      "table",
      { class: "data preview", "data-stage": p.stage_id },
      el("caption", { class: "visually-hidden" }, `First rows of ${p.table}`),
      el("thead", null, el("tr", null, p.columns.map((c) => el("th", { scope: "col" }, c.name, el("span", { class: "sub" }, c.type))))),
      el("tbody", null, p.rows.map((row) => el("tr", null, p.columns.map((c) => el("td", null, cell(row[c.name])))))),
    ),
  );
}

function stageOutput(p) {
  const count = p.exists ? `${formatCount(p.rows.length)} of ${formatCount(p.total_rows)} rows` : p.note || "";
  const summary = el("summary", null, el("strong", null, p.stage_id), " → ", el("code", null, p.table), ` · ${count}`);
  const body = p.exists && p.rows.length ? previewTable(p) : el("p", { class: "muted" }, p.exists ? "The table is empty." : p.note);
  const note = p.exists && p.note ? el("p", { class: "muted" }, p.note) : null;
  return el("details", { class: "output", open: "" }, summary, note, body);
}

export async function outputsBlock(ctx, run) {
  const stages = (run.stages || []).slice(0, MAX_STAGES);
  const base = `metadata/executions/${encodeURIComponent(run.run_id)}/stages/`;
  const answers = await Promise.allSettled(
    stages.map((s) => ctx.api(`${base}${encodeURIComponent(s.stage_id)}/preview`, { limit: String(PREVIEW_ROWS) })),
  );
  const failed = answers.find((a) => a.status === "rejected");
  if (failed) return el("p", { class: "error", role: "alert" }, ctx.describeError(failed.reason));
  const previews = answers.map((a) => a.value).filter((p) => p.table);
  if (!previews.length) return el("p", { class: "muted", id: "outputs-empty" }, "No stage of this run writes a table.");
  return el("div", { id: "outputs" }, previews.map(stageOutput));
}
