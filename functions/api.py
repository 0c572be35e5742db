"""api: the HTTP function. Auth, quota admission and publishing live in shared/; this only adapts Flask."""

from typing import Any

import functions_framework

from shared import logs
from shared.api.http import handle_flask
from shared.runtime.context import get_context


@functions_framework.http
def api(request: Any) -> tuple[str, int, dict[str, str]]:
    logs.configure()
    return handle_flask(get_context(), request)
