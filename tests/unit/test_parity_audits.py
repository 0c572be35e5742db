"""The logic of `make gcp-parity` (reliability/parity) on small synthetic inputs: the Terraform expression evaluator,
method -> permission mapping and grant coverage both ways, the Firestore composite-index rules, document sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reliability.parity import hcl, iam, indexes, limits, methods
from reliability.parity import terraform as tf


# ------------------------------------------------------------------------------------------------------ hcl
def _eval(text: str, **names: object) -> object:
    return hcl.evaluate_value(text, lambda n: names[n])


def test_hcl_evaluates_the_expressions_the_repo_writes() -> None:
    functions = {"api": {"publishes": ["a"]}, "worker": {"publishes": ["a", "b"]}}
    expression = (
        '${merge([for fn, f in m.functions : {for t in f.publishes : "${fn}/${t}" => {function = fn, topic = t}}] ...)}'
    )
    grants = _eval(expression, m={"functions": functions})
    assert grants == {
        "api/a": {"function": "api", "topic": "a"},
        "worker/a": {"function": "worker", "topic": "a"},
        "worker/b": {"function": "worker", "topic": "b"},
    }
    assert _eval('serviceAccount:${sa["x_y"].email}', sa={"x_y": {"email": "e@p"}}) == "serviceAccount:e@p"
    assert _eval('cdp-fn-${replace(k, "_", "-")}', k="run_starter") == "cdp-fn-run-starter"
    assert _eval('${length(xs) <= 2 && !contains(xs, 3) ? "small" : "big"}', xs=[1, 2]) == "small"
    assert _eval(
        '${{for k, f in fs : k => f if f.trigger == "pubsub"}}',
        fs={"a": {"trigger": "http"}, "b": {"trigger": "pubsub"}},
    ) == {"b": {"trigger": "pubsub"}}
    assert _eval('${try(m.missing, "fallback")}', m={}) == "fallback"


def test_hcl_says_what_it_cannot_read() -> None:
    with pytest.raises(hcl.Unsupported, match="templatefile"):
        _eval('${templatefile("x.tpl", {})}')


def test_terraform_module_expands_for_each_dynamic_blocks_in_source_order(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(
        """
