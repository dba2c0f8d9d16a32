"""The compiled XDP object (built from src/bpf by Pants and shipped as package data here)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

OBJECT_NAME = "fastpath.bpf.o"
_PACKAGE_DIR = Path(*__name__.split("."))


def object_path() -> Path:
    """Path of the compiled XDP object; FASTPATH_BPF_OBJECT overrides the packaged one.

    In a PEX the object sits beside this module. In Pants' test sandboxes the generated object
    and the sources live under different roots of sys.path, hence the search.
    """
    override = os.environ.get("FASTPATH_BPF_OBJECT")
    if override:
        return Path(override)
    beside = Path(__file__).with_name(OBJECT_NAME)
    candidates = [beside] + [
        Path(entry) / _PACKAGE_DIR / OBJECT_NAME for entry in sys.path if entry
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{OBJECT_NAME} is not packaged with {__name__}; build through Pants "
        "(src/bpf:fastpath_bpf) or set FASTPATH_BPF_OBJECT"
    )
