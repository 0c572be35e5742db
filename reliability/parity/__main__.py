"""`python -m reliability.parity` (`make gcp-parity`): would this work on GCP? Three audits, one line each.

1. iam: the Google API methods each function process called during the emulator e2e run, against the roles Terraform
   grants its service account (and the tenant accounts it impersonates); unused grants too.
2. indexes: the Firestore query shapes (recorded in that run + literal call sites) against Terraform's composite
   indexes and single-field exemptions.
3. limits: message and document sizes for the biggest pipeline the plans allow, timeouts, BigQuery per-table quotas.

It starts the Pub/Sub + Firestore emulators and bqemulator on its own ports (CLOUDACT_PUBSUB_PORT 8285,
CLOUDACT_FIRESTORE_PORT 8280, CLOUDACT_BQEMU_PORT 9250, CLOUDACT_BQEMU_GRPC_PORT 9260 unless set), runs the e2e tests
that exercise every function with the API recorder (reliability/parity/hook) on, stops the servers, then audits.
`--audit-dir DIR` audits an earlier recording instead. Exit 1 on any finding.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from reliability.parity import iam, indexes, limits
from reliability.parity import terraform as tf

REPO = Path(__file__).resolve().parents[2]
HOOK = Path(__file__).resolve().parent / "hook"
E2E_TESTS = (
    "tests/e2e/test_emulator_pipeline.py",
    "tests/e2e/test_emulator_dead_letters.py",
    "tests/e2e/test_emulator_admission.py",
    "tests/e2e/test_emulator_parity_ticks.py",
    "tests/e2e/test_emulator_job_events.py",
)
PORTS = {
    "CLOUDACT_PUBSUB_PORT": "8285",
    "CLOUDACT_FIRESTORE_PORT": "8280",
    "CLOUDACT_BQEMU_PORT": "9250",
    "CLOUDACT_BQEMU_GRPC_PORT": "9260",
}


def _log(message: str) -> None:
    print(f"[gcp-parity] {message}", file=sys.stderr, flush=True)


def record_e2e(audit_dir: Path) -> tuple[bool, str]:
    """Run the e2e tests with the recorder on, against servers started (and stopped) here."""
    env = {**os.environ, **{k: os.environ.get(k, v) for k, v in PORTS.items()}, "CI": "true"}
    scripts = [REPO / "scripts" / "emulators.sh", REPO / "scripts" / "bqemulator.sh"]
    try:
        for script in scripts:
            subprocess.run([str(script), "start"], cwd=REPO, env=env, check=True, stdout=sys.stderr)
            exported = subprocess.run(
                [str(script), "env"], cwd=REPO, env=env, check=True, capture_output=True, text=True
            )
            for assignment in exported.stdout.replace("export ", "").split():
                key, _, value = assignment.partition("=")
                env[key] = value
        _log(f"running {len(E2E_TESTS)} e2e test files with the API recorder in {audit_dir}")
        pytest = [str(Path(sys.executable).with_name("pytest")), "-q", "-p", "no:cacheprovider", *E2E_TESTS]
        recording = {
            "CLOUDACT_API_AUDIT_DIR": str(audit_dir),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HOOK), os.environ.get("PYTHONPATH")])),
        }
        done = subprocess.run(pytest, cwd=REPO, env={**env, **recording}, capture_output=True, text=True)
        tail = [line for line in done.stdout.splitlines() if line.strip()][-1:] or ["(no output)"]
        if done.returncode != 0:
            sys.stderr.write(done.stdout[-6000:] + done.stderr[-2000:])
        return done.returncode == 0, tail[0]
    finally:
        for script in reversed(scripts):
            subprocess.run([str(script), "stop"], cwd=REPO, env=env, check=False, stdout=subprocess.DEVNULL)


def stack_tenant_configs(into: Path) -> Path:
    """The tenant_configs/ the e2e stack runs with (tests/e2e/conftest.py): the repo's plus the test tenants'."""
    configs = into / "tenant_configs"
    shutil.copytree(REPO / "tenant_configs", configs)
    shutil.copytree(REPO / "tests" / "data" / "tenant_configs", configs, dirs_exist_ok=True)
    return configs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability.parity", description=__doc__)
    parser.add_argument("--audit-dir", type=Path, help="audit this recording instead of running the e2e tests")
    parser.add_argument("--only", default="iam,indexes,limits", help="comma-separated audits (default: all three)")
    args = parser.parse_args(argv)
    wanted = {w.strip() for w in args.only.split(",") if w.strip()}
    lines: list[str] = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="gcp-parity-") as tmp:
        work = Path(tmp)
        audit_dir = args.audit_dir
        if audit_dir is None and wanted & {"iam", "indexes"}:
            audit_dir = work / "api-audit"
            passed, summary = record_e2e(audit_dir)
            lines.append(f"e2e: {summary}")
            ok &= passed
        configs = stack_tenant_configs(work)
        root = tf.load(REPO / "terraform", {"tenant_configs_dir": str(configs)})
        tenants = sorted(d.name for d in configs.iterdir() if (d / "tenant.yaml").is_file())
        details: list[str] = []
        if "iam" in wanted and audit_dir is not None:
            grants, problems = iam.grants(root, tenants)
            calls, unmapped, functions = iam.read_calls(audit_dir, iam.kms_keys_of(root))
            missing_fns = sorted(set(iam.function_accounts(root)) - functions)
            problems += [f"unmapped API method: {u}" for u in unmapped]
            problems += [f"function {f} made no call in the e2e run (not exercised)" for f in missing_fns]
            report = iam.audit(calls, grants, functions, problems)
            lines.append(report.line())
            details += report.details() + [f"  allow-listed {a}" for a in report.allowed_unused]
            ok &= report.ok
        if "indexes" in wanted and audit_dir is not None:
            declared, problems = indexes.declared_indexes(root)
            exempt, more = indexes.exempted_fields(root)
            static, dynamic = indexes.static_shapes(REPO)
            shapes = [*indexes.recorded_shapes(audit_dir), *static]
            report_i = indexes.audit(shapes, declared, exempt, problems + more)
            note = f" ({len(dynamic)} call sites build filters at run time: audited where the e2e run reached them)"
            lines.append(report_i.line() + note)
            details += report_i.details()
            ok &= report_i.ok
        if "limits" in wanted:
            report_l = limits.audit(root, audit_dir)
            lines.extend(report_l.lines())
            ok &= report_l.ok
    for line in details:
        print(line)
    for line in lines:
        print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
