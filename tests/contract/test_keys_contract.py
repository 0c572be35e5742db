"""Contract of the KeyService port and of envelope-sealed secrets, run against both adapters.

* "local": `LocalKeyring` on a real keyring file in a temp folder (real AES-256-GCM).
* "kms":   `CloudKmsKeys` against drongo's in-process Cloud KMS mock. There is no KMS emulator; drongo forces
  `KeyManagementServiceClient` onto its REST transport and serves it from memory, including the AAD check and the
  CRC32C fields. Its "ciphertext" is NOT real encryption: it is base64 JSON that embeds the plaintext. So assertions
  about the KeyService ciphertext hiding the plaintext, or about flipping an arbitrary byte, are meaningful only for
  the local adapter and are skipped for kms. (Envelope records stay meaningful for both: the secret itself is
  encrypted locally with a data key, and only that data key ever reaches the key service.)

drongo's own `mock_gcp()` would intercept every `requests` call and start fake Pub/Sub / Firestore / ... servers that
set `*_EMULATOR_HOST` variables. To keep it from leaking into anything else, the kms fixture wires up *only* drongo's
KMS pieces (its KMS router on a private `responses` mock that passes every non-KMS URL through, and its patch that
forces the KMS client onto REST), for the duration of one test.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.kms_keys import CloudKmsKeys
from shared.adapters.local_keys import KEYRING_FILENAME, LocalKeyring
from shared.errors import TerminalError, TransientError
from shared.ports.keys import KeyService
from shared.secrets import open_sealed, seal

PROJECT = "cloudact-test"
KEY_RING = f"projects/{PROJECT}/locations/global/keyRings/cloudact"
SECRET = b"sk_live_\x00\xffsuper-secret-api-token-1234567890"


# -- fixtures -------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def drongo_kms_only() -> Iterator[None]:
    """Activate drongo's Cloud KMS mock, and nothing else of drongo, for the duration of the block."""
    import responses
    from drongo.core.patching import force_rest_patchers
    from drongo.services.kms import KMSResponse, kms_backends, urls

    kms_backends.reset()
    mock = responses.RequestsMock(assert_all_requests_are_fired=False)
    KMSResponse(urls.url_bases, urls.url_paths).register(mock)
    mock.add_passthru(re.compile(r"^(?!https?://cloudkms\.googleapis\.com/)"))
    patchers = force_rest_patchers([("google.cloud.kms_v1", "KeyManagementServiceClient")])
    assert patchers, "drongo could not patch google.cloud.kms_v1.KeyManagementServiceClient"
    mock.start()
    try:
        with contextlib.ExitStack() as stack:
            for patcher in patchers:
                stack.enter_context(patcher)
            yield
    finally:
        mock.stop()
        mock.reset()
        kms_backends.reset()


def _make_kms_key(key_id: str = "secrets") -> str:
    from google.cloud import kms

    client = kms.KeyManagementServiceClient()
    with contextlib.suppress(Exception):  # the ring may exist already within this test
        client.create_key_ring(
            request={"parent": KEY_RING.rsplit("/keyRings/", 1)[0], "key_ring_id": "cloudact", "key_ring": {}}
        )
    key = client.create_crypto_key(
        request={
            "parent": KEY_RING,
            "crypto_key_id": key_id,
            "crypto_key": {"purpose": kms.CryptoKey.CryptoKeyPurpose.ENCRYPT_DECRYPT},
        }
    )
    return str(key.name)


@pytest.fixture(params=["local", "kms"])
def adapter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, KeyService]]:
    if request.param == "local":
        yield "local", LocalKeyring.for_home(tmp_path / ".cloudact")
        return
    with drongo_kms_only():
        yield "kms", CloudKmsKeys(_make_kms_key())


@pytest.fixture
def keys(adapter: tuple[str, KeyService]) -> KeyService:
    return adapter[1]


def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


# -- KeyService contract --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("plaintext", [b"", b"x", SECRET, bytes(range(256)) * 40])
def test_round_trip(keys: KeyService, plaintext: bytes) -> None:
    ciphertext = keys.encrypt(plaintext, b"aad:tenant_a")
    assert isinstance(ciphertext, bytes)
    assert keys.decrypt(ciphertext, b"aad:tenant_a") == plaintext


def test_round_trip_with_empty_aad(keys: KeyService) -> None:
    assert keys.decrypt(keys.encrypt(SECRET, b""), b"") == SECRET


def test_encryption_is_randomised(adapter: tuple[str, KeyService]) -> None:
    kind, keys = adapter
    if kind == "kms":
        pytest.skip("drongo's fake KMS ciphertext is deterministic; real KMS uses a random IV")
    assert keys.encrypt(SECRET, b"a") != keys.encrypt(SECRET, b"a")


