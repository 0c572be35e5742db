"""The error split every hop relies on.

A *transient* error means "try again later": the function nacks, Pub/Sub redelivers with backoff and, after the
subscription's max delivery attempts, dead-letters. A *terminal* error means "retrying cannot help": the function acks,
records FAILED and emits an event. Client errors are the HTTP face of bad input: always a 4xx with a JSON body.
"""

from __future__ import annotations

from typing import Any


class PipelineError(Exception):
    """Base class of every error this project raises on purpose."""


class TransientError(PipelineError):
    """Retrying may succeed (network blip, contention, a claim still held by another worker)."""

    def __init__(self, message: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class TerminalError(PipelineError):
    """Retrying cannot succeed (bad config, bad data, a failed check)."""


class UndecodableMessage(TerminalError):
    """A message whose bytes or schema cannot be understood: dead-letter it at once, never retry it."""


class ClientError(PipelineError):
    """A request the caller must fix. Rendered as `{error, message, details}` with `status`."""

    status: int = 400
    code: str = "BAD_REQUEST"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, "details": self.details}


class BadRequest(ClientError):
    status = 400
    code = "BAD_REQUEST"


class Unauthorized(ClientError):
    status = 401
    code = "UNAUTHORIZED"


class Forbidden(ClientError):
    status = 403
    code = "FORBIDDEN"


class NotFound(ClientError):
    status = 404
    code = "NOT_FOUND"


class MethodNotAllowed(ClientError):
    status = 405
    code = "METHOD_NOT_ALLOWED"


class Conflict(ClientError):
    status = 409
    code = "CONFLICT"


class PayloadTooLarge(ClientError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class TooManyRequests(ClientError):
    status = 429
    code = "TOO_MANY_REQUESTS"

    def __init__(self, message: str, retry_after_seconds: int, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details)
        self.retry_after_seconds = retry_after_seconds


class ServiceUnavailable(ClientError):
    status = 503
    code = "UNAVAILABLE"

    def __init__(self, message: str, retry_after_seconds: int = 1, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details)
        self.retry_after_seconds = retry_after_seconds
