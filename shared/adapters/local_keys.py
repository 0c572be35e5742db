"""The embedded runtime's KeyService: AES-256-GCM under versioned master keys kept in a local keyring file.

Why a file and not an environment variable: the embedded runtime has no KMS, yet secrets sealed in one session must
open in the next, and the key must be rotatable without re-sealing everything. So the keyring holds every master key
version it has ever had; `rotate()` adds a new *primary* version used for new ciphertext, while older versions stay to
decrypt what they sealed.

Ciphertext layout (all big-endian)::

    0x01 | key version (uint32) | nonce (12 random bytes) | AES-GCM ciphertext + 16-byte tag

The 5-byte header is prepended to the caller's AAD before it reaches AESGCM, so editing the key version (or the format
byte) is detected like any other tampering. Any failure raises `TerminalError`: this adapter never returns unverified
bytes and never falls back to plaintext.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import stat
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.clock import iso, utc_now
from shared.errors import TerminalError

KEYRING_FILENAME = "keyring.json"
"""File name of the keyring inside the embedded runtime's home (`Settings.home`, i.e. `.cloudact/`)."""

FORMAT_V1 = 0x01
_HEADER = struct.Struct(">BI")  # format byte, key version
_NONCE_LEN = 12
_TAG_LEN = 16
_KEY_LEN = 32
_FILE_FORMAT = 1