@pytest.mark.parametrize("wrong_aad", [b"aad:tenant_b", b"", b"aad:tenant_a\x00", b"AAD:TENANT_A"])
def test_wrong_aad_fails(keys: KeyService, wrong_aad: bytes) -> None:
    ciphertext = keys.encrypt(SECRET, b"aad:tenant_a")
    with pytest.raises(TerminalError):
        keys.decrypt(ciphertext, wrong_aad)


@pytest.mark.parametrize("tamper", ["flip_first", "flip_last", "truncate", "append", "empty"])
def test_tampered_ciphertext_fails(adapter: tuple[str, KeyService], tamper: str) -> None:
    kind, keys = adapter
    if kind == "kms" and tamper == "append":
        pytest.skip("drongo decodes its fake ciphertext with lenient base64, which ignores trailing garbage")
    ciphertext = keys.encrypt(SECRET, b"aad")
    tampered = {
        "flip_first": _flip(ciphertext, 0),
        "flip_last": _flip(ciphertext, -1),
        "truncate": ciphertext[:-1],
        "append": ciphertext + b"\x00",
        "empty": b"",
    }[tamper]
    with pytest.raises(TerminalError):
        keys.decrypt(tampered, b"aad")


def test_every_flipped_byte_is_detected(adapter: tuple[str, KeyService]) -> None:
    kind, keys = adapter
    if kind == "kms":
        pytest.skip("drongo's KMS ciphertext is unauthenticated base64 JSON; real KMS authenticates every byte")
    ciphertext = keys.encrypt(SECRET, b"aad")
    for index in range(len(ciphertext)):
        with pytest.raises(TerminalError):
            keys.decrypt(_flip(ciphertext, index), b"aad")


def test_ciphertext_does_not_contain_plaintext(adapter: tuple[str, KeyService]) -> None:
    kind, keys = adapter
    if kind == "kms":
        pytest.skip("drongo's KMS ciphertext is fake (base64 JSON embedding the plaintext); only local is real crypto")
    plaintext = b"a very recognisable plaintext " * 4
    ciphertext = keys.encrypt(plaintext, b"aad")
    assert plaintext[:16] not in ciphertext
    assert base64.b64encode(plaintext)[:16] not in base64.b64encode(ciphertext)


# -- envelope-sealed secrets ----------------------------------------------------------------------------------------


def test_seal_open_round_trip(keys: KeyService) -> None:
    record = seal(keys, SECRET, "tenant_a", "openai_api_key")
    restored = json.loads(json.dumps(record))  # the record must survive JSON storage
    assert set(restored) == {"v", "wrapped_key", "nonce", "ciphertext", "key_service"}
    assert restored["v"] == 1
    assert open_sealed(keys, restored, "tenant_a", "openai_api_key") == SECRET


def test_each_seal_uses_a_fresh_data_key(keys: KeyService) -> None:
    first, second = seal(keys, SECRET, "tenant_a", "n"), seal(keys, SECRET, "tenant_a", "n")
    assert first["nonce"] != second["nonce"]
    assert first["ciphertext"] != second["ciphertext"]
    assert first["wrapped_key"] != second["wrapped_key"]


@pytest.mark.parametrize(("tenant_id", "name"), [("tenant_b", "openai_api_key"), ("tenant_a", "slack_token")])
def test_sealed_record_moved_to_another_tenant_or_name_fails(keys: KeyService, tenant_id: str, name: str) -> None:
    record = seal(keys, SECRET, "tenant_a", "openai_api_key")
    with pytest.raises(TerminalError):
        open_sealed(keys, record, tenant_id, name)


def test_sealed_record_with_swapped_wrapped_key_fails(keys: KeyService) -> None:
    """Both layers are bound to tenant+name: splicing tenant B's (valid) wrapped key into A's record fails too."""
    mine = seal(keys, SECRET, "tenant_a", "token")
    theirs = seal(keys, b"other", "tenant_b", "token")
    with pytest.raises(TerminalError):
        open_sealed(keys, {**mine, "wrapped_key": theirs["wrapped_key"]}, "tenant_a", "token")


