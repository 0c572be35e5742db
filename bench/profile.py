"""`python -m bench.profile`: where a cold `cloudact run benchco seq10` process spends its time (P1's cold figure).

Two views of the same command, each in a fresh interpreter: `-X importtime` (the heaviest top-level imports,
cumulative) and cProfile of the main thread (the functions with the most cumulative time; the stages themselves run on
the bus's worker threads, so their cost shows up as waiting in the main thread).
"""

from __future__ import annotations

import argparse
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import REPO_ROOT
from bench.pipelines import BENCH_TENANT, write_bench_tenant

ENTRY = "import sys\nfrom shared.cli.main import main\nsys.argv[0] = 'cloudact'\nmain()\n"
"""What the `cloudact` console script runs; written to a file because `python -m cProfile` cannot take `-c`."""
ARGS = ["run", BENCH_TENANT, "seq10", "--quiet"]


def import_cost_by_package(stderr: str, top: int) -> list[tuple[float, str, int]]:
    """(ms, top-level package, modules) by summed *self* import time: each module charged once, to its own package,
    whoever imported it first."""
    totals: dict[str, tuple[float, int]] = {}
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if not match:
            continue
        name = match.group(2)
        package = ".".join(name.split(".")[:2]) if name.startswith(("shared.", "google.")) else name.split(".")[0]
        ms, count = totals.get(package, (0.0, 0))
        totals[package] = (ms + int(match.group(1)) / 1000, count + 1)
    return sorted(((ms, pkg, n) for pkg, (ms, n) in totals.items()), reverse=True)[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cloudact-bench-profile-") as tmp:
        config_dir = write_bench_tenant(Path(tmp) / "tenant_configs")
        env = {**os.environ, "CLOUDACT_CONFIG_DIR": str(config_dir), "CLOUDACT_HOME": str(Path(tmp) / "home")}
        python = sys.executable
        script = Path(tmp) / "cloudact_entry.py"
        script.write_text(ENTRY)
        command = [str(script), *ARGS]
        subprocess.run([python, *command], env=env, cwd=REPO_ROOT, capture_output=True, check=True)  # creates state
        started = time.perf_counter()
        subprocess.run([python, *command], env=env, cwd=REPO_ROOT, capture_output=True, check=True)
        wall = time.perf_counter() - started
        started = time.perf_counter()
        subprocess.run([python, "-c", "pass"], cwd=REPO_ROOT, check=True)
        bare = time.perf_counter() - started
        imports = subprocess.run(
            [python, "-X", "importtime", *command], env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True
        )
        stats_file = Path(tmp) / "cold.prof"
        subprocess.run(
            [python, "-m", "cProfile", "-o", str(stats_file), *command],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
        )
        print(f"cold `cloudact run {BENCH_TENANT} seq10`: {wall:.3f} s wall (a bare `python -c pass`: {bare:.3f} s)")
        costs = import_cost_by_package(imports.stderr, args.top)
        total_ms = sum(ms for ms, _, _ in import_cost_by_package(imports.stderr, 10_000))
        print(f"\nimports: {total_ms:.0f} ms in all; by package (self time, -X importtime, top {args.top}):")
        for ms, package, modules in costs:
            print(f"  {ms:8.1f} ms  {package} ({modules} modules)")
        print(f"\nmain thread, by cumulative time (cProfile, top {args.top}):")
        stats = pstats.Stats(str(stats_file))
        stats.sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
