"""docs/configuration.md from the code: every environment variable the platform reads, its default and who reads it.

Sources of truth, read rather than restated: `Settings.from_env` (which variable fills which field, with what default)
and the field docstrings of `Settings`; every `os.environ` read elsewhere in shared/ (through a module constant such as
`PEPPER_ENV` or a literal); the functions' environment in terraform/modules/platform/functions.tf; the variables the
scripts in scripts/ read. A variable added anywhere of these shows up here at the next `make docs`.
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


@dataclass(frozen=True)
class EnvRead:
    env: str
    module: str
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


def _module_constants(tree: ast.Module) -> dict[str, object]:
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def _value(node: ast.expr | None, constants: dict[str, object]) -> object:
    if isinstance(node, ast.Constant):
        return node.value
    return constants.get(getattr(node, "id", ""))


def environment_reads() -> list[EnvRead]:
    """Every os.environ.get/[...] of shared/ outside Settings, resolved through module constants."""
    reads: dict[tuple[str, str], EnvRead] = {}
    for path in sorted((REPO_ROOT / "shared").rglob("*.py")):
        if path == SETTINGS_FILE:
            continue
        tree = ast.parse(path.read_text())
        constants = _module_constants(tree)
        module = str(path.relative_to(REPO_ROOT))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "get" and node.args):
                continue
            if "os.environ" not in ast.unparse(node.func):
                continue
            env = _value(node.args[0], constants)
            if isinstance(env, str) and env.startswith("CLOUDACT_"):
                default = _value(node.args[1], constants) if len(node.args) > 1 else None
                shown = "unset" if default is None else f"`{default}`"
                reads[(env, module)] = EnvRead(env, module, shown, _module_doc_line(tree, env))
    return sorted(reads.values(), key=lambda r: (r.env, r.module))


def _module_doc_line(tree: ast.Module, env: str) -> str:
    """The sentence of the module docstring that names the variable, if there is one."""
    text = " ".join((ast.get_docstring(tree) or "").split())
    for sentence in re.split(r"(?<=[.;])\s+", text):
        if env in sentence:
            return sentence.strip()
    return ""


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
        "",
        "## Read outside Settings",
        "",
        "The tenancy variables are read by the `api` function (and the CLI on the same runtime); set the secrets among",
        "them with `--set-secrets` on the api function only.",
        "",
        "| variable | read by | default | what the code says |",
        "|---|---|---|---|",
    ]
    for read in environment_reads():
        lines.append(f"| `{read.env}` | `{read.module}` | {read.default} | {_cell(read.doc)} |")
    known = {v.env for v in settings} | {r.env for r in environment_reads()}
    unread = sorted(set(terraform) - known)
    if unread:
        lines += ["", "Set by Terraform but read by no code (kept as a label of the function's environment):", ""]
        lines += [f"- `{env}` = `{terraform[env]}`" for env in unread]
    lines += ["", "## Development and test scripts", "", "| variable | read by |", "|---|---|"]
    for env, scripts in script_variables().items():
        lines.append(f"| `{env}` | {', '.join(f'`{s}`' for s in scripts)} |")
    return "\n".join(lines) + "\n"
