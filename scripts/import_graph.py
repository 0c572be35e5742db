"""Print the package-level import graph of shared/ and functions/: how many packages, edges and cycles.

`.venv/bin/python scripts/import_graph.py [--runtime]`; --runtime leaves out imports under `if TYPE_CHECKING:`.
`make lint` enforces the layers (lint-imports); this shows the whole picture, e.g. for a before/after comparison.
"""

from __future__ import annotations

import collections
import sys

import grimp


def package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "shared" and len(parts) > 1 else parts[0]


def main() -> None:
    graph = grimp.build_graph(
        "shared", "functions", cache_dir=None, exclude_type_checking_imports="--runtime" in sys.argv
    )
    edges: dict[str, set[str]] = collections.defaultdict(set)
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if package(module) != package(imported):
                edges[package(module)].add(package(imported))
    nodes = sorted({package(m) for m in graph.modules})
    cycles = [group for group in _strongly_connected(nodes, edges) if len(group) > 1]
    print(f"packages: {len(nodes)}; package import edges: {sum(len(v) for v in edges.values())}")
    print(f"package cycles (strongly connected groups > 1): {len(cycles)}; packages in them: {sum(map(len, cycles))}")
    for group in cycles:
        print("  ", " <-> ".join(group))


def _strongly_connected(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (the graph has a few dozen nodes: recursion is fine)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            groups.append(sorted(group))

    for node in nodes:
        if node not in index:
            visit(node)
    return groups


if __name__ == "__main__":
    main()
