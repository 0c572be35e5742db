"""`python -m shared.docgen [--check]`: regenerate docs/ (or only report which generated files are stale)."""

from __future__ import annotations

import sys

from shared.docgen import stale, write_all


def main(argv: list[str]) -> int:
    if "--check" in argv:
        out_of_date = stale()
        for name in out_of_date:
            print(f"docs/{name} is stale: run make docs", file=sys.stderr)
        return 1 if out_of_date else 0
    for name in write_all():
        print(f"wrote docs/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
