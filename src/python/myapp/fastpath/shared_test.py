"""The Python mirror matches fastpath_shared.h: every size, offset and constant, as laid out by
the system C compiler."""

from __future__ import annotations

import ctypes as C
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from myapp.fastpath import shared

HEADER = Path("src/bpf/fastpath_shared.h")

# C name -> Python value, for every constant user space relies on.
CONSTANTS = {
    "FP_LAYOUT_VERSION": shared.LAYOUT_VERSION,
    "FP_SLOTS_PER_PREFIX": shared.SLOTS_PER_PREFIX,
    "FP_MAX_IPV6_EXT": shared.MAX_IPV6_EXT,
    "FP_RULE_NAME_LEN": shared.RULE_NAME_LEN,
    "FP_RULE_PORTS": shared.RULE_PORTS,
    "FP_MAX_RULES": shared.MAX_RULES,
    "FP_LPM_V4_ENTRIES": shared.LPM_V4_ENTRIES,
    "FP_LPM_V6_ENTRIES": shared.LPM_V6_ENTRIES,
    "FP_RATE_ENTRIES": shared.RATE_ENTRIES,
    "FP_XSK_QUEUES": shared.XSK_QUEUES,
    "FP_PROTECTED_ENTRIES": shared.PROTECTED_ENTRIES,
    "FP_CNT_MAX": shared.COUNTER_MAX,
    "FP_ERR_MAX": shared.PARSE_ERROR_MAX,
    **{f"FP_ACT_{a.name}": a.value for a in shared.Action},
    **{f"FP_POLICY_{p.name}": p.value for p in shared.Policy},
    **{f"FP_CNT_{c.name}": c.value for c in shared.Counter},
    **{f"FP_ERR_{e.name}": e.value for e in shared.ParseError},
}


def _c_program() -> str:
    lines = ["#include <stdio.h>", "#include <stddef.h>", f'#include "{HEADER.resolve()}"', ""]
    lines.append("int main(void) {")
    for cname, struct in shared.MIRRORED.items():
        lines.append(f'  printf("{cname} %zu\\n", sizeof(struct {cname}));')
        for field, *_ in struct._fields_:
            lines.append(f'  printf("{cname}.{field} %zu\\n", offsetof(struct {cname}, {field}));')
    for name in CONSTANTS:
        lines.append(f'  printf("{name} %lld\\n", (long long)({name}));')
    lines.append("  return 0;\n}")
    return "\n".join(lines)


def _python_layout() -> dict[str, int]:
    out: dict[str, int] = {}
    for cname, struct in shared.MIRRORED.items():
        out[cname] = C.sizeof(struct)
        for field, *_ in struct._fields_:
            out[f"{cname}.{field}"] = getattr(struct, field).offset
    out.update(CONSTANTS)
    return out


def test_python_mirror_matches_the_header(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("clang") or "/usr/bin/cc"
    if not Path(cc).exists():
        pytest.fail("no C compiler (cc): install Debian package clang (scripts/setup.sh)")
    source = tmp_path / "layout.c"
    source.write_text(_c_program())
    binary = tmp_path / "layout"
    subprocess.run(
        [cc, f"-I/usr/include/{platform.machine()}-linux-gnu", "-o", str(binary), str(source)],
        check=True,
        capture_output=True,
    )
    printed = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout
    c_layout = {name: int(value) for name, value in (line.split() for line in printed.splitlines())}
    assert c_layout == _python_layout()
