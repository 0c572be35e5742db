"""Class 6, YAML bombs: alias expansion, deep nesting, huge files, 10,000 steps, fan-out 5,000, huge values.

An unbounded loader can pin a CPU for minutes or exhaust memory on these, so the loader judges each file in a child
process (`python -m reliability.attacks.bombs FILE...`, address space capped) that the drill kills when a file takes
longer than its bound: a kill is a breach, never a hang of the drill. Only files the loader refuses quickly are then
sent through the execute API as well.
"""

from __future__ import annotations

import json
import resource
import selectors
import subprocess
import sys
import time
from pathlib import Path

CHILD_MEMORY = 3 * 1024**3
PARSE_BOUND_S = 20.0
"""Wall time a child may spend on one file before it is killed (refusing a bomb takes milliseconds)."""
REFUSE_CPU_S = 3.0
"""CPU a refusal may take: more means the bomb was expanded before it was refused."""


def bomb_files() -> dict[str, str]:
    """name -> pipeline YAML text (pipeline_id is filled in by the drill)."""
    laughs = ['lol0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        laughs.append(f"lol{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    billion = (
        "variables:\n  " + "\n  ".join(laughs) + "\nsteps:\n  - {step_id: a, ps_type: debug.noop, config: {x: *a9}}\n"
    )
    # Valid on its face: 500 variables sharing one 200 KB anchor become 100 MB once the run snapshot is written.
    quadratic = (
        'variables:\n  big: &big "'
        + "x" * 200_000
        + '"\n'
        + "".join(f"  v{i}: *big\n" for i in range(500))
        + "steps:\n  - {step_id: a, ps_type: debug.noop}\n"
    )
    noop = "  - {{step_id: s{0}, ps_type: debug.noop}}\n"
    many_steps = "steps:\n" + "".join(noop.format(i) for i in range(10_000))
    fan_out = "steps:\n  - {step_id: root, ps_type: debug.noop}\n" + "".join(
        f"  - {{step_id: s{i}, ps_type: debug.noop, depends_on: [root]}}\n" for i in range(5_000)
    )
    # Valid YAML well under the plan's size cap whose one query costs seconds of parser/checker CPU on every
    # execute: a refused pipeline is never cached, so each request pays again.
    additions = _query_step(
        "SELECT " + "+".join(["n"] * 150_000) + " AS x, getenv('HOME') AS y FROM {tenant_id}_own.data"
    )
    in_list = _query_step(
        "SELECT label FROM {tenant_id}_own.data WHERE n IN ("
        + ",".join(str(i) for i in range(100_000))
        + ") AND getenv('HOME') IS NULL"
    )
    return {
        "refused query of 150,000 additions (300 KB)": additions,
        "refused query with an IN list of 100,000": in_list,
        "billion laughs (9^9 aliases)": billion,
        "quadratic alias blow-up": quadratic,
        "deep nesting 50,000 lists": "steps:\n  - {step_id: a, ps_type: debug.noop, config: {x: "
        + "[" * 50_000
        + "]" * 50_000
        + "}}\n",
        "deep nesting 5,000 mappings": "steps:\n  - step_id: a\n    ps_type: debug.noop\n    config:\n"
        + "".join("  " * (i + 3) + f"k{i}:\n" for i in range(5_000))
        + "  " * 5_003
        + "v\n",
        "24 MB file": "description: " + "x" * 24_000_000 + "\nsteps:\n  - {step_id: a, ps_type: debug.noop}\n",
        "10,000 steps": many_steps,
        "fan-out 5,000": fan_out,
        "20,000 parameters": "parameters:\n"
        + "".join(f"  p{i}: {{type: string, default: v}}\n" for i in range(20_000))
        + "steps:\n  - {step_id: a, ps_type: debug.noop}\n",
        "10 MB variable": "variables:\n  v: " + "y" * 10_000_000 + "\nsteps:\n  - {step_id: a, ps_type: debug.noop}\n",
    }


def _query_step(sql: str) -> str:
    step = {
        "step_id": "a",
        "ps_type": "bigquery.query",
        "source": {"query": sql},
        "destination": {"dataset": "atk", "table": "t", "write_mode": "truncate"},
    }
    return "steps:\n  - " + json.dumps(step) + "\n"


def write_bombs(folder: Path) -> dict[str, Path]:
    """Each bomb as `folder/bomb_<i>.yaml` with a matching pipeline_id; name -> path."""
    out = {}
    for i, (name, body) in enumerate(bomb_files().items()):
        path = folder / f"bomb_{i}.yaml"
        path.write_text(f"pipeline_id: bomb_{i}\n{body}", encoding="utf-8")
        out[name] = path
    return out


def judge_in_children(files: dict[str, Path]) -> dict[str, tuple[str, str]]:
    """name -> (outcome, detail): `refused` (quickly), `accepted`, `slow` (refused after REFUSE_CPU_S of CPU),
    `killed` (past PARSE_BOUND_S), or `crash`. One child handles files in turn; after a kill, a new one goes on."""
    pending = list(files.items())
    results: dict[str, tuple[str, str]] = {}
    while pending:
        by_path = {str(p): n for n, p in pending}
        child = subprocess.Popen(
            [sys.executable, "-m", "reliability.attacks.bombs", *by_path],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            preexec_fn=_limit_memory,
        )
        assert child.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(child.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + PARSE_BOUND_S
        while pending:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                name = pending.pop(0)[0]
                results[name] = ("killed", f"still loading after {PARSE_BOUND_S:.0f} s")
                child.kill()
                break
            line = child.stdout.readline()
            if not line:  # the child died (memory cap): the file it was on is the culprit
                name = pending.pop(0)[0]
                results[name] = ("crash", f"loader process died (exit {child.wait()})")
                break
            found = json.loads(line)
            name = by_path[found["file"]]
            pending = [(n, p) for n, p in pending if n != name]
            results[name] = (found["outcome"], found["detail"])
            deadline = time.monotonic() + PARSE_BOUND_S
        sel.close()
        child.stdout.close()
        child.wait()
    return results


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))


def _main(paths: list[str]) -> None:
    from shared.catalog.loader import PipelineValidationError, load_pipeline

    for path in paths:
        started = time.process_time()
        try:
            load_pipeline(Path(path))
            outcome, detail = "accepted", "loaded as a valid pipeline"
        except PipelineValidationError as exc:
            outcome, detail = "refused", str(exc).splitlines()[0][-160:]
        except (RecursionError, MemoryError) as exc:
            outcome, detail = "crash", type(exc).__name__
        except Exception as exc:  # anything else escaping the loader is a crash of validation
            outcome, detail = "crash", f"{type(exc).__name__}: {str(exc)[:120]}"
        cpu = time.process_time() - started
        if outcome == "refused" and cpu > REFUSE_CPU_S:
            outcome, detail = "slow", f"refused after {cpu:.1f} s CPU"
        print(json.dumps({"file": path, "outcome": outcome, "detail": f"{detail} ({cpu:.2f} s CPU)"}), flush=True)


if __name__ == "__main__":
    _main(sys.argv[1:])
