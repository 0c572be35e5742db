"""The deployed source bundle, built by cloudbuild.yaml's `package` step run here as written: it ships what the
functions and the `cloudact` CLI import, and nothing that only tests, benchmarks or drills use."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

HARNESSES = ("tests", "bench", "reliability")
NOT_SHIPPED = (*HARNESSES, "docs", "scripts", "terraform", ".ci")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The file list of the zip the build uploads (the step's own script, only its output path changed)."""
    build = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
    step = next(s for s in build["steps"] if s["id"] == "package")
    assert step["entrypoint"] == "python" and step["args"][0] == "-c"
    script: str = step["args"][-1]
    assert "/workspace/source.zip" in script and "$" not in script  # no substitution changes it on Cloud Build
    out = tmp_path_factory.mktemp("bundle") / "source.zip"
    subprocess.run(
        [sys.executable, "-c", script.replace("/workspace/source.zip", str(out))],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    with zipfile.ZipFile(out) as zipped:
        return sorted(zipped.namelist())


@pytest.fixture(scope="module")
def imports(bundle: list[str]) -> dict[str, set[str]]:
    """Bundled module -> the bundled-or-not modules it imports (each file parsed once)."""
    known = {_module(p) for p in bundle if p.endswith(".py")}
    return {_module(p): _imports(p, _module(p), known) for p in bundle if p.endswith(".py")}


def _module(path: str) -> str:
    parts = list(Path(path).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: str, module: str, known: set[str]) -> set[str]:
    """Modules `path` imports anywhere (lazy imports included) or names in a string (the processor registry loads its
    step modules by name)."""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse((REPO / path).read_text(), path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            named = node.value.partition(":")[0]  # "package.module" or "package.module:ATTRIBUTE"
            if named in known:
                found.add(named)
    # `import a.b.c` loads a, a.b and a.b.c
    return {".".join(name.split(".")[:i]) for name in found for i in range(1, name.count(".") + 2)}


def _entry_points(modules: set[str]) -> set[str]:
    """What the platform and the user start: main.py (every function's entry point), the console scripts, `-m`s."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    targets = {target.partition(":")[0] for target in scripts.values()}
    return {"main", *targets, *(m for m in modules if m.endswith(".__main__"))}


def test_the_bundle_holds_the_code_and_configs_only(bundle: list[str]) -> None:
    tops = {name.split("/")[0] for name in bundle}
    assert {"main.py", "functions", "shared", "tenant_configs"} <= tops
    assert not tops & set(NOT_SHIPPED), sorted(tops & set(NOT_SHIPPED))
    assert not [name for name in bundle if "__pycache__" in name or name.endswith(".pyc")]


def test_every_bundled_module_is_imported_from_a_deployed_entry_point(imports: dict[str, set[str]]) -> None:
    """A module nothing deployed imports is one that only tests, benchmarks or drills use: it belongs under tests/,
    bench/ or reliability/ (which are not shipped), not in shared/ or functions/."""
    known = set(imports)
    reached: set[str] = set()
    todo = sorted(_entry_points(known) & known)
    while todo:
        module = todo.pop()
        if module in reached:
            continue
        reached.add(module)
        todo.extend(sorted((imports[module] & known) - reached))
    assert sorted(known - reached) == []


def test_no_bundled_module_imports_a_test_bench_or_drill_helper(imports: dict[str, set[str]]) -> None:
    """They are not in the bundle: such an import would fail on GCP, at cold start or in the middle of a step."""
    offenders = {module: sorted(n for n in names if n.split(".")[0] in HARNESSES) for module, names in imports.items()}
    assert {module: names for module, names in offenders.items() if names} == {}
