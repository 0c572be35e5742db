"""`python -m reliability [--only NAME,...] [--quick] [--strict]`: run the drills, print one figure per line.

Exit status: 1 when any figure FAILs (a loss); 2 with `--strict` when a figure is NOT MEASURED; 0 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time

from reliability.checks import CHECKS
from reliability.harness import Options, exit_status, progress, run_checks, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__)
    names = [c.key for c in CHECKS]
    parser.add_argument("--only", default="", help=f"comma-separated checks (default: all): {', '.join(names)}")
    parser.add_argument("--quick", action="store_true", help="fewer runs per drill")
    parser.add_argument("--strict", action="store_true", help="a figure NOT MEASURED fails too (exit 2)")
    args = parser.parse_args(argv)
    wanted = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in names]
    if unknown:
        parser.error(f"unknown check(s): {', '.join(unknown)}; known: {', '.join(names)}")
    checks = [c for c in CHECKS if not wanted or c.key in wanted]
    started = time.monotonic()
    figures = run_checks(checks, Options(quick=args.quick))
    print(summary(figures))
    progress(f"finished in {time.monotonic() - started:.0f} s")
    return exit_status(figures, args.strict)


if __name__ == "__main__":
    sys.exit(main())
