"""ps_type -> processor module.

Modules are imported on first use, so a function's cold start pays only for the processors it runs.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import cast

from shared.errors import TerminalError
from shared.processors.base import Processor

_MODULES: dict[str, str] = {
    "bigquery.query": "shared.processors.bigquery_query",
    "debug.noop": "shared.processors.debug_noop",
}


def known_types() -> list[str]:
    return sorted(_MODULES)


def is_known_type(ps_type: str) -> bool:
    return ps_type in _MODULES


@cache
def get_processor(ps_type: str) -> Processor:
    module_name = _MODULES.get(ps_type)
    if module_name is None:
        raise TerminalError(f"unknown ps_type {ps_type!r}; known: {', '.join(known_types())}")
    module = importlib.import_module(module_name)
    return cast(Processor, module.PROCESSOR)
