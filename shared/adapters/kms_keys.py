"""The `gcp` runtime's KeyService: Cloud KMS symmetric encrypt/decrypt with additional authenticated data.

Why these choices:

* `google-cloud-kms` is imported in the constructor, so the embedded runtime (and anything that merely imports this
  module) never pays for, or depends on, the KMS client library.
* Every call carries CRC32C checksums exactly as Google documents for KMS data-integrity verification: we send
  `plaintext_crc32c` / `ciphertext_crc32c` / `additional_authenticated_data_crc32c` and check `verified_*` flags and
  the returned `ciphertext_crc32c` / `plaintext_crc32c`. Google recommends retrying a failed check a limited number of
  times (it signals corruption in transit), so we retry it once, then give up with TerminalError.
* Key operations sit on the hot path of a function invocation, so timeouts are short: a small per-call deadline with a
  bounded exponential retry of transient statuses. When that budget is spent we raise TransientError and let Pub/Sub
  redeliver with its own backoff instead of blocking the worker.

Error split: bad input, failed integrity, missing permission, unknown key -> TerminalError (retrying cannot help);
unavailable, deadline exceeded, quota exhausted, internal -> TransientError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from shared.errors import TerminalError, TransientError

T = TypeVar("T")

DEFAULT_TIMEOUT_SECONDS = 10.0
"""Overall deadline of one encrypt/decrypt, across its retries (each attempt gets the time remaining)."""

_INTEGRITY_ATTEMPTS = 2


class _IntegrityError(Exception):
    """A CRC32C check failed: the request or response was corrupted in transit."""


class CloudKmsKeys:
    """`KeyService` on one Cloud KMS CryptoKey (`projects/P/locations/L/keyRings/R/cryptoKeys/K`).

    KMS picks the primary key version on encrypt and finds the right version on decrypt, so key rotation is handled by
    KMS itself. `client` is an optional, already-built `KeyManagementServiceClient` (or a compatible test double).
    """

    def __init__(
        self, key_name: str, *, client: Any | None = None, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    ) -> None:
        if "/cryptoKeys/" not in key_name or "/cryptoKeyVersions/" in key_name:
            raise TerminalError(
                f"Cloud KMS key name must be a CryptoKey resource name "
                f"(projects/P/locations/L/keyRings/R/cryptoKeys/K), got {key_name!r}"
            )
        # Lazy imports: only the gcp runtime needs these libraries.
        import google_crc32c
        from google.api_core import exceptions as gexc
        from google.api_core import retry as gretry

        self.key_name = key_name
        self.label = f"kms:{key_name}"
        """Recorded in sealed secrets (`key_service`) so an operator can tell which key wraps them."""
        self._timeout = timeout_seconds
        self._crc32c: Callable[[bytes], int] = google_crc32c.value
        self._gexc = gexc
        transport_errors: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)
        try:  # the REST transport surfaces network failures as `requests` exceptions, unwrapped
            import requests

            transport_errors += (requests.ConnectionError, requests.Timeout)
        except ImportError:  # pragma: no cover - google-auth depends on requests
            pass
        self._transient: tuple[type[BaseException], ...] = (
            gexc.ServiceUnavailable,
            gexc.GatewayTimeout,  # includes DeadlineExceeded
            gexc.TooManyRequests,  # includes ResourceExhausted
            gexc.InternalServerError,
            gexc.Aborted,
            gexc.RetryError,  # the retry deadline ran out on a transient status
            *transport_errors,
        )
        self._retry = gretry.Retry(
            predicate=gretry.if_exception_type(
                gexc.ServiceUnavailable, gexc.GatewayTimeout, gexc.TooManyRequests, gexc.InternalServerError
            ),
            initial=0.1,
            maximum=2.0,
            multiplier=2.0,
            timeout=timeout_seconds,
        )
        if client is None:
            from google.cloud import kms

            client = kms.KeyManagementServiceClient()
        self._client = client

    # -- KeyService -------------------------------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        plaintext, aad = bytes(plaintext), bytes(aad)

        def call() -> bytes:
            request = {"name": self.key_name, "plaintext": plaintext, "plaintext_crc32c": self._crc32c(plaintext)}
            response = self._client.encrypt(
                request=request | self._aad_fields(aad),
                retry=self._retry,
                timeout=self._timeout,
            )
            if not response.verified_plaintext_crc32c:
                raise _IntegrityError("KMS did not verify the plaintext checksum of the encrypt request")
            if aad and not response.verified_additional_authenticated_data_crc32c:
                raise _IntegrityError("KMS did not verify the AAD checksum of the encrypt request")
            ciphertext = bytes(response.ciphertext)
            if _int(response.ciphertext_crc32c) != self._crc32c(ciphertext):
                raise _IntegrityError("ciphertext returned by KMS does not match its checksum")
            return ciphertext

        return self._call("encrypt", call)

    def decrypt(self, ciphertext: bytes, aad: bytes) -> bytes:
        """Raises TerminalError when the ciphertext was tampered with or `aad` differs from encryption time."""
        ciphertext, aad = bytes(ciphertext), bytes(aad)

        def call() -> bytes:
            request = {"name": self.key_name, "ciphertext": ciphertext, "ciphertext_crc32c": self._crc32c(ciphertext)}
            response = self._client.decrypt(
                request=request | self._aad_fields(aad),
                retry=self._retry,
                timeout=self._timeout,
            )
            plaintext = bytes(response.plaintext)
            if _int(response.plaintext_crc32c) != self._crc32c(plaintext):
                raise _IntegrityError("plaintext returned by KMS does not match its checksum")
            return plaintext

        return self._call("decrypt", call)

    # -- internals --------------------------------------------------------------------------------------------------

    def _aad_fields(self, aad: bytes) -> dict[str, Any]:
        """AAD and its checksum, sent only when there is AAD (KMS treats an absent AAD as empty)."""
        if not aad:
            return {}
        return {"additional_authenticated_data": aad, "additional_authenticated_data_crc32c": self._crc32c(aad)}

    def _call(self, op: str, fn: Callable[[], T]) -> T:
        """Run one KMS operation, retrying integrity failures once and translating errors to the project's split."""
        for attempt in range(1, _INTEGRITY_ATTEMPTS + 1):
            try:
                return fn()
            except _IntegrityError as exc:
                if attempt == _INTEGRITY_ATTEMPTS:
                    raise TerminalError(
                        f"Cloud KMS {op} on {self.key_name}: integrity check failed {attempt} times: {exc}"
                    ) from exc
            except self._transient as exc:
                raise TransientError(f"Cloud KMS {op} on {self.key_name} unavailable: {_describe(exc)}") from exc
            except self._gexc.GoogleAPICallError as exc:
                # InvalidArgument (wrong AAD, tampered or foreign ciphertext), FailedPrecondition (disabled/destroyed
                # version), PermissionDenied, Unauthenticated, NotFound ...: none of these heals by retrying.
                raise TerminalError(f"Cloud KMS {op} on {self.key_name} failed: {_describe(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover


def _int(value: Any) -> int:
    """`*_crc32c` fields are `google.protobuf.Int64Value` wrappers; proto-plus usually unwraps them to int."""
    if value is None:
        return -1
    return int(getattr(value, "value", value))


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {message}"
