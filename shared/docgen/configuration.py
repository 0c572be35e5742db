"""docs/configuration.md from the code: every environment variable the platform reads, its default and who reads it.

Sources of truth, read rather than restated: `Settings.from_env` (which variable fills which field, with what default)
and the field docstrings of `Settings` - the one place shared/ and functions/ read the environment
(tests/unit/test_settings.py keeps it so); the functions' environment in terraform/modules/platform/functions.tf; the
variables the scripts in scripts/ read. A variable added to any of these shows up here at the next `make docs`.
"""

from __future__ import annotations

import ast
import itertools
import re
from dataclasses import dataclass

from shared.runtime.settings import _PRESETS, REPO_ROOT

SETTINGS_FILE = REPO_ROOT / "shared" / "runtime" / "settings.py"
FUNCTIONS_TF = REPO_ROOT / "terraform" / "modules" / "platform" / "functions.tf"


@dataclass(frozen=True)
class SettingVariable:
    env: str
    field: str
    default: str
    doc: str


def _field_docs(settings_class: ast.ClassDef) -> dict[str, str]:
    """Field name -> the docstring written under it (the attribute-docstring convention)."""
    docs: dict[str, str] = {}
    for node, following in itertools.pairwise(settings_class.body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
            docs[node.target.id] = " ".join(str(following.value.value).split())
    return docs


def _default_text(field: str, expression: ast.expr | None) -> str:
    if field in _PRESETS["embedded"]:
        return ", ".join(f"{runtime}: `{preset[field]}`" for runtime, preset in _PRESETS.items())
    if expression is None:
        return "unset"
    if isinstance(expression, ast.Constant):
        return f"`{expression.value!s}`"
    return f"`{ast.unparse(expression)}`".replace("str(REPO_ROOT / 'tenant_configs')", "<repo>/tenant_configs")


def _env_gets(node: ast.AST) -> list[tuple[str, ast.expr | None]]:
    """(variable, default expression) of every e.get("CLOUDACT_...", default) / e["..."] inside an expression."""
    found: list[tuple[str, ast.expr | None]] = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and getattr(sub.func, "attr", None) == "get" and sub.args:
            key = sub.args[0]
            if isinstance(key, ast.Constant) and str(key.value).startswith(("CLOUDACT_", "GOOGLE_")):
                found.append((str(key.value), sub.args[1] if len(sub.args) > 1 else None))
    return found


def settings_variables() -> list[SettingVariable]:
    tree = ast.parse(SETTINGS_FILE.read_text())
    settings_class = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    docs = _field_docs(settings_class)
    from_env = next(n for n in settings_class.body if isinstance(n, ast.FunctionDef) and n.name == "from_env")
    out: list[SettingVariable] = []
    for node in ast.walk(from_env):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "cls":
            for keyword in node.keywords:
                assert keyword.arg is not None
                for env, default in _env_gets(keyword.value):
                    if default is None and isinstance(keyword.value, ast.BoolOp):  # e.get(A) or e.get(B) or default
                        default = keyword.value.values[-1]
                    if env.startswith("CLOUDACT_"):
                        doc = docs.get(keyword.arg, "")
                        out.append(SettingVariable(env, keyword.arg, _default_text(keyword.arg, default), doc))
    runtime = next(
        n for n in ast.walk(from_env) if isinstance(n, ast.Assign) and "runtime" in ast.unparse(n.targets[0])
    )
    for env, default in _env_gets(runtime.value):
        out.insert(0, SettingVariable(env, "runtime", _default_text("runtime", default), docs.get("runtime", "")))
    return out


def terraform_environment() -> dict[str, str]:
    """Variable -> value expression that Terraform sets on every function."""
    block = FUNCTIONS_TF.read_text().split("environment_variables = {", 1)[1].split("}", 1)[0]
    return dict(re.findall(r"^\s*(CLOUDACT_\w+)\s*=\s*(.+?)\s*$", block, re.M))


def script_variables() -> dict[str, list[str]]:
    """CLOUDACT_* read by the scripts in scripts/ (development and test only) -> the scripts."""
    found: dict[str, list[str]] = {}
    for path in sorted((REPO_ROOT / "scripts").glob("*.sh")):
        for env in sorted(set(re.findall(r"\$\{(CLOUDACT_\w+)", path.read_text()))):
            found.setdefault(env, []).append(f"scripts/{path.name}")
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|") or "-"


def render() -> str:
    terraform = terraform_environment()
    settings = settings_variables()
    lines = [
        "# Configuration reference",
        "",
        "Every environment variable the platform reads. Locally nothing needs to be set (`make demo`); on GCP",
        "Terraform sets the ones marked in the last column on every function",
        "(terraform/modules/platform/functions.tf); secrets are mounted by the operator",
        "(`gcloud functions deploy --set-secrets`, see docs/runbook.md).",
        "",
        "## Settings (`shared/runtime/settings.py`, read by every function and the CLI)",
        "",
        "| variable | field | default | meaning | set by Terraform |",
        "|---|---|---|---|---|",
    ]
    for v in settings:
        set_by = f"`{terraform[v.env]}`" if v.env in terraform else ""
        lines.append(f"| `{v.env}` | `{v.field}` | {_cell(v.default)} | {_cell(v.doc)} | {_cell(set_by)} |")
    lines += [
        "",
        "`CLOUDACT_PROJECT` falls back to `GOOGLE_CLOUD_PROJECT` (set by Cloud Functions) before its default.",
        "The secrets (`CLOUDACT_API_KEY_PEPPER`, `CLOUDACT_ADMIN_TOKEN`) are mounted with `--set-secrets` on the api",
        "function only; Settings holds them as SecretStr, so a printed Settings never shows them.",
    ]
    unread = sorted(set(terraform) - {v.env for v in settings})
    if unread:
        lines += ["", "Set by Terraform but read by no code (kept as a label of the function's environment):", ""]
        lines += [f"- `{env}` = `{terraform[env]}`" for env in unread]
    lines += ["", "## Development and test scripts", "", "| variable | read by |", "|---|---|"]
    for env, scripts in script_variables().items():
        lines.append(f"| `{env}` | {', '.join(f'`{s}`' for s in scripts)} |")
    return "\n".join(lines) + "\n"
