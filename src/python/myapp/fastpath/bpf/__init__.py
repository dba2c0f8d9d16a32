"""The compiled XDP objects (built from src/bpf by Pants and shipped as package data here)."""

from __future__ import annotations

import os
from pathlib import Path

from myapp.common.package_data import find_package_file

OBJECT_NAME = "fastpath.bpf.o"
GENERATOR_NAME = "fastpath_gen.bpf.o"


def _find(name: str) -> Path:
    return find_package_file(
        __name__, name, "build through Pants (src/bpf:fastpath_bpf) or set FASTPATH_BPF_OBJECT"
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
