"""Settings is the one configuration source: nothing else in shared/ or functions/ reads the environment, the secrets
it carries never show in a repr, and the tenancy code takes its pepper, admin credential and global rate from it."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import SecretStr

from shared.errors import TerminalError, Unauthorized
from shared.runtime.context import Context
from shared.runtime.settings import Settings
from shared.tenancy.credentials import api_key_pepper, require_admin
from shared.tenancy.ratelimit import RateLimited, global_limiter
from tests.conftest import REPO

SETTINGS_FILE = REPO / "shared" / "runtime" / "settings.py"
PEPPER = "p" * 40
ADMIN = "a" * 40


def _environment_reads(path: Path, root: Path = REPO) -> list[str]:
    """`os.environ.get(...)`, `os.environ[...]` (read) and `os.getenv(...)` in one module, as `file:line`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        text = ""
        if isinstance(node, ast.Call):
            text = ast.unparse(node.func)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            text = ast.unparse(node.value) + ".__getitem__"
        if text in ("os.environ.get", "os.environ.__getitem__", "os.getenv", "environ.get", "getenv"):
            found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_nothing_outside_settings_reads_the_environment() -> None:
    modules = [p for d in ("shared", "functions") for p in sorted((REPO / d).rglob("*.py")) if p != SETTINGS_FILE]
    assert len(modules) > 100
    reads = [hit for path in modules for hit in _environment_reads(path)]
    assert reads == [], "add a Settings field (shared/runtime/settings.py) instead of reading the environment"
    assert _environment_reads(SETTINGS_FILE) == []  # from_env reads its dict `e`, filled from os.environ once


def test_the_guard_sees_an_environment_read(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    lines = ["import os", "A = os.environ.get('X')", "B = os.environ['Y']", "os.getenv('Z')", "os.environ['W'] = '1'"]
    module.write_text("\n".join(lines) + "\n")
    assert _environment_reads(module, tmp_path) == ["probe.py:2", "probe.py:3", "probe.py:4"]


def test_secrets_come_from_the_environment_and_never_show_in_a_repr() -> None:
    env = {
        "CLOUDACT_API_KEY_PEPPER": PEPPER,
        "CLOUDACT_ADMIN_TOKEN": ADMIN,
        "CLOUDACT_ADMIN_TOKEN_SEALED": "c2VhbGVk",
        "CLOUDACT_GLOBAL_REQUESTS_PER_MINUTE": "7",
        "CLOUDACT_LOG_LEVEL": "WARNING",
    }
    settings = Settings.from_env(env)
    assert settings.api_key_pepper is not None and settings.api_key_pepper.get_secret_value() == PEPPER
    assert settings.admin_token is not None and settings.admin_token.get_secret_value() == ADMIN
    assert (settings.admin_token_sealed, settings.global_requests_per_minute, settings.log_level) == (
        "c2VhbGVk",
        7,
        "WARNING",
    )
    ctx = Context(settings)
    ctx.caches.api_key_pepper = api_key_pepper(ctx)
    for shown in (repr(settings), str(settings), repr(ctx), repr(ctx.caches), str(settings.admin_token)):
        assert PEPPER not in shown and ADMIN not in shown and "pppp" not in shown
    unset = Settings.from_env({"CLOUDACT_API_KEY_PEPPER": "", "CLOUDACT_ADMIN_TOKEN": ""})
    assert (unset.api_key_pepper, unset.admin_token, unset.admin_token_sealed) == (None, None, None)
    assert unset.global_requests_per_minute == 60_000


def test_credentials_come_from_settings_and_are_cached_per_instance(settings: Settings) -> None:
    ctx = Context(replace(settings, api_key_pepper=SecretStr(PEPPER), admin_token=SecretStr(ADMIN)))
    assert api_key_pepper(ctx) == PEPPER.encode() == ctx.caches.api_key_pepper
    require_admin(ctx, ADMIN)
    assert ctx.caches.admin_token_digest is not None
    with pytest.raises(Unauthorized):
        require_admin(ctx, "b" * 40)
    short = Context(replace(settings, api_key_pepper=SecretStr("too short")))
    with pytest.raises(TerminalError, match="CLOUDACT_API_KEY_PEPPER must be at least 32"):
        api_key_pepper(short)


def test_the_global_limiter_takes_its_rate_from_settings(settings: Settings) -> None:
    ctx = Context(replace(settings, global_requests_per_minute=2))
    limiter = global_limiter(ctx)
    assert global_limiter(ctx) is limiter is ctx.caches.global_limiter  # one per instance
    minute = 1_800_000_000.0  # a window boundary: the three requests fall in the same minute
    limiter.check(minute + 1)
    limiter.check(minute + 2)
    with pytest.raises(RateLimited):
        limiter.check(minute + 3)
    limiter.check(minute + 61)  # the next window admits again
