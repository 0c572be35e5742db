"""api: the HTTP function. Auth, quota admission and publishing live in shared/; this only adapts Flask."""

from typing import Any

import functions_framework

from shared import logs, observability
from shared.api.http import handle_flask
from shared.runtime.context import get_context


@functions_framework.http
def api(request: Any) -> tuple[str, int, dict[str, str]]:
    ctx = get_context()
    logs.configure(ctx.settings.log_level)
    observability.configure(ctx.settings)
    with observability.http_span("api", request.method, request.path, dict(request.headers.items())) as span:
        text, status, headers = handle_flask(ctx, request)
        span.set_attribute("http.response.status_code", status)
    return text, status, headers
