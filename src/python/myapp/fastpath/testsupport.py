"""Helpers for tests that need the real kernel: privilege checks that skip locally and fail in
CI, and unique names for everything a test creates."""

from __future__ import annotations

import os
import uuid

import pytest


def require_root(what: str = "loading BPF programs") -> None:
    """Skip (or, with CI=true, fail) unless running as root."""
    if os.geteuid() == 0:
        return
    reason = f"needs root for {what}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}, and CI is set: tests must run as root in CI")
    pytest.skip(reason)


def unique_name(prefix: str, length: int = 15) -> str:
    """A name unique across concurrent test processes (interface names max out at 15)."""
    return (prefix + uuid.uuid4().hex)[:length]