class LocalKeyring:
    """AES-256-GCM `KeyService` backed by a JSON keyring file (mode 0600) or, for tests, by memory only.

    The file is only touched on first use (encrypt, decrypt or rotate), so constructing the adapter is cheap and has no
    side effects; the first use creates it atomically with a fresh primary key.
    """

    label = "local"
    """Recorded in sealed secrets (`key_service`) so an operator can tell which key service wraps them."""

    def __init__(self, path: Path | None) -> None:
        """`path=None` keeps keys in memory only (see `in_memory()`); otherwise `path` is the keyring file."""
        self._path = path
        self._lock = threading.Lock()
        self._keys: dict[int, bytes] = {}
        self._primary = 0
        self._loaded = False

    @classmethod
    def in_memory(cls) -> LocalKeyring:
        """A keyring that lives only as long as the object: for tests, never for data that must survive a restart."""
        return cls(None)

    @classmethod
    def for_home(cls, home: Path) -> LocalKeyring:
        """The keyring of an embedded runtime home folder (`Settings.home`)."""
        return cls(home / KEYRING_FILENAME)

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def primary_version(self) -> int:
        """The key version new ciphertext is sealed with."""
        with self._lock:
            self._ensure_loaded()
            return self._primary

    @property
    def versions(self) -> list[int]:
        """Every key version this keyring can decrypt, oldest first."""
        with self._lock:
            self._ensure_loaded()
            return sorted(self._keys)

    # -- KeyService -------------------------------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        with self._lock:
            self._ensure_loaded()
            version, key = self._primary, self._keys[self._primary]
        header = _HEADER.pack(FORMAT_V1, version)
        nonce = os.urandom(_NONCE_LEN)
        return header + nonce + AESGCM(key).encrypt(nonce, bytes(plaintext), header + bytes(aad))

    def decrypt(self, ciphertext: bytes, aad: bytes) -> bytes:
        """Raises TerminalError on a foreign format, an unknown key version, tampering or an AAD mismatch."""
        data = bytes(ciphertext)
        if len(data) < _HEADER.size + _NONCE_LEN + _TAG_LEN:
            raise TerminalError(f"local keyring: ciphertext too short ({len(data)} bytes) to be one of ours")
        fmt, version = _HEADER.unpack_from(data)
        if fmt != FORMAT_V1:
            raise TerminalError(
                f"local keyring: unsupported ciphertext format 0x{fmt:02x} (expected 0x{FORMAT_V1:02x})"
            )
        key = self._key_for(version)
        body_at = _HEADER.size + _NONCE_LEN
        header, nonce, body = data[: _HEADER.size], data[_HEADER.size : body_at], data[body_at:]
        try:
            return AESGCM(key).decrypt(nonce, body, header + bytes(aad))
        except InvalidTag:
            raise TerminalError(
                "local keyring: decryption failed - the ciphertext was tampered with, "
                "or the additional authenticated data differs from encryption time"
            ) from None

    # -- rotation ---------------------------------------------------------------------------------------------------

    def rotate(self) -> int:
        """Add a fresh key version and make it primary; returns its id. Old versions still decrypt their ciphertext.

        The read-modify-write of the file happens under an exclusive lock so two processes rotating at once cannot lose
        a key version (which would make everything it sealed undecryptable).
        """
        with self._lock:
            if self._path is None:
                self._ensure_loaded()
                new = max(self._keys) + 1
                self._keys[new] = AESGCM.generate_key(bit_length=256)
                self._primary = new
                return new
            with self._file_lock():
                if not self._path.exists():
                    self._create_file()
                keys, _ = self._read_file()
                new = max(keys) + 1
                keys[new] = AESGCM.generate_key(bit_length=256)
                self._write_file(keys, new, replace=True)
                self._keys, self._primary, self._loaded = keys, new, True
                return new

    # -- internals --------------------------------------------------------------------------------------------------

    def _key_for(self, version: int) -> bytes:
        with self._lock:
            self._ensure_loaded()
            key = self._keys.get(version)
            if key is None and self._path is not None:
                # Another process may have rotated since we loaded: re-read once before giving up.
                self._keys, self._primary = self._read_file()
                key = self._keys.get(version)
        if key is None:
            where = str(self._path) if self._path is not None else "in-memory keyring"
            raise TerminalError(f"local keyring: unknown key version {version} (not in {where})")
        return key

    def _ensure_loaded(self) -> None:
        """Load (creating if needed) the keyring. Caller holds `self._lock`."""
        if self._loaded:
            return
        if self._path is None:
            self._keys, self._primary = {1: AESGCM.generate_key(bit_length=256)}, 1
        else:
            if not self._path.exists():
                self._create_file()
            self._keys, self._primary = self._read_file()
        self._loaded = True

    def _create_file(self) -> None:
        """Create the keyring with one key, without ever clobbering a keyring another process created meanwhile."""
        assert self._path is not None
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            self._write_file({1: AESGCM.generate_key(bit_length=256)}, 1, replace=False)

    def _write_file(self, keys: dict[int, bytes], primary: int, *, replace: bool) -> None:
        """Write to a 0600 temp file in the same folder, fsync, then publish it atomically.

        `replace=False` publishes with `os.link`, which fails if the keyring already exists (first-use creation race);
        `replace=True` uses `os.replace` (rotation, done under the file lock).
        """
        assert self._path is not None
        document = {
            "format": _FILE_FORMAT,
            "primary": primary,
            "keys": {str(v): base64.b64encode(k).decode("ascii") for v, k in sorted(keys.items())},
            "updated_at": iso(utc_now()),
        }
        tmp = self._path.with_name(f".{self._path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(document, fh, indent=2)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            if replace:
                os.replace(tmp, self._path)
            else:
                os.link(tmp, self._path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _fsync_dir(self._path.parent)

    def _read_file(self) -> tuple[dict[int, bytes], int]:
        """Parse and validate the keyring; a keyring readable by others is refused rather than silently used."""
        assert self._path is not None
        try:
            mode = stat.S_IMODE(self._path.stat().st_mode)
            raw = self._path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TerminalError(f"local keyring: cannot read {self._path}: {exc}") from exc
        if mode & 0o077:
            raise TerminalError(f"local keyring: {self._path} has permissions {mode:04o}; expected 0600 (chmod 600 it)")
        try:
            document: Any = json.loads(raw)
            if not isinstance(document, dict):
                raise ValueError("top level is not an object")
            if document.get("format") != _FILE_FORMAT:
                raise ValueError(f"unsupported keyring format {document.get('format')!r}")
            keys = {int(v): base64.b64decode(k, validate=True) for v, k in dict(document["keys"]).items()}
            primary = int(document["primary"])
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise TerminalError(f"local keyring: {self._path} is malformed: {exc}") from exc
        if primary not in keys or any(len(k) != _KEY_LEN or v < 1 for v, k in keys.items()):
            raise TerminalError(f"local keyring: {self._path} is malformed (bad primary or key length)")
        return keys, primary

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        assert self._path is not None
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_path = self._path.with_name(self._path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Make the rename/link itself durable, so a crash cannot leave a keyring that vanished after use."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