variable "project_id" { type = string }
locals { users = ["api", "worker"] }
resource "google_service_account" "fn" {
  for_each   = toset(local.users)
  project    = var.project_id
  account_id = "cdp-fn-${each.value}"
}
resource "google_project_iam_member" "state" {
  for_each = toset(local.users)
  project  = var.project_id
  role     = "roles/datastore.user"
  member   = "serviceAccount:${google_service_account.fn[each.value].email}"
}
resource "google_firestore_index" "runs" {
  for_each   = { tenant = ["tenant_id"] }
  collection = "runs"
  dynamic "fields" {
    for_each = each.value
    content {
      field_path = fields.value
      order      = "ASCENDING"
    }
  }
  fields {
    field_path = "created_at"
    order      = "DESCENDING"
  }
}
"""
    )
    root = tf.load(tmp_path, {})
    members = sorted(str(i.attrs["member"]) for i in tf.every_instance(root, "google_project_iam_member"))
    assert members == [
        "serviceAccount:cdp-fn-api@PROJECT.iam.gserviceaccount.com",
        "serviceAccount:cdp-fn-worker@PROJECT.iam.gserviceaccount.com",
    ]
    declared, problems = indexes.declared_indexes(root)
    assert problems == []
    assert [i.fields for i in declared] == [(("tenant_id", "ASCENDING"), ("created_at", "DESCENDING"))]


# ------------------------------------------------------------------------------------------------------ iam
def test_methods_map_to_permissions_on_their_resources() -> None:
    insert_all = {
        "service": "bigquery",
        "http": "POST",
        "path": "/bigquery/v2/projects/p/datasets/acme_m/tables/t/insertAll",
    }
    assert methods.needs_of(insert_all) == (
        "bigquery.tabledata.insertAll",
        (methods.Need("bigquery.tables.updateData", "dataset", "acme_m"),),
    )
    commit = {"service": "google.firestore.v1", "method": "/google.firestore.v1.Firestore/Commit", "writes": ["upsert"]}
    assert {n.permission for n in methods.needs_of(commit)[1]} == {
        "datastore.entities.create",
        "datastore.entities.update",
    }
    pull = {"service": "x", "method": "/google.pubsub.v1.Subscriber/Pull", "resource": "projects/p/subscriptions/s1"}
    assert methods.needs_of(pull)[1] == (methods.Need("pubsub.subscriptions.consume", "subscription", "s1"),)
    with pytest.raises(methods.Unmapped):
        methods.needs_of({"service": "x", "method": "/google.pubsub.v1.Publisher/DeleteTopic"})


def _grant(principal: str, role: str, kind: str = "project", name: str = "*") -> iam.Grant:
    return iam.Grant(f"g.{principal}.{role}.{name}", principal, role, kind, name)


def test_iam_audit_finds_ungranted_calls_and_unused_grants() -> None:
    publish = methods.Need("pubsub.topics.publish", "topic", "t1")
    consume = methods.Need("pubsub.subscriptions.consume", "subscription", "s1")
    calls = [
        iam.Call("api", "fn:api", "pubsub.Publish", (publish,)),
        iam.Call("api", "fn:api", "pubsub.Pull", (consume,)),
    ]
    grants = [
        _grant("fn:api", "roles/pubsub.publisher", "topic", "projects/P/topics/t1"),
        _grant("fn:api", "roles/pubsub.publisher", "topic", "projects/P/topics/t2"),  # same group as the used one
        _grant("fn:api", "roles/datastore.user"),  # never used
        _grant("fn:other", "roles/pubsub.subscriber", "subscription", "s1"),  # someone else's: does not cover api
    ]
    report = iam.audit(calls, grants, ["api"], [])
    assert report.missing == ["api as fn:api: pubsub.Pull needs pubsub.subscriptions.consume on subscription s1"]
    assert [u.split(" (")[0] for u in report.unused] == [
        "fn:api:roles/datastore.user on project",
        "fn:other:roles/pubsub.subscriber on subscription",
    ]
    assert not report.ok and "1 NOT GRANTED" in report.line()


def test_a_grant_on_another_topic_or_an_unknown_role_covers_nothing() -> None:
    need = methods.Need("pubsub.topics.publish", "topic", "t1")
    assert not _grant("fn:a", "roles/pubsub.publisher", "topic", "projects/P/topics/t2").covers(need)
    assert not _grant("fn:a", "roles/made.up").covers(need)
    assert _grant("fn:a", "roles/pubsub.publisher").covers(need)  # project-wide


def test_read_calls_adds_the_token_minting_a_tenant_call_implies(tmp_path: Path) -> None:
    record = {"function": "stage_worker", "service": "bigquery", "http": "GET", "principal": "tenant:acme"}
    record["path"] = "/bigquery/v2/projects/p/datasets/acme_sales"
    harness = {"function": "pytest", "service": "x", "method": "/google.pubsub.v1.Publisher/CreateTopic"}
    (tmp_path / "a.jsonl").write_text(json.dumps(record) + "\n" + json.dumps(harness) + "\n")
    calls, unmapped, functions = iam.read_calls(tmp_path, {})
    assert functions == {"stage_worker"} and unmapped == []
    assert [(c.principal, c.method) for c in calls] == [
        ("fn:stage_worker", "iamcredentials.generateAccessToken"),
        ("tenant:acme", "bigquery.datasets.get"),
    ]
    assert calls[0].needs[0] == methods.Need(
        "iam.serviceAccounts.getAccessToken", "service_account", "cdp-t-acme@PROJECT.iam.gserviceaccount.com"
    )


# ------------------------------------------------------------------------------------------------------ indexes
def test_composite_index_rules() -> None:
    assert not indexes.needs_composite(indexes.shape_of("runs", [("status", "==")], []))
    assert not indexes.needs_composite(indexes.shape_of("runs", [("a", "=="), ("b", "in")], []))  # merged equalities
    assert not indexes.needs_composite(indexes.shape_of("claims", [("at", "<")], [("at", "DESCENDING")]))
    assert indexes.needs_composite(indexes.shape_of("audit", [("tenant_id", "==")], [("at", "DESCENDING")]))
    assert indexes.needs_composite(indexes.shape_of("runs", [("a", ">")], [("b", "ASCENDING")]))
    assert indexes.needs_composite(indexes.shape_of("runs", [("a", "=="), ("b", "!=")], []))


def test_declared_indexes_serve_exact_and_merged_shapes() -> None:
    by_tenant = indexes.Index("i1", "runs", (("tenant_id", "ASCENDING"), ("created_at", "DESCENDING")))
    by_status = indexes.Index("i2", "runs", (("status", "ASCENDING"), ("created_at", "DESCENDING")))
    shape = indexes.shape_of("runs", [("tenant_id", "=="), ("status", "==")], [("created_at", "DESCENDING")])
    assert indexes.served_by(shape, [by_tenant, by_status]) == [by_tenant, by_status]  # index merging
    assert indexes.served_by(shape, [by_tenant]) == []
    ascending = indexes.shape_of("runs", [("tenant_id", "==")], [("created_at", "ASCENDING")])
    assert indexes.served_by(ascending, [by_tenant]) == []  # the direction matters
    report = indexes.audit([shape, ascending], [by_tenant], set(), [])
    assert len(report.missing) == 2 and "MISSING google_firestore_index collection=runs" in report.details()[0]


def test_a_single_field_query_on_an_exempted_field_is_a_finding() -> None:
    shape = indexes.shape_of("runs", [("spec", "==")], [])
    report = indexes.audit([shape], [], {("runs", "spec")}, [])
    assert not report.ok and "exempted" in report.exempted_hits[0]


# ------------------------------------------------------------------------------------------------------ limits
def test_firestore_sizes_follow_the_storage_size_rules() -> None:
    # "tasks/id" name: 6 + 3 + 16; fields: "done" 5 + bool 1, "n" 2 + int 8, "tags" 5 + "a" 2 + "bc" 3; + 32
    assert limits.document_size("tasks/id", {"done": True, "n": 1, "tags": ["a", "bc"]}) == 25 + 6 + 10 + 10 + 32
    assert limits.field_count({"a": {"b": 1, "c": [{"d": 1}]}}) == 4
    assert limits.index_entries({"a": 1, "big": {"x": 1}, "tags": ["a", "a", "b"]}, {"big"}) == 2 + 2


def test_the_biggest_pipeline_fits_its_plan_yaml_cap() -> None:
    plan = limits.biggest_plan()
    text = limits.max_pipeline_yaml(plan)
    assert plan.pipelines.pipeline_bytes - 100_000 < len(text.encode()) <= plan.pipelines.pipeline_bytes
    assert text.count("step_id:") == plan.pipelines.steps


def test_a_collection_group_query_needs_a_collection_group_index(tmp_path: Path) -> None:
    query = {
        "collection": "stages",
        "all_descendants": True,
        "filters": [["status", "EQUAL"]],
        "order": [["at", "ASCENDING"]],
    }
    (tmp_path / "a.jsonl").write_text(json.dumps({"function": "maintenance", "query": query}) + "\n")
    [shape] = indexes.recorded_shapes(tmp_path)
    fields = (("status", "ASCENDING"), ("at", "ASCENDING"))
    assert indexes.served_by(shape, [indexes.Index("c", "stages", fields)]) == []
    group = indexes.Index("g", "stages" + indexes.GROUP, fields)
    assert indexes.served_by(shape, [group]) == [group]
