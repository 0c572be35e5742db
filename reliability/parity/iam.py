"""IAM audit: every API call a function made in the emulator e2e run against what Terraform grants its identity.

Identities: each function runs as `service_config[0].service_account_email` of its google_cloudfunctions2_function;
a tenant's BigQuery and gs:// work runs as `cdp-t-<tenant>` (shared/adapters/gcp_identity.py), which the function
impersonates (IAM Credentials generateAccessToken, needing iam.serviceAccounts.getAccessToken on that account: added
to the function's calls for every tenant it acted as, since the emulators mint no token).

Both ways: a call no grant covers is a finding; so is a grant no recorded call used, unless ALLOWED_UNUSED says why
the emulators cannot exercise it. Tenant grants are judged per role and resource kind across tenants (every tenant
gets the same module; datasets differ only by name).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reliability.parity import terraform as tf
from reliability.parity.hcl import Unsupported
from reliability.parity.methods import ANY, Call, Need, Unmapped, needs_of
from reliability.parity.permissions import role_permissions

IAM_RESOURCES: Mapping[str, tuple[str, str]] = {
    # resource type -> (the attribute naming the target, the target's kind)
    "google_project_iam_member": ("project", "project"),
    "google_pubsub_topic_iam_member": ("topic", "topic"),
    "google_pubsub_subscription_iam_member": ("subscription", "subscription"),
    "google_kms_crypto_key_iam_member": ("crypto_key_id", "crypto_key"),
    "google_service_account_iam_member": ("service_account_id", "service_account"),
    "google_bigquery_dataset_iam_member": ("dataset_id", "dataset"),
    "google_storage_bucket_iam_member": ("bucket", "bucket"),
}

# Grants the emulator run cannot exercise, each with why (least privilege is still judged by a reviewer here).
ALLOWED_UNUSED: Mapping[str, str] = {
    "roles/cloudtrace.agent": "Cloud Trace export runs only on GCP (CLOUDACT_TRACE_EXPORTER=gcp); the e2e run has none",
    "roles/monitoring.metricWriter": "Cloud Monitoring export runs only on GCP (CLOUDACT_METRICS_EXPORTER=gcp)",
    "roles/logging.logWriter": "logs go to stdout, which Cloud Run collects without the function's identity; only a "
    "Logging API client would use this grant and the emulators cannot show one: a candidate for removal",
    "tenant:roles/storage.objectViewer": "gs:// reads run in tests/e2e/test_emulator_isolation.py (GCS emulator), "
    "not in the parity run",
    # Paths the emulators can run but the parity e2e selection does not (grow the selection to drop these):
    "fn:run_starter:roles/iam.serviceAccountTokenCreator": "run_starter writes history as the tenant only for a run "
    "that fails at start: not in the parity e2e selection",
    "fn:notifier:roles/cloudkms.cryptoKeyEncrypterDecrypter": "notifier decrypts a tenant's webhook/SMTP secret only "
    "when a channel uses one: not in the parity e2e selection",
    "fn:stage_worker:roles/cloudkms.cryptoKeyEncrypterDecrypter": "steps decrypt source credentials only when a "
    "pipeline uses a secret: not in the parity e2e selection",
    "fn:notifier:roles/pubsub.publisher": "notifier dead-letters an undecodable event itself: not in the parity e2e "
    "selection",
}


@dataclass(frozen=True)
class Grant:
    address: str
    principal: str  # fn:<function> | tenant:<id> | other:<member>
    role: str
    kind: str
    name: str

    def covers(self, need: Need) -> bool:
        perms = role_permissions(self.role) or frozenset()
        if need.permission not in perms:
            return False
        if self.kind == "project":
            return True
        return self.kind == need.kind and (need.name == ANY or _same(self.kind, self.name, need.name))

    @property
    def group(self) -> str:
        """Tenant grants are judged together: `tenant:<role>` (+ kind when not the project)."""
        return f"tenant:{self.role}" if self.principal.startswith("tenant:") else f"{self.principal}:{self.role}"


def _same(kind: str, granted: str, needed: str) -> bool:
    if kind in ("topic", "subscription"):
        return granted.rsplit("/", 1)[-1] == needed.rsplit("/", 1)[-1]
    if kind == "service_account":
        return granted.rsplit("/", 1)[-1] == needed
    return granted == needed


def _tenant_email_map(tenants: Iterable[str]) -> dict[str, str]:
    from shared.adapters.gcp_identity import tenant_service_account_email

    return {tenant_service_account_email(tf.PROJECT, t): t for t in tenants}


def function_accounts(root: tf.Module) -> dict[str, str]:
    """function (entry point key) -> service account email, from the google_cloudfunctions2_function instances."""
    out: dict[str, str] = {}
    for inst in tf.every_instance(root, "google_cloudfunctions2_function"):
        out[str(inst.key)] = str(inst.attrs["service_config"][0]["service_account_email"])
    return out


def grants(root: tf.Module, tenants: Iterable[str]) -> tuple[list[Grant], list[str]]:
    """Every IAM member grant in terraform/, with its principal resolved; and what could not be read."""
    by_email = {email: f"fn:{fn}" for fn, email in function_accounts(root).items()}
    by_email.update({email: f"tenant:{t}" for email, t in _tenant_email_map(tenants).items()})
    out: list[Grant] = []
    problems: list[str] = []
    for rtype, (attr, kind) in IAM_RESOURCES.items():
        try:
            instances = list(tf.every_instance(root, rtype))
        except (Unsupported, KeyError, TypeError) as exc:
            problems.append(f"{rtype}: cannot evaluate ({exc})")
            continue
        for inst in instances:
            try:
                member = str(inst.attrs["member"])
                role = str(inst.attrs["role"])
                target = str(inst.attrs[attr]) if kind != "project" else "*"
            except (Unsupported, KeyError, TypeError) as exc:
                problems.append(f"{inst.address}: cannot evaluate ({exc})")
                continue
            email = member.split(":", 1)[-1]
            out.append(Grant(inst.address, by_email.get(email, f"other:{member}"), role, kind, target))
    return out, problems


def read_calls(audit_dir: Path, kms_key: Mapping[str, str]) -> tuple[list[Call], list[str], set[str]]:
    """Distinct calls of the function processes (not the pytest process: that is the test harness), the records the
    table could not map, and the functions seen."""
    calls: set[Call] = set()
    unmapped: set[str] = set()
    functions: set[str] = set()
    for path in sorted(audit_dir.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            function = str(record["function"])
            if function == "pytest" or record.get("service") == "hook":
                if record.get("service") == "hook":
                    unmapped.add(f"{function}: recorder {record.get('method')}: {record.get('detail')}")
                continue
            functions.add(function)
            if record.get("resource") == "CLOUDACT_KMS_KEY":
                record = {**record, "resource": kms_key.get(function, "CLOUDACT_KMS_KEY (unset in Terraform)")}
            try:
                method, needs = needs_of(record)
            except (Unmapped, KeyError) as exc:
                unmapped.add(f"{function}: {exc}")
                continue
            principal = str(record.get("principal") or "self")
            principal = f"fn:{function}" if principal == "self" else principal
            calls.add(Call(function, principal, method, needs))
            if principal.startswith("tenant:"):
                from shared.adapters.gcp_identity import tenant_service_account_email

                email = tenant_service_account_email(tf.PROJECT, principal.split(":", 1)[1])
                need = Need("iam.serviceAccounts.getAccessToken", "service_account", email)
                calls.add(Call(function, f"fn:{function}", "iamcredentials.generateAccessToken", (need,)))
    return sorted(calls, key=lambda c: (c.function, c.principal, c.method)), sorted(unmapped), functions


@dataclass
class IamReport:
    methods: int
    functions: int
    missing: list[str]
    unused: list[str]
    allowed_unused: list[str]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unused or self.problems)

    def line(self) -> str:
        granted = "all granted" if not self.missing else f"{len(self.missing)} NOT GRANTED"
        return (
            f"iam: {self.methods} methods used by {self.functions} functions, {granted}; "
            f"{len(self.unused)} unused grants ({len(self.allowed_unused)} allow-listed)"
            + (f"; {len(self.problems)} problems" if self.problems else "")
        )

    def details(self) -> list[str]:
        return (
            [f"  NOT GRANTED {m}" for m in self.missing]
            + [f"  UNUSED {u}" for u in self.unused]
            + [f"  PROBLEM {p}" for p in self.problems]
        )


def audit(
    calls: Sequence[Call], all_grants: Sequence[Grant], functions: Iterable[str], problems: Sequence[str]
) -> IamReport:
    missing: list[str] = []
    used: set[Grant] = set()
    for call in calls:
        mine = [g for g in all_grants if g.principal == call.principal]
        for need in call.needs:
            covering = [g for g in mine if g.covers(need)]
            if not covering:
                where = f" on {need.kind} {need.name}" if need.kind != "project" else ""
                missing.append(f"{call.function} as {call.principal}: {call.method} needs {need.permission}{where}")
            used.update(covering)
    exercised = {c.principal for c in calls}
    unused: list[str] = []
    allowed: list[str] = []
    groups: dict[str, list[Grant]] = {}
    for g in all_grants:
        if g.principal.startswith("other:"):
            continue  # service agents, the push and build identities: not function calls
        if g.principal.startswith("tenant:") or g.principal in exercised or g.principal.startswith("fn:"):
            groups.setdefault(f"{g.group}:{g.kind}", []).append(g)
    for key, members in sorted(groups.items()):
        if any(g in used for g in members):
            continue
        role = members[0].role
        principal = members[0].principal
        reason = ALLOWED_UNUSED.get(f"tenant:{role}" if key.startswith("tenant:") else role) or ALLOWED_UNUSED.get(
            f"{principal}:{role}"
        )
        text = f"{key.rsplit(':', 1)[0]} on {members[0].kind} ({len(members)} grant(s), e.g. {members[0].address})"
        (allowed if reason else unused).append(text + (f" — allowed: {reason}" if reason else ""))
    methods = len({c.method for c in calls})
    fn_count = len(set(functions))
    return IamReport(methods, fn_count, sorted(set(missing)), unused, allowed, list(problems))


def kms_keys_of(root: tf.Module) -> dict[str, str]:
    """function -> its CLOUDACT_KMS_KEY (the key its KeyService encrypts with on GCP)."""
    out: dict[str, str] = {}
    for inst in tf.every_instance(root, "google_cloudfunctions2_function"):
        env: Any = inst.attrs["service_config"][0].get("environment_variables", {})
        if isinstance(env, Mapping) and "CLOUDACT_KMS_KEY" in env:
            out[str(inst.key)] = str(env["CLOUDACT_KMS_KEY"])
    return out
