"""The one error a channel raises: whether retrying can help decides between backoff and a recorded failure."""

from __future__ import annotations


class ChannelError(Exception):
    """A channel could not take the message.

    `transient`: 5xx, 429, timeouts, refused connections, SMTP 4xx - try again later (after `retry_after` seconds when
    the server said so). Otherwise permanent: bad URL, 4xx, authentication refused, missing secret - retrying cannot
    help, the delivery is recorded as failed.
    """

    def __init__(self, message: str, transient: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after
