"""`pants test` runs the smoke test against the PEX that Pants builds for it."""

from __future__ import annotations

from pathlib import Path

from api_smoke.smoke import run_smoke


def test_packaged_api_smoke() -> None:
    pex = Path("src.python.myapp.api/api.pex")
    assert pex.exists(), "the api PEX should be a runtime package dependency"
    run_smoke(pex)
