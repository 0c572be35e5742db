"""README's Layout section lists the packages in the order `make lint` enforces (pyproject.toml's layers contract)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _contract_layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [layers] = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    return [layer.replace(".", "/").replace(" ", "") for layer in layers]


def _readme_layers() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```\n", 1)[1].split("```", 1)[0]
    names = []
    for line in block.splitlines():
        match = re.match(r"((?:shared/\w+|functions)/?(?:\s*[|:]\s*shared/\w+)*)", line)
        if match:
            names.append(match.group(1).rstrip("/").replace(" ", ""))
    return names


def test_readme_layout_lists_the_enforced_layers_in_order() -> None:
    assert _readme_layers() == _contract_layers()


def test_every_shared_package_is_in_a_layer() -> None:
    layered = {name for layer in _contract_layers() for name in re.split(r"[|:]", layer)}
    packages = {
        f"shared/{p.stem if p.is_file() else p.name}"
        for p in (ROOT / "shared").iterdir()
        if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.name != "__init__.py")
    }
    assert packages - layered == set(), "a package outside every layer escapes the contract"
