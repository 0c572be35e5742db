"""BigQuery client exceptions as the transient/terminal split, and the error of a query over its bytes cap."""

from __future__ import annotations

import concurrent.futures
import re
from collections.abc import Iterator
from contextlib import contextmanager

from shared.errors import TerminalError, TransientError

_TRANSIENT_REASONS = frozenset({"rateLimitExceeded", "backendError", "internalError", "jobRateLimitExceeded"})
_BYTES_LIMIT = re.compile(r"limit for bytes billed: (\d+)\. (\d+) or higher required")
"""BigQuery's bytesBilledLimitExceeded message: "Query exceeded limit for bytes billed: M. N or higher required." """


def over_cap_message(who: str, error: str) -> str:
    found = _BYTES_LIMIT.search(error)
    if not found:
        return f"{who} would bill more bytes than the plan's cap allows: {error}"
    cap, needed = int(found.group(1)), int(found.group(2))
    return (
        f"{who} would bill {needed:,} bytes, over the plan's cap of {cap:,} bytes per query; narrow the query (a "
        "partition filter, fewer columns) or raise the tenant's `bytes_billed_per_query` limit"
    )


@contextmanager
def mapped_errors(action: str, identity: str | None = None, who: str = "the query") -> Iterator[None]:
    """Translate client exceptions into the pipeline's transient/terminal split.

    Bad SQL, missing tables and permissions are terminal (BigQuery's message is kept: it names the problem and its
    position; a 403 also names the identity refused). 5xx, 429, rate limits, exhausted retries, timeouts and
    connection failures are transient. A token that cannot be minted for the tenant's account (no such account, no
    Token Creator on it) is terminal unless google-auth marks it retryable: nothing falls back to another identity.
    """
    from google.api_core import exceptions as gexc
    from google.auth.exceptions import RefreshError, TransportError

    try:
        yield
    except gexc.GoogleAPICallError as e:
        reasons = {str(err.get("reason", "")) for err in (e.errors or []) if isinstance(err, dict)}
        message = f"BigQuery {action}: {e}"
        if "bytesBilledLimitExceeded" in reasons:  # `who` names the step: the tenant sees which one to narrow
            raise TerminalError(over_cap_message(who, str(e))) from e
        if isinstance(e, gexc.ServerError | gexc.TooManyRequests) or reasons & _TRANSIENT_REASONS:
            raise TransientError(message) from e
        if isinstance(e, gexc.Forbidden) and identity:
            message += f" (acting as {identity})"
        raise TerminalError(message) from e
    except RefreshError as e:
        message = (
            f"BigQuery {action}: cannot act as {identity or 'the configured identity'}: {e} (the account must exist, "
            "terraform/modules/tenant, and the function's account needs roles/iam.serviceAccountTokenCreator on it)"
        )
        if getattr(e, "retryable", False):
            raise TransientError(message) from e
        raise TerminalError(message) from e
    except gexc.RetryError as e:
        raise TransientError(f"BigQuery {action}: retries exhausted: {e.cause or e}") from e
    except (concurrent.futures.TimeoutError, ConnectionError, TransportError) as e:
        raise TransientError(f"BigQuery {action}: {type(e).__name__}: {e}") from e
    except Exception as e:
        import requests

        if isinstance(e, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
            raise TransientError(f"BigQuery {action}: {type(e).__name__}: {e}") from e
        raise
