"""terraform/modules/platform monitoring (alerts, log-based metrics, uptime check, dashboard) against GCP and the code.

Every alert and chart must name a metric that exists: a GCP metric from the list below (with the monitored resource,
labels and kind the GCP metric list documents), one of the code's OpenTelemetry instruments
(shared/observability/metrics.py, exported as workload.googleapis.com/<name>), or a log-based metric declared in
the module. Every log-based metric's filter must in turn match what the code logs: its logger is one the code
creates, each message pattern matches a log call of that logger at a matching severity (read from the source, so a
reworded message or a renamed logger fails here), and every field it reads is one the code writes.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any, NamedTuple

import pytest

from shared import logs
from shared.adapters.bigquery_warehouse import _job_labels
from shared.api.routes import ROUTES, health
from shared.contracts.states import TERMINAL, RunStatus
from shared.observability import metrics
from shared.plans import DEFAULT_PLAN, PLANS
from tests.conftest import REPO
from tests.unit.test_terraform import MODULES, TERRAFORM, load_hcl, resources

PLATFORM = MODULES / "platform"


class GcpMetric(NamedTuple):
    resource: str
    kind: str  # GAUGE | DELTA
    value: str  # INT64 | DISTRIBUTION | BOOL
    labels: frozenset[str]


# From Google Cloud's metric list (pubsub, run, monitoring): only these may be alerted on or charted.
GCP_METRICS = {
    "pubsub.googleapis.com/subscription/num_undelivered_messages": GcpMetric(
        "pubsub_subscription", "GAUGE", "INT64", frozenset()
    ),
    "pubsub.googleapis.com/subscription/oldest_unacked_message_age": GcpMetric(
        "pubsub_subscription", "GAUGE", "INT64", frozenset()
    ),
    "run.googleapis.com/request_count": GcpMetric(
        "cloud_run_revision", "DELTA", "INT64", frozenset({"response_code", "response_code_class", "route"})
    ),
    "run.googleapis.com/request_latencies": GcpMetric(
        "cloud_run_revision", "DELTA", "DISTRIBUTION", frozenset({"response_code", "response_code_class", "route"})
    ),
    "monitoring.googleapis.com/uptime_check/check_passed": GcpMetric(
        "uptime_url", "GAUGE", "BOOL", frozenset({"check_id", "checker_location"})
    ),
}
# The OpenTelemetry instruments (CUMULATIVE on export; ALIGN_DELTA turns them into per-period values).
WORKLOAD = {"cdp.runs": "INT64", "cdp.stage.duration": "DISTRIBUTION", "cdp.admission.latency": "DISTRIBUTION"}
LOG_METRIC_REF = re.compile(r"^logging\.googleapis\.com/user/\$\{google_logging_metric\.(\w+)\.name\}$")
PROMQL_LOG_METRIC = re.compile(r"logging_googleapis_com:user_\$\{google_logging_metric\.(\w+)\.name\}_(sum|count)\b")
SEVERITY = {"debug": "DEBUG", "info": "INFO", "warning": "WARNING", "error": "ERROR", "exception": "ERROR"}
SEVERITY_ORDER = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


@pytest.fixture(scope="module")
def platform() -> dict[str, Any]:
    return load_hcl(PLATFORM)


def alert_policies(platform: dict[str, Any]) -> dict[str, Any]:
    """Alert policies by name; one iterating a literal local map is written out per entry (`name[key]`)."""
    policies: dict[str, Any] = {}
    for name, policy in resources(platform, "google_monitoring_alert_policy").items():
        table = re.fullmatch(r"\$\{local\.(\w+)\}", str(policy.get("for_each", "")))
        if table is None or not isinstance(_locals(platform)[table.group(1)], dict):
            policies[name] = policy
            continue
        for key, values in _locals(platform)[table.group(1)].items():
            policies[f"{name}[{key}]"] = _fill(policy, values)
    assert policies, "the platform module declares no alert policy"
    return policies


def _fill(node: Any, values: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {k: _fill(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_fill(v, values) for v in node]
    if isinstance(node, str):
        whole = re.fullmatch(r"\$\{each\.value\.(\w+)\}", node)
        if whole:
            return values[whole.group(1)]
        return re.sub(r"\$\{each\.value\.(\w+)\}", lambda m: str(values[m.group(1)]), node)
    return node


def log_metrics(platform: dict[str, Any]) -> dict[str, Any]:
    return resources(platform, "google_logging_metric")


def _clause(text: str, field: str) -> str | None:
    match = re.search(rf'{re.escape(field)}="([^"]*)"', text)
    return match.group(1) if match else None


# ------------------------------------------------------------------------------------------------ the code's metrics
def test_workload_metrics_are_the_code_s_instruments() -> None:
    """The checked list of workload metrics is what metrics.py really creates, with the value types it records."""
    source = (REPO / "shared" / "observability" / "metrics.py").read_text()
    created = {name: kind for kind, name in re.findall(r'meter\.create_(counter|histogram)\("([\w.]+)"', source)}
    assert created == {name: "counter" if value == "INT64" else "histogram" for name, value in WORKLOAD.items()}
    metrics.configure("memory", "p")
    try:
        metrics.record_run_status("SUCCEEDED")
        metrics.record_stage_duration(1.0, "debug.noop", "succeeded")
        metrics.record_admission_latency(0.1, "api", "admitted")
        snapshot = metrics.snapshot()
    finally:
        metrics.configure("none", "p")
    assert set(snapshot) == set(WORKLOAD)
    assert {a for p in snapshot["cdp.runs"] for a in p["attributes"]} == {"status"}
    assert {a for p in snapshot["cdp.stage.duration"] for a in p["attributes"]} == {"ps_type", "outcome"}
    assert {a for p in snapshot["cdp.admission.latency"] for a in p["attributes"]} == {"trigger", "outcome"}


def _known_metric(metric_type: str, declared: dict[str, Any]) -> tuple[str, str, str, frozenset[str]] | None:
    """(resource type or '', kind, value type, labels) of a metric the code, a log metric or GCP provides."""
    if metric_type in GCP_METRICS:
        m = GCP_METRICS[metric_type]
        return m.resource, m.kind, m.value, m.labels
    if metric_type.startswith("workload.googleapis.com/"):
        name = metric_type.split("/", 1)[1]
        if name in WORKLOAD:
            labels = {"cdp.runs": {"status"}, "cdp.stage.duration": {"ps_type", "outcome"}}.get(name, set())
            return "", "CUMULATIVE", WORKLOAD[name], frozenset(labels or {"trigger", "outcome"})
        return None
    ref = LOG_METRIC_REF.match(metric_type) or re.match(r"^logging\.googleapis\.com/user/(\w+)$", metric_type)
    if ref is None:
        return None
    by_name = {m["name"]: key for key, m in declared.items()}
    key = ref.group(1) if ref.group(1) in declared else by_name.get(ref.group(1))
    if key is None:
        return None
    descriptor = declared[key]["metric_descriptor"][0]
    labels = frozenset(label["key"] for label in descriptor.get("labels", []))
    return "", descriptor["metric_kind"], descriptor["value_type"], labels


def _locals(platform: dict[str, Any]) -> dict[str, Any]:
    return {k: v for block in platform["locals"] for k, v in block.items()}


def _expand(text: str, platform: dict[str, Any]) -> str:
    """Filters built from locals (`${local.api_requests} AND ...`) with the locals written out."""
    return re.sub(r"\$\{local\.(\w+)\}", lambda m: str(_locals(platform)[m.group(1)]), text)


def _check_filter(text: str, declared: dict[str, Any], aggregation: dict[str, Any]) -> str:
    metric_type = _clause(text, "metric.type")
    assert metric_type, f"no metric.type in {text!r}"
    known = _known_metric(metric_type, declared)
    assert known is not None, f"{metric_type} is neither a checked GCP metric, a cdp.* instrument nor a log metric"
    resource, kind, value, labels = known
    if resource:
        assert _clause(text, "resource.type") == resource, f"{metric_type} is written on {resource}: {text!r}"
    for label in re.findall(r"metric\.labels?\.(\w+)", text):
        assert label in labels, f"{metric_type} has no label {label!r}"
    aligner = aggregation.get("per_series_aligner") or aggregation.get("perSeriesAligner") or ""
    reducer = aggregation.get("cross_series_reducer") or aggregation.get("crossSeriesReducer") or ""
    if "PERCENTILE" in aligner or "PERCENTILE" in reducer:
        assert value == "DISTRIBUTION", f"percentiles of {metric_type}, which is no distribution"
    if aligner in ("ALIGN_RATE", "ALIGN_DELTA", "ALIGN_SUM"):
        assert kind in ("DELTA", "CUMULATIVE") and value != "BOOL", f"{aligner} on {metric_type} ({kind} {value})"
    if aligner == "ALIGN_SUM":
        assert value == "INT64", f"ALIGN_SUM of a distribution ({metric_type}) is no number to compare"
    if reducer == "REDUCE_COUNT_FALSE":
        assert value == "BOOL"
    return metric_type


def test_every_alert_names_a_metric_that_exists(platform: dict[str, Any]) -> None:
    declared = log_metrics(platform)
    named = set()
    for name, policy in alert_policies(platform).items():
        for condition in policy["conditions"]:
            if "condition_prometheus_query_language" in condition:
                (promql,) = condition["condition_prometheus_query_language"]
                refs = PROMQL_LOG_METRIC.findall(promql["query"])
                assert refs, f"{name}: PromQL names no declared log-based metric"
                for metric, suffix in refs:
                    assert metric in declared, f"{name}: no google_logging_metric.{metric}"
                    assert declared[metric]["metric_descriptor"][0]["value_type"] == "DISTRIBUTION" or suffix != "sum"
                    named.add(metric)
                continue
            (threshold,) = condition["condition_threshold"]
            (aggregation,) = threshold["aggregations"]
            named.add(_check_filter(_expand(threshold["filter"], platform), declared, aggregation))
            if "denominator_filter" in threshold:
                (denominator,) = threshold["denominator_aggregations"]
                assert denominator == aggregation, f"{name}: a ratio compares like with like"
                _check_filter(_expand(threshold["denominator_filter"], platform), declared, denominator)
    # every log-based metric is used by an alert or the dashboard (none declared for nothing)
    charted = {m for m in _dashboard_metrics() if m.startswith("logging.googleapis.com/user/")}
    for key, metric in declared.items():
        assert {key, f"logging.googleapis.com/user/${{google_logging_metric.{key}.name}}"} & named or (
            f"logging.googleapis.com/user/{metric['name']}" in charted
        ), f"log metric {key} feeds nothing"


def test_every_alert_goes_to_the_notification_channels(platform: dict[str, Any]) -> None:
    for name, policy in alert_policies(platform).items():
        assert policy["notification_channels"] == "${var.notification_channels}", name
        assert policy["documentation"][0]["content"], f"{name} tells the operator nothing"
        assert policy["severity"] in ("CRITICAL", "ERROR", "WARNING")
    root = load_hcl(TERRAFORM)
    modules = {name: body for block in root["module"] for name, body in block.items()}
    assert modules["platform"]["notification_channels"] == "${var.notification_channels}"


def test_every_function_and_subscription_has_its_alerts(platform: dict[str, Any]) -> None:
    """Per-function and per-subscription policies iterate the contract (itself checked against main.py/topics.py)."""
    policies = alert_policies(platform)
    for name in ("function_errors", "function_latency"):
        assert policies[name]["for_each"] == "${module.contract.functions}"
        threshold = policies[name]["conditions"][0]["condition_threshold"][0]
        assert 'resource.labels.service_name="${each.value.name}"' in threshold["filter"]
    function = resources(platform, "google_cloudfunctions2_function")["fn"]
    assert function["for_each"] == "${module.contract.functions}" and function["name"] == "${each.value.name}"
    lag = policies["oldest_unacked"]
    assert lag["for_each"] == "${module.contract.push_subscriptions}"
    assert (
        "${google_pubsub_subscription.push[each.key].name}" in lag["conditions"][0]["condition_threshold"][0]["filter"]
    )
    backlog = policies["dead_letter_backlog"]["conditions"][0]["condition_threshold"][0]
    assert "${google_pubsub_subscription.dead_letter_inspect.name}" in backlog["filter"]
    assert backlog["threshold_value"] == 0 and backlog["duration"] == "${var.dead_letter_backlog_minutes * 60}s"
    for required in ("runs_timed_out", "runs_stuck", "notification_failures"):
        assert f"log_metric[{required}]" in policies
    assert 'response_code="429"' in policies["admission_throttled"]["conditions"][0]["condition_threshold"][0]["filter"]
    unavailable = policies["admission_unavailable"]["conditions"][0]["condition_threshold"][0]
    assert 'response_code="503"' in unavailable["filter"]


def test_tenant_budgets_follow_the_plans(platform: dict[str, Any]) -> None:
    variables = {name: body for block in platform["variable"] for name, body in block.items()}
    assert set(variables["bigquery_bytes_per_day_by_plan"]["default"]) == set(PLANS)
    assert f'.plan, "{DEFAULT_PLAN}")' in _locals(platform)["tenant_plans"], (
        "a tenant.yaml without plan is on the default"
    )
    assert alert_policies(platform)["tenant_bigquery_bytes"]["for_each"] == "${local.tenant_bigquery_budgets}"
    # The audit-log metric reads the labels the warehouse puts on every job of a tenant.
    metric = log_metrics(platform)["tenant_bigquery_bytes"]
    labels = _job_labels("acme", "cdp-t-acme@p.iam.gserviceaccount.com")
    for key, value in re.findall(r'jobConfig\.labels\.(\w+)="([^"]*)"', metric["filter"]):
        assert labels.get(key) == value
    assert metric["label_extractors"]["tenant"].endswith("jobConfig.labels.tenant)") and labels["tenant"] == "acme"


# ------------------------------------------------------------------------------------------------ log-based metrics
class LogCall(NamedTuple):
    severity: str
    rendered: str  # the format string with its placeholders filled in
    fields: frozenset[str]  # keys of extra={"fields": {...}}


def _loggers() -> dict[str, list[LogCall]]:
    """logger name -> the log calls of every module that creates it (`log = logs.get_logger(__name__)`: the module's
    dotted name, or a literal name)."""
    out: dict[str, list[LogCall]] = {}
    for path in sorted((REPO / "shared").rglob("*.py")):
        tree = ast.parse(path.read_text())
        module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        names = [
            module if isinstance(node.args[0], ast.Name) and node.args[0].id == "__name__" else node.args[0].value
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and getattr(node.func, "attr", None) == "get_logger"
            and node.args
            and isinstance(node.args[0], ast.Constant | ast.Name)
        ]
        for name in names:
            out.setdefault(name, []).extend(_log_calls(tree))
    return out


def _log_calls(tree: ast.AST) -> list[LogCall]:
    calls = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if not (isinstance(node.func.value, ast.Name) and node.func.value.id == "log"):
            continue
        if node.func.attr not in SEVERITY or not node.args or not isinstance(node.args[0], ast.Constant):
            continue
        rendered = re.sub(r"%(\.\d+)?[sdfr]", lambda m: {"d": "3", "f": "1.5"}.get(m.group(0)[-1], "SUCCEEDED"),
                          str(node.args[0].value))  # fmt: skip
        fields: set[str] = set()
        for keyword in node.keywords:
            if keyword.arg == "extra" and isinstance(keyword.value, ast.Dict):
                for key, value in zip(keyword.value.keys, keyword.value.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "fields" and isinstance(value, ast.Dict):
                        fields |= {k.value for k in value.keys if isinstance(k, ast.Constant)}
        calls.append(LogCall(SEVERITY[node.func.attr], rendered, frozenset(fields)))
    return calls


def _severity_ok(clause: tuple[str, str], severity: str) -> bool:
    op, wanted = clause
    if op == "=":
        return severity == wanted
    return SEVERITY_ORDER.index(severity) >= SEVERITY_ORDER.index(wanted)


def test_every_log_metric_filter_matches_a_line_the_code_writes(platform: dict[str, Any]) -> None:
    loggers = _loggers()
    checked = 0
    for key, metric in log_metrics(platform).items():
        text = _expand(metric["filter"], platform)
        names = re.findall(r'jsonPayload\.logger="([^"]*)"', text)
        if not names:
            assert key == "tenant_bigquery_bytes"  # BigQuery's audit log, checked in test_tenant_budgets...
            continue
        assert all(name in loggers for name in names), f"{key}: no module logs as {set(names) - set(loggers)}"
        assert all(name.startswith("shared.") for name in names) and 'jsonPayload.logger:"shared."' in text
        calls = [call for name in names for call in loggers[name]]
        severity = re.search(r"severity(>=|=)(\w+)", text)
        assert severity, f"{key}: filter on severity, or INFO chatter counts too"
        patterns = re.findall(r'jsonPayload\.message=~"([^"]*)"', text)
        assert patterns, f"{key}: no message pattern"
        for pattern in patterns:
            hits = [c for c in calls if re.search(pattern, c.rendered)]
            assert hits, f"{key}: {pattern!r} matches no {names} log call (reworded?)"
            assert all(_severity_ok((severity.group(1), severity.group(2)), c.severity) for c in hits), (key, hits)
        written = set(logs.ID_FIELDS) | {f for c in calls for f in c.fields} | {"logger", "message"}
        for field in re.findall(r"jsonPayload\.(\w+)", " ".join([text, *metric.get("label_extractors", {}).values()])):
            assert field in written, f"{key}: the code never writes jsonPayload.{field}"
        checked += 1
    assert checked >= 4


def test_run_status_label_extracts_a_terminal_status(platform: dict[str, Any]) -> None:
    metric = log_metrics(platform)["runs_finished"]
    extractor = re.fullmatch(r'REGEXP_EXTRACT\(jsonPayload\.message, "(.*)"\)', metric["label_extractors"]["status"])
    assert extractor
    line = next(c.rendered for c in _loggers()["shared.runs.finalize"] if re.search(extractor.group(1), c.rendered))
    for status in (s.value for s in RunStatus if s.value in TERMINAL):
        match = re.search(extractor.group(1), line.replace("SUCCEEDED", status, 1))
        assert match and match.group(1) == status


# ------------------------------------------------------------------------------------------------ uptime, dashboard
def test_uptime_check_asks_the_health_route_for_what_it_answers(platform: dict[str, Any]) -> None:
    check = resources(platform, "google_monitoring_uptime_check_config")["api_health"]
    http = check["http_check"][0]
    public_get = {(r.method, r.path) for r in ROUTES if r.access == "public"}
    assert ("GET", http["path"]) in public_get and http["use_ssl"] and http["validate_ssl"]
    settings = type("S", (), {"runtime": "gcp"})()
    body = json.dumps(health(type("C", (), {"settings": settings})(), None, {}).body)  # type: ignore[arg-type]
    assert check["content_matchers"][0]["content"] in body  # as handle_flask serialises it
    assert check["count"] == "${var.api_public ? 1 : 0}"  # behind IAM the check would only see 403


def _dashboard() -> dict[str, Any]:
    return dict(json.loads((PLATFORM / "dashboard.json").read_text()))


def _dashboard_metrics() -> list[str]:
    found = []
    for tile in _dashboard()["mosaicLayout"]["tiles"]:
        for data in tile["widget"]["xyChart"]["dataSets"]:
            query = data["timeSeriesQuery"]
            if "prometheusQuery" in query:
                found += [
                    f"logging.googleapis.com/user/{m}" for m in re.findall(r"user_(\w+?)_sum", query["prometheusQuery"])
                ]
            else:
                found.append(_clause(query["timeSeriesFilter"]["filter"], "metric.type") or "")
    return found


def test_dashboard_charts_only_metrics_that_exist(platform: dict[str, Any]) -> None:
    declared = log_metrics(platform)
    for tile in _dashboard()["mosaicLayout"]["tiles"]:
        for data in tile["widget"]["xyChart"]["dataSets"]:
            series = data["timeSeriesQuery"].get("timeSeriesFilter")
            if series:
                _check_filter(series["filter"], declared, series["aggregation"])
    names = {m["name"] for m in declared.values()}
    for metric in _dashboard_metrics():
        if metric.startswith("logging.googleapis.com/user/"):
            assert metric.rsplit("/", 1)[1] in names
    titles = " | ".join(t["widget"]["title"] for t in _dashboard()["mosaicLayout"]["tiles"])
    for wanted in ("Runs by status", "Stage duration percentiles", "Queue depth", "per tenant"):
        assert wanted in titles
    dashboard = resources(platform, "google_monitoring_dashboard")["cdp"]
    assert dashboard["dashboard_json"] == '${file("${path.module}/dashboard.json")}'