@pytest.mark.parametrize("field", ["ciphertext", "nonce"])
def test_tampered_sealed_record_fails(keys: KeyService, field: str) -> None:
    record = seal(keys, SECRET, "tenant_a", "token")
    raw = base64.b64decode(record[field])
    record[field] = base64.b64encode(_flip(raw, len(raw) // 2)).decode()
    with pytest.raises(TerminalError):
        open_sealed(keys, record, "tenant_a", "token")


def test_sealed_record_contains_no_plaintext(keys: KeyService) -> None:
    """Holds for kms too: the secret is encrypted locally; only the random data key goes to the key service."""
    plaintext = b"a very recognisable plaintext " * 4
    text = json.dumps(seal(keys, plaintext, "tenant_a", "token"))
    for needle in (plaintext[:16], base64.b64encode(plaintext)[:16], plaintext.hex()[:16].encode()):
        assert needle.decode() not in text


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: [],
        lambda r: "not a record",
        lambda r: {k: v for k, v in r.items() if k != "nonce"},
        lambda r: {**r, "v": 2},
        lambda r: {**r, "v": True},
        lambda r: {**r, "wrapped_key": 12345},
        lambda r: {**r, "ciphertext": "***not base64***"},
        lambda r: {**r, "nonce": base64.b64encode(b"short").decode()},
        lambda r: {**r, "key_service": "some-other-service"},
    ],
    ids=["list", "str", "missing_field", "future_version", "bool_version", "non_str", "bad_b64", "short_nonce", "svc"],
)
def test_malformed_sealed_record_fails(keys: KeyService, mutate: Any) -> None:
    record = seal(keys, SECRET, "tenant_a", "token")
    with pytest.raises(TerminalError):
        open_sealed(keys, mutate(record), "tenant_a", "token")


@pytest.mark.parametrize(("tenant_id", "name"), [("", "token"), ("tenant_a", ""), ("tenant:a", "token")])
def test_ambiguous_tenant_or_name_is_refused(keys: KeyService, tenant_id: str, name: str) -> None:
    with pytest.raises(TerminalError):
        seal(keys, SECRET, tenant_id, name)


# -- local keyring specifics ----------------------------------------------------------------------------------------


def test_keyring_file_is_created_on_first_use_with_mode_0600(tmp_path: Path) -> None:
    home = tmp_path / ".cloudact"
    keyring = LocalKeyring.for_home(home)
    assert not home.exists(), "constructing the adapter must not touch the disk"
    keyring.encrypt(b"x", b"")
    path = home / KEYRING_FILENAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    document = json.loads(path.read_text())
    assert document["primary"] == 1 and list(document["keys"]) == ["1"]
    assert not [p for p in home.iterdir() if p.name.endswith(".tmp")], "no temp file left behind"


def test_keyring_persists_across_instances(tmp_path: Path) -> None:
    path = tmp_path / KEYRING_FILENAME
    record = seal(LocalKeyring(path), SECRET, "tenant_a", "token")
    assert open_sealed(LocalKeyring(path), record, "tenant_a", "token") == SECRET


def test_rotation_keeps_old_ciphertext_decryptable(tmp_path: Path) -> None:
    path = tmp_path / KEYRING_FILENAME
    keyring = LocalKeyring(path)
    old_ciphertext = keyring.encrypt(SECRET, b"aad")
    old_record = seal(keyring, SECRET, "tenant_a", "token")
    assert keyring.rotate() == 2
    assert keyring.primary_version == 2 and keyring.versions == [1, 2]
    new_ciphertext = keyring.encrypt(SECRET, b"aad")
    assert new_ciphertext[1:5] == (2).to_bytes(4, "big") != old_ciphertext[1:5]

    fresh = LocalKeyring(path)  # a restarted process sees both versions
    assert fresh.decrypt(old_ciphertext, b"aad") == SECRET
    assert fresh.decrypt(new_ciphertext, b"aad") == SECRET
    assert open_sealed(fresh, old_record, "tenant_a", "token") == SECRET
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_rotation_by_another_process_is_picked_up(tmp_path: Path) -> None:
    path = tmp_path / KEYRING_FILENAME
    stale, rotator = LocalKeyring(path), LocalKeyring(path)
    stale.encrypt(b"load", b"")
    rotator.rotate()
    assert stale.decrypt(rotator.encrypt(SECRET, b"aad"), b"aad") == SECRET


def test_in_memory_keyring_round_trips_and_rotates(tmp_path: Path) -> None:
    keyring = LocalKeyring.in_memory()
    old = keyring.encrypt(SECRET, b"aad")
    assert keyring.rotate() == 2
    assert keyring.decrypt(old, b"aad") == SECRET
    assert keyring.decrypt(keyring.encrypt(SECRET, b"aad"), b"aad") == SECRET
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TerminalError):  # keys are per instance: another in-memory keyring cannot decrypt
        LocalKeyring.in_memory().decrypt(old, b"aad")


