"""`python -m bench [--only P1,P2] [--quick] [--no-record]`: run the cases, print the table, write the JSON record.

Exit status: 0 when every case measured (a missed target is a figure, not a crash), was skipped for a stated reason
(e.g. no Google emulators) or is pending a feature; 1 when a case broke.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.cases import CASES
from bench.harness import RESULTS_DIR, Options, machine_info, progress, record, render_table, utc_now, write_record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default="", help="comma-separated case ids, e.g. P1,P2 (default: all)")
    parser.add_argument("--quick", action="store_true", help="few repetitions: checks the harness, noisy figures")
    parser.add_argument("--no-record", action="store_true", help="do not write bench/results/*.json")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for the JSON record")
    args = parser.parse_args(argv)
    wanted = {c.strip().upper() for c in args.only.split(",") if c.strip()}
    unknown = wanted - {c.case_id.upper() for c in CASES}
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}; known: {', '.join(c.case_id for c in CASES)}")
    started_at = utc_now()
    machine = machine_info()
    options = Options(quick=args.quick)
    results = []
    for case in CASES:
        if wanted and case.case_id.upper() not in wanted:
            continue
        progress(f"{case.case_id}: {case.title}")
        results.append(case.run(options))
        progress(f"{case.case_id}: {results[-1].status} in {results[-1].seconds:.1f} s")
    data = record(results, started_at, ["python -m bench", *(argv if argv is not None else sys.argv[1:])])
    data["machine"] = machine
    print(render_table(results, machine, data["commit"], data["date"]))
    if not args.no_record:
        named, latest = write_record(data, args.out)
        print(f"\nrecorded: {named} (and {latest.name})")
    broken = [r for r in results if r.status == "error"]
    for result in broken:
        print(f"ERROR {result.case_id}: {result.reason}", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
