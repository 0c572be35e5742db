"""Deciding what an attack achieved: markers (canaries, names, paths) found in what the attacker can see, and the
per-class tally of tried / blocked / breached.

A marker the attacker wrote into its own payload is not a leak when it comes back (a validation error quoting the
attacker's own SQL names the victim's dataset because the attacker did): only markers absent from the payload count.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Expect = Literal["refuse", "no-leak"]
"""`refuse`: the attack must not run to SUCCEEDED at all (a table function that ran is a breach even when its output
happens to hold no marker). `no-leak`: it may run or fail, as long as nothing foreign reaches the attacker."""

Outcome = Literal["blocked", "breached", "ran-clean", "not-measured"]


@dataclass(frozen=True)
class Attack:
    klass: str
    name: str
    step: Mapping[str, Any]
    """The step as YAML data without `step_id` (ps_type, source, destination, config, timeout_minutes, ...)."""
    expect: Expect = "refuse"
    parameters: Mapping[str, Any] = field(default_factory=dict)
    """Run parameters given to execute."""
    pipeline: Mapping[str, Any] = field(default_factory=dict)
    """Extra pipeline keys (parameters declarations, variables); attacks with any run alone."""
    direct_sql: str | None = None
    """SQL also sent straight to the attacker's warehouse, bypassing the SQL check (structural isolation)."""

    def payload_text(self) -> str:
        return json.dumps([self.step, self.parameters, self.pipeline], default=str, ensure_ascii=False)


@dataclass
class Verdict:
    attack: Attack
    outcome: Outcome
    stage: str
    """Where it ended: `refused at validation`, `execute 400`, the stage status, ..."""
    leaks: list[str] = field(default_factory=list)
    """Marker names found where the attacker can see them (or another harm: `wrote reserved`, `connect ...`)."""
    evidence: str = ""


class Markers:
    """Named secret strings; `found(text, payload)` lists those present in `text` but absent from `payload`."""

    def __init__(self, markers: Mapping[str, str]) -> None:
        self.markers = {name: value for name, value in markers.items() if value}

    def found(self, text: str, payload: str = "") -> list[str]:
        haystack, own = text.casefold(), payload.casefold()
        return sorted(
            name for name, value in self.markers.items() if value.casefold() in haystack and value.casefold() not in own
        )

    def without(self, payloads: Iterable[str]) -> Markers:
        """The markers no payload contains (for sweeps of everything the attacker owns, not tied to one attack)."""
        texts = [p.casefold() for p in payloads]
        return Markers({n: v for n, v in self.markers.items() if not any(v.casefold() in t for t in texts)})


def excerpt(text: str, markers: Markers, names: list[str], width: int = 80) -> str:
    """The text around the first marker found (the report shows what leaked, without dumping everything)."""
    low = text.casefold()
    for name in names:
        value = markers.markers.get(name, "")
        at = low.find(value.casefold()) if value else -1
        if at >= 0:
            return text[max(0, at - width // 2) : at + len(value) + width // 2].replace("\n", " ")
    return text[:width].replace("\n", " ")


def judge_run(attack: Attack, status: str, seen: str, markers: Markers, harms: list[str]) -> Verdict:
    """An attack that got past validation and ran: `status` of its stage, `seen` = everything of it the attacker can
    read (stage view, output table, notifications), `harms` = effects found outside its text (reserved writes, ...)."""
    leaks = markers.found(seen, attack.payload_text()) + harms
    if leaks:
        return Verdict(attack, "breached", status, leaks, excerpt(seen, markers, leaks))
    if status == "SUCCEEDED" and attack.expect == "refuse":
        return Verdict(attack, "breached", status, ["ran (must be refused)"], seen[:120])
    if status == "SUCCEEDED":
        return Verdict(attack, "ran-clean", status)
    if status in ("FAILED", "TIMED_OUT", "CANCELLED", "SKIPPED", "REFUSED"):
        return Verdict(attack, "blocked", status)
    return Verdict(attack, "not-measured", status or "no status")


@dataclass
class Tally:
    tried: int = 0
    blocked: int = 0
    breached: int = 0
    ran_clean: int = 0
    not_measured: int = 0

    def add(self, outcome: Outcome) -> None:
        self.tried += 1
        if outcome == "blocked":
            self.blocked += 1
        elif outcome == "breached":
            self.breached += 1
        elif outcome == "ran-clean":
            self.ran_clean += 1
        else:
            self.not_measured += 1

    def render(self) -> str:
        extra = []
        if self.ran_clean:
            extra.append(f"ran without a leak {self.ran_clean}")
        if self.not_measured:
            extra.append(f"not measured {self.not_measured}")
        tail = f" ({', '.join(extra)})" if extra else ""
        return f"tried {self.tried} / blocked {self.blocked} / breached {self.breached}{tail}"


def tally(verdicts: Iterable[Verdict]) -> tuple[Tally, dict[str, Tally]]:
    overall, per_class = Tally(), dict[str, Tally]()
    for v in verdicts:
        overall.add(v.outcome)
        per_class.setdefault(v.attack.klass, Tally()).add(v.outcome)
    return overall, per_class


def describe(v: Verdict) -> str:
    """One report line of a breach: class, name, where it got to, what leaked, and the payload itself."""
    return (
        f"[{v.attack.klass}] {v.attack.name}: {v.stage}; {', '.join(v.leaks)}"
        + (f" ({v.evidence[:160]!r})" if v.evidence else "")
        + f"\n    payload: {v.attack.payload_text()[:400]}"
    )