def test_unknown_key_version_fails(tmp_path: Path) -> None:
    keyring = LocalKeyring(tmp_path / KEYRING_FILENAME)
    ciphertext = bytearray(keyring.encrypt(SECRET, b"aad"))
    ciphertext[1:5] = (99).to_bytes(4, "big")
    with pytest.raises(TerminalError, match="unknown key version 99"):
        keyring.decrypt(bytes(ciphertext), b"aad")


def test_keyring_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / KEYRING_FILENAME
    LocalKeyring(path).encrypt(b"x", b"")
    path.chmod(0o644)
    with pytest.raises(TerminalError, match="0644"):
        LocalKeyring(path).encrypt(b"x", b"")


@pytest.mark.parametrize("content", ["not json", "{}", '{"format": 1, "primary": 2, "keys": {"1": "AAAA"}}'])
def test_malformed_keyring_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / KEYRING_FILENAME
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(TerminalError, match="malformed"):
        LocalKeyring(path).encrypt(b"x", b"")


# -- Cloud KMS specifics (a stub client, to reach failure modes drongo cannot produce) -------------------------------


class _Response:
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


class _StubKmsClient:
    """Just enough of KeyManagementServiceClient to inject errors and corrupted checksums."""

    def __init__(self, error: Exception | None = None, corrupt_crc: bool = False) -> None:
        self.error, self.corrupt_crc, self.calls = error, corrupt_crc, 0

    def encrypt(self, request: dict[str, Any], retry: Any = None, timeout: float | None = None) -> _Response:
        import google_crc32c

        self.calls += 1
        assert timeout is not None and retry is not None, "KMS calls must carry a timeout and a retry policy"
        if self.error is not None:
            raise self.error
        ciphertext = b"opaque:" + request["plaintext"]
        crc = google_crc32c.value(ciphertext) + (1 if self.corrupt_crc else 0)
        return _Response(
            ciphertext=ciphertext,
            ciphertext_crc32c=crc,
            verified_plaintext_crc32c=True,
            verified_additional_authenticated_data_crc32c=True,
        )


@pytest.mark.parametrize(
    ("error_name", "expected"),
    [
        ("ServiceUnavailable", TransientError),
        ("DeadlineExceeded", TransientError),
        ("ResourceExhausted", TransientError),
        ("InternalServerError", TransientError),
        ("InvalidArgument", TerminalError),
        ("PermissionDenied", TerminalError),
        ("NotFound", TerminalError),
        ("FailedPrecondition", TerminalError),
    ],
)
def test_kms_errors_are_split_into_transient_and_terminal(error_name: str, expected: type[Exception]) -> None:
    from google.api_core import exceptions as gexc

    client = _StubKmsClient(error=getattr(gexc, error_name)("boom"))
    keys = CloudKmsKeys(f"{KEY_RING}/cryptoKeys/k", client=client)
    with pytest.raises(expected) as info:
        keys.encrypt(b"x", b"aad")
    assert not isinstance(info.value, TerminalError if expected is TransientError else TransientError)


def test_kms_integrity_failure_is_retried_once_then_terminal() -> None:
    client = _StubKmsClient(corrupt_crc=True)
    keys = CloudKmsKeys(f"{KEY_RING}/cryptoKeys/k", client=client)
    with pytest.raises(TerminalError, match="integrity"):
        keys.encrypt(b"x", b"aad")
    assert client.calls == 2


@pytest.mark.parametrize("name", ["not-a-key", f"{KEY_RING}/cryptoKeys/k/cryptoKeyVersions/1"])
def test_kms_key_name_must_be_a_crypto_key(name: str) -> None:
    with pytest.raises(TerminalError, match="CryptoKey resource name"):
        CloudKmsKeys(name, client=_StubKmsClient())


def test_drongo_scope_does_not_leak() -> None:
    """After a kms test, the KMS client is no longer patched onto REST and other HTTP traffic was never captured."""
    import requests
    from google.cloud import kms

    original_init = kms.KeyManagementServiceClient.__init__
    with drongo_kms_only():
        assert kms.KeyManagementServiceClient.__init__ is not original_init
        keys = CloudKmsKeys(_make_kms_key("leak-check"))
        assert keys.decrypt(keys.encrypt(b"x", b"a"), b"a") == b"x"
        with pytest.raises(requests.ConnectionError) as info:  # non-KMS URLs pass through to the real (closed) port
            requests.get("http://127.0.0.1:9/", timeout=2)
        assert "Responses" not in str(info.value)
    assert kms.KeyManagementServiceClient.__init__ is original_init
