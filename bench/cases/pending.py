"""Cases not measured yet: none at the moment (P5 and P6 are measured by p5_arrow.py and p6_schedules.py).

A pending case prints "not measured yet: needs <what>" and carries no number. To add one, define it here with
`bench.harness.pending("PN", title, needs)` and list it in bench/cases/__init__.py; when its feature lands, write
bench/cases/pN_<name>.py with `CASE = Case("PN", ..., measure)` (see p3_api_keys.py for a case that builds its own
population, p4_admission.py for one that starts its own emulators and function process) and swap it in.
"""

from __future__ import annotations
