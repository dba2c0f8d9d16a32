"""The compiled XDP objects (built from src/bpf by Pants and shipped as package data here)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

OBJECT_NAME = "fastpath.bpf.o"
GENERATOR_NAME = "fastpath_gen.bpf.o"
_PACKAGE_DIR = Path(*__name__.split("."))


def _find(name: str) -> Path:
    # In a PEX the object sits beside this module. In Pants' test sandboxes the generated object
    # and the sources live under different roots of sys.path, hence the search.
    beside = Path(__file__).with_name(name)
    candidates = [beside] + [Path(entry) / _PACKAGE_DIR / name for entry in sys.path if entry]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{name} is not packaged with {__name__}; build through Pants (src/bpf:fastpath_bpf)"
        " or set FASTPATH_BPF_OBJECT"
    )


def object_path() -> Path:
    """Path of the compiled XDP filter; FASTPATH_BPF_OBJECT overrides the packaged one."""
    override = os.environ.get("FASTPATH_BPF_OBJECT")
    if override:
        return Path(override)
    return _find(OBJECT_NAME)


def generator_path() -> Path:
    """Path of the in-kernel traffic generator (tests and benchmark)."""
    return _find(GENERATOR_NAME)
