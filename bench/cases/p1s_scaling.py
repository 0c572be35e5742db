"""P1s: how orchestration scales with a run's length and fan-in, on the embedded runtime (issue 15).

seq10/seq100/seq1000 (chains) and fan10/fan100/fan1000 (root -> N parallel stages -> one join), warm, in one process,
measured side by side round by round. Every state-store call is counted through a proxy around the runtime's store:
a stage transition must do O(1) state work whatever the fan-in or the length, so the calls per stage stay flat.
"""

from __future__ import annotations

import itertools
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from bench.cases.p1_embedded import timed_run
from bench.harness import Case, CaseResult, Figure, Options, Target, median, progress
from bench.pipelines import BENCH_TENANT, fan_in, sequential, write_bench_tenant
from bench.tenants import onboard_unthrottled

SIZES = (10, 100, 1000)
GROWTH_TARGET = 11.0
"""10x the stages may cost at most 11x the time (linear, with a little slack for the bigger run's memory)."""
FLAT_TOLERANCE = 0.20
"""State calls per further stage may differ by at most 20 % between 10->100 and 100->1000 stages."""


class CountingState:
    """Every StateStore method call counted (reads: get/get_versioned/list; writes: the rest); otherwise transparent."""

    _READS = frozenset({"get", "get_versioned", "list"})

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr) or name.startswith("_") or name == "close":
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls["read" if name in self._READS else "write"] += 1
                self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted

    def take(self) -> Counter[str]:
        with self._lock:
            out, self.calls = self.calls, Counter()
        return out


def _pipelines(config_dir: Path) -> dict[str, int]:
    folder = config_dir / BENCH_TENANT / "pipelines"
    stages: dict[str, int] = {}
    for n in SIZES:
        (folder / f"seq{n}.yaml").write_text(sequential(f"seq{n}", n))
        (folder / f"fanin{n}.yaml").write_text(fan_in(f"fanin{n}", n))
        stages[f"seq{n}"], stages[f"fanin{n}"] = n, n + 2
    return stages


def measure(options: Options) -> CaseResult:
    from shared import logs
    from shared.app import embedded
    from shared.runtime.settings import Settings

    rounds = 1 if options.quick else 3
    seconds: dict[str, list[float]] = {}
    calls: dict[str, Counter[str]] = {}
    with tempfile.TemporaryDirectory(prefix="cloudact-bench-p1s-") as tmp:
        config_dir = write_bench_tenant(Path(tmp) / "tenant_configs")
        stages = _pipelines(config_dir)
        logs.configure(level="WARNING")
        runtime = embedded.start(Settings(runtime="embedded", home=Path(tmp) / "home", config_dir=config_dir))
        try:
            headers = onboard_unthrottled(runtime.context, BENCH_TENANT)
            counting = CountingState(runtime.context.state)
            runtime.context._state = counting  # type: ignore[assignment]  # the proxy satisfies StateStore
            progress(f"P1s: 1 warm-up + {rounds} round(s) of {', '.join(stages)}")
            for i in range(1 + rounds):
                for pipeline_id in stages:
                    counting.take()
                    elapsed, _ = timed_run(runtime, pipeline_id, headers, timeout_s=600.0)
                    used = counting.take()
                    if i:
                        seconds.setdefault(pipeline_id, []).append(elapsed)
                        calls[pipeline_id] = used
        finally:
            runtime.close()
    figures: list[Figure] = []
    for family in ("seq", "fanin"):
        t = {n: median(seconds[f"{family}{n}"]) for n in SIZES}
        per_stage = {
            n: sum(calls[f"{family}{n}"][k] for k in ("read", "write")) / stages[f"{family}{n}"] for n in SIZES
        }
        for n in SIZES:
            figures.append(Figure(f"{family}{n} warm, median", t[n], "s", samples=len(seconds[f"{family}{n}"])))
            figures.append(Figure(f"{family}{n} per stage", t[n] / stages[f"{family}{n}"] * 1000, "ms"))
            figures.append(
                Figure(
                    f"{family}{n} state calls per stage",
                    per_stage[n],
                    "calls",
                    note=f"reads {calls[f'{family}{n}']['read']}, writes {calls[f'{family}{n}']['write']}",
                )
            )
        figures.append(Figure(f"{family}1000 / {family}100 time", t[1000] / t[100], "x", Target("<=", GROWTH_TARGET)))
        # Calls per stage include the run's fixed cost (admission, run document, finalisation: ~30 calls), which a
        # 10-stage run spreads over few stages; what must stay flat is the cost of each further stage.
        total = {n: sum(calls[f"{family}{n}"][k] for k in ("read", "write")) for n in SIZES}
        marginal = [
            (total[b] - total[a]) / (stages[f"{family}{b}"] - stages[f"{family}{a}"])
            for a, b in itertools.pairwise(SIZES)
        ]
        figures.append(
            Figure(
                f"{family} state calls per further stage (10->100, 100->1000)",
                marginal[-1],
                "calls",
                note=" / ".join(f"{m:.2f}" for m in marginal),
            )
        )
        spread = max(marginal) / min(marginal) - 1
        figures.append(
            Figure(
                f"{family} state calls per further stage, spread",
                spread * 100,
                "%",
                Target("<=", FLAT_TOLERANCE * 100),
            )
        )
    return CaseResult(
        "P1s",
        CASE.title,
        "measured",
        figures,
        details={"samples_s": seconds, "state_calls": {k: dict(v) for k, v in calls.items()}, "stages": stages},
    )


CASE = Case("P1s", "scaling with run length and fan-in (embedded): time and state calls per stage", measure)
